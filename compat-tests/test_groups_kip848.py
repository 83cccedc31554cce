"""KIP-848 consumer groups (group.protocol=consumer) with confluent-kafka
(librdkafka 2.16): the broker assigns partitions (uniform and range
assignors) through ConsumerGroupHeartbeat.

(a) members share a 6-partition topic: 3/3, a third joins -> 2/2/2, one
    leaves -> 3/3; every partition owned by exactly one member at the end of
    each step, and AdminClient describe reports a CONSUMER-type group with
    the same ownership;
(b) the range assignor gives contiguous ranges in member order;
(c) commit, SIGKILL the broker, restart: the group is still a consumer group
    with its committed offsets, and a new member resumes exactly there.
"""
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from group_support import create_topic, produce, unique

FAST = ["--group-consumer-heartbeat-interval-ms", "300", "--group-consumer-session-timeout-ms", "6000"]
T = 15


class C:
    def __init__(self, b, group, topic, name, conf=None):
        cfg = {"bootstrap.servers": b.bootstrap, "group.id": group, "client.id": name,
               "group.protocol": "consumer", "auto.offset.reset": "earliest",
               "enable.auto.commit": False, "enable.partition.eof": True}
        cfg.update(conf or {})
        self.name = name
        self.c = Consumer(cfg)
        self.c.subscribe([topic])
        self.msgs, self.eof, self.errors = [], set(), []
        self.closed = False

    def poll(self):
        m = self.c.poll(0.05)
        if m is None:
            return
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                self.eof.add(m.partition())
            else:
                self.errors.append(m.error())
            return
        self.msgs.append(m)

    def parts(self):
        return {tp.partition for tp in self.c.assignment()}

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()


def until(members, cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        for m in members:
            m.poll()
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what()}")


def balanced(members, n):
    owned = [m.parts() for m in members]
    every = [p for o in owned for p in o]
    sizes = sorted(len(o) for o in owned)
    return sorted(every) == list(range(n)) and sizes[-1] - sizes[0] <= 1


def view(members):
    return {m.name: sorted(m.parts()) for m in members}


def test_members_share_partitions(broker_factory, time_bound):
    b = broker_factory(extra=FAST)
    t, g = unique("k848"), unique("g848")
    create_topic(b, t, 6)
    ms = []
    try:
        ms.append(C(b, g, t, "m1"))
        until(ms, lambda: ms[0].parts() == set(range(6)), 20, lambda: view(ms))
        ms.append(C(b, g, t, "m2"))
        until(ms, lambda: balanced(ms, 6), 20, lambda: view(ms))
        ms.append(C(b, g, t, "m3"))
        until(ms, lambda: balanced(ms, 6), 20, lambda: view(ms))
        assert sorted(len(m.parts()) for m in ms) == [2, 2, 2]
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        d = a.describe_consumer_groups([g])[g].result(T)
        assert str(d.type).endswith("CONSUMER"), d.type
        described = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
                     for m in d.members}
        assert described == view(ms), (described, view(ms))
        ms[1].close()
        rest = [ms[0], ms[2]]
        until(rest, lambda: balanced(rest, 6), 20, lambda: view(rest))
        assert sorted(len(m.parts()) for m in rest) == [3, 3]
    finally:
        for m in ms:
            m.close()


def test_range_assignor_gives_contiguous_ranges(broker_factory, time_bound):
    b = broker_factory(extra=FAST)
    t, g = unique("k848r"), unique("g848r")
    create_topic(b, t, 4)
    conf = {"group.remote.assignor": "range"}
    ms = []
    try:
        ms.append(C(b, g, t, "r1", conf))
        ms.append(C(b, g, t, "r2", conf))
        until(ms, lambda: balanced(ms, 4) and all(len(m.parts()) == 2 for m in ms), 20,
              lambda: view(ms))
        owned = sorted(sorted(m.parts()) for m in ms)
        assert owned == [[0, 1], [2, 3]], owned
    finally:
        for m in ms:
            m.close()


def test_commit_and_resume_across_sigkill(broker_factory, tmp_path, time_bound):
    data = tmp_path / "k848-crash"
    b = broker_factory(extra=FAST, data_dir=data)
    t, g = unique("k848c"), unique("g848c")
    create_topic(b, t, 2)
    produce(b, t, [{"partition": p, "value": b"%d-%d" % (p, i)} for p in range(2) for i in range(10)])
    m = C(b, g, t, "committer")
    try:
        until([m], lambda: m.eof == {0, 1}, 20, lambda: f"{len(m.msgs)} records, eof {m.eof}")
        res = m.c.commit(offsets=[TopicPartition(t, 0, 4), TopicPartition(t, 1, 7)], asynchronous=False)
        assert [tp.error for tp in res] == [None, None], res
    finally:
        m.close()
    port = b.port
    b.kill()
    b2 = broker_factory(extra=FAST, data_dir=data, port=port)
    a = AdminClient({"bootstrap.servers": b2.bootstrap})
    listed = {x.group_id: x for x in a.list_consumer_groups(request_timeout=T).result(T).valid}
    assert g in listed and str(listed[g].type).endswith("CONSUMER"), listed.get(g)
    r = C(b2, g, t, "resumer", {"auto.offset.reset": "error"})
    try:
        until([r], lambda: r.eof == {0, 1}, 25, lambda: f"{len(r.msgs)} records, eof {r.eof}, {r.errors}")
        got = sorted((x.partition(), x.offset()) for x in r.msgs)
        assert got == [(0, i) for i in range(4, 10)] + [(1, i) for i in range(7, 10)], got
    finally:
        r.close()
