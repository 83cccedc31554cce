"""Helpers shared by the schema registry suites (test_schema_registry_*.py).

`registry_broker` starts a fjord process with its schema registry listening on
a free 127.0.0.1 port and waits until the REST API answers (Broker.start waits
for the Kafka port only). Everything else is a thin, bounded wrapper: raw
HTTP calls with httpx, confluent-kafka producers whose delivery reports are
returned rather than asserted, and a from-the-beginning reader of a topic.

Every client call here is bounded by T seconds.
"""
import json
import os
import socket
import time
import uuid

import httpx
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

from fjord_proc import Broker

T = 15  # seconds: bound for every single client call

# Confluent's content type for registry requests and answers.
SR_JSON = "application/vnd.schemaregistry.v1+json"

# Kafka error codes the broker answers with.
INVALID_RECORD = 87
INVALID_TOPIC_EXCEPTION = 17

USER_V1 = json.dumps({
    "type": "record", "name": "User", "namespace": "fjord.test",
    "fields": [{"name": "name", "type": "string"},
               {"name": "age", "type": "int"}]})
# v1 plus a field with a default: BACKWARD compatible.
USER_V2 = json.dumps({
    "type": "record", "name": "User", "namespace": "fjord.test",
    "fields": [{"name": "name", "type": "string"},
               {"name": "age", "type": "int"},
               {"name": "email", "type": ["null", "string"], "default": None}]})
# v1 plus a field without a default: not BACKWARD compatible.
USER_BAD = json.dumps({
    "type": "record", "name": "User", "namespace": "fjord.test",
    "fields": [{"name": "name", "type": "string"},
               {"name": "age", "type": "int"},
               {"name": "country", "type": "string"}]})


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_registry(url, timeout_s=30.0):
    """Polls GET /subjects until the registry answers 200 (bounded)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + "/subjects", timeout=1.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.05)
    raise RuntimeError(f"schema registry at {url} did not answer within {timeout_s}s: {last}")


def start_registry_broker(data_dir, extra=()):
    b = Broker(data_dir, extra=extra, registry=True).start()
    try:
        wait_registry(b.registry_url)
    except Exception:
        b.kill()
        raise
    return b


def restart(b, kill=False):
    """Stops `b` (SIGTERM, or SIGKILL if kill) and starts it again on the same
    data dir, Kafka port and registry port; waits for the registry."""
    if kill:
        b.kill()
    else:
        assert b.stop() == 0, f"unclean exit; see {b.log_path}"
    b.start()
    wait_registry(b.registry_url)
    return b


def sr_client(b, **conf):
    c = {"url": b.registry_url, "timeout": T}
    c.update(conf)
    return SchemaRegistryClient(c)


class Http:
    """Raw REST calls against one registry; every call bounded by T."""

    def __init__(self, url):
        self.c = httpx.Client(base_url=url, timeout=T)

    def req(self, method, path, body=None, **kw):
        if body is not None:
            kw.setdefault("content", json.dumps(body).encode())
            kw.setdefault("headers", {"Content-Type": SR_JSON})
        return self.c.request(method, path, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def close(self):
        self.c.close()


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap})


def create_topic(b, topic, partitions=1, config=None):
    a = admin(b)  # held in a local: a future dies with its client
    a.create_topics([NewTopic(topic, partitions, 1, config=config or {})],
                    operation_timeout=T, request_timeout=T)[topic].result(timeout=T)


def plain_producer(b, **conf):
    """No retries, no idempotence: a refused record set fails its delivery
    report at once with the broker's error."""
    c = {"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0,
         "enable.idempotence": False, "message.send.max.retries": 0,
         "retry.backoff.ms": 10, "message.timeout.ms": T * 1000}
    c.update(conf)
    return Producer(c)


def send(p, topic, value=None, key=None, partition=0):
    """Produces one record and flushes; returns (KafkaError or None, offset)."""
    got = []
    p.produce(topic, value=value, key=key, partition=partition,
              on_delivery=lambda err, msg: got.append((err, msg.offset())))
    assert p.flush(T) == 0, "message still in flight after flush"
    assert len(got) == 1, got
    return got[0]


def read_all(b, topic, partition=0, timeout=T, expect=None):
    """Every message of topic/partition from offset 0 to the end (EOF), as
    confluent-kafka Message objects. Stops at EOF, or once `expect` messages
    arrived, or fails after `timeout` seconds."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("sr-read"),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if expect is None or len(out) >= expect:
                        return out
                    continue
                raise AssertionError(f"consume error: {m.error()}")
            out.append(m)
        raise AssertionError(f"did not reach the end of {topic}[{partition}] within {timeout}s "
                             f"({len(out)} read)")
    finally:
        c.close()


def framed(schema_id, payload=b""):
    """Confluent's wire format: magic byte 0, the 4-byte big-endian id, payload."""
    return b"\x00" + int(schema_id).to_bytes(4, "big", signed=True) + payload


def listening_ports(pid):
    """TCP ports the process `pid` listens on (from /proc), IPv4 and IPv6."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local, state, inode = cols[1], cols[3], cols[9]
                    if state == "0A" and inode in inodes:  # 0A = LISTEN
                        ports.add(int(local.rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def connection_refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
