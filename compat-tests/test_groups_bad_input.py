"""Group coordinator requests on the raw wire: Kafka's error codes, and no harm from bad input.

Requests are built by hand (layouts from Kafka's message JSON: JoinGroup v1/v5,
SyncGroup v3, Heartbeat v3 and flexible v4, LeaveGroup v3, OffsetCommit v7,
OffsetFetch v5, DeleteGroups v1, OffsetDelete v0, DescribeGroups v4,
FindCoordinator v1 and flexible v4) on plain sockets, using the frame and
socket helpers of test_bad_input.py. They prove the coordinator answers as
Kafka's classic group coordinator does:

* FindCoordinator names this broker (node id, host, port), for one key (v1)
  and several (v4);
* JoinGroup v4+ with an empty member id -> MEMBER_ID_REQUIRED (79) carrying a
  member id, which then joins; JoinGroup v1 (sarama 1.22) joins directly;
* empty group id -> INVALID_GROUP_ID (24); a session timeout outside
  [--group-min-session-timeout-ms, --group-max-session-timeout-ms] ->
  INVALID_SESSION_TIMEOUT (26); a member whose protocol type or protocols do
  not match the group's -> INCONSISTENT_GROUP_PROTOCOL (23), without
  disturbing the group;
* Heartbeat / SyncGroup for an unknown group or unknown member ->
  UNKNOWN_MEMBER_ID (25), wrong generation -> ILLEGAL_GENERATION (22); a
  member that left or whose session expired is unknown, and the group is Empty;
* --group-initial-rebalance-delay-ms holds the first join of an empty group;
* OffsetCommit: unknown topic or partition -> UNKNOWN_TOPIC_OR_PARTITION (3),
  metadata over 4096 characters -> OFFSET_METADATA_TOO_LARGE (12), each per
  partition, the rest of the request committed (OffsetFetch shows it);
* DeleteGroups: unknown -> GROUP_ID_NOT_FOUND (69), active -> NON_EMPTY_GROUP
  (68), empty -> deleted with its offsets;
* OffsetDelete: unknown group -> 69; a topic an active consumer-protocol
  member subscribes to -> GROUP_SUBSCRIBED_TO_TOPIC (86) while others are
  deleted; an active group of another protocol type -> 68;
* lying counts and lengths, truncated bodies in group requests end in an error
  response or a closed connection, never a hang, and afterwards the broker is
  alive, small, and serves raw requests, a real client, and a real
  subscribed group consumer.
"""
import struct
import time
import uuid

import pytest

from group_support import FAST_GROUPS, group_client_ok
from test_bad_input import (Reader, assert_healthy, attack, compact_string, connect, create_topic_raw,
                            i16, i32, i64, nstring, ok_outcome, raw_api_versions_ok, read_response, request,
                            uvarint)

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")

NONE, UNKNOWN_TOPIC_OR_PARTITION, OFFSET_METADATA_TOO_LARGE = 0, 3, 12
ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID = 22, 23, 24
UNKNOWN_MEMBER_ID, INVALID_SESSION_TIMEOUT = 25, 26
NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, MEMBER_ID_REQUIRED, GROUP_SUBSCRIBED_TO_TOPIC = 68, 69, 79, 86

JOIN, HEARTBEAT, LEAVE, SYNC, DESCRIBE_GROUPS = 11, 12, 13, 14, 15
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, DELETE_GROUPS, OFFSET_DELETE = 8, 9, 10, 42, 47


def unique(tag):
    return f"raw-{tag}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# Encoding (non-flexible unless named otherwise)
# --------------------------------------------------------------------------

def nbytes(b):
    return i32(-1) if b is None else i32(len(b)) + b


def array(items):
    return i32(len(items)) + b"".join(items)


def subscription(topics):
    """ConsumerProtocolSubscription v0: version, topics, user data (null)."""
    return i16(0) + array([nstring(t) for t in topics]) + nbytes(None)


def assignment(parts):
    """ConsumerProtocolAssignment v0: version, [(topic, [partition])], user data (null)."""
    return i16(0) + array([nstring(t) + array([i32(p) for p in ps]) for t, ps in parts.items()]) + nbytes(None)


def join_body(group, member_id="", protocol_type="consumer", protocols=None, session_ms=10000,
              rebalance_ms=10000, instance_id=None, version=5):
    if protocols is None:
        protocols = [("range", subscription(["t"]))]
    body = nstring(group) + i32(session_ms) + i32(rebalance_ms) + nstring(member_id)
    if version >= 5:
        body += nstring(instance_id)
    return body + nstring(protocol_type) + array([nstring(n) + nbytes(m) for n, m in protocols])


def sync_body(group, generation, member_id, assignments=(), instance_id=None):
    return (nstring(group) + i32(generation) + nstring(member_id) + nstring(instance_id)
            + array([nstring(m) + nbytes(a) for m, a in assignments]))


def heartbeat_body(group, generation, member_id, instance_id=None):
    return nstring(group) + i32(generation) + nstring(member_id) + nstring(instance_id)


def heartbeat_v4_body(group, generation, member_id):
    return compact_string(group) + i32(generation) + compact_string(member_id) + b"\x00" + b"\x00"


def commit_body(group, topics, generation=-1, member_id="", instance_id=None):
    """topics: {name: [(partition, offset, metadata)]}"""
    return (nstring(group) + i32(generation) + nstring(member_id) + nstring(instance_id)
            + array([nstring(t) + array([i32(p) + i64(o) + i32(-1) + nstring(m) for p, o, m in ps])
                     for t, ps in topics.items()]))


# --------------------------------------------------------------------------
# A connection that sends requests and parses the answers
# --------------------------------------------------------------------------

def nbytes_read(r):
    n = r.take(">i")
    if n < 0:
        return None
    out = r.d[r.p:r.p + n]
    r.p += n
    return bytes(out)


def compact_str_read(r):
    n = r.uvarint() - 1
    if n < 0:
        return None
    s = r.d[r.p:r.p + n].decode()
    r.p += n
    return s


class Conn:
    def __init__(self, broker, timeout=15):
        self.s = connect(broker, timeout=timeout)
        self.corr = 0

    def call(self, api, version, body, flexible=False):
        self.corr += 1
        self.s.sendall(request(api, version, self.corr, body, flexible=flexible))
        kind, corr, resp = read_response(self.s)
        assert kind == "response", f"api {api} v{version}: connection closed instead of a response"
        assert corr == self.corr
        r = Reader(resp)
        if flexible:
            r.skip_tags()  # response header v1
        return r

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- group APIs

    def join(self, group, version=5, **kw):
        r = self.call(JOIN, version, join_body(group, version=version, **kw))
        if version >= 2:
            r.take(">i")  # throttle
        out = {"error": r.take(">h"), "generation": r.take(">i"), "protocol": r.string(),
               "leader": r.string(), "member_id": r.string(), "members": []}
        for _ in range(r.take(">i")):
            mid = r.string()
            inst = r.string() if version >= 5 else None
            out["members"].append((mid, inst, nbytes_read(r)))
        return out

    def sync(self, group, generation, member_id, assignments=()):
        r = self.call(SYNC, 3, sync_body(group, generation, member_id, assignments))
        r.take(">i")
        return r.take(">h"), nbytes_read(r)

    def heartbeat(self, group, generation, member_id):
        r = self.call(HEARTBEAT, 3, heartbeat_body(group, generation, member_id))
        r.take(">i")
        return r.take(">h")

    def heartbeat_v4(self, group, generation, member_id):
        r = self.call(HEARTBEAT, 4, heartbeat_v4_body(group, generation, member_id), flexible=True)
        r.take(">i")
        return r.take(">h")

    def leave(self, group, member_id):
        r = self.call(LEAVE, 3, nstring(group) + array([nstring(member_id) + nstring(None)]))
        r.take(">i")
        err = r.take(">h")
        members = [(r.string(), r.string(), r.take(">h")) for _ in range(r.take(">i"))]
        return err, members

    def commit(self, group, topics, **kw):
        r = self.call(OFFSET_COMMIT, 7, commit_body(group, topics, **kw))
        r.take(">i")
        out = {}
        for _ in range(r.take(">i")):
            t = r.string()
            for _ in range(r.take(">i")):
                p, err = r.take(">ih")
                out[(t, p)] = err
        return out

    def fetch_offsets(self, group, topics):
        """topics: {name: [partition]} -> {(t, p): (offset, metadata, error)}, group error"""
        body = nstring(group) + array([nstring(t) + array([i32(p) for p in ps]) for t, ps in topics.items()])
        r = self.call(OFFSET_FETCH, 5, body)
        r.take(">i")
        out = {}
        for _ in range(r.take(">i")):
            t = r.string()
            for _ in range(r.take(">i")):
                p, off, _epoch = r.take(">iqi")
                meta = r.string()
                out[(t, p)] = (off, meta, r.take(">h"))
        return out, r.take(">h")

    def delete_groups(self, groups):
        r = self.call(DELETE_GROUPS, 1, array([nstring(g) for g in groups]))
        r.take(">i")
        out = {}
        for _ in range(r.take(">i")):
            g = r.string()
            out[g] = r.take(">h")
        return out

    def offset_delete(self, group, topics):
        """topics: {name: [partition]} -> (error, {(t, p): error})"""
        body = nstring(group) + array([nstring(t) + array([i32(p) for p in ps]) for t, ps in topics.items()])
        r = self.call(OFFSET_DELETE, 0, body)
        err = r.take(">h")
        r.take(">i")
        out = {}
        for _ in range(r.take(">i")):
            t = r.string()
            for _ in range(r.take(">i")):
                p, perr = r.take(">ih")
                out[(t, p)] = perr
        return err, out

    def describe_group(self, group):
        r = self.call(DESCRIBE_GROUPS, 4, array([nstring(group)]) + b"\x00")
        r.take(">i")
        assert r.take(">i") == 1
        out = {"error": r.take(">h"), "group": r.string(), "state": r.string(),
               "protocol_type": r.string(), "protocol": r.string(), "members": []}
        for _ in range(r.take(">i")):
            mid, inst, client, host = r.string(), r.string(), r.string(), r.string()
            out["members"].append({"member_id": mid, "instance": inst, "client_id": client, "host": host,
                                   "metadata": nbytes_read(r), "assignment": nbytes_read(r)})
        return out

    def join_and_sync(self, group, protocol_type="consumer", topics=("t",), protocol="range", **kw):
        """Join an empty group as its only member (MEMBER_ID_REQUIRED round
        first) and sync an assignment. Returns (member_id, generation, assignment)."""
        meta = subscription(list(topics))
        first = self.join(group, protocol_type=protocol_type, protocols=[(protocol, meta)], **kw)
        assert first["error"] == MEMBER_ID_REQUIRED and first["member_id"], first
        j = self.join(group, member_id=first["member_id"], protocol_type=protocol_type,
                      protocols=[(protocol, meta)], **kw)
        assert j["error"] == NONE, j
        mid, gen = j["member_id"], j["generation"]
        assert mid == first["member_id"] and gen >= 1, j
        assert j["leader"] == mid and j["protocol"] == protocol, j
        assert j["members"] == [(mid, None, meta)], j
        asg = assignment({topics[0]: [0]})
        err, got = self.sync(group, gen, mid, [(mid, asg)])
        assert (err, got) == (NONE, asg)
        return mid, gen, asg


def fast(broker_factory, *extra):
    return broker_factory(extra=FAST_GROUPS + list(extra))


# --------------------------------------------------------------------------
# FindCoordinator, JoinGroup
# --------------------------------------------------------------------------

def test_find_coordinator_names_this_broker(broker_factory):
    b = fast(broker_factory, "--node-id", "3")
    with Conn(b) as c:
        r = c.call(FIND_COORDINATOR, 1, nstring(unique("g")) + b"\x00")
        r.take(">i")
        err, _msg = r.take(">h"), r.string()
        assert (err, r.take(">i"), r.string(), r.take(">i")) == (NONE, 3, "127.0.0.1", b.port)

        keys = [unique("g1"), unique("g2")]
        body = b"\x00" + uvarint(len(keys) + 1) + b"".join(compact_string(k) for k in keys) + b"\x00"
        r = c.call(FIND_COORDINATOR, 4, body, flexible=True)
        r.take(">i")
        got = []
        for _ in range(r.uvarint() - 1):
            key = compact_str_read(r)
            node = r.take(">i")
            host = compact_str_read(r)
            port, err = r.take(">ih")
            compact_str_read(r)  # error message
            r.skip_tags()
            got.append((key, node, host, port, err))
        assert sorted(got) == sorted((k, 3, "127.0.0.1", b.port, NONE) for k in keys)


def test_join_member_id_required_from_v4_only(broker_factory):
    b = fast(broker_factory)
    with Conn(b) as c:
        g = unique("join")
        first = c.join(g)
        assert first["error"] == MEMBER_ID_REQUIRED, first
        assert first["member_id"], "MEMBER_ID_REQUIRED must carry the member id to rejoin with"
        assert first["generation"] == -1 and first["members"] == []
        mid, gen, _ = c.join_and_sync(unique("join2"))
        assert mid and gen == 1

        # JoinGroup v1 (no MEMBER_ID_REQUIRED before v4): joins at once.
        # sarama 1.22 (Debian's) joins with v1 (../shared/DESIGN.md), although Kafka 4.0 dropped v0-1.
        assert raw_api_versions_ok(b)[JOIN][0] <= 1, "JoinGroup v1 must stay advertised for sarama 1.22"
        g1 = unique("join-v1")
        j = c.join(g1, version=1, protocols=[("range", subscription(["t"]))])
        assert j["error"] == NONE, j
        assert j["member_id"] and j["generation"] == 1 and j["leader"] == j["member_id"], j
        assert j["members"] == [(j["member_id"], None, subscription(["t"]))]


def test_join_invalid_group_id_and_session_timeouts(broker_factory):
    b = fast(broker_factory)
    with Conn(b) as c:
        assert c.join("")["error"] == INVALID_GROUP_ID
        assert c.join("", member_id="x", version=1)["error"] == INVALID_GROUP_ID
        # defaults: group.min.session.timeout.ms 6000, group.max.session.timeout.ms 1800000
        assert c.join(unique("s"), session_ms=1)["error"] == INVALID_SESSION_TIMEOUT
        assert c.join(unique("s"), session_ms=5999)["error"] == INVALID_SESSION_TIMEOUT
        assert c.join(unique("s"), session_ms=1800001)["error"] == INVALID_SESSION_TIMEOUT
        assert c.join(unique("s"), session_ms=6000)["error"] == MEMBER_ID_REQUIRED
        assert c.join(unique("s"), session_ms=1800000)["error"] == MEMBER_ID_REQUIRED

    b2 = fast(broker_factory, "--group-min-session-timeout-ms", "1000",
              "--group-max-session-timeout-ms", "20000")
    with Conn(b2) as c:
        for ms, want in ((999, INVALID_SESSION_TIMEOUT), (1000, MEMBER_ID_REQUIRED),
                         (20000, MEMBER_ID_REQUIRED), (20001, INVALID_SESSION_TIMEOUT)):
            assert c.join(unique("s"), session_ms=ms)["error"] == want, ms


def test_join_with_inconsistent_protocol(broker_factory):
    b = fast(broker_factory)
    g = unique("proto")
    with Conn(b) as c1, Conn(b) as c2:
        mid, gen, _ = c1.join_and_sync(g)
        j = c2.join(g, protocol_type="connect", protocols=[("range", subscription(["t"]))])
        assert j["error"] == INCONSISTENT_GROUP_PROTOCOL, j
        j = c2.join(g, protocols=[("roundrobin", subscription(["t"]))])
        assert j["error"] == INCONSISTENT_GROUP_PROTOCOL, j
        # the refused joins did not disturb the group
        assert c1.heartbeat(g, gen, mid) == NONE
        d = c1.describe_group(g)
        assert (d["error"], d["state"], d["protocol_type"], d["protocol"]) == (NONE, "Stable", "consumer", "range")
        assert [m["member_id"] for m in d["members"]] == [mid]


def test_initial_rebalance_delay(broker_factory):
    for delay_ms, lo, hi in ((1500, 1.3, 8.0), (0, 0.0, 1.0)):
        b = broker_factory(extra=["--group-initial-rebalance-delay-ms", str(delay_ms)])
        with Conn(b) as c:
            g = unique("delay")
            first = c.join(g)
            assert first["error"] == MEMBER_ID_REQUIRED
            start = time.monotonic()
            j = c.join(g, member_id=first["member_id"])
            took = time.monotonic() - start
            assert j["error"] == NONE, j
            assert lo <= took <= hi, f"first join with a {delay_ms} ms initial delay took {took:.2f}s"


# --------------------------------------------------------------------------
# Heartbeat, SyncGroup, LeaveGroup, session expiry
# --------------------------------------------------------------------------

def test_heartbeat_and_sync_errors(broker_factory):
    b = fast(broker_factory)
    g = unique("hb")
    with Conn(b) as c:
        mid, gen, asg = c.join_and_sync(g)
        assert c.heartbeat(g, gen, mid) == NONE
        assert c.heartbeat_v4(g, gen, mid) == NONE
        assert c.heartbeat(g, gen + 1, mid) == ILLEGAL_GENERATION
        assert c.heartbeat(g, gen - 1, mid) == ILLEGAL_GENERATION
        assert c.heartbeat(g, gen, "no-such-member") == UNKNOWN_MEMBER_ID
        assert c.heartbeat(unique("no-group"), 1, "no-such-member") == UNKNOWN_MEMBER_ID
        assert c.heartbeat_v4(unique("no-group"), 1, "no-such-member") == UNKNOWN_MEMBER_ID
        assert c.heartbeat("", 1, "x") == INVALID_GROUP_ID

        assert c.sync(g, gen + 1, mid)[0] == ILLEGAL_GENERATION
        assert c.sync(g, gen, "no-such-member")[0] == UNKNOWN_MEMBER_ID
        assert c.sync(unique("no-group"), 1, "no-such-member")[0] == UNKNOWN_MEMBER_ID
        assert c.sync("", 1, "x")[0] == INVALID_GROUP_ID
        # a stable group hands a member its current assignment again
        assert c.sync(g, gen, mid) == (NONE, asg)

        assert c.leave(g, mid) == (NONE, [(mid, None, NONE)])
        assert c.heartbeat(g, gen, mid) == UNKNOWN_MEMBER_ID
        assert c.sync(g, gen, mid)[0] == UNKNOWN_MEMBER_ID
        d = c.describe_group(g)
        assert (d["state"], d["members"]) == ("Empty", [])


def test_session_expiry_removes_member(broker_factory):
    b = fast(broker_factory, "--group-min-session-timeout-ms", "1000")
    g = unique("expire")
    with Conn(b) as c:
        mid, gen, _ = c.join_and_sync(g, session_ms=1500)
        for _ in range(4):  # heartbeats keep it alive past its session timeout
            time.sleep(0.5)
            assert c.heartbeat(g, gen, mid) == NONE
        d = c.describe_group(g)
        assert (d["state"], [m["member_id"] for m in d["members"]]) == ("Stable", [mid])
        time.sleep(3.5)  # silence: the session expires
        assert c.heartbeat(g, gen, mid) == UNKNOWN_MEMBER_ID
        d = c.describe_group(g)
        assert (d["state"], d["members"]) == ("Empty", [])


# --------------------------------------------------------------------------
# OffsetCommit / OffsetFetch, DeleteGroups, OffsetDelete
# --------------------------------------------------------------------------

def test_offset_commit_per_partition_errors(broker_factory):
    b = fast(broker_factory)
    t, t2 = unique("oc"), unique("oc2")
    create_topic_raw(b, t)
    create_topic_raw(b, t2)
    g, missing = unique("oc-g"), unique("no-such-topic")
    with Conn(b) as c:
        errs = c.commit(g, {t: [(0, 5, "m" * 4096), (99, 1, "")],
                            t2: [(0, 6, "m" * 4097)],
                            missing: [(0, 1, "")]})
        assert errs == {(t, 0): NONE, (t, 99): UNKNOWN_TOPIC_OR_PARTITION,
                        (t2, 0): OFFSET_METADATA_TOO_LARGE, (missing, 0): UNKNOWN_TOPIC_OR_PARTITION}, errs
        got, err = c.fetch_offsets(g, {t: [0], t2: [0]})
        assert err == NONE
        assert got[(t, 0)] == (5, "m" * 4096, NONE), got[(t, 0)][:1]
        assert got[(t2, 0)][0] == -1 and got[(t2, 0)][2] == NONE, "a refused commit must not be stored"
        # the last commit wins; metadata round-trips byte for byte
        meta = "ünïcode ✓ {\"k\": [1, 2]}"
        assert c.commit(g, {t: [(0, 7, meta)]}) == {(t, 0): NONE}
        assert c.fetch_offsets(g, {t: [0]})[0][(t, 0)] == (7, meta, NONE)
        # an unknown group has no offsets and no error
        got, err = c.fetch_offsets(unique("nobody"), {t: [0]})
        assert err == NONE and got[(t, 0)][0] == -1 and got[(t, 0)][2] == NONE


def test_delete_groups_errors(broker_factory):
    b = fast(broker_factory)
    t = unique("dg")
    create_topic_raw(b, t)
    g_empty, g_active, unknown = unique("dg-empty"), unique("dg-active"), unique("dg-unknown")
    with Conn(b) as c, Conn(b) as member:
        assert c.delete_groups([unknown]) == {unknown: GROUP_ID_NOT_FOUND}
        assert c.commit(g_empty, {t: [(0, 1, "")]}) == {(t, 0): NONE}
        member.join_and_sync(g_active, topics=(t,))
        assert c.delete_groups([g_empty, g_active, unknown]) == {
            g_empty: NONE, g_active: NON_EMPTY_GROUP, unknown: GROUP_ID_NOT_FOUND}
        assert c.fetch_offsets(g_empty, {t: [0]})[0][(t, 0)][0] == -1
        assert c.delete_groups([g_empty]) == {g_empty: GROUP_ID_NOT_FOUND}


def test_offset_delete(broker_factory):
    b = fast(broker_factory)
    subscribed, other = unique("od-sub"), unique("od-other")
    create_topic_raw(b, subscribed)
    create_topic_raw(b, other)
    g, g_connect, g_empty = unique("od"), unique("od-connect"), unique("od-empty")
    with Conn(b) as c, Conn(b) as m1, Conn(b) as m2:
        assert c.offset_delete(unique("od-unknown"), {subscribed: [0]})[0] == GROUP_ID_NOT_FOUND

        mid, gen, _ = m1.join_and_sync(g, topics=(subscribed,))
        assert m1.commit(g, {subscribed: [(0, 3, "")], other: [(0, 4, "")]}, generation=gen, member_id=mid) \
            == {(subscribed, 0): NONE, (other, 0): NONE}
        err, parts = c.offset_delete(g, {subscribed: [0], other: [0]})
        assert (err, parts) == (NONE, {(subscribed, 0): GROUP_SUBSCRIBED_TO_TOPIC, (other, 0): NONE})
        got, _ = c.fetch_offsets(g, {subscribed: [0], other: [0]})
        assert (got[(subscribed, 0)][0], got[(other, 0)][0]) == (3, -1)

        # an active group whose members do not speak the consumer protocol
        m2.join_and_sync(g_connect, protocol_type="connect", topics=(subscribed,))
        assert c.offset_delete(g_connect, {subscribed: [0]})[0] == NON_EMPTY_GROUP

        # an empty group: the named partitions' offsets go, the others stay
        assert c.commit(g_empty, {subscribed: [(0, 1, "")], other: [(0, 2, "")]}) == \
            {(subscribed, 0): NONE, (other, 0): NONE}
        assert c.offset_delete(g_empty, {subscribed: [0]}) == (NONE, {(subscribed, 0): NONE})
        got, _ = c.fetch_offsets(g_empty, {subscribed: [0], other: [0]})
        assert (got[(subscribed, 0)][0], got[(other, 0)][0]) == (-1, 2)


# --------------------------------------------------------------------------
# Malformed group requests
# --------------------------------------------------------------------------

def _truncated_join():
    body = join_body(unique("trunc"), protocols=[("range", subscription(["a", "b", "c"]))])
    return request(JOIN, 5, 31, body[:len(body) // 2])


MALFORMED = {
    # JoinGroup v5 claiming 2^31-1 protocols, holding none
    "join_protocol_count": lambda: request(
        JOIN, 5, 31, nstring("g") + i32(10000) + i32(10000) + nstring("") + nstring(None)
        + nstring("consumer") + i32(0x7FFFFFFF)),
    # JoinGroup v5 whose one protocol's metadata claims ~2 GB
    "join_metadata_length": lambda: request(
        JOIN, 5, 31, nstring("g") + i32(10000) + i32(10000) + nstring("") + nstring(None)
        + nstring("consumer") + i32(1) + nstring("range") + i32(0x7FFFFFF0) + b"\x00" * 8),
    # a valid JoinGroup v5 cut in half (the frame length matches the cut body)
    "join_truncated": _truncated_join,
    # the group id's length is negative / larger than the frame
    "join_group_id_length": lambda: request(JOIN, 5, 31, i16(-5) + b"\x00" * 20),
    "join_group_id_overlong": lambda: request(JOIN, 5, 31, i16(0x7FFF) + b"abc"),
    # SyncGroup v3 claiming 2^31-1 assignments
    "sync_assignment_count": lambda: request(
        SYNC, 3, 31, nstring("g") + i32(1) + nstring("m") + nstring(None) + i32(0x7FFFFFFF)),
    # OffsetCommit v7 claiming 2^31-1 partitions of one topic
    "commit_partition_count": lambda: request(
        OFFSET_COMMIT, 7, 31, nstring("g") + i32(-1) + nstring("") + nstring(None) + i32(1)
        + nstring("t") + i32(0x7FFFFFFF) + i32(0)),
    # OffsetFetch v5 with a topic count of -2 (only -1 means null)
    "fetch_negative_count": lambda: request(OFFSET_FETCH, 5, 31, nstring("g") + i32(-2)),
    # flexible Heartbeat v4 whose group id compact length is a 5-byte varint (~4 G)
    "heartbeat_v4_varint_length": lambda: request(
        HEARTBEAT, 4, 31, b"\xff\xff\xff\xff\x0f" + b"\x00" * 10, flexible=True),
    # DeleteGroups v1 claiming 2^31-1 group ids
    "delete_groups_count": lambda: request(DELETE_GROUPS, 1, 31, i32(0x7FFFFFFF) + nstring("g")),
    # OffsetDelete v0 truncated after the group id
    "offset_delete_truncated": lambda: request(OFFSET_DELETE, 0, 31, nstring("g") + b"\x00\x00"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_group_requests(broker_factory, case):
    b = fast(broker_factory)
    kind, corr, body = attack(b, MALFORMED[case](), corr=31)
    ok_outcome(kind)
    if kind == "response" and case.startswith("join"):
        # a JoinGroup v5 response starts with throttle (int32) and error (int16)
        (err,) = struct.unpack_from(">h", body, 4)
        assert err != NONE, f"{case}: malformed JoinGroup answered without an error"
    assert_healthy(b)
    group_client_ok(b)
    assert b.alive()
