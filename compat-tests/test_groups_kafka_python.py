"""Consumer groups with kafka-python 3.0.12, a client sharing no code with librdkafka.

Proves that, with fjord as coordinator:

* two KafkaConsumer instances subscribed in one group split a 4-partition
  topic between them (disjoint, covering, 2 each), every record is read by
  exactly the member owning its partition, commit() and commit() with
  OffsetAndMetadata store offsets (committed() returns them, metadata
  included), and after both close a new member of the group resumes exactly at
  the committed offsets;
* KafkaAdminClient: list_groups (protocol type and state, a states filter),
  describe_groups (state, protocol, member client id/host, the member's
  decoded subscription and assignment), list_group_offsets,
  alter_group_offsets (works on an empty group, refused per partition with
  UnknownMemberIdError while members are active), delete_group_offsets
  (OffsetDelete, KIP-496: GroupSubscribedToTopicError for a topic an active
  member subscribes to, deleted otherwise, GroupIdNotFoundError for an unknown
  group) and delete_groups (OK / NonEmptyGroupError / GroupIdNotFoundError).

Producers run with enable_idempotence=False (kafka-python's default producer
is idempotent and fjord has no InitProducerId yet).
"""
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as E
from kafka.structs import OffsetAndMetadata

from group_support import FAST_GROUPS

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")

T = 15  # seconds: bound for every single client call
TMS = T * 1000


def unique(tag):
    return f"kpg-{tag}-{uuid.uuid4().hex[:8]}"


def admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=TMS)


def create(b, topic, partitions):
    a = admin(b)
    try:
        a.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                        timeout_ms=TMS)
    finally:
        a.close()


def produce(b, topic, per_partition, partitions, start=0):
    """`per_partition` records to each partition, values b"<p>-<i>" for i from `start`."""
    p = KafkaProducer(bootstrap_servers=b.bootstrap, enable_idempotence=False, linger_ms=5,
                      request_timeout_ms=TMS, max_block_ms=TMS)
    try:
        futs = [p.send(topic, partition=part, value=b"%d-%d" % (part, i))
                for part in range(partitions) for i in range(start, start + per_partition)]
        p.flush(timeout=T)
        return [(f.get(timeout=T).partition, f.get(timeout=T).offset) for f in futs]
    finally:
        p.close(timeout=T)


def group_consumer(b, group, topic, name, **conf):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, client_id=name,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=6000, heartbeat_interval_ms=500,
                      request_timeout_ms=TMS + 1000, **conf)
    c.subscribe([topic])
    # Load the topic's metadata before the first poll() joins the group. Without
    # it, kafka-python 3.0.12's leader may run the assignor before its Metadata
    # for `topic` arrives ("No partition metadata for topic"), hand out an empty
    # assignment, and rejoin once the metadata lands. That rejoin is driven only
    # by assignment_snapshot != metadata_snapshot, which the in-flight join task
    # itself clears; if poll(timeout_ms=100) expires while the task is in flight,
    # no later poll() consumes its result: heartbeats stay disabled, the
    # assignment is never applied and the member's session expires. A client
    # race (same against Apache Kafka with group.initial.rebalance.delay.ms=0),
    # not coordinator behaviour. topics() always fetches metadata, which runs
    # the coordinator's metadata listener with the new subscription.
    assert topic in c.topics(), f"{topic} missing from metadata"
    return c


def poll_into(c, sink, timeout_ms=100):
    for tp, recs in c.poll(timeout_ms=timeout_ms).items():
        sink.extend((tp.partition, r.offset, r.value) for r in recs)


def poll_until(consumers, sinks, cond, timeout, what):
    """Poll the consumers in alternation until cond() holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")
        for c, sink in zip(consumers, sinks):
            poll_into(c, sink)


def parts_of(c):
    return {tp.partition for tp in (c.assignment() or set())}


def test_two_consumers_split_commit_and_resume(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t, g = unique("split"), unique("g-split")
    create(b, t, 4)
    all_parts = {0, 1, 2, 3}
    c1 = group_consumer(b, g, t, "kp-member-1")
    c2 = group_consumer(b, g, t, "kp-member-2")
    got1, got2 = [], []
    try:
        def split():
            a1, a2 = parts_of(c1), parts_of(c2)
            return len(a1) == 2 and len(a2) == 2 and a1 | a2 == all_parts
        poll_until([c1, c2], [got1, got2], split, 40,
                   lambda: f"assignments {parts_of(c1)} / {parts_of(c2)}")
        a1, a2 = parts_of(c1), parts_of(c2)
        assert not a1 & a2

        produce(b, t, 10, 4)
        poll_until([c1, c2], [got1, got2], lambda: len(got1) + len(got2) >= 40, 30,
                   lambda: f"{len(got1)}+{len(got2)} of 40 records")
        for _ in range(5):  # nothing more (no duplicates) arrives
            poll_into(c1, got1)
            poll_into(c2, got2)
        assert {p for p, _, _ in got1} <= a1 and {p for p, _, _ in got2} <= a2, \
            "a member received records of a partition it does not own"
        assert sorted(got1 + got2) == [(p, i, b"%d-%d" % (p, i)) for p in range(4) for i in range(10)]

        # commit what each consumed (positions = 10); one partition with metadata
        c1.commit(timeout_ms=TMS)
        c2.commit(timeout_ms=TMS)
        meta_tp = TopicPartition(t, min(a1))
        c1.commit({meta_tp: OffsetAndMetadata(10, "kp-meta", -1)}, timeout_ms=TMS)
        for c, parts in ((c1, a1), (c2, a2)):
            for p in parts:
                assert c.committed(TopicPartition(t, p), timeout_ms=TMS) == 10
        assert c1.committed(meta_tp, metadata=True, timeout_ms=TMS).metadata == "kp-meta"
    finally:
        c1.close(autocommit=False)
        c2.close(autocommit=False)

    # both left; a new member resumes at the committed offsets
    produce(b, t, 5, 4, start=10)
    c3 = group_consumer(b, g, t, "kp-member-3")
    got3 = []
    try:
        poll_until([c3], [got3], lambda: len(got3) >= 20, 30, lambda: f"{len(got3)} of 20 records: {got3[:5]}")
        for _ in range(5):
            poll_into(c3, got3)
        assert parts_of(c3) == all_parts
        assert sorted(got3) == [(p, i, b"%d-%d" % (p, i)) for p in range(4) for i in range(10, 15)], \
            "the new member did not resume exactly at the committed offsets"
        assert c3.committed(meta_tp, metadata=True, timeout_ms=TMS).metadata == "kp-meta"
    finally:
        c3.close(autocommit=False)


def test_admin_groups(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    t, other = unique("admin"), unique("admin-other")
    create(b, t, 2)
    create(b, other, 1)
    produce(b, t, 5, 2)
    tp0, tp1, otp = TopicPartition(t, 0), TopicPartition(t, 1), TopicPartition(other, 0)
    g_active, g_empty, g_unknown = unique("g-active"), unique("g-empty"), unique("g-unknown")

    a = admin(b)
    c = group_consumer(b, g_active, t, "kp-admin-member")
    try:
        # an empty (not yet existing) group: admin commits create it, as in Kafka
        res = a.alter_group_offsets(g_empty, {tp0: OffsetAndMetadata(3, "m0", -1),
                                              tp1: OffsetAndMetadata(4, "m1", -1)})
        assert res == {tp0: E.NoError, tp1: E.NoError}, res

        poll_until([c], [[]], lambda: parts_of(c) == {0, 1}, 30, lambda: f"assignment {parts_of(c)}")
        # the member commits, for its own topic and one it does not subscribe to
        c.commit({tp0: OffsetAndMetadata(1, "", -1), otp: OffsetAndMetadata(0, "", -1)}, timeout_ms=TMS)

        groups = {g["group_id"]: g for g in a.list_groups()}
        assert {g_active, g_empty} <= set(groups), sorted(groups)
        assert groups[g_active]["protocol_type"] == "consumer"
        assert groups[g_empty]["protocol_type"] == ""
        assert groups[g_active].get("group_state", "Stable") == "Stable"
        assert groups[g_empty].get("group_state", "Empty") == "Empty"
        assert [g["group_id"] for g in a.list_groups(states_filter=["Stable"])] == [g_active]
        assert [g["group_id"] for g in a.list_groups(states_filter=["Empty"])] == [g_empty]

        d = a.describe_groups([g_active, g_empty])
        da = d[g_active]
        assert da["error"] is None
        assert (da["group_state"], da["protocol_type"], da["protocol_data"]) == ("Stable", "consumer", "range")
        [m] = da["members"]
        assert m["client_id"] == "kp-admin-member"
        assert "127.0.0.1" in m["client_host"], m["client_host"]
        assert m["member_metadata"]["topics"] == [t]
        assert [(x["topic"], sorted(x["partitions"])) for x in m["member_assignment"]["assigned_partitions"]] \
            == [(t, [0, 1])]
        de = d[g_empty]
        assert (de["group_state"], de["protocol_type"], de["members"]) == ("Empty", "", [])

        offs = a.list_group_offsets(g_empty)[g_empty]
        assert {tp: (o.offset, o.metadata) for tp, o in offs.items()} == {tp0: (3, "m0"), tp1: (4, "m1")}
        offs = a.list_group_offsets(g_active)[g_active]
        assert {tp: o.offset for tp, o in offs.items()} == {tp0: 1, otp: 0}

        # admin commits into a group with active members are refused per partition
        assert a.alter_group_offsets(g_active, {tp0: OffsetAndMetadata(4, "", -1)}) == \
            {tp0: E.UnknownMemberIdError}
        assert a.list_group_offsets(g_active)[g_active][tp0].offset == 1

        # OffsetDelete: refused for the topic the active member subscribes to,
        # done for one it does not
        assert a.delete_group_offsets(g_active, [tp0, otp]) == \
            {tp0: E.GroupSubscribedToTopicError, otp: E.NoError}
        assert set(a.list_group_offsets(g_active)[g_active]) == {tp0}
        # ... and on an empty group, for the partitions named only
        assert a.delete_group_offsets(g_empty, [tp0]) == {tp0: E.NoError}
        assert set(a.list_group_offsets(g_empty)[g_empty]) == {tp1}
        with pytest.raises(E.GroupIdNotFoundError):
            a.delete_group_offsets(g_unknown, [tp0])

        assert a.delete_groups([g_active, g_empty, g_unknown]) == {
            g_active: "NonEmptyGroupError", g_empty: "OK", g_unknown: "GroupIdNotFoundError"}
        remaining = {g["group_id"] for g in a.list_groups()}
        assert g_active in remaining and g_empty not in remaining
        assert a.list_group_offsets(g_empty)[g_empty] == {}
    finally:
        c.close(autocommit=False)
        a.close()

    # the last member left: the group is empty and now deletable
    a = admin(b)
    try:
        deadline = time.monotonic() + 10
        while a.describe_groups([g_active])[g_active]["group_state"] != "Empty":
            assert time.monotonic() < deadline, "group not Empty after its only member closed"
            time.sleep(0.1)
        assert a.delete_groups([g_active]) == {g_active: "OK"}
        assert g_active not in {g["group_id"] for g in a.list_groups()}
    finally:
        a.close()
