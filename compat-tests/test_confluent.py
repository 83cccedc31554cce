"""confluent-kafka (librdkafka 2.16) against a real fjord process.

Proves that the newest librdkafka can, with fjord as its only broker:
read cluster metadata (broker, partition leaders, auto-creation, DescribeCluster,
DescribeTopics); create, validate and delete topics and add partitions through
the admin API; produce and consume with every codec, keys, headers (duplicate
keys and null values round-trip byte for byte), producer timestamps and acks
0/1/all; store a message just under the 1 MB limit and get MSG_SIZE_TOO_LARGE
for one just over it (broker and topic `max.message.bytes`); look up offsets by
timestamp (offsets_for_times and admin list_offsets); delete records; describe
and alter broker and topic configs (incremental and legacy). Also: LogAppendTime
topics, one consumer over several partitions, KIP-74 (a batch bigger than the
fetch limits still comes back), long-poll Fetch waking on new data, data and
topic configs surviving a restart, reads across many small segments, and
retention.ms deleting expired segments.

Consumers here use manual assignment; groups are in test_groups_*.py.
"""
import time
import uuid

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME,
                             Consumer, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic, OffsetSpec)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
T = 15  # seconds: bound for every single client call


def topic_name(tag):
    return f"cf-{tag}-{uuid.uuid4().hex[:8]}"


_admins = {}


@pytest.fixture(autouse=True)
def _drop_admin_clients():
    yield
    _admins.clear()


def admin(b):
    """One AdminClient per broker for the test (a future dies with its client)."""
    if b.bootstrap not in _admins:
        _admins[b.bootstrap] = AdminClient({"bootstrap.servers": b.bootstrap})
    return _admins[b.bootstrap]


def create(b, topic, partitions=1, config=None):
    fut = admin(b).create_topics([NewTopic(topic, partitions, 1, config=config or {})],
                                 operation_timeout=T, request_timeout=T)
    fut[topic].result(timeout=T)


def err_code(fut):
    """The KafkaError code a failed admin future raised."""
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=T)
    return ei.value.args[0].code()


def produce(b, topic, msgs, partition=0, **conf):
    """Produce dicts of produce() kwargs; return delivery reports (err, offset) in order."""
    reports = []
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, **conf})
    for m in msgs:
        p.produce(topic, partition=partition,
                  on_delivery=lambda err, msg: reports.append((err, msg.offset())), **m)
    assert p.flush(T) == 0, "messages still in flight after flush"
    return reports


def produce_ok(b, topic, msgs, partition=0, **conf):
    reports = produce(b, topic, msgs, partition, **conf)
    assert [e for e, _ in reports] == [None] * len(msgs)
    return [o for _, o in reports]


def consume(b, topic, partition=0, offset=OFFSET_BEGINNING, **conf):
    """Everything from `offset` up to the end of the partition, as Message objects."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                  "enable.partition.eof": True, **conf})
    c.assign([TopicPartition(topic, partition, offset)])
    out, deadline = [], time.monotonic() + T
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise KafkaException(m.error())
            out.append(m)
        raise AssertionError(f"no end of partition within {T}s; got {len(out)} messages")
    finally:
        c.close()


# ---------------------------------------------------------------- metadata


def test_metadata_brokers_topics_leaders(broker):
    t = topic_name("meta")
    create(broker, t, partitions=3)
    md = admin(broker).list_topics(timeout=T)
    assert len(md.brokers) == 1
    (node_id, bm), = md.brokers.items()
    assert (bm.host, bm.port) == ("127.0.0.1", broker.port)
    assert md.controller_id == node_id
    assert md.cluster_id
    tm = md.topics[t]
    assert tm.error is None
    assert sorted(tm.partitions) == [0, 1, 2]
    for pid, pm in tm.partitions.items():
        assert pm.error is None
        assert (pm.leader, pm.replicas, pm.isrs) == (node_id, [node_id], [node_id])

    cl = admin(broker).describe_cluster(request_timeout=T).result(timeout=T)
    assert cl.cluster_id == md.cluster_id
    assert [(n.id, n.host, n.port) for n in cl.nodes] == [(node_id, "127.0.0.1", broker.port)]
    assert cl.controller.id == node_id

    td = admin(broker).describe_topics(TopicCollection([t]), request_timeout=T)[t].result(timeout=T)
    assert td.name == t
    assert [(p.id, p.leader.id, [r.id for r in p.replicas], [r.id for r in p.isr])
            for p in td.partitions] == [(i, node_id, [node_id], [node_id]) for i in range(3)]


def test_node_id_flag(broker_factory):
    b = broker_factory(["--node-id", "7"])
    md = admin(b).list_topics(timeout=T)
    assert list(md.brokers) == [7]
    assert md.controller_id == 7


def _wait_topic(b, t):
    p = Producer({"bootstrap.servers": b.bootstrap, "allow.auto.create.topics": True})
    deadline = time.monotonic() + T
    while True:
        tm = p.list_topics(topic=t, timeout=T).topics[t]
        if tm.error is None or time.monotonic() > deadline:
            return tm
        time.sleep(0.2)


@pytest.mark.parametrize("flags,parts", [([], 1), (["--num-partitions", "3"], 3)])
def test_auto_create_on_metadata(broker_factory, flags, parts):
    b = broker_factory(flags)
    t = topic_name("auto")
    tm = _wait_topic(b, t)
    assert tm.error is None
    assert sorted(tm.partitions) == list(range(parts))
    assert produce_ok(b, t, [{"value": b"x"}], partition=parts - 1) == [0]


def test_auto_create_disabled(broker_factory):
    b = broker_factory(["--auto-create-topics", "false"])
    t = topic_name("noauto")
    p = Producer({"bootstrap.servers": b.bootstrap, "allow.auto.create.topics": True})
    tm = p.list_topics(topic=t, timeout=T).topics[t]
    assert tm.error is not None and tm.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert t not in admin(b).list_topics(timeout=T).topics


# ---------------------------------------------------------------- topic admin


def test_create_delete_topics(broker):
    a = admin(broker)
    t, t2 = topic_name("cd"), topic_name("cd-validate")
    create(broker, t, partitions=2)
    assert len(a.list_topics(timeout=T).topics[t].partitions) == 2

    dup = a.create_topics([NewTopic(t, 1, 1)], request_timeout=T)[t]
    assert err_code(dup) == KafkaError.TOPIC_ALREADY_EXISTS

    bad = a.create_topics([NewTopic(topic_name("zero"), 0, 1)], request_timeout=T)
    assert err_code(list(bad.values())[0]) == KafkaError.INVALID_PARTITIONS

    rf = a.create_topics([NewTopic(topic_name("rf3"), 1, 3)], request_timeout=T)
    assert err_code(list(rf.values())[0]) == KafkaError.INVALID_REPLICATION_FACTOR
    for bad_name in ["bad/name", "..", "x" * 250]:
        bn = a.create_topics([NewTopic(bad_name, 1, 1)], request_timeout=T)[bad_name]
        assert err_code(bn) == KafkaError.TOPIC_EXCEPTION, bad_name
    for cfg in [{"retention.ms": "soon"}, {"no.such.config": "1"}]:
        name = topic_name("badcfg")
        bc = a.create_topics([NewTopic(name, 1, 1, config=cfg)], request_timeout=T)[name]
        assert err_code(bc) == KafkaError.INVALID_CONFIG, cfg
        assert name not in a.list_topics(timeout=T).topics

    a.create_topics([NewTopic(t2, 4, 1)], validate_only=True, request_timeout=T)[t2].result(timeout=T)
    assert t2 not in a.list_topics(timeout=T).topics

    a.delete_topics([t], operation_timeout=T, request_timeout=T)[t].result(timeout=T)
    assert t not in a.list_topics(timeout=T).topics
    gone = a.delete_topics([t], request_timeout=T)[t]
    assert err_code(gone) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_recreate_topic_starts_empty(broker):
    t = topic_name("recreate")
    create(broker, t)
    produce_ok(broker, t, [{"value": b"old"}])
    admin(broker).delete_topics([t], request_timeout=T)[t].result(timeout=T)
    create(broker, t)
    assert produce_ok(broker, t, [{"value": b"new"}]) == [0]
    assert [m.value() for m in consume(broker, t)] == [b"new"]


def test_create_partitions(broker):
    a = admin(broker)
    t = topic_name("parts")
    create(broker, t, partitions=1)
    a.create_partitions([NewPartitions(t, 3)], request_timeout=T)[t].result(timeout=T)
    md = a.list_topics(timeout=T)
    assert sorted(md.topics[t].partitions) == [0, 1, 2]
    for p in range(3):
        assert produce_ok(broker, t, [{"value": b"p%d" % p}], partition=p) == [0]
        assert [m.value() for m in consume(broker, t, partition=p)] == [b"p%d" % p]
    shrink = a.create_partitions([NewPartitions(t, 2)], request_timeout=T)[t]
    assert err_code(shrink) == KafkaError.INVALID_PARTITIONS


# ---------------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip(broker, codec):
    t = topic_name(codec)
    create(broker, t)
    msgs = [{"key": b"k%d" % i, "value": (b"value-%d-" % i) * (i + 1)} for i in range(200)]
    offsets = produce_ok(broker, t, msgs, **{"compression.type": codec, "linger.ms": 20,
                                             "batch.num.messages": 37})
    assert offsets == list(range(200))
    got = consume(broker, t)
    assert [(m.offset(), m.key(), m.value()) for m in got] == \
        [(i, m["key"], m["value"]) for i, m in enumerate(msgs)]
    # A fetch starting inside a (compressed) batch returns exactly the tail.
    assert [m.offset() for m in consume(broker, t, offset=123)] == list(range(123, 200))


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, acks):
    t = topic_name("acks" + acks)
    create(broker, t)
    msgs = [{"value": b"a%d" % i} for i in range(20)]
    produce_ok(broker, t, msgs, acks=acks)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    deadline = time.monotonic() + T
    while c.get_watermark_offsets(TopicPartition(t, 0), timeout=T)[1] < 20:
        assert time.monotonic() < deadline, "acks=0 messages never became visible"
        time.sleep(0.1)
    c.close()
    assert [(m.offset(), m.value()) for m in consume(broker, t)] == \
        [(i, b"a%d" % i) for i in range(20)]


def test_keys_and_null_key_and_empty_value(broker):
    t = topic_name("keys")
    create(broker, t)
    msgs = [{"key": b"\x00\xffbin", "value": b"v1"}, {"value": b"no-key"},
            {"key": b"", "value": b""}, {"key": b"k", "value": None}]
    produce_ok(broker, t, msgs)
    assert [(m.key(), m.value()) for m in consume(broker, t)] == \
        [(b"\x00\xffbin", b"v1"), (None, b"no-key"), (b"", b""), (b"k", None)]


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_headers_round_trip(broker, codec):
    t = topic_name("hdr")
    create(broker, t)
    h1 = [("dup", b"first"), ("dup", b"second"), ("bin", b"\x00\x01\xfe\xff"),
          ("empty", b""), ("null", None), ("dup", b"third"), ("\u00e9t\u00e9", b"utf8-key")]
    msgs = [{"value": b"with", "headers": h1}, {"value": b"without"},
            {"value": b"one", "headers": [("only", b"1")]}]
    produce_ok(broker, t, msgs, **{"compression.type": codec})
    got = consume(broker, t)
    assert [m.headers() for m in got] == [h1, None, [("only", b"1")]]
    assert [m.value() for m in got] == [b"with", b"without", b"one"]


def test_producer_timestamps(broker):
    t = topic_name("ts")
    create(broker, t)
    stamps = [1_600_000_000_123, 1_500_000_000_000, 1_700_000_000_999]  # not monotonic on purpose
    produce_ok(broker, t, [{"value": b"%d" % s, "timestamp": s} for s in stamps])
    before = int(time.time() * 1000)
    produce_ok(broker, t, [{"value": b"now"}])
    after = int(time.time() * 1000)
    got = consume(broker, t)
    assert [m.timestamp() for m in got[:3]] == [(TIMESTAMP_CREATE_TIME, s) for s in stamps]
    tstype, ts = got[3].timestamp()
    assert tstype == TIMESTAMP_CREATE_TIME and before - 1000 <= ts <= after


def test_log_append_time_topic(broker):
    """message.timestamp.type=LogAppendTime: the broker stamps the batch; the producer's time is dropped."""
    t = topic_name("lat")
    create(broker, t, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce_ok(broker, t, [{"value": b"v", "timestamp": 1_500_000_000_000}])
    after = int(time.time() * 1000)
    [m] = consume(broker, t)
    tstype, ts = m.timestamp()
    assert tstype == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000, \
        f"got {(tstype, ts)}; want ({TIMESTAMP_LOG_APPEND_TIME}, broker time in [{before}, {after}])"


def test_multi_partition_consumer(broker):
    t = topic_name("multi")
    create(broker, t, partitions=3)
    for p in range(3):
        produce_ok(broker, t, [{"value": b"%d-%d" % (p, i)} for i in range(5)], partition=p)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for p in range(3)])
    got, eofs, deadline = {0: [], 1: [], 2: []}, set(), time.monotonic() + T
    while len(eofs) < 3 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
            eofs.add(m.partition())
            continue
        got[m.partition()].append(m.value())
    c.close()
    assert got == {p: [b"%d-%d" % (p, i) for i in range(5)] for p in range(3)}


def test_small_fetch_size_still_returns_big_batch(broker):
    """KIP-74: a batch larger than the fetch limits is still returned whole."""
    t = topic_name("kip74")
    create(broker, t)
    vals = [bytes([i]) * 100_000 for i in range(3)]
    produce_ok(broker, t, [{"value": v} for v in vals], **BIG)
    got = consume(broker, t, **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024, "message.max.bytes": 1000,
                                "fetch.min.bytes": 1})
    assert [m.value() for m in got] == vals


def test_long_poll_fetch_wakes_on_produce(broker):
    t = topic_name("wake")
    create(broker, t)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 5000})
    c.assign([TopicPartition(t, 0, OFFSET_END)])
    try:
        assert c.poll(1.0) is None  # fetch is parked on the empty partition
        produce_ok(broker, t, [{"value": b"wake"}])
        start = time.monotonic()
        m = None
        while m is None and time.monotonic() - start < T:
            m = c.poll(0.2)
        assert m is not None and m.error() is None and m.value() == b"wake"
        assert time.monotonic() - start < 4.0, "fetch did not return before max wait when data arrived"
    finally:
        c.close()


def test_data_survives_restart(broker_factory, tmp_path):
    d = tmp_path / "restart"
    b = broker_factory(data_dir=d)
    t = topic_name("restart")
    create(b, t, partitions=2, config={"retention.ms": "86400000"})
    msgs = [{"key": b"k%d" % i, "value": b"v%d" % i, "headers": [("h", b"%d" % i)],
             "timestamp": 1_600_000_000_000 + i} for i in range(30)]
    produce_ok(b, t, msgs, **{"compression.type": "zstd", "batch.num.messages": 7})
    _admins.clear()
    assert b.stop() == 0
    b2 = broker_factory(data_dir=d, port=b.port)
    assert [(m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in consume(b2, t)] == \
        [(i, m["key"], m["value"], m["headers"], m["timestamp"]) for i, m in enumerate(msgs)]
    assert sorted(admin(b2).list_topics(timeout=T).topics[t].partitions) == [0, 1]
    assert describe(b2, "topic", t)["retention.ms"].value == "86400000"
    assert produce_ok(b2, t, [{"value": b"after"}]) == [30]


# ---------------------------------------------------------------- size limits

BIG = {"message.max.bytes": 4_000_000, "batch.size": 4_000_000}  # let the broker decide


def test_large_message_near_limit(broker):
    t = topic_name("big")
    create(broker, t)
    value = bytes(range(256)) * (1_047_000 // 256)  # ~1 MB, under 1048588 with batch overhead
    produce_ok(broker, t, [{"key": b"big", "value": value}, {"value": b"after"}], **BIG)
    got = consume(broker, t)
    assert [(m.offset(), m.key(), m.value()) for m in got] == [(0, b"big", value), (1, None, b"after")]


def test_message_over_limit_rejected(broker):
    t = topic_name("toobig")
    create(broker, t)
    reports = produce(broker, t, [{"value": b"x" * 1_100_000}], **BIG, retries=0)
    assert [(e.code() if e else None) for e, _ in reports] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert produce_ok(broker, t, [{"value": b"small"}]) == [0]  # nothing was appended
    assert [m.value() for m in consume(broker, t)] == [b"small"]


def test_broker_max_message_bytes_flag(broker_factory):
    b = broker_factory(["--max-message-bytes", "20000"])
    t = topic_name("brokermax")
    create(b, t)
    reports = produce(b, t, [{"value": b"y" * 30_000}], **BIG, retries=0)
    assert [(e.code() if e else None) for e, _ in reports] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert produce_ok(b, t, [{"value": b"y" * 15_000}], **BIG) == [0]


def test_topic_max_message_bytes(broker):
    t = topic_name("topicmax")
    create(broker, t, config={"max.message.bytes": "10000"})
    reports = produce(broker, t, [{"value": b"z" * 20_000}], **BIG, retries=0)
    assert [(e.code() if e else None) for e, _ in reports] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert produce_ok(broker, t, [{"value": b"z" * 5_000}], **BIG) == [0]


# ---------------------------------------------------------------- offsets


def test_offsets_for_times_and_list_offsets(broker):
    t = topic_name("oft")
    create(broker, t)
    base = 1_650_000_000_000
    produce_ok(broker, t, [{"value": b"%d" % i, "timestamp": base + 1000 * i} for i in range(10)]
               + [{"value": b"old", "timestamp": base - 5000}])  # offset 10: older timestamp
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        # One lookup per call: a request names each partition once.
        got = [c.offsets_for_times([TopicPartition(t, 0, ts)], timeout=T)[0].offset
               for ts in (base - 10_000, base, base + 1500, base + 9000, base + 60_000)]
        assert got == [0, 0, 2, 9, -1]  # -1 (OFFSET_END): no record at or after that time
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=T) == (0, 11)
    finally:
        c.close()

    tp = TopicPartition(t, 0)
    specs = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest(),
             "max": OffsetSpec.max_timestamp(), "ts": OffsetSpec.for_timestamp(base + 4500)}
    got = {}
    for name, spec in specs.items():
        r = admin(broker).list_offsets({tp: spec}, request_timeout=T)[tp].result(timeout=T)
        got[name] = (r.offset, r.timestamp)
    assert got["earliest"][0] == 0
    assert got["latest"][0] == 11
    assert got["max"] == (9, base + 9000)
    assert got["ts"] == (5, base + 5000)


def test_delete_records(broker):
    a = admin(broker)
    t = topic_name("delrec")
    create(broker, t)
    produce_ok(broker, t, [{"value": b"%d" % i} for i in range(10)])
    tp = TopicPartition(t, 0, 4)
    res = a.delete_records([tp], request_timeout=T, operation_timeout=T)
    assert list(res.values())[0].result(timeout=T).low_watermark == 4
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=T) == (4, 10)
    c.close()
    e = a.list_offsets({TopicPartition(t, 0): OffsetSpec.earliest()}, request_timeout=T)
    assert list(e.values())[0].result(timeout=T).offset == 4
    assert [(m.offset(), m.value()) for m in consume(broker, t)] == \
        [(i, b"%d" % i) for i in range(4, 10)]
    # Offset -1 (OFFSET_END) deletes everything up to the high watermark.
    res = a.delete_records([TopicPartition(t, 0, -1)], request_timeout=T)
    assert list(res.values())[0].result(timeout=T).low_watermark == 10
    assert produce_ok(broker, t, [{"value": b"next"}]) == [10]
    assert [(m.offset(), m.value()) for m in consume(broker, t)] == [(10, b"next")]


def test_delete_records_beyond_high_watermark(broker):
    t = topic_name("delrec-oor")
    create(broker, t)
    produce_ok(broker, t, [{"value": b"a"}, {"value": b"b"}])
    fut = list(admin(broker).delete_records([TopicPartition(t, 0, 5)], request_timeout=T).values())[0]
    assert err_code(fut) == KafkaError.OFFSET_OUT_OF_RANGE


def test_many_small_segments(broker_factory):
    b = broker_factory(["--segment-bytes", "2000"])
    t = topic_name("segs")
    create(b, t)
    base = 1_650_000_000_000
    msgs = [{"key": b"k%d" % i, "value": b"v%d-" % i * 20, "timestamp": base + i} for i in range(300)]
    produce_ok(b, t, msgs, **{"batch.num.messages": 7, "compression.type": "lz4"})
    got = consume(b, t)
    assert [(m.offset(), m.key(), m.value()) for m in got] == \
        [(i, m["key"], m["value"]) for i, m in enumerate(msgs)]
    assert [m.offset() for m in consume(b, t, offset=177)] == list(range(177, 300))
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
    try:
        assert c.offsets_for_times([TopicPartition(t, 0, base + 250)], timeout=T)[0].offset == 250
    finally:
        c.close()


def test_retention_ms_deletes_old_segments(broker_factory):
    b = broker_factory(["--segment-bytes", "2000", "--retention-check-interval-ms", "200"])
    t = topic_name("ret")
    create(b, t, config={"retention.ms": "60000"})
    old = int(time.time() * 1000) - 3_600_000  # an hour ago: past retention on arrival
    produce_ok(b, t, [{"value": b"o" * 100, "timestamp": old + i} for i in range(100)],
               **{"batch.num.messages": 5})
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
    try:
        deadline = time.monotonic() + 20
        while c.get_watermark_offsets(TopicPartition(t, 0), timeout=T)[0] == 0:
            assert time.monotonic() < deadline, "retention never deleted an expired segment"
            time.sleep(0.2)
        low, high = c.get_watermark_offsets(TopicPartition(t, 0), timeout=T)
    finally:
        c.close()
    assert 0 < low <= 100 and high == 100
    assert [m.offset() for m in consume(b, t)] == list(range(low, 100))


# ---------------------------------------------------------------- configs


def describe(b, restype, name):
    r = ConfigResource(restype, name)
    return admin(b).describe_configs([r], request_timeout=T)[r].result(timeout=T)


def src(entry):
    return ConfigSource(entry.source)


def alter_incremental(b, topic, entries):
    r = ConfigResource("topic", topic, incremental_configs=entries)
    return admin(b).incremental_alter_configs([r], request_timeout=T)[r]


def test_describe_topic_configs(broker_factory):
    b = broker_factory(["--segment-bytes", "5000000"])
    t = topic_name("cfg")
    create(b, t, config={"retention.ms": "3600000", "cleanup.policy": "compact"})
    cfg = describe(b, "topic", t)
    ret = cfg["retention.ms"]
    assert (ret.value, src(ret), ret.is_default) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG, False)
    assert cfg["cleanup.policy"].value == "compact"
    seg = cfg["segment.bytes"]  # set on the broker command line
    assert (seg.value, src(seg)) == ("5000000", ConfigSource.STATIC_BROKER_CONFIG)
    mmb = cfg["max.message.bytes"]  # nobody set it
    assert (mmb.value, src(mmb), mmb.is_default) == ("1048588", ConfigSource.DEFAULT_CONFIG, True)

    missing = ConfigResource("topic", topic_name("missing"))
    fut = admin(b).describe_configs([missing], request_timeout=T)[missing]
    assert err_code(fut) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_configs(broker_factory):
    b = broker_factory(["--num-partitions", "3", "--node-id", "5"])
    cfg = describe(b, "broker", "5")
    assert cfg["num.partitions"].value == "3"
    assert src(cfg["num.partitions"]) == ConfigSource.STATIC_BROKER_CONFIG
    assert cfg["message.max.bytes"].value == "1048588"
    assert cfg["auto.create.topics.enable"].value == "true"


def test_incremental_alter_configs(broker):
    t = topic_name("incr")
    create(broker, t, config={"cleanup.policy": "compact"})
    alter_incremental(broker, t, [
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", None, incremental_operation=AlterConfigOpType.DELETE),
    ]).result(timeout=T)
    cfg = describe(broker, "topic", t)
    assert (cfg["retention.ms"].value, src(cfg["retention.ms"])) == \
        ("7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert (cfg["cleanup.policy"].value, cfg["cleanup.policy"].is_default) == ("delete", True)

    bad = alter_incremental(broker, t, [ConfigEntry("retention.ms", "not-a-number",
                                                    incremental_operation=AlterConfigOpType.SET)])
    assert err_code(bad) == KafkaError.INVALID_CONFIG
    unknown = alter_incremental(broker, t, [ConfigEntry("no.such.config", "1",
                                                        incremental_operation=AlterConfigOpType.SET)])
    assert err_code(unknown) == KafkaError.INVALID_CONFIG
    assert describe(broker, "topic", t)["retention.ms"].value == "7200000"  # failed alters changed nothing


def test_topic_max_message_bytes_altered(broker):
    t = topic_name("altermax")
    create(broker, t)
    alter_incremental(broker, t, [ConfigEntry("max.message.bytes", "10000",
                                              incremental_operation=AlterConfigOpType.SET)]).result(timeout=T)
    reports = produce(broker, t, [{"value": b"z" * 20_000}], **BIG, retries=0)
    assert [(e.code() if e else None) for e, _ in reports] == [KafkaError.MSG_SIZE_TOO_LARGE]


def test_legacy_alter_configs_replaces_set(broker):
    t = topic_name("legacy")
    create(broker, t, config={"cleanup.policy": "compact", "retention.ms": "1000000"})
    r = ConfigResource("topic", t, set_config={"retention.ms": "2000000"})
    admin(broker).alter_configs([r], request_timeout=T)[r].result(timeout=T)
    cfg = describe(broker, "topic", t)
    assert cfg["retention.ms"].value == "2000000"
    # AlterConfigs (non-incremental) replaces the whole set: cleanup.policy reverts to its default.
    assert (cfg["cleanup.policy"].value, cfg["cleanup.policy"].is_default) == ("delete", True)
