"""Consumer groups (classic protocol) with confluent-kafka 2.16.1 / librdkafka 2.16.

Proves that librdkafka's group consumer and admin API work against fjord as
they do against Kafka:

* partitions of a 6-partition topic are shared by 2, then 3 subscribed members
  (each partition owned by exactly one member, sizes differ by at most one, and
  the coordinator's DescribeGroups view matches what the clients hold), records
  produced to each partition reach exactly its owner, a member that closes
  hands its partitions to the rest, and the last member standing owns them
  all - for the range, roundrobin and cooperative-sticky assignors (with
  cooperative-sticky, a partition a member keeps is never revoked);
* static membership (KIP-345): a static member that closes (librdkafka sends no
  LeaveGroup for it) and comes back with the same group.instance.id inside its
  session timeout gets its old partitions back under a new member id while the
  other member sees no rebalance at all; one that does not come back is removed
  only when its session times out;
* offsets committed with metadata (commit + committed round trip) survive a
  graceful stop and a SIGKILL: after a restart on the same data directory the
  group is listed (Empty, with its offsets and metadata) and a new member
  resumes exactly at the committed offsets (auto.offset.reset=error);
* AdminClient: list_consumer_groups (with and without a states filter),
  describe_consumer_groups (state, assignor, members with id/client id/host/
  assignment, coordinator = this broker, simple groups, unknown groups),
  list/alter_consumer_group_offsets (alter works on an empty group and is
  refused per partition with UNKNOWN_MEMBER_ID while members are active),
  delete_consumer_groups (NON_EMPTY_GROUP while members are active,
  GROUP_ID_NOT_FOUND for an unknown group, success on an empty one, the
  offsets go with it), and deletions survive a SIGKILL.

OffsetDelete (KIP-496) is not exposed by confluent-kafka's Python AdminClient;
test_groups_kafka_python.py and test_groups_bad_input.py cover it.

Brokers run with --group-initial-rebalance-delay-ms 0 and members with
session.timeout.ms 6000 (the broker minimum) / heartbeat.interval.ms 500 so
rebalances take about a second.
"""
import time

import pytest
from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException, TopicPartition

from group_support import (FAST_GROUPS, T, Member, admin, alter_offsets, committed_offsets,
                           create_topic, describe, group_ids, poll_all, produce, tps, unique,
                           wait_balanced, wait_until)

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")

STRATEGIES = ["range", "roundrobin", "cooperative-sticky"]


def fast_broker(broker_factory, *extra, **kw):
    return broker_factory(extra=FAST_GROUPS + list(extra), **kw)


def revoked_since(member, start):
    out = set()
    for kind, parts in member.events[start:]:
        if kind in ("revoke", "lost"):
            out |= parts
    return out


def check_cooperative(strategy, before):
    """Cooperative rebalancing: a partition a member owned before and after the
    rebalance was never taken away from it in between."""
    if strategy != "cooperative-sticky":
        return
    for m, (start, owned) in before.items():
        kept = owned & m.assignment()
        assert not (revoked_since(m, start) & kept), (
            f"{m.name} had {sorted(kept)} revoked although it kept them: events {m.events[start:]}")


def snapshot(members):
    return {m: (len(m.events), m.assignment()) for m in members}


# ---------------------------------------------------------------- sharing partitions


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_members_share_partitions_and_take_over(broker_factory, strategy):
    b = fast_broker(broker_factory)
    t, g = unique("grp-share"), unique("g-share")
    create_topic(b, t, 6)
    parts = {(t, p) for p in range(6)}
    members = []
    try:
        m1 = Member(b, g, [t], "m1", strategy)
        members.append(m1)
        m2 = Member(b, g, [t], "m2", strategy)
        members.append(m2)
        view = wait_balanced(b, g, [m1, m2], parts)
        assert sorted(map(len, view.values())) == [3, 3], view

        # one record per partition: each reaches exactly the member that owns it
        produce(b, t, [{"partition": p, "value": b"v%d" % p} for p in range(6)])
        wait_until([m1, m2], lambda: len(m1.messages) + len(m2.messages) >= 6, 20,
                   lambda: f"{len(m1.messages)}+{len(m2.messages)} of 6 records; {members}")
        poll_all([m1, m2], 0.5)  # nothing more (no duplicates) arrives
        for m in (m1, m2):
            for msg in m.messages:
                assert (msg.topic(), msg.partition()) in m.assignment(), (
                    f"{m.name} got a record of partition {msg.partition()} it does not own")
        got = sorted((msg.partition(), msg.offset(), msg.value()) for m in (m1, m2) for msg in m.messages)
        assert got == [(p, 0, b"v%d" % p) for p in range(6)], got

        # a third member joins: the partitions spread 2/2/2
        before = snapshot([m1, m2])
        m3 = Member(b, g, [t], "m3", strategy)
        members.append(m3)
        view = wait_balanced(b, g, [m1, m2, m3], parts)
        assert sorted(map(len, view.values())) == [2, 2, 2], view
        check_cooperative(strategy, before)

        # a member leaves (close() sends LeaveGroup): the others take over its partitions
        before = snapshot([m1, m3])
        m2.close()
        view = wait_balanced(b, g, [m1, m3], parts)
        assert sorted(map(len, view.values())) == [3, 3], view
        check_cooperative(strategy, before)

        # down to one member: it owns everything
        m1.close()
        view = wait_balanced(b, g, [m3], parts)
        assert view == {"m3": parts}
    finally:
        for m in members:
            m.close()


# ---------------------------------------------------------------- static membership


def test_static_member_restart_keeps_assignment_without_rebalance(broker_factory):
    b = fast_broker(broker_factory)
    t, g = unique("grp-static"), unique("g-static")
    create_topic(b, t, 4)
    parts = {(t, p) for p in range(4)}
    session_ms = 10000
    members = []
    try:
        a = Member(b, g, [t], "static-a", instance_id="inst-a", session_ms=session_ms)
        members.append(a)
        other = Member(b, g, [t], "static-b", instance_id="inst-b", session_ms=session_ms)
        members.append(other)
        wait_balanced(b, g, [a, other], parts)
        a_parts, other_parts = a.assignment(), other.assignment()
        old_a_id, other_id = a.member_id(), other.member_id()
        other_events = len(other.events)

        # KIP-345: librdkafka sends no LeaveGroup when a static member closes
        a.close()
        closed_at = time.monotonic()
        a2 = Member(b, g, [t], "static-a", instance_id="inst-a", session_ms=session_ms)
        members.append(a2)
        wait_until([a2, other], lambda: bool(a2.assignment()), 8,
                   lambda: f"restarted static member has no assignment; {members}, events {a2.events}")
        poll_all([a2, other], 2.0)
        assert time.monotonic() - closed_at < session_ms / 1000, \
            "the restart took longer than the session timeout; the test proves nothing"

        assert a2.assignment() == a_parts, "the returning static member did not get its partitions back"
        assert other.events[other_events:] == [], (
            f"the other member went through a rebalance: {other.events[other_events:]}")
        assert other.assignment() == other_parts

        desc = describe(b, g)
        assert desc.state == ConsumerGroupState.STABLE
        assert {m.group_instance_id for m in desc.members} == {"inst-a", "inst-b"}
        assert {m.member_id for m in desc.members} == {a2.member_id(), other_id}
        assert a2.member_id() != old_a_id, "Kafka gives a returning static member a new member id"
    finally:
        for m in members:
            m.close()


def test_static_member_removed_only_when_its_session_expires(broker_factory):
    b = fast_broker(broker_factory)
    t, g = unique("grp-static-exp"), unique("g-static-exp")
    create_topic(b, t, 4)
    parts = {(t, p) for p in range(4)}
    session_ms = 6000
    members = []
    try:
        a = Member(b, g, [t], "static-a", instance_id="inst-a", session_ms=session_ms)
        members.append(a)
        other = Member(b, g, [t], "static-b", instance_id="inst-b", session_ms=session_ms)
        members.append(other)
        wait_balanced(b, g, [a, other], parts)
        a.close()  # no LeaveGroup: the coordinator must wait for the session to expire
        closed_at = time.monotonic()
        wait_until([other], lambda: other.assignment() == parts, 25,
                   lambda: f"the surviving member never took over: {other}")
        waited = time.monotonic() - closed_at
        # The last heartbeat was at most heartbeat.interval.ms (0.5 s) before close().
        assert waited >= session_ms / 1000 - 1.5, (
            f"the static member was removed {waited:.1f}s after it closed, before its "
            f"{session_ms} ms session expired")
        desc = describe(b, g)
        assert [m.group_instance_id for m in desc.members] == ["inst-b"]
    finally:
        for m in members:
            m.close()


# ---------------------------------------------------------------- commit and resume


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_committed_offsets_survive_restart(broker_factory, tmp_path, how):
    data = tmp_path / f"restart-{how}"
    b = fast_broker(broker_factory, data_dir=data)
    t, g = unique("grp-resume"), unique("g-resume")
    create_topic(b, t, 2)
    produce(b, t, [{"partition": p, "value": b"%d-%d" % (p, i)} for p in range(2) for i in range(10)])
    meta = {0: "resume p0 at 4 (worker-1)", 1: '{"checkpoint": 7}'}
    want = {(t, 0): (4, meta[0]), (t, 1): (7, meta[1])}

    m = Member(b, g, [t], "committer")
    try:
        wait_until([m], lambda: len(m.messages) >= 5, 20, lambda: f"{m}: {len(m.messages)} records")
        res = m.c.commit(offsets=[TopicPartition(t, 0, 4, metadata=meta[0]),
                                  TopicPartition(t, 1, 7, metadata=meta[1])], asynchronous=False)
        assert [tp.error for tp in res] == [None, None], res
        got = m.c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=T)
        assert {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in got} == want
    finally:
        m.close()
    assert committed_offsets(b, g) == want

    port = b.port
    if how == "stop":
        assert b.stop() == 0, "graceful stop did not exit 0"
    else:
        b.kill()
    b2 = fast_broker(broker_factory, data_dir=data, port=port)

    listed = group_ids(b2, settle_s=10)
    assert g in listed, f"group {g} lost across the restart: {sorted(listed)}"
    assert listed[g].state == ConsumerGroupState.EMPTY
    assert not listed[g].is_simple_consumer_group, "protocol type 'consumer' lost across the restart"
    assert committed_offsets(b2, g) == want

    # a new member resumes exactly at the committed offsets
    r = Member(b2, g, [t], "resumer", conf={"auto.offset.reset": "error"})
    try:
        both = {(t, 0), (t, 1)}
        wait_until([r], lambda: r.assignment() == both and both <= r.eof, 25,
                   lambda: f"{r}: eof {r.eof}, {len(r.messages)} records, errors {r.errors}")
        assert not [e for e in r.errors if e.code() == KafkaError._AUTO_OFFSET_RESET], r.errors
        got = sorted((x.partition(), x.offset(), x.value()) for x in r.messages)
        assert got == ([(0, i, b"0-%d" % i) for i in range(4, 10)]
                       + [(1, i, b"1-%d" % i) for i in range(7, 10)]), got
        cm = r.c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=T)
        assert {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in cm} == want
    finally:
        r.close()


def test_commit_metadata_too_large_is_refused(broker_factory):
    """offset.metadata.max.bytes defaults to 4096: a longer string is refused
    (OFFSET_METADATA_TOO_LARGE) and nothing is committed for that partition.

    confluent-kafka-python sends a TopicPartition's metadata with its C string
    terminator (metadata_size = strlen + 1: "abc" is committed as "abc\\0", as
    kafka-python's list_group_offsets shows), so n characters here are n + 1
    bytes on the wire: 4095 characters are exactly at the limit, 4096 are over."""
    b = fast_broker(broker_factory)
    t, g = unique("grp-bigmeta"), unique("g-bigmeta")
    create_topic(b, t, 2)
    m = Member(b, g, [t], "bigmeta")
    try:
        wait_until([m], lambda: len(m.assignment()) == 2, 20, lambda: f"{m}")
        ok = m.c.commit(offsets=[TopicPartition(t, 0, 1, metadata="m" * 4095)], asynchronous=False)
        assert ok[0].error is None, ok
        with pytest.raises(KafkaException) as ei:
            res = m.c.commit(offsets=[TopicPartition(t, 1, 1, metadata="m" * 4096)], asynchronous=False)
            # some binding versions report per partition instead of raising
            if res and res[0].error is not None:
                raise KafkaException(res[0].error)
        assert ei.value.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE
    finally:
        m.close()
    assert committed_offsets(b, g) == {(t, 0): (1, "m" * 4095)}


# ---------------------------------------------------------------- admin API


def node_id(b):
    a = admin(b)
    (nid,) = a.list_topics(timeout=T).brokers
    return nid


def test_admin_list_and_describe_groups(broker_factory):
    b = fast_broker(broker_factory)
    t = unique("grp-admin")
    create_topic(b, t, 3)
    parts = {(t, p) for p in range(3)}
    g_active, g_simple, g_unknown = unique("g-active"), unique("g-simple"), unique("g-unknown")

    # offsets committed for a group nobody joined: Kafka keeps it as an Empty
    # group with protocol type "" (librdkafka calls that a simple consumer group)
    assert alter_offsets(b, g_simple, [TopicPartition(t, 0, 2), TopicPartition(t, 1, 1)]) == \
        {(t, 0): None, (t, 1): None}

    m = Member(b, g_active, [t], "admin-member", "range")
    try:
        wait_balanced(b, g_active, [m], parts)

        listed = group_ids(b)
        assert {g_active, g_simple} <= set(listed), sorted(listed)
        assert g_unknown not in listed
        assert listed[g_active].state == ConsumerGroupState.STABLE
        assert not listed[g_active].is_simple_consumer_group
        assert listed[g_simple].state == ConsumerGroupState.EMPTY
        assert listed[g_simple].is_simple_consumer_group

        assert set(group_ids(b, {ConsumerGroupState.STABLE})) == {g_active}
        assert set(group_ids(b, {ConsumerGroupState.EMPTY})) == {g_simple}
        assert set(group_ids(b, {ConsumerGroupState.EMPTY, ConsumerGroupState.STABLE})) == {g_active, g_simple}
        assert set(group_ids(b, {ConsumerGroupState.PREPARING_REBALANCING})) == set()

        a = admin(b)
        futs = a.describe_consumer_groups([g_active, g_simple, g_unknown], request_timeout=T)
        da = futs[g_active].result(timeout=T)
        assert da.group_id == g_active
        assert da.state == ConsumerGroupState.STABLE
        assert da.partition_assignor == "range"
        assert not da.is_simple_consumer_group
        assert (da.coordinator.id, da.coordinator.host, da.coordinator.port) == \
            (node_id(b), "127.0.0.1", b.port), "FindCoordinator must name this broker"
        [mem] = da.members
        assert mem.member_id == m.member_id()
        assert mem.client_id == "admin-member"
        assert "127.0.0.1" in mem.host, mem.host
        assert mem.group_instance_id is None
        assert tps(mem.assignment.topic_partitions) == parts

        ds = futs[g_simple].result(timeout=T)
        assert ds.state == ConsumerGroupState.EMPTY
        assert ds.members == []
        assert ds.is_simple_consumer_group

        # Kafka: DescribeGroups v0-5 answer an unknown group with state Dead and
        # no error; v6 (KIP-1043) with GROUP_ID_NOT_FOUND. Either is fine.
        try:
            du = futs[g_unknown].result(timeout=T)
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, e
        else:
            assert du.state == ConsumerGroupState.DEAD and du.members == [], (du.state, du.members)
    finally:
        m.close()

    # after the only member left (LeaveGroup), the group is Empty but keeps protocol type "consumer"
    wait_until([], lambda: describe(b, g_active).state == ConsumerGroupState.EMPTY, 10,
               lambda: f"state {describe(b, g_active).state} after the last member left")
    de = describe(b, g_active)
    assert de.members == [] and not de.is_simple_consumer_group


def test_admin_offsets_and_delete_groups(broker_factory):
    b = fast_broker(broker_factory)
    t = unique("grp-offsets")
    create_topic(b, t, 2)
    produce(b, t, [{"partition": p, "value": b"x"} for p in range(2) for _ in range(10)])
    g_active, g_empty, g_unknown = unique("g-active"), unique("g-empty"), unique("g-unknown")

    # alter on an empty (here: not yet existing) group works; list returns it
    assert alter_offsets(b, g_empty, [TopicPartition(t, 0, 3), TopicPartition(t, 1, 5)]) == \
        {(t, 0): None, (t, 1): None}
    assert committed_offsets(b, g_empty) == {(t, 0): (3, ""), (t, 1): (5, "")} or \
        committed_offsets(b, g_empty) == {(t, 0): (3, None), (t, 1): (5, None)}
    assert alter_offsets(b, g_empty, [TopicPartition(t, 0, 8)]) == {(t, 0): None}
    assert {k: v[0] for k, v in committed_offsets(b, g_empty).items()} == {(t, 0): 8, (t, 1): 5}

    m = Member(b, g_active, [t], "offsets-member")
    try:
        wait_balanced(b, g_active, [m], {(t, 0), (t, 1)})
        res = m.c.commit(offsets=[TopicPartition(t, 0, 2), TopicPartition(t, 1, 4)], asynchronous=False)
        assert [tp.error for tp in res] == [None, None]
        assert {k: v[0] for k, v in committed_offsets(b, g_active).items()} == {(t, 0): 2, (t, 1): 4}

        # while a member is active, only members may commit: Kafka answers an
        # admin commit (generation -1, no member id) with UNKNOWN_MEMBER_ID per partition
        errs = alter_offsets(b, g_active, [TopicPartition(t, 0, 9), TopicPartition(t, 1, 9)])
        assert {k: (e.code() if e else None) for k, e in errs.items()} == \
            {(t, 0): KafkaError.UNKNOWN_MEMBER_ID, (t, 1): KafkaError.UNKNOWN_MEMBER_ID}, errs
        assert {k: v[0] for k, v in committed_offsets(b, g_active).items()} == {(t, 0): 2, (t, 1): 4}

        a = admin(b)
        futs = a.delete_consumer_groups([g_active, g_empty, g_unknown], request_timeout=T)
        with pytest.raises(KafkaException) as ei:
            futs[g_active].result(timeout=T)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
        futs[g_empty].result(timeout=T)
        with pytest.raises(KafkaException) as ei:
            futs[g_unknown].result(timeout=T)
        assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND

        listed = group_ids(b)
        assert g_active in listed and g_empty not in listed, sorted(listed)
        assert committed_offsets(b, g_empty) == {}, "a deleted group's offsets must go with it"
        assert {k: v[0] for k, v in committed_offsets(b, g_active).items()} == {(t, 0): 2, (t, 1): 4}
    finally:
        m.close()

    # once the last member has left, the group is empty and can be deleted
    wait_until([], lambda: describe(b, g_active).state == ConsumerGroupState.EMPTY, 10,
               "group still not Empty after its only member closed")
    a = admin(b)
    a.delete_consumer_groups([g_active], request_timeout=T)[g_active].result(timeout=T)
    assert g_active not in group_ids(b)
    assert committed_offsets(b, g_active) == {}


def test_group_deletion_and_offsets_survive_sigkill(broker_factory, tmp_path):
    data = tmp_path / "del-kill"
    b = fast_broker(broker_factory, data_dir=data)
    t = unique("grp-delkill")
    create_topic(b, t, 1)
    keep, gone = unique("g-keep"), unique("g-gone")
    assert alter_offsets(b, keep, [TopicPartition(t, 0, 1)]) == {(t, 0): None}
    assert alter_offsets(b, gone, [TopicPartition(t, 0, 2)]) == {(t, 0): None}
    # later commits win on replay
    assert alter_offsets(b, keep, [TopicPartition(t, 0, 6, metadata="latest")]) == {(t, 0): None}
    a = admin(b)
    a.delete_consumer_groups([gone], request_timeout=T)[gone].result(timeout=T)
    port = b.port
    b.kill()
    b2 = fast_broker(broker_factory, data_dir=data, port=port)
    listed = group_ids(b2, settle_s=10)
    assert keep in listed and gone not in listed, sorted(listed)
    assert committed_offsets(b2, keep) == {(t, 0): (6, "latest")}
    assert committed_offsets(b2, gone) == {}
    # the group id can be used again from scratch
    assert alter_offsets(b2, gone, [TopicPartition(t, 0, 3)]) == {(t, 0): None}
    assert {k: v[0] for k, v in committed_offsets(b2, gone).items()} == {(t, 0): 3}
