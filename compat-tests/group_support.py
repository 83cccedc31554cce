"""Helpers shared by the consumer-group suites (test_groups_*.py).

`Member` is a subscribed confluent-kafka Consumer that records what the group
did to it (rebalance callbacks, messages, end-of-partition events, errors), so
a test can poll several members from one thread and then reason about who
owned which partition. `wait_balanced` is the one definition of "the group has
settled": every partition is owned by exactly one member, sizes differ by at
most one, and the broker's DescribeGroups view (state Stable, each member's
assignment) matches what the clients themselves report.

Every client call here is bounded by T seconds.
"""
import time
import uuid

from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, Consumer, KafkaError,
                             KafkaException, Producer)
from confluent_kafka.admin import AdminClient, NewTopic

T = 15  # seconds: bound for every single client call
# Broker flags for group tests that care about speed: Kafka's default
# group.initial.rebalance.delay.ms (3000) would hold every first join 3 s.
FAST_GROUPS = ["--group-initial-rebalance-delay-ms", "0"]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap})


def create_topic(b, topic, partitions=1):
    a = admin(b)  # held in a local: a future dies with its client
    a.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=T,
                    request_timeout=T)[topic].result(timeout=T)


def produce(b, topic, records):
    """records: dicts of Producer.produce kwargs (partition, value, key, timestamp).
    Returns the (partition, offset) of each, in order."""
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "acks": "all",
                  "enable.idempotence": False})
    reports = [None] * len(records)

    def report(i):
        def cb(err, msg):
            reports[i] = (err, msg.partition(), msg.offset())
        return cb

    for i, r in enumerate(records):
        p.produce(topic, on_delivery=report(i), **r)
    assert p.flush(T) == 0, "messages still in flight after flush"
    assert all(r is not None and r[0] is None for r in reports), reports
    return [(part, off) for _, part, off in reports]


def tps(partitions):
    """A set of (topic, partition) from TopicPartition objects."""
    return {(tp.topic, tp.partition) for tp in partitions}


class Member:
    """One subscribed confluent-kafka consumer and what happened to it.

    events: ("assign" | "revoke" | "lost", frozenset of (topic, partition)) in
    the order the callbacks ran. The Python binding performs the (incremental)
    assign/unassign itself after each callback returns, so consumer.assignment()
    is always the member's current ownership, eager or cooperative.
    """

    def __init__(self, b, group, topics, name, strategy="range", instance_id=None,
                 session_ms=6000, conf=None):
        self.name = name
        self.events = []
        self.messages = []
        self.errors = []
        self.eof = set()
        cfg = {"bootstrap.servers": b.bootstrap, "group.id": group, "client.id": name,
               "partition.assignment.strategy": strategy,
               "session.timeout.ms": session_ms, "heartbeat.interval.ms": 500,
               "auto.offset.reset": "earliest", "enable.auto.commit": False,
               "enable.partition.eof": True, "socket.timeout.ms": T * 1000}
        if instance_id is not None:
            cfg["group.instance.id"] = instance_id
        cfg.update(conf or {})
        self.c = Consumer(cfg)
        self.closed = False
        self.c.subscribe(list(topics), on_assign=self._on("assign"),
                         on_revoke=self._on("revoke"), on_lost=self._on("lost"))

    def _on(self, kind):
        def cb(consumer, partitions):
            self.events.append((kind, frozenset(tps(partitions))))
        return cb

    def poll(self, timeout=0.05):
        m = self.c.poll(timeout)
        if m is None:
            return
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                self.eof.add((m.topic(), m.partition()))
            else:
                self.errors.append(m.error())
            return
        self.eof.discard((m.topic(), m.partition()))
        self.messages.append(m)

    def assignment(self):
        return tps(self.c.assignment())

    def member_id(self):
        return self.c.memberid()

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()

    def __repr__(self):
        return f"<{self.name} owns {sorted(self.assignment()) if not self.closed else 'closed'}>"


def poll_all(members, seconds):
    end = time.monotonic() + seconds
    while True:
        for m in members:
            m.poll(0.05)
        if time.monotonic() >= end:
            return


def wait_until(members, cond, timeout, what):
    """Poll every member until cond() holds; fail with `what()` or `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            m.poll(0.05)
        if not members:
            time.sleep(0.1)
        if cond():
            return
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"not within {timeout}s: {detail}")


def describe(b, group):
    a = admin(b)
    return a.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)


def broker_view(desc):
    return {m.member_id: tps(m.assignment.topic_partitions) for m in desc.members}


def wait_balanced(b, group, members, partitions, timeout=30):
    """Poll until every partition is owned by exactly one member, sizes differ by
    at most one, and the coordinator (DescribeGroups) reports state Stable with
    the same member -> partitions map the clients hold. Returns {name: partitions}."""
    partitions = set(partitions)
    last = {}

    def client_ok():
        views = [m.assignment() for m in members]
        sizes = sorted(len(v) for v in views)
        return (sum(sizes) == len(partitions) and set().union(*views) == partitions
                and sizes[-1] - sizes[0] <= 1)

    deadline = time.monotonic() + timeout
    while True:
        poll_all(members, 0.25)
        if client_ok():
            clients = {m.member_id(): m.assignment() for m in members}
            try:
                desc = describe(b, group)
            except KafkaException as e:
                last = {"describe error": e, "clients": clients}
            else:
                last = {"state": desc.state, "broker": broker_view(desc), "clients": clients}
                if desc.state == ConsumerGroupState.STABLE and broker_view(desc) == clients:
                    return {m.name: m.assignment() for m in members}
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} never settled within {timeout}s: "
                                 f"members {members}, last coordinator view {last}")


def committed_offsets(b, group):
    """{(topic, partition): (offset, metadata)} as the admin API lists them."""
    a = admin(b)
    res = a.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=T)[group].result(timeout=T)
    return {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in (res.topic_partitions or [])}


def alter_offsets(b, group, partitions):
    """AlterConsumerGroupOffsets; returns {(topic, partition): KafkaError or None}."""
    a = admin(b)
    res = a.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, partitions)], request_timeout=T)[group].result(timeout=T)
    return {(tp.topic, tp.partition): tp.error for tp in res.topic_partitions}


def group_ids(b, states=None, settle_s=0):
    """{group_id: ConsumerGroupListing}. With settle_s, per-broker errors (e.g.
    COORDINATOR_LOAD_IN_PROGRESS right after a restart) are retried that long."""
    kw = {"request_timeout": T}
    if states is not None:
        kw["states"] = set(states)
    a = admin(b)
    deadline = time.monotonic() + settle_s
    while True:
        res = a.list_consumer_groups(**kw).result(timeout=T)
        if not res.errors or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def consume_group(b, group, topic, partitions, commit=False, conf=None, name="reader", timeout=25):
    """Subscribe a fresh member to `topic`, read until end-of-partition on all of
    `partitions` (a set of partition numbers), optionally commit what was read,
    close. Returns [(partition, offset, value)] in arrival order."""
    m = Member(b, group, [topic], name, conf=conf)
    want = {(topic, p) for p in partitions}
    try:
        wait_until([m], lambda: m.assignment() == want and want <= m.eof, timeout,
                   lambda: f"{m}: eof {sorted(m.eof)}, {len(m.messages)} messages, errors {m.errors}")
        bad = [e for e in m.errors if e.code() == KafkaError._AUTO_OFFSET_RESET]
        assert not bad, f"no committed offset where one was expected: {bad}"
        if commit and m.messages:
            for tp in m.c.commit(asynchronous=False):
                assert tp.error is None, tp
        return [(x.partition(), x.offset(), x.value()) for x in m.messages]
    finally:
        m.close()


def group_client_ok(b, timeout=25):
    """A real subscribed consumer joins a new group on `b` and reads a record."""
    topic, group = unique("health"), unique("health-g")
    create_topic(b, topic, 1)
    produce(b, topic, [{"partition": 0, "value": b"health"}])
    got = consume_group(b, group, topic, {0}, commit=True, timeout=timeout)
    assert got == [(0, 0, b"health")], got
    assert committed_offsets(b, group)[(topic, 0)][0] == 1

