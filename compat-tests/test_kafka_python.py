"""kafka-python 3.x (an independent pure-Python client) against a real fjord process.

Proves that a client sharing no code with librdkafka can, with fjord as its
only broker: read metadata (brokers, partition leaders, DescribeCluster,
DescribeTopicPartitions, DescribeLogDirs); create, validate and delete topics
and add partitions; produce and consume (CRC-checked) with every codec, keys,
headers (duplicate keys, empty and binary values round-trip byte for byte) and producer
timestamps; store a message just under the 1 MB limit and get
MessageSizeTooLargeError from the broker for one just over it; look up offsets
by timestamp (consumer offsets_for_times, admin list_partition_offsets incl.
max-timestamp); delete records; describe and alter topic and broker configs.

Producers run with enable_idempotence=False: kafka-python enables idempotence by
default, which needs InitProducerId, and fjord does not implement it.
Consumers here use manual assignment (group_id=None); groups are in test_groups_kafka_python.py.
"""
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as E
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.protocol.consumer.offsets import OffsetSpec

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
T = 15  # seconds: bound for every single client call
TMS = T * 1000


def topic_name(tag):
    return f"kp-{tag}-{uuid.uuid4().hex[:8]}"


def admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=TMS)


def create(b, topic, partitions=1, configs=None):
    a = admin(b)
    try:
        a.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1,
                                 "configs": configs or {}}}, timeout_ms=TMS)
    finally:
        a.close()


def producer(b, **conf):
    return KafkaProducer(bootstrap_servers=b.bootstrap, enable_idempotence=False,
                         linger_ms=5, request_timeout_ms=TMS, max_block_ms=TMS, **conf)


def produce(b, topic, msgs, partition=0, **conf):
    """Send dicts of send() kwargs; return the RecordMetadata of each, in order."""
    p = producer(b, **conf)
    try:
        futs = [p.send(topic, partition=partition, **m) for m in msgs]
        p.flush(timeout=T)
        return [f.get(timeout=T) for f in futs]
    finally:
        p.close(timeout=T)


def consumer(b, **conf):
    return KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                         request_timeout_ms=TMS + 1000, **conf)


def consume(b, topic, partition=0, offset=None, **conf):
    """Every record from `offset` (default: beginning) to the current end of the partition."""
    c = consumer(b, **conf)
    tp = TopicPartition(topic, partition)
    try:
        c.assign([tp])
        if offset is None:
            c.seek_to_beginning(tp)
        else:
            c.seek(tp, offset)
        end = c.end_offsets([tp], timeout_ms=TMS)[tp]
        out, deadline = [], time.monotonic() + T
        while c.position(tp, timeout_ms=TMS) < end:
            assert time.monotonic() < deadline, f"stuck at {c.position(tp)} of {end}; got {len(out)}"
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        c.close()


# ---------------------------------------------------------------- metadata


def test_metadata_and_cluster(broker):
    t = topic_name("meta")
    create(broker, t, partitions=3)
    a = admin(broker)
    try:
        cl = a.describe_cluster()
        assert [(n["broker_id"], n["host"], n["port"]) for n in cl["brokers"]] == \
            [(cl["controller_id"], "127.0.0.1", broker.port)]
        node = cl["controller_id"]
        assert cl["cluster_id"]
        [td] = a.describe_topics([t])
        assert td["name"] == t and td["error_code"] == 0
        assert sorted((p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"])
                      for p in td["partitions"]) == [(i, node, [node], [node]) for i in range(3)]
        assert t in a.list_topics()

        dtp = a.describe_topic_partitions([t])
        [tt] = dtp["topics"]
        assert (tt["name"], tt["error_code"]) == (t, 0)
        assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"])
                for p in tt["partitions"]] == [(i, node, [node], [node]) for i in range(3)]
        assert str(tt["topic_id"]) == str(td["topic_id"])
    finally:
        a.close()

    c = consumer(broker)
    try:
        assert c.partitions_for_topic(t) == {0, 1, 2}
    finally:
        c.close()


def test_describe_log_dirs(broker):
    t = topic_name("logdirs")
    create(broker, t, partitions=2)
    produce(broker, t, [{"value": b"x" * 1000}] * 5, partition=1)
    a = admin(broker)
    try:
        [res] = a.describe_log_dirs()
    finally:
        a.close()
    sizes = {}
    for d in res["log_dirs"]:
        assert d["error_code"] == 0
        for topic in d["topics"]:
            for p in topic["partitions"]:
                sizes[(topic["name"], p["partition_index"])] = p["partition_size"]
    assert sizes[(t, 0)] == 0
    assert sizes[(t, 1)] > 5000


def test_auto_create_by_producer(broker):
    t = topic_name("auto")
    md = produce(broker, t, [{"value": b"hello"}])
    assert [(m.topic, m.partition, m.offset) for m in md] == [(t, 0, 0)]
    assert [r.value for r in consume(broker, t)] == [b"hello"]


# ---------------------------------------------------------------- topic admin


def test_create_delete_topics(broker):
    t, tv = topic_name("cd"), topic_name("cd-validate")
    a = admin(broker)
    try:
        res = a.create_topics({t: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=TMS)
        assert [(x["name"], x["error_code"]) for x in res["topics"]] == [(t, 0)]
        with pytest.raises(E.TopicAlreadyExistsError):
            a.create_topics({t: {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(E.InvalidPartitionsError):
            a.create_topics({topic_name("zero"): {"num_partitions": 0, "replication_factor": 1}})
        a.create_topics({tv: {"num_partitions": 1, "replication_factor": 1}}, validate_only=True)
        assert tv not in a.list_topics()
        assert t in a.list_topics()

        res = a.delete_topics([t], timeout_ms=TMS)
        assert [(x["name"], x["error_code"]) for x in res["topics"]] == [(t, 0)]
        assert t not in a.list_topics()
        with pytest.raises(E.UnknownTopicOrPartitionError):
            a.delete_topics([t])
    finally:
        a.close()


def test_create_partitions(broker):
    t = topic_name("parts")
    create(broker, t, partitions=1)
    a = admin(broker)
    try:
        a.create_partitions({t: 4}, timeout_ms=TMS)
        [td] = a.describe_topics([t])
        assert sorted(p["partition_index"] for p in td["partitions"]) == [0, 1, 2, 3]
        with pytest.raises(E.InvalidPartitionsError):
            a.create_partitions({t: 2})
    finally:
        a.close()
    for p in range(4):
        assert [m.offset for m in produce(broker, t, [{"value": b"p%d" % p}], partition=p)] == [0]
        assert [r.value for r in consume(broker, t, partition=p)] == [b"p%d" % p]


# ---------------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip(broker, codec):
    t = topic_name(codec or "none")
    create(broker, t)
    msgs = [{"key": b"k%d" % i, "value": (b"value-%d-" % i) * (i + 1)} for i in range(200)]
    md = produce(broker, t, msgs, compression_type=codec, batch_size=4096)
    assert [m.offset for m in md] == list(range(200))
    got = consume(broker, t)
    assert [(r.offset, r.key, r.value) for r in got] == \
        [(i, m["key"], m["value"]) for i, m in enumerate(msgs)]
    # A fetch starting inside a (compressed) batch yields exactly the tail.
    assert [r.offset for r in consume(broker, t, offset=123)] == list(range(123, 200))


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, acks):
    t = topic_name(f"acks{acks}")
    create(broker, t)
    produce(broker, t, [{"value": b"a%d" % i} for i in range(20)], acks=acks)
    c = consumer(broker)
    tp = TopicPartition(t, 0)
    deadline = time.monotonic() + T
    while c.end_offsets([tp], timeout_ms=TMS)[tp] < 20:
        assert time.monotonic() < deadline, "acks=0 records never became visible"
        time.sleep(0.1)
    c.close()
    assert [(r.offset, r.value) for r in consume(broker, t)] == [(i, b"a%d" % i) for i in range(20)]


def test_keys_null_and_empty(broker):
    t = topic_name("keys")
    create(broker, t)
    msgs = [{"key": b"\x00\xffbin", "value": b"v1"}, {"value": b"no-key"},
            {"key": b"", "value": b""}, {"key": b"k", "value": None}]
    produce(broker, t, msgs)
    assert [(r.key, r.value) for r in consume(broker, t)] == \
        [(b"\x00\xffbin", b"v1"), (None, b"no-key"), (b"", b""), (b"k", None)]


@pytest.mark.parametrize("codec", [None, "lz4"])
def test_headers_round_trip(broker, codec):
    t = topic_name("hdr")
    create(broker, t)
    # kafka-python cannot send a null header value (its producer requires bytes).
    h1 = [("dup", b"first"), ("dup", b"second"), ("bin", b"\x00\x01\xfe\xff"),
          ("empty", b""), ("dup", b"third"), ("\u00e9t\u00e9", b"utf8-key")]
    msgs = [{"value": b"with", "headers": h1}, {"value": b"without"},
            {"value": b"one", "headers": [("only", b"1")]}]
    produce(broker, t, msgs, compression_type=codec)
    got = consume(broker, t)
    assert [(r.value, r.headers) for r in got] == \
        [(b"with", h1), (b"without", []), (b"one", [("only", b"1")])]


def test_producer_timestamps(broker):
    t = topic_name("ts")
    create(broker, t)
    stamps = [1_600_000_000_123, 1_500_000_000_000, 1_700_000_000_999]
    md = produce(broker, t, [{"value": b"v", "timestamp_ms": s} for s in stamps])
    assert [m.timestamp for m in md] == stamps  # CreateTime topic: the broker keeps ours
    before = int(time.time() * 1000)
    produce(broker, t, [{"value": b"now"}])
    after = int(time.time() * 1000)
    got = consume(broker, t)
    assert [(r.timestamp, r.timestamp_type) for r in got[:3]] == [(s, 0) for s in stamps]
    assert got[3].timestamp_type == 0 and before - 1000 <= got[3].timestamp <= after


def test_batches_stored_compressed(broker):
    """The broker keeps each producer's compressed batch as it came (DescribeLogDirs sizes)."""
    t = topic_name("stored")
    create(broker, t, partitions=len(CODECS))
    value = b"all work and no play makes jack a dull boy " * 25  # ~1 KB, very compressible
    for p, codec in enumerate(CODECS):
        produce(broker, t, [{"value": value}] * 400, partition=p, compression_type=codec, batch_size=65536)
    a = admin(broker)
    try:
        [res] = a.describe_log_dirs()
    finally:
        a.close()
    sizes = {p["partition_index"]: p["partition_size"]
             for d in res["log_dirs"] for topic in d["topics"] if topic["name"] == t
             for p in topic["partitions"]}
    assert sizes[0] > 400 * len(value)
    for p in range(1, len(CODECS)):
        assert sizes[p] < sizes[0] / 5, (CODECS[p], sizes)
        assert [r.value for r in consume(broker, t, partition=p)] == [value] * 400


# ---------------------------------------------------------------- size limits

BIG = {"max_request_size": 4_000_000}  # skip the client-side size check: let the broker decide


def test_large_message_near_limit(broker):
    t = topic_name("big")
    create(broker, t)
    value = bytes(range(256)) * (1_047_000 // 256)
    md = produce(broker, t, [{"key": b"big", "value": value}, {"value": b"after"}], **BIG)
    assert [m.offset for m in md] == [0, 1]
    got = consume(broker, t)
    assert [(r.offset, r.key, r.value) for r in got] == [(0, b"big", value), (1, None, b"after")]


def test_message_over_limit_rejected_by_broker(broker):
    t = topic_name("toobig")
    create(broker, t)
    p = producer(broker, retries=0, **BIG)
    try:
        fut = p.send(t, partition=0, value=b"x" * 1_100_000)
        with pytest.raises(E.MessageSizeTooLargeError):
            fut.get(timeout=T)
    finally:
        p.close(timeout=T)
    assert [m.offset for m in produce(broker, t, [{"value": b"small"}])] == [0]


def test_topic_max_message_bytes(broker):
    t = topic_name("topicmax")
    create(broker, t, configs={"max.message.bytes": "10000"})
    p = producer(broker, retries=0, **BIG)
    try:
        with pytest.raises(E.MessageSizeTooLargeError):
            p.send(t, partition=0, value=b"z" * 20_000).get(timeout=T)
        assert p.send(t, partition=0, value=b"z" * 5_000).get(timeout=T).offset == 0
    finally:
        p.close(timeout=T)


# ---------------------------------------------------------------- offsets


def test_offsets_for_times(broker):
    t = topic_name("oft")
    create(broker, t)
    base = 1_650_000_000_000
    produce(broker, t, [{"value": b"%d" % i, "timestamp_ms": base + 1000 * i} for i in range(10)]
            + [{"value": b"old", "timestamp_ms": base - 5000}])
    tp = TopicPartition(t, 0)
    c = consumer(broker)
    try:
        got = [c.offsets_for_times({tp: ts}, timeout_ms=TMS)[tp]
               for ts in (base - 10_000, base, base + 1500, base + 9000, base + 60_000)]
        assert [(o.offset, o.timestamp) if o else None for o in got] == \
            [(0, base), (0, base), (2, base + 2000), (9, base + 9000), None]
        assert c.beginning_offsets([tp], timeout_ms=TMS) == {tp: 0}
        assert c.end_offsets([tp], timeout_ms=TMS) == {tp: 11}
    finally:
        c.close()

    a = admin(broker)
    try:
        res = a.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})[tp]
        assert (res.offset, res.timestamp) == (9, base + 9000)
        assert a.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset == 0
        assert a.list_partition_offsets({tp: OffsetSpec.LATEST})[tp].offset == 11
    finally:
        a.close()


def test_delete_records(broker):
    t = topic_name("delrec")
    create(broker, t)
    produce(broker, t, [{"value": b"%d" % i} for i in range(10)])
    tp = TopicPartition(t, 0)
    a = admin(broker)
    try:
        res = a.delete_records({tp: 4}, timeout_ms=TMS)
        assert res[tp]["low_watermark"] == 4
        with pytest.raises(E.OffsetOutOfRangeError):
            a.delete_records({tp: 50}, timeout_ms=TMS)
    finally:
        a.close()
    c = consumer(broker)
    try:
        assert c.beginning_offsets([tp], timeout_ms=TMS) == {tp: 4}
        assert c.end_offsets([tp], timeout_ms=TMS) == {tp: 10}
    finally:
        c.close()
    assert [(r.offset, r.value) for r in consume(broker, t)] == [(i, b"%d" % i) for i in range(4, 10)]


def test_fetch_below_log_start_resets(broker):
    """Fetching a deleted offset gets OFFSET_OUT_OF_RANGE; auto_offset_reset=earliest recovers."""
    t = topic_name("oor")
    create(broker, t)
    produce(broker, t, [{"value": b"%d" % i} for i in range(6)])
    a = admin(broker)
    try:
        a.delete_records({TopicPartition(t, 0): 3}, timeout_ms=TMS)
    finally:
        a.close()
    got = consume(broker, t, offset=1, auto_offset_reset="earliest")
    assert [(r.offset, r.value) for r in got] == [(i, b"%d" % i) for i in range(3, 6)]


# ---------------------------------------------------------------- configs


def topic_configs(a, t):
    res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)], config_filter="all")
    return res["topic"][t]


def test_describe_and_alter_topic_configs(broker):
    t = topic_name("cfg")
    create(broker, t, configs={"retention.ms": "3600000", "cleanup.policy": "compact"})
    a = admin(broker)
    try:
        cfg = topic_configs(a, t)
        assert (cfg["retention.ms"]["value"], cfg["retention.ms"]["config_source"]) == \
            ("3600000", "DYNAMIC_TOPIC_CONFIG")
        assert cfg["cleanup.policy"]["value"] == "compact"
        assert (cfg["max.message.bytes"]["value"], cfg["max.message.bytes"]["config_source"]) == \
            ("1048588", "DEFAULT_CONFIG")
        modified = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)])["topic"][t]
        assert sorted(modified) == ["cleanup.policy", "retention.ms"]
        only = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t, ["retention.ms", "segment.bytes"])],
                                  config_filter="all")["topic"][t]
        assert sorted(only) == ["retention.ms", "segment.bytes"]  # the keys asked for, no more

        # Incremental (IncrementalAlterConfigs): SET one key, DELETE another.
        res = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t,
                                              {"retention.ms": "7200000", "cleanup.policy": ("DELETE", None)})],
                              incremental=True)
        assert res == {"topic": {t: "OK"}}
        cfg = topic_configs(a, t)
        assert cfg["retention.ms"]["value"] == "7200000"
        assert (cfg["cleanup.policy"]["value"], cfg["cleanup.policy"]["config_source"]) == \
            ("delete", "DEFAULT_CONFIG")

        # Legacy AlterConfigs replaces the whole set of topic overrides.
        res = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t, {"segment.bytes": "2000000"})],
                              incremental=False, raise_on_unknown=False)
        assert res == {"topic": {t: "OK"}}
        cfg = topic_configs(a, t)
        assert cfg["segment.bytes"]["value"] == "2000000"

        bad = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t, {"retention.ms": "abc"})],
                              incremental=True)
        assert bad["topic"][t].startswith("[Error 40] InvalidConfigurationError")
        assert topic_configs(a, t)["retention.ms"]["value"] == "7200000"
    finally:
        a.close()


def test_describe_broker_configs(broker_factory):
    b = broker_factory(["--num-partitions", "3", "--node-id", "4"])
    a = admin(b)
    try:
        res = a.describe_configs([ConfigResource(ConfigResourceType.BROKER, "4")], config_filter="all")
    finally:
        a.close()
    cfg = res["broker"]["4"]
    assert cfg["num.partitions"]["value"] == "3"
    assert cfg["num.partitions"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert cfg["message.max.bytes"]["value"] == "1048588"
