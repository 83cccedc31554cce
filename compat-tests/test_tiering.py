"""Tiered storage through real clients: most data only in the remote tier.

For each tier (a local directory, Azurite, s3s-fs): a topic with remote.storage.enable,
small segments and a tiny local.retention.bytes gets 3,000 records of 1 KiB
with known timestamps through confluent-kafka (acks=all). The test waits
until the oldest local segments are gone (proving the data now exists only
remotely), then:

- consumes from offset 0 with confluent-kafka and with kafka-python and gets
  every record, in order, byte for byte;
- ListOffsets: earliest is 0 (the remote start), earliest-local is above it,
  and a timestamp in the remote part maps to its record;
- resets a consumer group to a datetime in the remote part and replays from
  there with a subscribing consumer;
- restarts the broker (clean, then SIGKILL) and reads everything again.

Faults (Azurite and s3s-fs): the store is stopped while records are being
produced; produce and consume go on, nothing local is deleted that is not
remote, and uploads resume when the store is back, with nothing lost.
"""
import contextlib
import glob
import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fjord_proc import Broker
from tier_support import Store

N = 3000
VALUE_BYTES = 1024
T = 20
BASE_TS = 1_700_000_000_000


def value(i):
    return (f"{i:08d}-".encode() * 200)[:VALUE_BYTES]


def create(b, topic):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = a.create_topics([NewTopic(topic, 1, 1, config={
        "remote.storage.enable": "true",
        "segment.bytes": "65536",
        "local.retention.bytes": "131072",
        "retention.ms": "-1",
    })])
    for f in fs.values():
        f.result(timeout=T)


def produce(b, topic, first=0, count=N):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 16384,
                  "enable.idempotence": False})
    failed = []
    for i in range(first, first + count):
        p.produce(topic, key=str(i).encode(), value=value(i), partition=0,
                  timestamp=BASE_TS + i * 1000,
                  on_delivery=lambda e, m: failed.append(e) if e else None)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(T) == 0
    assert not failed


def part_dir(b, topic):
    return os.path.join(b.data_dir, f"{topic}-0")


def local_bases(b, topic):
    return sorted(int(os.path.basename(f)[:-4]) for f in glob.glob(os.path.join(part_dir(b, topic), "*.log")))


def wait_tiered(b, topic, store, above=N // 2, timeout_s=60):
    """Until the oldest local segments are gone and the tier lists segments."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bases = local_bases(b, topic)
        remote = [n for n in store.blob_names() if n.endswith(".log") and f"/{topic}-0-" in "/" + n]
        if bases and bases[0] > above and remote:
            return bases, remote
        time.sleep(0.2)
    raise AssertionError(f"not tiered: local {local_bases(b, topic)}; see {b.log_path}")


def consume_all_confluent(b, topic, start=0, n=N):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "fetch.max.bytes": 1 << 20})
    c.assign([TopicPartition(topic, 0, start)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n - start and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append((m.offset(), m.value(), m.timestamp()[1]))
    c.close()
    return got


def check(got, start=0, n=N):
    assert [o for o, _, _ in got] == list(range(start, n))
    for o, v, ts in got:
        assert v == value(o), o
        assert ts == BASE_TS + o * 1000


@contextlib.contextmanager
def broker_on(kind, tmp_path):
    """A started store of `kind` and a broker tiering to it; stops both."""
    store = Store(kind, tmp_path / "store").start()
    b = Broker(tmp_path / "data", env=store.env,
               extra=["--tier-url", store.url, "--tier-interval-ms", "200"])
    try:
        b.start()
        yield b, store
    finally:
        b.stop()
        store.stop()


@pytest.fixture(params=["dir", "azurite", "s3"])
def tiered(request, tmp_path):
    with broker_on(request.param, tmp_path) as bs:
        yield bs


def test_replay_from_the_remote_tier(tiered):
    b, store = tiered
    topic = f"tier-{uuid.uuid4().hex[:8]}"
    create(b, topic)
    produce(b, topic)
    bases, remote = wait_tiered(b, topic, store)
    assert 0 not in bases and len(remote) > 10

    check(consume_all_confluent(b, topic))
    check(consume_all_confluent(b, topic, start=1234), start=1234)

    # kafka-python, an independent client, from the beginning.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                       consumer_timeout_ms=10_000, request_timeout_ms=30_000)
    tp = KTP(topic, 0)
    kc.assign([tp])
    kc.seek_to_beginning(tp)
    assert kc.beginning_offsets([tp])[tp] == 0
    kgot = []
    for m in kc:
        kgot.append((m.offset, m.value, m.timestamp))
        if len(kgot) == N:
            break
    kc.close()
    check(kgot)

    # ListOffsets: earliest is the remote start; a time in the remote part.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "lo"})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T)
    assert (low, high) == (0, N)
    found = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 500 * 1000 + 1)], timeout=T)
    assert found[0].offset == 501
    c.close()

    # A group reset to a datetime in the remote part replays from there.
    group = f"reset-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    at = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 700 * 1000)], timeout=T)
    c.commit(offsets=at, asynchronous=False)
    c.close()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "latest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            first = m.offset()
    c.close()
    assert first == 700

    # Restarts with most data remote: clean, then SIGKILL.
    b.stop()
    b.start()
    check(consume_all_confluent(b, topic))
    b.kill()
    b.start()
    check(consume_all_confluent(b, topic))
    assert local_bases(b, topic)[0] > N // 2


@pytest.fixture(params=["azurite", "s3"])
def faulty(request, tmp_path):
    with broker_on(request.param, tmp_path) as bs:
        yield bs


def test_store_outage_delays_uploads_and_loses_nothing(faulty):
    b, store = faulty
    topic = f"tierf-{uuid.uuid4().hex[:8]}"
    create(b, topic)
    produce(b, topic, 0, N // 3)
    wait_tiered(b, topic, store, above=N // 6)
    store.stop()
    # Produce and consume go on while the store is down.
    produce(b, topic, N // 3, N - N // 3)
    time.sleep(1.5)
    # The upload lag is visible in the metrics while the store is down.
    lag_down = upload_lag(b, topic)
    assert lag_down > 0
    bases = local_bases(b, topic)
    # Nothing that was not uploaded is deleted: the local log still holds
    # everything produced during the outage.
    assert bases[0] <= N // 3, bases
    got = consume_all_confluent(b, topic, start=bases[0])
    check(got, start=bases[0])
    store.start()
    # Uploads resume; the local log shrinks again and every record is there.
    wait_tiered(b, topic, store, above=N // 2)
    check(consume_all_confluent(b, topic))
    deadline = time.monotonic() + 30
    while upload_lag(b, topic) >= lag_down:
        assert time.monotonic() < deadline, "upload lag did not fall after the outage"
        time.sleep(0.3)


def upload_lag(b, topic):
    """fjord_tier_upload_lag_bytes of partition 0, from the admin listener."""
    import urllib.request
    with urllib.request.urlopen(b.admin_url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f'fjord_tier_upload_lag_bytes{{topic="{topic}",partition="0"}} '):
                return int(line.split()[-1])
    raise AssertionError("no fjord_tier_upload_lag_bytes series for " + topic)


def test_remote_retention_deletes_old_remote_segments(tmp_path):
    with broker_on("dir", tmp_path) as (b, store):
        topic = f"tierr-{uuid.uuid4().hex[:8]}"
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in a.create_topics([NewTopic(topic, 1, 1, config={
            "remote.storage.enable": "true", "segment.bytes": "65536",
            "local.retention.bytes": "131072", "retention.bytes": "524288",
            "retention.ms": "-1"})]).values():
            f.result(timeout=T)
        produce(b, topic)
        # The total is bounded: the log start moves up and the tier keeps
        # only the newest remote segments.
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "rr"})
        deadline = time.monotonic() + 60
        low = 0
        while time.monotonic() < deadline:
            low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=T)
            remote = [n for n in store.blob_names() if n.endswith(".log") and f"{topic}-0-" in n]
            if low > N // 2 and remote and len(remote) <= 12:
                break
            time.sleep(0.2)
        c.close()
        assert high == N
        assert N // 2 < low < N - 100, low
        got = consume_all_confluent(b, topic, start=low)
        check(got, start=low)
        # Deleting the topic deletes its remote objects too.
        for f in a.delete_topics([topic]).values():
            f.result(timeout=T)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(f"{topic}-0-" in n for n in store.blob_names()):
            time.sleep(0.2)
        assert not [n for n in store.blob_names() if f"{topic}-0-" in n]


def test_remote_storage_needs_the_tier_and_no_compaction(tmp_path):
    from confluent_kafka import KafkaError
    b = Broker(tmp_path / "plain").start()
    try:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        f = a.create_topics([NewTopic("t-remote", 1, 1, config={"remote.storage.enable": "true"})])["t-remote"]
        with pytest.raises(Exception) as e:
            f.result(timeout=T)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    finally:
        b.stop()
    store = Store("dir", tmp_path / "store").start()
    b = Broker(tmp_path / "data", extra=["--tier-url", store.url])
    b.start()
    try:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        f = a.create_topics([NewTopic("t-compact", 1, 1, config={
            "remote.storage.enable": "true", "cleanup.policy": "compact"})])["t-compact"]
        with pytest.raises(Exception) as e:
            f.result(timeout=T)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    finally:
        b.stop()
