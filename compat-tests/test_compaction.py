"""Log compaction (cleanup.policy=compact) with real clients and real crashes.

(a) test_latest_value_per_key: confluent-kafka produces keyed updates and
    tombstones (uncompressed, lz4 and zstd batches) to a compacted topic with
    tiny segments; once the cleaner has run, a confluent-kafka consumer and a
    kafka-python consumer (an independent implementation that checks CRCs)
    read only the latest value of each key, at the offset it was produced
    at, tombstones past delete.retention.ms gone, offsets strictly
    increasing, and the log shorter than what was written.
(b) test_sigkill_while_cleaning: the broker is SIGKILLed repeatedly while
    the cleaner (every 50 ms) rewrites segments; after each restart the
    latest value of every key is still there at its original offset, and
    no record is served that was not produced.
(c) test_keyless_records_refused: a keyless record to a compacted topic is
    refused (INVALID_RECORD), as Kafka refuses it.
"""
import os
import random
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KTP

CLEANER = ["--log-cleaner-interval-ms", "50"]
COMPACT = {"cleanup.policy": "compact", "segment.bytes": "4096",
           "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"}


def make_topic(b, configs=None):
    t = f"cmp-{uuid.uuid4().hex[:8]}"
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(t, 1, 1, config=configs or COMPACT)])[t].result(15)
    return t


def produce(b, t, items, codec="none"):
    """items: (key, value-or-None); returns {offset: (key, value)} acknowledged."""
    p = Producer({"bootstrap.servers": b.bootstrap, "compression.type": codec,
                  "linger.ms": 2, "batch.num.messages": 20, "enable.idempotence": False})
    acked = {}

    def cb(err, m):
        if err is None:
            acked[m.offset()] = (m.key(), m.value())

    for k, v in items:
        p.produce(t, key=k, value=v, on_delivery=cb)
        p.poll(0)
    assert p.flush(20) == 0
    return acked


def read_all(b, t):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}",
                  "enable.partition.eof": True, "enable.auto.commit": False})
    c.assign([TopicPartition(t, 0, 0)])
    out = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(m.error())
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    raise AssertionError("did not reach the end of the partition")


def latest(acked):
    last = {}
    for off in sorted(acked):
        k, v = acked[off]
        last[k] = (off, v)
    return last


def wait_compacted(b, t, written, gone=(), timeout=20):
    """Reads until the log is compacted and the `gone` keys' tombstones are removed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = read_all(b, t)
        if len(got) < written // 2 and not any(k in gone for _, k, _ in got):
            return got
        time.sleep(0.3)
    raise AssertionError(f"not compacted within {timeout}s")


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_latest_value_per_key(broker_factory, time_bound, codec):
    b = broker_factory(extra=CLEANER)
    t = make_topic(b)
    items = []
    for i in range(600):
        k = b"key-%d" % (i % 20)
        v = b"value-%d-" % i + os.urandom(40)
        items.append((k, v))
    # Tombstones for three keys, then enough fresh data to seal their segment.
    items += [(b"key-1", None), (b"key-2", None), (b"key-3", None)]
    # Random bytes, so that compressed batches fill segments too.
    items += [(b"fill-%d" % i, os.urandom(60)) for i in range(200)]
    acked = produce(b, t, items, codec)
    assert len(acked) == len(items)
    got = wait_compacted(b, t, len(items), gone=(b"key-1", b"key-2", b"key-3"))
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets)), "offsets strictly increasing"
    for o, k, v in got:
        assert acked[o] == (k, v), f"offset {o} holds what was produced there"
    want = latest(acked)
    seen = {k: (o, v) for o, k, v in got}
    for k, (o, v) in want.items():
        if v is None:
            assert k not in seen or seen[k] == (o, None)
        else:
            assert seen.get(k) == (o, v), f"latest value of {k!r}"
    # An independent, CRC-checking client reads the same compacted log.
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False,
                       check_crcs=True, consumer_timeout_ms=3000, request_timeout_ms=15000)
    kc.assign([KTP(t, 0)])
    kc.seek_to_beginning()
    kp = [(m.offset, m.key, m.value) for m in kc]
    kc.close()
    assert kp[:len(got)] == got[:len(kp)] and len(kp) >= len(got) - 5


def test_sigkill_while_cleaning(broker_factory, tmp_path, time_bound):
    data = tmp_path / "crashy"
    b = broker_factory(extra=CLEANER, data_dir=data)
    port = b.port
    t = make_topic(b)
    acked = {}
    rnd = random.Random(7)
    for round_ in range(4):
        items = [(b"k%d" % rnd.randrange(30), b"r%d-%d-" % (round_, i) + b"x" * 80)
                 for i in range(400)]
        acked.update(produce(b, t, items))
        time.sleep(rnd.uniform(0.05, 0.4))  # somewhere inside a cleaning pass
        b.kill()
        b = broker_factory(extra=CLEANER, data_dir=data, port=port)
        got = read_all(b, t)
        seen = {}
        for o, k, v in got:
            assert acked.get(o) == (k, v), f"round {round_}: offset {o} is not what was produced"
            seen[k] = (o, v)
        for k, (o, v) in latest(acked).items():
            assert seen.get(k) == (o, v), f"round {round_}: latest value of {k!r} lost"


def test_keyless_records_refused(broker_factory, time_bound):
    b = broker_factory(extra=CLEANER)
    t = make_topic(b)
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": False})
    errs = []
    p.produce(t, value=b"no key", on_delivery=lambda e, m: errs.append(e))
    p.flush(15)
    assert errs and errs[0] is not None
    assert errs[0].code() == KafkaError.INVALID_RECORD
