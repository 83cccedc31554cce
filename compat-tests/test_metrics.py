"""The admin listener: /metrics in Prometheus text format, /healthz, /readyz.

Real clients make the traffic (confluent-kafka / librdkafka and
kafka-python); the scraped figures must match what they did: requests per
API, bytes and records in and out per topic, log end offsets, fsync rounds,
live connections and consumer-group lag. Bad HTTP input gets an error and
leaves the broker serving.
"""
import re
import socket
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer

from fjord_proc import Broker

SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')


def scrape(b):
    """{(name, frozenset(labels)): value} of one /metrics page."""
    with urllib.request.urlopen(b.admin_url + "/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))


def total(samples, name, **labels):
    want = {(k, str(v)) for k, v in labels.items()}
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def status(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_metrics_follow_real_clients(tmp_path, time_bound):
    b = Broker(tmp_path / "data").start()
    try:
        assert status(b.admin_url + "/healthz") == 200
        assert status(b.admin_url + "/readyz") == 200
        topic = "metered"  # auto-created with one partition
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
        for _ in range(300):
            p.produce(topic, value=b"x" * 100)
        assert p.flush(30) == 0
        kp = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all")
        for _ in range(200):
            kp.send(topic, b"y" * 50)
        kp.flush(30)
        kp.close()

        # A confluent-kafka group reads everything but commits offset 380: 120 behind.
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "lagging",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        got, deadline = 0, time.monotonic() + 30
        while got < 500 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        assert got == 500
        c.commit(offsets=[TopicPartition(topic, 0, 380)], asynchronous=False)
        # A kafka-python consumer reads too (bytes out count twice).
        kc = KafkaConsumer(topic, bootstrap_servers=b.bootstrap, auto_offset_reset="earliest",
                           consumer_timeout_ms=3000)
        assert sum(1 for _ in kc) == 500

        s = scrape(b)
        assert value(s, "fjord_topic_records_in_total", topic=topic) == 500
        assert value(s, "fjord_topic_records_out_total", topic=topic) >= 1000
        bytes_in = value(s, "fjord_topic_bytes_in_total", topic=topic)
        assert 500 * 50 < bytes_in < 500 * 200, bytes_in
        assert value(s, "fjord_topic_bytes_out_total", topic=topic) >= 2 * bytes_in
        assert value(s, "fjord_partition_log_end_offset", topic=topic, partition=0) == 500
        assert value(s, "fjord_partition_log_start_offset", topic=topic, partition=0) == 0
        assert value(s, "fjord_partition_size_bytes", topic=topic, partition=0) == bytes_in
        assert value(s, "fjord_consumer_group_lag", group="lagging", topic=topic, partition=0) == 120
        assert value(s, "fjord_requests_total", api="Produce") >= 2
        assert value(s, "fjord_requests_total", api="Fetch") >= 2
        assert value(s, "fjord_requests_total", api="OffsetCommit") >= 1
        assert value(s, "fjord_request_duration_seconds_count", api="Produce") == \
            value(s, "fjord_requests_total", api="Produce")
        assert value(s, "fjord_request_duration_seconds_bucket", api="Produce", le="+Inf") == \
            value(s, "fjord_requests_total", api="Produce")
        # acks=all in the default fsync durability: group-commit rounds ran.
        assert value(s, "fjord_log_sync_duration_seconds_count") >= 1
        # Two consumers still connected.
        assert value(s, "fjord_connections") >= 2
        assert value(s, "fjord_connections_accepted_total") >= 4
        c.close()
        kc.close()
    finally:
        b.stop()


def test_metrics_survive_bad_http_and_restarts(tmp_path, time_bound):
    b = Broker(tmp_path / "data").start()
    try:
        assert status(b.admin_url + "/metrics", "POST") == 405
        assert status(b.admin_url + "/nope") == 404
        for junk in [b"\x00\x01garbage\r\n\r\n", b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n\r\n",
                     b"GET /metrics HTTP/1.1\r\nContent-Length: 999999999\r\n\r\nabc"]:
            with socket.create_connection(("127.0.0.1", b.admin_port), timeout=5) as sk:
                try:
                    sk.sendall(junk)
                    sk.shutdown(socket.SHUT_WR)
                    answer = sk.recv(100)
                except OSError:
                    answer = b""
                assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer
        # Idle connections beyond the admin listener's cap do not stop the
        # Kafka listener, and once they go the admin listener answers again.
        idle = [socket.create_connection(("127.0.0.1", b.admin_port), timeout=5) for _ in range(80)]
        p = Producer({"bootstrap.servers": b.bootstrap})
        p.produce("after-junk", b"v")
        assert p.flush(20) == 0
        for sk in idle:
            sk.close()
        deadline = time.monotonic() + 20
        while status(b.admin_url + "/healthz") != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert value(scrape(b), "fjord_topic_records_in_total", topic="after-junk") == 1
        # Counters start again after a restart; state gauges come from the log.
        b.kill()
        b.start()
        s = scrape(b)
        assert value(s, "fjord_topic_records_in_total", topic="after-junk") is None
        assert value(s, "fjord_partition_log_end_offset", topic="after-junk", partition=0) == 1
    finally:
        b.stop()
