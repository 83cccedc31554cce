"""Broker-side schema validation with kafka-python 3.0.12, a client sharing no code with librdkafka.

Schemas are registered over plain HTTP (httpx) and records are encoded with
fastavro and framed by hand (magic byte 0, 4-byte big-endian schema id), so
nothing here goes through confluent-kafka. Proves, against real fjord
processes:

* a topic created with confluent.value.schema.validation=true (through
  KafkaAdminClient.create_topics configs) stores records whose value carries
  an id registered under `<topic>-value`; KafkaProducer.send().get() raises
  InvalidRecordError (error code 87) for plain bytes, an unknown id and an id
  registered only under another subject, and none of those records is
  stored; in one record set with a bad record, the bad record fails with
  InvalidRecordError and its good neighbours fail too (the whole set is
  refused, as Kafka does), so a reader from the beginning sees only the good
  records, which decode with the registered schema;
* the key variant (confluent.key.schema.validation) checks keys against
  `<topic>-key` and leaves values alone; null keys and values pass;
* a topic without the settings takes anything, and turning validation on
  later with incremental_alter_configs applies to the next produce;
  describe_configs shows the setting;
* `_schemas` is internal (describe_topics) and not writable: kafka-python
  refuses to send to an internal topic itself (the broker's
  INVALID_TOPIC_EXCEPTION is covered with confluent-kafka), nothing forged
  lands in it, and the registry keeps working;
* with the registry off, a validated topic refuses every record.
"""
import io
import json
import time

import fastavro
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as E
from kafka.admin import ConfigResource, ConfigResourceType

from fjord_proc import Broker
from sr_support import (USER_V1, Http, framed, start_registry_broker, unique)

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")

T = 15  # seconds: bound for every single client call
TMS = T * 1000
VALUE = "confluent.value.schema.validation"
KEY = "confluent.key.schema.validation"


@pytest.fixture
def reg(tmp_path):
    b = start_registry_broker(tmp_path / "data")
    yield b
    b.kill()


def admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=TMS)


def create(b, topic, configs=None):
    a = admin(b)
    try:
        a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1,
                                 "configs": configs or {}}}, timeout_ms=TMS)
    finally:
        a.close()


def producer(b, **conf):
    """No retries: a refused record fails its future with the broker's error."""
    c = dict(bootstrap_servers=b.bootstrap, enable_idempotence=False, retries=0, acks="all",
             linger_ms=0, request_timeout_ms=TMS, max_block_ms=TMS, delivery_timeout_ms=TMS + 1000)
    c.update(conf)
    return KafkaProducer(**c)


def send(p, topic, value=None, key=None):
    """Sends one record; returns its RecordMetadata or the exception raised by get()."""
    fut = p.send(topic, value=value, key=key, partition=0)
    try:
        return fut.get(timeout=T)
    except E.KafkaError as e:
        return e


def assert_invalid_record(got, what):
    assert isinstance(got, E.InvalidRecordError), (what, got)
    assert got.errno == 87, (what, got)


def consume(b, topic, partition=0):
    """Every record of topic/partition from the beginning to the current end."""
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=TMS + 1000)
    tp = TopicPartition(topic, partition)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp], timeout_ms=TMS)[tp]
        out, deadline = [], time.monotonic() + T
        while c.position(tp, timeout_ms=TMS) < end:
            assert time.monotonic() < deadline, f"stuck at {c.position(tp)} of {end}"
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        c.close()


def register(h, subject, schema):
    r = h.post(f"/subjects/{subject}/versions", {"schema": schema})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def encode(schema, sid, value):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(schema)), value)
    return framed(sid, buf.getvalue())


def decode(h, data):
    assert data[0] == 0
    sid = int.from_bytes(data[1:5], "big")
    r = h.get(f"/schemas/ids/{sid}")
    assert r.status_code == 200, r.text
    schema = fastavro.parse_schema(json.loads(r.json()["schema"]))
    return fastavro.schemaless_reader(io.BytesIO(data[5:]), schema)


OTHER = json.dumps({"type": "record", "name": "Other", "namespace": "fjord.test",
                    "fields": [{"name": "o", "type": "long"}]})


def test_value_validation(reg):
    h = Http(reg.registry_url)
    topic = unique("kp-valid")
    create(reg, topic, {VALUE: "true"})
    sid = register(h, f"{topic}-value", USER_V1)
    other_id = register(h, unique("kp-elsewhere"), OTHER)
    assert other_id != sid

    p = producer(reg)
    try:
        goods = [encode(USER_V1, sid, {"name": f"u{i}", "age": i}) for i in range(3)]
        md = send(p, topic, value=goods[0])
        assert not isinstance(md, Exception), md
        assert md.offset == 0
        for what, bad in [("plain bytes", b"no header here"),
                          ("short header", b"\x00\x00\x01"),
                          ("unknown id", framed(987654, b"\x02")),
                          ("id of another subject", encode(OTHER, other_id, {"o": 1}))]:
            assert_invalid_record(send(p, topic, value=bad), what)
        md = send(p, topic, value=goods[1])
        assert md.offset == 1, md
    finally:
        p.close(timeout=T)

    # One record set: good, bad, good. The whole set is refused; the bad
    # record is named (InvalidRecordError), its neighbours fail with it.
    p = producer(reg, linger_ms=300)
    try:
        futs = [p.send(topic, value=v, partition=0)
                for v in (goods[2], b"junk in the middle", goods[2])]
        p.flush(timeout=T)
        errs = []
        for f in futs:
            try:
                f.get(timeout=T)
                errs.append(None)
            except E.KafkaError as e:
                errs.append(e)
        assert all(e is not None for e in errs), errs
        assert isinstance(errs[1], E.InvalidRecordError), errs
        # A null value passes: tombstones carry no schema.
        assert send(p, topic, value=None, key=b"k").offset == 2
    finally:
        p.close(timeout=T)

    recs = consume(reg, topic)
    assert [r.value for r in recs] == [goods[0], goods[1], None]
    assert [r.offset for r in recs] == [0, 1, 2]
    assert decode(h, recs[0].value) == {"name": "u0", "age": 0}
    assert decode(h, recs[1].value) == {"name": "u1", "age": 1}
    h.close()


def test_key_validation(reg):
    h = Http(reg.registry_url)
    topic = unique("kp-keyed")
    create(reg, topic, {KEY: "true"})
    key_id = register(h, f"{topic}-key", '"string"')
    value_id = register(h, f"{topic}-value", OTHER)
    good_key = encode('"string"', key_id, "k1")
    p = producer(reg)
    try:
        assert send(p, topic, key=good_key, value=b"values are not checked").offset == 0
        assert send(p, topic, key=None, value=b"no key").offset == 1
        for what, bad in [("plain key", b"plain"), ("unknown id", framed(55555)),
                          ("value subject's id", encode(OTHER, value_id, {"o": 2}))]:
            assert_invalid_record(send(p, topic, key=bad, value=b"v"), what)
    finally:
        p.close(timeout=T)
    recs = consume(reg, topic)
    assert [(r.key, r.value) for r in recs] == [(good_key, b"values are not checked"),
                                                (None, b"no key")]
    assert decode(h, recs[0].key) == "k1"
    h.close()


def test_unvalidated_topic_and_alter_configs(reg):
    h = Http(reg.registry_url)
    topic = unique("kp-plain")
    create(reg, topic)
    sid = register(h, f"{topic}-value", USER_V1)
    anything = [b"plain", framed(424242), b"", encode(USER_V1, sid, {"name": "a", "age": 1})]
    p = producer(reg)
    try:
        assert [send(p, topic, value=v).offset for v in anything] == [0, 1, 2, 3]

        # Turn validation on for the existing topic.
        a = admin(reg)
        try:
            res = ConfigResource(ConfigResourceType.TOPIC, topic, configs={VALUE: "true"})
            a.alter_configs([res], incremental=True)
            desc = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                      configs=None)],
                                      config_filter="all")
        finally:
            a.close()
        entry = desc["topic"][topic][VALUE]
        assert entry["value"] == "true", entry
        assert entry["config_source"] == "DYNAMIC_TOPIC_CONFIG", entry

        assert_invalid_record(send(p, topic, value=b"plain"), "plain after alter")
        good = encode(USER_V1, sid, {"name": "b", "age": 2})
        assert send(p, topic, value=good).offset == 4
    finally:
        p.close(timeout=T)
    assert [r.value for r in consume(reg, topic)] == anything + [good]
    h.close()


def test_schemas_topic_not_writable(reg):
    h = Http(reg.registry_url)
    sid = register(h, "kp-a-value", USER_V1)
    p = producer(reg)
    try:
        forged_key = json.dumps({"keytype": "SCHEMA", "subject": "forged", "version": 1,
                                 "magic": 1}).encode()
        forged = json.dumps({"subject": "forged", "version": 1, "id": 99, "schema": '"int"',
                             "deleted": False}).encode()
        # fjord's metadata marks _schemas internal, and kafka-python's producer
        # leaves internal topics out of its metadata: it refuses the record
        # itself. Either way (locally, or the broker's INVALID_TOPIC_EXCEPTION)
        # nothing is written.
        try:
            got = send(p, "_schemas", key=forged_key, value=forged)
        except ValueError as e:
            got = e
        assert isinstance(got, (ValueError, E.InvalidTopicError)), got
        if isinstance(got, E.InvalidTopicError):
            assert got.errno == 17
    finally:
        p.close(timeout=T)
    a = admin(reg)
    try:
        [desc] = a.describe_topics(["_schemas"])
    finally:
        a.close()
    assert desc["is_internal"] is True, desc
    assert [r.value for r in consume(reg, "_schemas") if b"forged" in (r.key or b"")] == []
    assert h.get("/subjects").json() == ["kp-a-value"]
    assert h.get("/schemas/ids/99").status_code == 404
    assert register(h, "kp-b-value", OTHER) != sid
    assert h.get("/subjects").json() == ["kp-a-value", "kp-b-value"]
    h.close()


def test_registry_off_refuses_validated_topics(tmp_path):
    b = Broker(tmp_path / "data").start()  # --registry-listen off
    try:
        topic = unique("kp-off")
        create(b, topic, {VALUE: "true"})
        plain = unique("kp-off-plain")
        create(b, plain)
        p = producer(b)
        try:
            for v in (b"plain", framed(1, b"\x02")):
                assert_invalid_record(send(p, topic, value=v), v)
            assert send(p, plain, value=b"plain").offset == 0
        finally:
            p.close(timeout=T)
        assert consume(b, topic) == []
    finally:
        b.kill()
