"""The `fjord groups` admin CLI (list, describe, delete, reset-offsets) against a real broker.

The binary at $FJORD_BIN runs as a subprocess (30 s bound each) with
`--bootstrap-server 127.0.0.1:PORT`; its output is the contract, modelled on
Kafka's kafka-consumer-groups.sh:

* `groups list` prints one group id per line, sorted;
* `groups describe --group G` prints a whitespace-separated table with header
  GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
  (`-` where a value is unknown: no committed offset, no owning member),
  preceded by `Consumer group 'G' has no active members.` when it has none;
* `groups delete --group G` prints
  `Deletion of requested consumer groups ('G') was successful.`; a group with
  active members or an unknown group exits 1 with a message on stderr;
* `groups reset-offsets --group G --topic T[:p,p] MODE [--dry-run|--execute]`
  with MODE one of --to-earliest, --to-latest, --to-offset N, --to-datetime
  ISO-8601 (UTC when no zone is given; a Z suffix is accepted), --by-duration
  PnDTnHnM (now minus the duration), --shift-by N. It prints a table with
  header GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET LAG (LAG = log end
  offset - NEW-OFFSET; CURRENT-OFFSET `-` if none is committed). Dry run is
  the default and commits nothing; --execute commits. --to-offset and
  --shift-by clamp to [log start offset, log end offset]; a time with no
  record at or after it resolves to the log end offset (as in Kafka). A group
  with active members is refused (exit 1, stderr mentions "inactive").

The replay tests produce 10 records with producer timestamps one hour apart
(the last one 30 minutes ago), consume and commit them all with a
confluent-kafka group member, close it, run one reset mode with --execute, and
check a new member of the group reads exactly the expected records.
"""
import datetime
import subprocess
import time

import pytest
from confluent_kafka import TopicPartition

from fjord_proc import FJORD_BIN
from group_support import (FAST_GROUPS, T, Member, admin, alter_offsets, committed_offsets,
                           consume_group, create_topic, group_ids, produce, unique, wait_balanced)

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")

HOUR_MS = 3600 * 1000
DESCRIBE_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                   "CONSUMER-ID", "HOST", "CLIENT-ID"]
RESET_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET", "LAG"]


def cli(b, *args):
    """Run `fjord groups ARGS --bootstrap-server ...`; returns CompletedProcess (text)."""
    cmd = [FJORD_BIN, "groups", *args, "--bootstrap-server", b.bootstrap]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def cli_ok(b, *args):
    r = cli(b, *args)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


def table(out, header):
    """Rows after the header line, as dicts keyed by (topic, partition)."""
    lines = out.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split() == header]
    assert len(starts) == 1, f"expected one header line {' '.join(header)} in:\n{out}"
    rows = {}
    for line in lines[starts[0] + 1:]:
        cols = line.split()
        if not cols:
            continue
        assert len(cols) == len(header), f"row {line!r} does not have the {len(header)} columns {header}"
        row = dict(zip(header, cols))
        key = (row["TOPIC"], int(row["PARTITION"]))
        assert key not in rows, f"duplicate row for {key}:\n{out}"
        rows[key] = row
    return rows, lines[:starts[0]]


def iso(ms):
    """A UTC time as 2026-11-24T10:00:00.000 (no zone)."""
    dt = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (ms % 1000)


def offsets_only(b, group):
    return {k: v[0] for k, v in committed_offsets(b, group).items()}


# ---------------------------------------------------------------- list / describe / delete


def test_list_groups(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    assert cli_ok(b, "list").split() == [], "a fresh broker has no groups"
    t = unique("cli-list")
    create_topic(b, t, 1)
    ga, gb, gc = "b-" + unique("grp"), "a-" + unique("grp"), "c-" + unique("grp")
    for g in (ga, gb):
        assert alter_offsets(b, g, [TopicPartition(t, 0, 0)]) == {(t, 0): None}
    m = Member(b, gc, [t], "cli-list-member")
    try:
        wait_balanced(b, gc, [m], {(t, 0)})
        out = cli_ok(b, "list")
        assert out.splitlines() == sorted([ga, gb, gc]), out
    finally:
        m.close()


def test_describe_active_then_empty_group(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t, g = unique("cli-desc"), unique("g-desc")
    create_topic(b, t, 2)
    produce(b, t, [{"partition": 0, "value": b"a"}] * 10 + [{"partition": 1, "value": b"b"}] * 5)
    m = Member(b, g, [t], "cli-describe-client")
    try:
        wait_balanced(b, g, [m], {(t, 0), (t, 1)})
        res = m.c.commit(offsets=[TopicPartition(t, 0, 3)], asynchronous=False)
        assert res[0].error is None
        out = cli_ok(b, "describe", "--group", g)
        rows, before = table(out, DESCRIBE_HEADER)
        assert not any("has no active members" in line for line in before), out
        assert set(rows) == {(t, 0), (t, 1)}, out
        r0, r1 = rows[(t, 0)], rows[(t, 1)]
        for r in (r0, r1):
            assert r["GROUP"] == g
            assert r["CONSUMER-ID"] == m.member_id()
            assert "127.0.0.1" in r["HOST"], r
            assert r["CLIENT-ID"] == "cli-describe-client"
        assert [r0[k] for k in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")] == ["3", "10", "7"], out
        # an owned partition without a committed offset: no current offset, no lag
        assert [r1[k] for k in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")] == ["-", "5", "-"], out
    finally:
        m.close()

    deadline = time.monotonic() + 10
    while True:
        out = cli_ok(b, "describe", "--group", g)
        if f"Consumer group '{g}' has no active members." in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    rows, before = table(out, DESCRIBE_HEADER)
    assert [line for line in before if line.strip()] == [f"Consumer group '{g}' has no active members."], out
    # only partitions with a committed offset are listed once nobody owns them
    assert set(rows) == {(t, 0)}, out
    assert [rows[(t, 0)][k] for k in DESCRIBE_HEADER] == [g, t, "0", "3", "10", "7", "-", "-", "-"], out


def test_delete_group(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t = unique("cli-del")
    create_topic(b, t, 1)
    g_empty, g_active, g_unknown = unique("g-empty"), unique("g-active"), unique("g-unknown")
    assert alter_offsets(b, g_empty, [TopicPartition(t, 0, 0)]) == {(t, 0): None}
    m = Member(b, g_active, [t], "cli-del-member")
    try:
        wait_balanced(b, g_active, [m], {(t, 0)})
        out = cli_ok(b, "delete", "--group", g_empty)
        assert out.strip() == f"Deletion of requested consumer groups ('{g_empty}') was successful.", out
        assert g_empty not in group_ids(b)
        assert committed_offsets(b, g_empty) == {}

        r = cli(b, "delete", "--group", g_active)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip(), "a refused deletion must say why on stderr"
        assert g_active in group_ids(b)

        r = cli(b, "delete", "--group", g_unknown)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip()
    finally:
        m.close()


# ---------------------------------------------------------------- reset-offsets


def replay_setup(b):
    """Topic with 10 records at timestamps one hour apart (record i at
    now - (9 - i) h - 30 min), all consumed and committed (offset 10) by group g."""
    t, g = unique("cli-replay"), unique("g-replay")
    create_topic(b, t, 1)
    now = int(time.time() * 1000)
    ts = [now - (9 - i) * HOUR_MS - HOUR_MS // 2 for i in range(10)]
    produce(b, t, [{"partition": 0, "value": b"r%d" % i, "timestamp": ts[i]} for i in range(10)])
    got = consume_group(b, g, t, {0}, commit=True, name="setup-reader")
    assert [(p, o) for p, o, _ in got] == [(0, i) for i in range(10)]
    assert offsets_only(b, g) == {(t, 0): 10}
    return t, g, ts


def replay(b, g, t):
    """What a new member of g reads (from its committed offset to the end)."""
    got = consume_group(b, g, t, {0}, conf={"auto.offset.reset": "error"}, name="replayer")
    return [(o, v) for _, o, v in got]


# (id, args built from the record timestamps, expected new offset). Committed is 10, log end 10.
REPLAY_CASES = [
    ("to-earliest", lambda ts: ["--to-earliest"], 0),
    ("to-latest", lambda ts: ["--to-latest"], 10),
    ("to-offset", lambda ts: ["--to-offset", "6"], 6),
    ("to-offset-past-end-clamps", lambda ts: ["--to-offset", "100"], 10),
    ("shift-by-minus-3", lambda ts: ["--shift-by", "-3"], 7),
    ("shift-by-plus-clamps", lambda ts: ["--shift-by", "5"], 10),
    ("shift-by-minus-100-clamps", lambda ts: ["--shift-by", "-100"], 0),
    # first record with timestamp >= the time
    ("to-datetime-exact", lambda ts: ["--to-datetime", iso(ts[4])], 4),
    ("to-datetime-z", lambda ts: ["--to-datetime", iso(ts[4] + 1) + "Z"], 5),
    ("to-datetime-future", lambda ts: ["--to-datetime", iso(ts[9] + 24 * HOUR_MS)], 10),
    # now - 3 h lies between record 6 (now - 3.5 h) and record 7 (now - 2.5 h)
    ("by-duration-3h", lambda ts: ["--by-duration", "PT3H"], 7),
    # now - 8 h 15 min lies between record 1 (now - 8.5 h) and record 2 (now - 7.5 h)
    ("by-duration-8h15m", lambda ts: ["--by-duration", "P0DT8H15M"], 2),
]


@pytest.mark.parametrize("mode,args,expect", REPLAY_CASES, ids=[c[0] for c in REPLAY_CASES])
def test_reset_offsets_replay(broker_factory, mode, args, expect):
    b = broker_factory(extra=FAST_GROUPS)
    t, g, ts = replay_setup(b)
    out = cli_ok(b, "reset-offsets", "--group", g, "--topic", t, *args(ts), "--execute")
    rows, _ = table(out, RESET_HEADER)
    assert set(rows) == {(t, 0)}, out
    assert [rows[(t, 0)][k] for k in RESET_HEADER] == [g, t, "0", "10", str(expect), str(10 - expect)], out
    assert offsets_only(b, g) == {(t, 0): expect}
    assert replay(b, g, t) == [(i, b"r%d" % i) for i in range(expect, 10)]


def test_reset_offsets_dry_run_is_the_default(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t, g, _ = replay_setup(b)
    for extra in ([], ["--dry-run"]):
        out = cli_ok(b, "reset-offsets", "--group", g, "--topic", t, "--to-earliest", *extra)
        rows, _ = table(out, RESET_HEADER)
        assert [rows[(t, 0)][k] for k in RESET_HEADER] == [g, t, "0", "10", "0", "10"], out
        assert offsets_only(b, g) == {(t, 0): 10}, f"reset-offsets {extra} committed something"
    assert replay(b, g, t) == []


def test_reset_offsets_refused_while_group_active(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t, g, _ = replay_setup(b)
    m = Member(b, g, [t], "cli-active-member")
    try:
        wait_balanced(b, g, [m], {(t, 0)})
        r = cli(b, "reset-offsets", "--group", g, "--topic", t, "--to-earliest", "--execute")
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "inactive" in r.stderr, r.stderr
        assert offsets_only(b, g) == {(t, 0): 10}
    finally:
        m.close()


def test_reset_offsets_partition_selection_and_new_group(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t, g = unique("cli-parts"), unique("g-parts")
    create_topic(b, t, 3)
    counts = {0: 10, 1: 5, 2: 3}
    produce(b, t, [{"partition": p, "value": b"%d-%d" % (p, i)} for p, n in counts.items() for i in range(n)])
    got = consume_group(b, g, t, set(counts), commit=True, name="setup-reader")
    assert len(got) == 18
    assert offsets_only(b, g) == {(t, p): n for p, n in counts.items()}

    out = cli_ok(b, "reset-offsets", "--group", g, "--topic", f"{t}:0,2", "--to-earliest", "--execute")
    rows, _ = table(out, RESET_HEADER)
    assert {k: [r["CURRENT-OFFSET"], r["NEW-OFFSET"], r["LAG"]] for k, r in rows.items()} == \
        {(t, 0): ["10", "0", "10"], (t, 2): ["3", "0", "3"]}, out
    assert offsets_only(b, g) == {(t, 0): 0, (t, 1): 5, (t, 2): 0}
    got = consume_group(b, g, t, set(counts), conf={"auto.offset.reset": "error"}, name="replayer")
    assert sorted((p, o) for p, o, _ in got) == [(0, i) for i in range(10)] + [(2, i) for i in range(3)]

    # a group that has never committed: CURRENT-OFFSET "-", the reset creates its offsets
    fresh = unique("g-fresh")
    out = cli_ok(b, "reset-offsets", "--group", fresh, "--topic", t, "--to-offset", "2", "--execute")
    rows, _ = table(out, RESET_HEADER)
    assert {k: [r["GROUP"], r["CURRENT-OFFSET"], r["NEW-OFFSET"], r["LAG"]] for k, r in rows.items()} == \
        {(t, 0): [fresh, "-", "2", "8"], (t, 1): [fresh, "-", "2", "3"], (t, 2): [fresh, "-", "2", "1"]}, out
    assert offsets_only(b, fresh) == {(t, 0): 2, (t, 1): 2, (t, 2): 2}


def test_reset_offsets_clamp_to_log_start(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t, g, _ = replay_setup(b)
    a = admin(b)
    [res] = a.delete_records([TopicPartition(t, 0, 3)], request_timeout=T, operation_timeout=T).values()
    assert res.result(timeout=T).low_watermark == 3
    for args, expect in ((["--to-earliest"], 3), (["--to-offset", "1"], 3), (["--shift-by", "-100"], 3),
                         (["--to-datetime", "2001-01-01T00:00:00.000"], 3), (["--to-offset", "5"], 5)):
        out = cli_ok(b, "reset-offsets", "--group", g, "--topic", t, *args, "--dry-run")
        rows, _ = table(out, RESET_HEADER)
        assert [rows[(t, 0)][k] for k in ("CURRENT-OFFSET", "NEW-OFFSET", "LAG")] == \
            ["10", str(expect), str(10 - expect)], (args, out)
    assert offsets_only(b, g) == {(t, 0): 10}
    cli_ok(b, "reset-offsets", "--group", g, "--topic", t, "--to-offset", "1", "--execute")
    assert offsets_only(b, g) == {(t, 0): 3}
    assert replay(b, g, t) == [(i, b"r%d" % i) for i in range(3, 10)]
