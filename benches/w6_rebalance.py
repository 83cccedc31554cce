#!/usr/bin/env python3
"""W6 of ../shared/BENCH.md: consumer-group rebalance, seconds per step.

Against a fresh broker per repetition (default settings, so Kafka's
group.initial.rebalance.delay.ms of 3 s applies to the first join), with
confluent-kafka consumers on client defaults (heartbeat.interval.ms 3 s):

  join       first member subscribes -> it holds all 6 partitions
  scale-out  second member subscribes -> the two hold disjoint halves
  scale-in   second member closes -> the first holds all 6 again
  (close)    of which: the second member's close() call itself

for the classic protocol with range and cooperative-sticky, and KIP-848
(group.protocol=consumer, server-side uniform assignor).

    compat-tests/.venv/bin/python benches/w6_rebalance.py [--reps 5] [--bin target/release/fjord]

Prints one line per (protocol, step): median, min-max over the repetitions.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

PARTS = 6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, data):
    port = free_port()
    proc = subprocess.Popen([binary, "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--registry-listen", "off", "--admin-listen", "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("broker did not start")


def parts(c):
    return {p.partition for p in c.assignment()}


def until(cons, cond, timeout=60):
    t0 = time.monotonic()
    while not cond():
        for c in cons:
            c.poll(0.02)
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("step did not finish")
    return time.monotonic() - t0


def one(binary, variant):
    data = tempfile.mkdtemp(prefix="w6-")
    proc, bs = start(binary, data)
    try:
        topic = f"w6-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic(topic, PARTS, 1)])[topic].result(20)
        conf = {"bootstrap.servers": bs, "group.id": f"g-{uuid.uuid4().hex[:6]}"}
        if variant == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["partition.assignment.strategy"] = variant
        c1 = Consumer(conf)
        c1.subscribe([topic])
        join = until([c1], lambda: len(parts(c1)) == PARTS)
        c2 = Consumer(conf)
        c2.subscribe([topic])
        out = until([c1, c2], lambda: parts(c1) and parts(c2)
                    and not (parts(c1) & parts(c2)) and len(parts(c1) | parts(c2)) == PARTS)
        t0 = time.monotonic()
        c2.close()
        closed = time.monotonic() - t0
        inn = until([c1], lambda: len(parts(c1)) == PARTS) + closed
        c1.close()
        return join, out, inn, closed
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "fjord"))
    a = ap.parse_args()
    for variant in ("range", "cooperative-sticky", "consumer"):
        runs = [one(a.bin, variant) for _ in range(a.reps)]
        for i, step in enumerate(("join", "scale-out", "scale-in", "(close)")):
            xs = [r[i] for r in runs]
            print(f"{variant:20s} {step:10s} median {statistics.median(xs):6.2f} s  "
                  f"(min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})", flush=True)


if __name__ == "__main__":
    main()
