#!/usr/bin/env python3
"""W8 of ../shared/BENCH.md: transactions, 1,000 x 100 records, commit.

One confluent-kafka transactional producer against a fresh broker: for each
of N transactions, begin, produce 100 records (100 B values) spread over a
6-partition topic, commit. Reports commits per second over the whole run and
the latency of commit_transaction() (EndTxn: prepare record, markers on
every partition written to, complete record, each synced in fsync
durability), p50/p99/max. A read_committed consumer then checks that it
sees exactly N x 100 records.

    compat-tests/.venv/bin/python benches/w8_transactions.py [--txns 1000] [--bin target/release/fjord] [--durability fsync]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--txns", type=int, default=1000)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--bin", default="target/release/fjord")
    ap.add_argument("--durability", default="fsync")
    ap.add_argument("--cpu", default="1", help="core to pin the broker to")
    a = ap.parse_args()
    port = free_port()
    data = tempfile.mkdtemp()
    log = open(data + ".log", "wb")
    proc = subprocess.Popen(
        ["taskset", "-c", a.cpu, a.bin, "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--registry-listen", "off", "--admin-listen", "off",
         "--durability", a.durability],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    bs = f"127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic("w8", num_partitions=6, replication_factor=1)])["w8"].result(10)
        p = Producer({"bootstrap.servers": bs, "transactional.id": "w8", "linger.ms": 1})
        p.init_transactions(30)
        value = b"v" * 100
        lat = []
        t0 = time.perf_counter()
        for t in range(a.txns):
            p.begin_transaction()
            for i in range(a.records):
                p.produce("w8", value=value, partition=i % 6)
            c0 = time.perf_counter()
            p.commit_transaction(30)
            lat.append(time.perf_counter() - c0)
        elapsed = time.perf_counter() - t0
        lat.sort()
        q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
        print(f"W8 durability={a.durability}: {a.txns} transactions x {a.records} records in {elapsed:.2f} s: "
              f"{a.txns / elapsed:.0f} commits/s; commit latency p50 {q(0.5):.2f} ms, "
              f"p99 {q(0.99):.2f} ms, max {lat[-1] * 1000:.2f} ms")
        c = Consumer({"bootstrap.servers": bs, "group.id": "w8check", "auto.offset.reset": "earliest",
                      "isolation.level": "read_committed", "enable.auto.commit": False})
        c.subscribe(["w8"])
        n, deadline = 0, time.time() + 60
        while n < a.txns * a.records and time.time() < deadline:
            for m in c.consume(10000, 1.0):
                if not m.error():
                    n += 1
        c.close()
        print(f"read_committed consumer saw {n} of {a.txns * a.records} records")
    finally:
        proc.kill()
        proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
        os.unlink(data + ".log")


if __name__ == "__main__":
    main()
