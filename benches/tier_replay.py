"""Tiered storage: replay throughput from the remote tier against the same
replay from local segments, and upload throughput.

    compat-tests/.venv/bin/python benches/tier_replay.py [--tier dir|azurite|s3] [--mb 400] [--runs 3]

One release fjord (pinned to core 1, this generator to core 0) with the
tier. Two topics get the same MB of 16 KiB records (large records keep the
Python consumer from being the bottleneck) through confluent-kafka:
`local-*` (remote.storage.enable=false) and `remote-*` (8 MiB segments, tiny
local.retention.bytes). The remote topic is filled with tiering off, then
remote.storage.enable is switched on (IncrementalAlterConfigs): upload
throughput is its bytes over the time until the oldest local segments are
gone, and from then on nearly everything is only remote. The chunk cache is
32 MiB, so replays read the store, not the cache. Replay is a confluent-kafka
consumer reading every record from offset 0; the runs alternate local,
remote, remote, local... and each prints MB/s; the summary gives medians and
the ratio remote/local.
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "compat-tests"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType)

import fjord_proc  # noqa: E402
from tier_support import Store  # noqa: E402

VALUE = b"x" * 16384
SEGMENT_BYTES = 8 << 20


def create(b, topic, remote):
    cfg = {"segment.bytes": str(SEGMENT_BYTES), "retention.ms": "-1"}
    if remote:
        cfg.update({"local.retention.bytes": str(2 * SEGMENT_BYTES)})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = admin.create_topics([NewTopic(topic, 1, 1, config=cfg)])
    for f in fs.values():
        f.result(timeout=30)


def enable_tiering(b, topic):
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("remote.storage.enable", "true", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(timeout=30)


def produce(b, topic, n):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1 << 20, "enable.idempotence": False,
                  "queue.buffering.max.kbytes": 1 << 20})
    for _ in range(n):
        while True:
            try:
                p.produce(topic, VALUE, partition=0)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0


def replay(b, topic, n):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800,
                  "max.partition.fetch.bytes": 8388608})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    nbytes = 0
    t0 = None
    deadline = time.monotonic() + 600
    while got < n and time.monotonic() < deadline:
        ms = c.consume(num_messages=10000, timeout=1.0)
        for m in ms:
            if m.error():
                raise RuntimeError(m.error())
            if t0 is None:
                t0 = time.monotonic()
            got += 1
            nbytes += len(m.value())
    dt = time.monotonic() - t0
    c.close()
    assert got == n, (got, n)
    return nbytes / dt / 1e6


def local_bases(b, topic):
    return sorted(int(os.path.basename(f)[:-4]) for f in glob.glob(os.path.join(b.data_dir, f"{topic}-0", "*.log")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tier", default="dir", choices=["dir", "azurite", "s3"])
    ap.add_argument("--mb", type=int, default=400)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    n = a.mb * 1000 * 1000 // len(VALUE)
    bin_ = os.path.join(ROOT, "target", "release", "fjord")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "fjord"], cwd=ROOT, check=True)
    fjord_proc.FJORD_BIN = bin_
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(a.tier, os.path.join(tmp, "store")).start()
        b = fjord_proc.Broker(os.path.join(tmp, "data"), env={**store.env, "FJORD_LOG": "warn"},
                              extra=["--tier-url", store.url, "--tier-interval-ms", "100",
                                     "--tier-cache-bytes", str(32 << 20),
                                     "--registry-listen", "off", "--admin-listen", "off", "--durability", "page-cache"])
        b.start()
        os.sched_setaffinity(b.proc.pid, {1})
        try:
            local_t, remote_t = f"local-{uuid.uuid4().hex[:6]}", f"remote-{uuid.uuid4().hex[:6]}"
            create(b, local_t, False)
            create(b, remote_t, True)
            produce(b, local_t, n)
            produce(b, remote_t, n)
            enable_tiering(b, remote_t)
            t0 = time.monotonic()
            deadline = t0 + 600
            while time.monotonic() < deadline:
                bases = local_bases(b, remote_t)
                if bases and bases[0] >= n - 3 * SEGMENT_BYTES // len(VALUE):
                    break
                time.sleep(0.05)
            up_s = time.monotonic() - t0
            uploaded_mb = bases[0] * len(VALUE) / 1e6
            print(f"tier={a.tier} data={a.mb} MB ({n} records of {len(VALUE) // 1024} KiB); "
                  f"upload: {uploaded_mb:.0f} MB in {up_s:.2f} s = {uploaded_mb / up_s:.0f} MB/s; "
                  f"local segments left: {len(bases)}; load {os.getloadavg()[0]:.2f}")
            res = {"local": [], "remote": []}
            order = ["local", "remote", "remote", "local"] * ((a.runs + 1) // 2)
            for kind in order[: 2 * a.runs]:
                mbps = replay(b, local_t if kind == "local" else remote_t, n)
                res[kind].append(mbps)
                print(f"  replay {kind:6}: {mbps:7.1f} MB/s")
            lm, rm = statistics.median(res["local"]), statistics.median(res["remote"])
            print(f"median replay: local {lm:.1f} MB/s, remote {rm:.1f} MB/s, "
                  f"remote/local = {rm / lm:.2f}")
        finally:
            b.stop()
            store.stop()


if __name__ == "__main__":
    main()
