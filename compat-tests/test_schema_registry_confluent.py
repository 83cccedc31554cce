"""Fjord's schema registry with confluent-kafka 2.16.1's SchemaRegistryClient and serializers.

The `fjord` binary serves a Confluent-compatible schema registry (REST, on
--registry-listen) whose state lives in the broker's compacted `_schemas`
topic. Proves, through the client's public API and real fjord processes:

* the registry API: Avro schemas registered under several subjects get
  content-addressed ids (one id for one schema across subjects), registering
  again is idempotent, and get_schema / get_latest_version / get_version /
  lookup_schema / get_subjects / get_versions / get_subjects_by_schema_id /
  get_schema_versions answer as Confluent's; soft then permanent deletes of
  versions and subjects with Confluent's error codes (40401, 40402, 40403,
  40404, 40405, 40406, 40407); test_compatibility, global and per-subject
  compatibility (40408, 42203), modes (READONLY refuses registration with
  42205, 42204 for a bad mode); schema references (an Avro record using
  another subject's named type: 42201 without the reference, referencedby,
  42206 on deleting a referenced version, and serde through references);
* end to end with AvroSerializer/AvroDeserializer and JSONSerializer/
  JSONDeserializer (auto-register): the records are produced through fjord,
  consumed back and decoded equal; the raw bytes are magic 0 + the id the
  registry holds for `<topic>-value`; evolution (v2 with a defaulted field is
  BACKWARD compatible, old and new records decode; a field without a default
  is refused with 409 by the serializer's auto-register);
* restart: subjects, versions (soft-deleted ones too), ids, subject configs
  and modes are the same after a clean stop and after SIGKILL, and a schema
  registered (200) just before SIGKILL survives; the same holds after the
  log cleaner compacted `_schemas` (small segments, overwritten configs,
  permanently deleted subjects);
* broker-side validation (confluent.value.schema.validation /
  confluent.key.schema.validation): framed records with an id of the topic's
  subject are stored; plain bytes, unknown ids and ids of another subject are
  refused with INVALID_RECORD and nothing of the refused record set is
  stored; a topic without the setting takes anything;
* bad HTTP input is answered with Confluent's status and error body and
  stores nothing; `_schemas` is not writable by clients; with the registry
  off nothing listens on a registry port and validated topics take nothing.

Equivalent Avro spellings share an id, and a permanently deleted subject
is gone (40401; numbering restarts at 1), as in Confluent.

test_schema_registry_kafka_python.py covers broker-side validation with
kafka-python, a client sharing no code with librdkafka.
"""
import json
import re
import time

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.schema_registry import Schema, SchemaReference
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from fjord_proc import Broker
from sr_support import (INVALID_RECORD, USER_BAD, USER_V1, USER_V2, Http, admin,
                        connection_refused, create_topic, framed, listening_ports, plain_producer,
                        read_all, restart, send, sr_client, start_registry_broker, unique)

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")


@pytest.fixture
def reg(tmp_path):
    """A fresh broker with its schema registry on a free port."""
    b = start_registry_broker(tmp_path / "data")
    yield b
    b.kill()


def avro(text, refs=None):
    return Schema(text, "AVRO", refs or [])


def sr_error(fn, *args, **kw):
    with pytest.raises(SchemaRegistryError) as e:
        fn(*args, **kw)
    return e.value


def record(name, fields, ns="fjord.test"):
    return json.dumps({"type": "record", "name": name, "namespace": ns, "fields": fields})


# ------------------------------------------------------------------ registry API

def test_register_ids_versions_and_lookups(reg):
    c = sr_client(reg)
    s1 = avro(USER_V1)
    other = avro(record("Other", [{"name": "x", "type": "long"}]))

    id1 = c.register_schema("users-value", s1)
    assert id1 >= 1
    # The same schema under another subject: the same (content-addressed) id.
    assert c.register_schema("mirror-value", s1) == id1
    id2 = c.register_schema("other-value", other)
    assert id2 != id1
    # Idempotent: registering again (with a fresh client, no cache) neither
    # adds a version nor a new id.
    c2 = sr_client(reg)
    again = c2.register_schema_full_response("users-value", avro(USER_V1))
    assert again.schema_id == id1
    assert again.version in (None, 1)
    assert c2.get_versions("users-value") == [1]

    # By id.
    got = sr_client(reg).get_schema(id1)
    assert json.loads(got.schema_str) == json.loads(USER_V1)
    assert got.schema_type == "AVRO"
    assert got.references in (None, [])
    assert json.loads(sr_client(reg).get_schema(id2).schema_str) == json.loads(other.schema_str)

    # Latest, a given version, lookup.
    latest = c2.get_latest_version("users-value")
    assert (latest.schema_id, latest.subject, latest.version) == (id1, "users-value", 1)
    assert json.loads(latest.schema.schema_str) == json.loads(USER_V1)
    v1 = c2.get_version("mirror-value", 1)
    assert (v1.schema_id, v1.subject, v1.version) == (id1, "mirror-value", 1)
    found = c2.lookup_schema("mirror-value", avro(USER_V1))
    assert (found.schema_id, found.subject, found.version) == (id1, "mirror-value", 1)

    # A second version.
    id3 = c2.register_schema("users-value", avro(USER_V2))
    assert id3 not in (id1, id2)
    assert c2.get_versions("users-value") == [1, 2]
    latest = sr_client(reg).get_latest_version("users-value")
    assert (latest.schema_id, latest.version) == (id3, 2)
    assert sr_client(reg).get_version("users-value", 1).schema_id == id1

    # Listings.
    assert sorted(c2.get_subjects()) == ["mirror-value", "other-value", "users-value"]
    assert sorted(c2.get_subjects(subject_prefix="users")) == ["users-value"]
    assert sorted(c2.get_subjects_by_schema_id(id1)) == ["mirror-value", "users-value"]
    pairs = sorted((v.subject, v.version) for v in c2.get_schema_versions(id1))
    assert pairs == [("mirror-value", 1), ("users-value", 1)]
    assert "AVRO" in c2.get_schema_types() and "JSON" in c2.get_schema_types()

    # Errors with Confluent's codes.
    e = sr_error(sr_client(reg).get_schema, 99999)
    assert (e.http_status_code, e.error_code) == (404, 40403)
    e = sr_error(c2.get_versions, "no-such-subject")
    assert (e.http_status_code, e.error_code) == (404, 40401)
    e = sr_error(c2.get_latest_version, "no-such-subject")
    assert e.error_code == 40401
    e = sr_error(c2.get_version, "users-value", 7)
    assert (e.http_status_code, e.error_code) == (404, 40402)
    # A schema the subject does not hold: 40403; a subject that does not exist: 40401.
    e = sr_error(c2.lookup_schema, "users-value", other)
    assert (e.http_status_code, e.error_code) == (404, 40403)
    e = sr_error(c2.lookup_schema, "no-such-subject", other)
    assert e.error_code == 40401
    # An invalid Avro schema: 42201.
    e = sr_error(c2.register_schema, "users-value", avro('{"type": "record", "name": "R"}'))
    assert (e.http_status_code, e.error_code) == (422, 42201)
    assert sorted(c2.get_subjects()) == ["mirror-value", "other-value", "users-value"]


def test_equivalent_avro_forms_share_an_id(reg):
    c = sr_client(reg)
    assert c.register_schema("p1-value", avro('"string"')) == \
        c.register_schema("p2-value", avro('{"type": "string"}'))


def test_delete_versions_and_subjects_soft_then_permanent(reg):
    c = sr_client(reg)
    id1 = c.register_schema("d-value", avro(USER_V1))
    id2 = c.register_schema("d-value", avro(USER_V2))
    c.register_schema("keep-value", avro(USER_V1))

    # A permanent delete must follow a soft delete.
    e = sr_error(c.delete_version, "d-value", 1, permanent=True)
    assert (e.http_status_code, e.error_code) == (404, 40407)
    assert c.delete_version("d-value", 1) == 1
    assert c.get_versions("d-value") == [2]
    assert c.get_versions("d-value", deleted=True) == [1, 2]
    e = sr_error(sr_client(reg).get_version, "d-value", 1)
    assert e.error_code == 40402
    assert sr_client(reg).get_version("d-value", 1, deleted=True).schema_id == id1
    # Soft-deleting it again: 40406.
    e = sr_error(c.delete_version, "d-value", 1)
    assert (e.http_status_code, e.error_code) == (404, 40406)
    # The id stays readable (Confluent keeps schemas of soft-deleted versions).
    assert json.loads(sr_client(reg).get_schema(id1).schema_str) == json.loads(USER_V1)
    assert c.delete_version("d-value", 1, permanent=True) == 1
    assert c.get_versions("d-value", deleted=True) == [2]
    e = sr_error(c.delete_version, "d-value", 5)
    assert e.error_code == 40402

    # Subjects: permanent needs soft first (40405); soft twice is 40404.
    e = sr_error(c.delete_subject, "d-value", permanent=True)
    assert (e.http_status_code, e.error_code) == (404, 40405)
    assert c.delete_subject("d-value") == [2]
    assert c.get_subjects() == ["keep-value"]
    assert sorted(c.get_subjects(deleted=True)) == ["d-value", "keep-value"]
    e = sr_error(c.get_versions, "d-value")
    assert e.error_code == 40401
    assert c.get_versions("d-value", deleted=True) == [2]
    e = sr_error(c.delete_subject, "d-value")
    assert (e.http_status_code, e.error_code) == (404, 40404)
    assert c.delete_subject("d-value", permanent=True) == [2]
    assert sorted(c.get_subjects(deleted=True)) == ["keep-value"]
    e = sr_error(c.get_versions, "d-value")
    assert e.error_code == 40401
    e = sr_error(c.get_version, "d-value", 2, deleted=True)
    assert e.error_code in (40401, 40402)
    assert sr_error(sr_client(reg).get_schema, id2).error_code == 40403
    e = sr_error(c.delete_subject, "no-such-subject")
    assert (e.http_status_code, e.error_code) == (404, 40401)
    # The other subject is untouched; the deleted name takes schemas again
    # (the version numbering is checked in test_permanently_deleted_subject_is_gone).
    assert c.get_versions("keep-value") == [1]
    again = sr_client(reg).register_schema_full_response("d-value", avro(USER_V2))
    assert sr_client(reg).get_versions("d-value") == [again.version]
    assert json.loads(sr_client(reg).get_schema(again.schema_id).schema_str) == json.loads(USER_V2)


def test_permanently_deleted_subject_is_gone(reg):
    c = sr_client(reg)
    c.register_schema("p-value", avro(USER_V1))
    assert c.delete_subject("p-value") == [1]
    assert c.delete_subject("p-value", permanent=True) == [1]
    e = sr_error(c.get_versions, "p-value", deleted=True)
    assert (e.http_status_code, e.error_code) == (404, 40401)
    e = sr_error(c.delete_subject, "p-value", permanent=True)
    assert (e.http_status_code, e.error_code) == (404, 40401)
    e = sr_error(c.delete_subject, "p-value")
    assert (e.http_status_code, e.error_code) == (404, 40401)
    again = c.register_schema_full_response("p-value", avro(USER_V2))
    assert again.version == 1


def test_compatibility_levels_and_test_compatibility(reg):
    c = sr_client(reg)
    assert c.get_compatibility() == "BACKWARD"
    c.register_schema("c-value", avro(USER_V1))

    assert c.test_compatibility("c-value", avro(USER_V2)) is True
    assert c.test_compatibility("c-value", avro(USER_BAD)) is False
    assert c.test_compatibility("c-value", avro(USER_BAD), version=1) is False
    assert c.test_compatibility_all_versions("c-value", avro(USER_V2)) is True
    e = sr_error(c.register_schema, "c-value", avro(USER_BAD))
    assert (e.http_status_code, e.error_code) == (409, 409)
    e = sr_error(c.test_compatibility, "no-such-subject", avro(USER_V2), version=1)
    assert e.error_code == 40401
    e = sr_error(c.test_compatibility, "c-value", avro(USER_V2), version=9)
    assert e.error_code == 40402

    # No subject-level config yet: 40408 (Confluent's answer without defaultToGlobal).
    e = sr_error(c.get_compatibility, "c-value")
    assert (e.http_status_code, e.error_code) == (404, 40408)
    assert c.set_compatibility("c-value", "NONE") == {"compatibility": "NONE"}
    assert c.get_compatibility("c-value") == "NONE"
    assert c.get_compatibility() == "BACKWARD"
    assert c.test_compatibility("c-value", avro(USER_BAD)) is True
    assert c.register_schema("c-value", avro(USER_BAD)) >= 1
    assert c.get_versions("c-value") == [1, 2]

    # FORWARD: old readers must read new data. A new field (even without a
    # default) is ignored by them; widening int to long is not readable as int.
    c.register_schema("f-value", avro(USER_V1))
    c.set_compatibility("f-value", "FORWARD")
    assert c.get_compatibility("f-value") == "FORWARD"
    assert c.test_compatibility("f-value", avro(USER_BAD)) is True
    narrowed = record("User", [{"name": "name", "type": "string"}, {"name": "age", "type": "long"}])
    assert c.test_compatibility("f-value", avro(narrowed)) is False

    # Global level.
    assert c.set_compatibility(level="FULL") == {"compatibility": "FULL"}
    assert c.get_compatibility() == "FULL"
    assert c.get_compatibility("c-value") == "NONE"
    e = sr_error(c.set_compatibility, "c-value", "SOMETIMES")
    assert (e.http_status_code, e.error_code) == (422, 42203)
    e = sr_error(c.set_compatibility, None, "SOMETIMES")
    assert e.error_code == 42203
    assert c.get_compatibility() == "FULL"

    # Deleting the subject config falls back to the global level.
    assert c.delete_config("c-value").compatibility_level.value == "NONE"
    e = sr_error(c.get_compatibility, "c-value")
    assert e.error_code == 40408
    assert c.get_config("f-value").compatibility_level.value == "FORWARD"


def test_modes(reg):
    c = sr_client(reg)
    c.register_schema("m-value", avro(USER_V1))
    assert c.get_global_mode() == "READWRITE"
    e = sr_error(c.get_mode, "m-value")
    assert (e.http_status_code, e.error_code) == (404, 40409)

    assert c.update_mode("m-value", "READONLY") == "READONLY"
    assert c.get_mode("m-value") == "READONLY"
    e = sr_error(sr_client(reg).register_schema, "m-value", avro(USER_V2))
    assert (e.http_status_code, e.error_code) == (422, 42205)
    assert c.get_versions("m-value") == [1]
    # Reads still work, other subjects still take schemas.
    assert c.get_latest_version("m-value").version == 1
    assert c.register_schema("n-value", avro(USER_V2)) >= 1
    e = sr_error(c.update_mode, "m-value", "SOMETIMES")
    assert (e.http_status_code, e.error_code) == (422, 42204)

    assert c.delete_mode("m-value") == "READONLY"
    e = sr_error(c.get_mode, "m-value")
    assert e.error_code == 40409
    assert sr_client(reg).register_schema("m-value", avro(USER_V2)) >= 1
    assert c.get_versions("m-value") == [1, 2]

    # Global READONLY refuses every subject.
    assert c.update_global_mode("READONLY") == "READONLY"
    assert c.get_global_mode() == "READONLY"
    e = sr_error(sr_client(reg).register_schema, "x-value", avro(USER_V1))
    assert e.error_code == 42205
    assert c.update_global_mode("READWRITE") == "READWRITE"
    assert sr_client(reg).register_schema("x-value", avro(USER_V1)) >= 1


ADDRESS = record("Address", [{"name": "street", "type": "string"},
                             {"name": "zip", "type": "int"}])
PERSON = record("Person", [{"name": "name", "type": "string"},
                           {"name": "home", "type": "fjord.test.Address"}])


def test_schema_references(reg):
    c = sr_client(reg)
    addr_id = c.register_schema("address-value", avro(ADDRESS))
    # Without the reference the named type is unknown: 42201.
    e = sr_error(c.register_schema, "person-value", avro(PERSON))
    assert (e.http_status_code, e.error_code) == (422, 42201)
    # A reference to a subject that does not exist: 42201 too.
    bad_ref = [SchemaReference("fjord.test.Address", "no-such-subject", 1)]
    e = sr_error(c.register_schema, "person-value", avro(PERSON, bad_ref))
    assert e.error_code == 42201

    refs = [SchemaReference("fjord.test.Address", "address-value", 1)]
    person_id = c.register_schema("person-value", avro(PERSON, refs))
    assert person_id != addr_id
    got = sr_client(reg).get_schema(person_id)
    assert json.loads(got.schema_str) == json.loads(PERSON)
    assert [(r.name, r.subject, r.version) for r in got.references] == \
        [("fjord.test.Address", "address-value", 1)]
    latest = c.get_latest_version("person-value")
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == \
        [("fjord.test.Address", "address-value", 1)]
    assert c.get_referenced_by("address-value", 1) == [person_id]
    assert c.lookup_schema("person-value", avro(PERSON, refs)).schema_id == person_id

    # A referenced version cannot be deleted: 42206.
    e = sr_error(c.delete_version, "address-value", 1)
    assert (e.http_status_code, e.error_code) == (422, 42206)
    assert c.get_versions("address-value") == [1]

    # Serde through the reference: the serializer uses the registered
    # schema (use.latest.version), the deserializer resolves the reference.
    topic = "person"
    ser = AvroSerializer(sr_client(reg), conf={"auto.register.schemas": False,
                                               "use.latest.version": True})
    de = AvroDeserializer(sr_client(reg))
    ctx = SerializationContext(topic, MessageField.VALUE)
    v = {"name": "ada", "home": {"street": "Main", "zip": 12345}}
    data = ser(v, ctx)
    assert data[:5] == framed(person_id)
    assert de(data, ctx) == v


# ------------------------------------------------------------------ end to end

def produce_serialized(b, topic, ser, values):
    p = plain_producer(b, **{"linger.ms": 5})
    ctx = SerializationContext(topic, MessageField.VALUE)
    errs = []
    for v in values:
        p.produce(topic, value=ser(v, ctx), partition=0,
                  on_delivery=lambda err, msg: errs.append(err))
    assert p.flush(15) == 0
    assert errs == [None] * len(values), errs


def test_avro_serializer_end_to_end(reg):
    topic = unique("avro")
    create_topic(reg, topic)
    c = sr_client(reg)
    ser = AvroSerializer(c, USER_V1)
    values = [{"name": f"user{i}", "age": 20 + i} for i in range(20)]
    produce_serialized(reg, topic, ser, values)

    reg_v = sr_client(reg).get_latest_version(f"{topic}-value")
    assert reg_v.version == 1
    msgs = read_all(reg, topic, expect=len(values))
    assert len(msgs) == len(values)
    de = AvroDeserializer(sr_client(reg))
    ctx = SerializationContext(topic, MessageField.VALUE)
    for m in msgs:
        assert m.value()[:5] == b"\x00" + reg_v.schema_id.to_bytes(4, "big")
    assert [de(m.value(), ctx) for m in msgs] == values
    # Decoding with an explicit reader schema gives the same.
    de2 = AvroDeserializer(sr_client(reg), USER_V1)
    assert [de2(m.value(), ctx) for m in msgs] == values


def test_json_serializer_end_to_end(reg):
    topic = unique("json")
    create_topic(reg, topic)
    schema = json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Order", "type": "object",
        "properties": {"id": {"type": "integer"}, "item": {"type": "string"},
                       "qty": {"type": "number"}},
        "required": ["id", "item"]})
    ser = JSONSerializer(schema, sr_client(reg))
    values = [{"id": i, "item": f"thing-{i}", "qty": i * 1.5} for i in range(10)]
    produce_serialized(reg, topic, ser, values)

    reg_v = sr_client(reg).get_latest_version(f"{topic}-value")
    assert reg_v.schema.schema_type == "JSON"
    assert json.loads(reg_v.schema.schema_str) == json.loads(schema)
    msgs = read_all(reg, topic, expect=len(values))
    for m in msgs:
        assert m.value()[:5] == b"\x00" + reg_v.schema_id.to_bytes(4, "big")
    ctx = SerializationContext(topic, MessageField.VALUE)
    de = JSONDeserializer(None, schema_registry_client=sr_client(reg))
    assert [de(m.value(), ctx) for m in msgs] == values
    # The serializer validates against the schema before anything is sent.
    with pytest.raises(Exception):
        ser({"id": "not an int", "item": 3}, ctx)


def test_avro_evolution(reg):
    topic = unique("evo")
    create_topic(reg, topic)
    subject = f"{topic}-value"
    old = [{"name": f"old{i}", "age": i} for i in range(5)]
    new = [{"name": f"new{i}", "age": 50 + i, "email": f"n{i}@x" if i % 2 else None}
           for i in range(5)]
    produce_serialized(reg, topic, AvroSerializer(sr_client(reg), USER_V1), old)
    produce_serialized(reg, topic, AvroSerializer(sr_client(reg), USER_V2), new)

    c = sr_client(reg)
    assert c.get_versions(subject) == [1, 2]
    id1 = c.get_version(subject, 1).schema_id
    id2 = c.get_version(subject, 2).schema_id
    assert id1 != id2
    msgs = read_all(reg, topic, expect=10)
    assert [m.value()[:5] for m in msgs] == [framed(id1)] * 5 + [framed(id2)] * 5

    ctx = SerializationContext(topic, MessageField.VALUE)
    # Writer's schema: each record as written.
    de = AvroDeserializer(sr_client(reg))
    assert [de(m.value(), ctx) for m in msgs] == old + new
    # Reader v2: old records get the default.
    de2 = AvroDeserializer(sr_client(reg), USER_V2)
    assert [de2(m.value(), ctx) for m in msgs] == [dict(v, email=None) for v in old] + new

    # A field without a default: the serializer's auto-register is refused with 409.
    bad = AvroSerializer(sr_client(reg), USER_BAD)
    with pytest.raises(SchemaRegistryError) as e:
        bad({"name": "x", "age": 1, "country": "fr"}, ctx)
    assert (e.value.http_status_code, e.value.error_code) == (409, 409)
    assert c.get_versions(subject) == [1, 2]


# ------------------------------------------------------------------ restart

def snapshot(h):
    """GET answers (status, body) describing the registry's whole state."""
    out = {}

    def get(path):
        r = h.get(path)
        out[path] = (r.status_code, r.json())
        return r

    subjects = get("/subjects?deleted=true").json()
    get("/subjects")
    get("/config")
    get("/mode")
    ids = set()
    for s in subjects:
        versions = get(f"/subjects/{s}/versions?deleted=true").json()
        get(f"/subjects/{s}/versions")
        get(f"/config/{s}")
        get(f"/mode/{s}")
        for v in versions:
            body = get(f"/subjects/{s}/versions/{v}?deleted=true").json()
            ids.add(body["id"])
    for i in sorted(ids):
        get(f"/schemas/ids/{i}")
        get(f"/schemas/ids/{i}/versions?deleted=true")
    return out


def populate(reg):
    c = sr_client(reg)
    c.register_schema("r1-value", avro(USER_V1))
    c.register_schema("r1-value", avro(USER_V2))
    c.register_schema("r2-value", avro(USER_V1))
    c.register_schema("r3-value", avro(record("Thing", [{"name": "a", "type": "long"}])))
    c.register_schema("r3-value", avro(record("Thing", [{"name": "a", "type": "long"},
                                                        {"name": "b", "type": "long",
                                                         "default": 0}])))
    c.register_schema("gone-value", avro(record("Gone", [{"name": "g", "type": "int"}])))
    c.set_compatibility("r2-value", "FULL_TRANSITIVE")
    c.set_compatibility("r3-value", "NONE")
    c.set_compatibility(level="FORWARD")
    h = Http(reg.registry_url)
    r = h.put("/mode/r2-value", {"mode": "READONLY"})
    assert r.status_code == 200 and r.json() == {"mode": "READONLY"}
    assert c.delete_version("r1-value", 1) == 1
    assert c.delete_subject("gone-value") == [1]
    return h


@pytest.mark.parametrize("how", ["clean", "sigkill"])
def test_state_survives_restart(reg, how):
    h = populate(reg)
    before = snapshot(h)
    # Sanity: the snapshot saw what was set.
    assert before["/subjects?deleted=true"] == (200, ["gone-value", "r1-value", "r2-value", "r3-value"])
    assert before["/subjects"] == (200, ["r1-value", "r2-value", "r3-value"])
    assert before["/subjects/r1-value/versions?deleted=true"] == (200, [1, 2])
    assert before["/subjects/r1-value/versions"] == (200, [2])
    assert before["/config/r2-value"] == (200, {"compatibilityLevel": "FULL_TRANSITIVE"})
    assert before["/config"] == (200, {"compatibilityLevel": "FORWARD"})
    assert before["/mode/r2-value"] == (200, {"mode": "READONLY"})
    assert before["/mode/r1-value"][0] == 404
    h.close()

    restart(reg, kill=(how == "sigkill"))
    h = Http(reg.registry_url)
    after = snapshot(h)
    assert after == before
    # And it still behaves the same: READONLY refuses, the others take schemas.
    r = h.post("/subjects/r2-value/versions", {"schema": USER_V2})
    assert (r.status_code, r.json()["error_code"]) == (422, 42205)
    r = h.post("/subjects/r1-value/versions", {"schema": USER_V1})
    assert r.status_code == 200, r.text
    # A new schema gets a new id, never one already used.
    new = h.post("/subjects/fresh-value/versions",
                 {"schema": record("Fresh", [{"name": "f", "type": "int"}])})
    assert new.status_code == 200
    used = {body["id"] for path, (st, body) in before.items()
            if path.startswith("/subjects/") and "/versions/" in path}
    assert new.json()["id"] not in used
    h.close()


def test_schema_registered_just_before_sigkill_survives(reg):
    h = Http(reg.registry_url)
    answers = []
    for i in range(5):
        r = h.post(f"/subjects/last{i}-value/versions",
                   {"schema": record(f"Last{i}", [{"name": "v", "type": "int"}])})
        assert r.status_code == 200, r.text
        answers.append((f"last{i}-value", r.json()["id"]))
    restart(reg, kill=True)  # SIGKILL right after the last 200
    h.close()
    h = Http(reg.registry_url)
    for subject, sid in answers:
        r = h.get(f"/subjects/{subject}/versions/1")
        assert r.status_code == 200, r.text
        assert r.json()["id"] == sid
        assert h.get(f"/schemas/ids/{sid}").status_code == 200
    h.close()


def wait_compacted(b, topic, timeout_s=20):
    """Waits (bounded) until the broker's log reports it compacted `topic`."""
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(b.log_path, errors="replace") as f:
            for line in f:
                line = ansi.sub("", line)
                if "compacted" in line and f"topic={topic}" in line:
                    return
        time.sleep(0.1)
    raise AssertionError(f"{topic} was not compacted within {timeout_s}s; see {b.log_path}")


def test_state_survives_compaction_of_schemas_and_restart(tmp_path):
    """`_schemas` compacted (small segments, fast cleaner) with configs
    overwritten many times and subjects deleted permanently: the replay of
    the compacted topic gives the same state."""
    b = start_registry_broker(tmp_path / "data", extra=["--log-cleaner-interval-ms", "100"])
    try:
        a = admin(b)
        res = ConfigResource("topic", "_schemas", incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in [("segment.bytes", "2048"), ("min.cleanable.dirty.ratio", "0.01"),
                         ("min.compaction.lag.ms", "0"), ("delete.retention.ms", "0")]])
        a.incremental_alter_configs([res])[res].result(15)
        h = populate(b)
        for i in range(40):
            r = h.put("/config/r1-value", {"compatibility": ["NONE", "FULL", "BACKWARD"][i % 3]})
            assert r.status_code == 200
        for i in range(8):
            schema = record(f"Churn{i}", [{"name": "c", "type": "int"}])
            assert h.post(f"/subjects/churn{i}-value/versions", {"schema": schema}).status_code == 200
            if i % 2 == 0:
                assert h.delete(f"/subjects/churn{i}-value").status_code == 200
                assert h.delete(f"/subjects/churn{i}-value?permanent=true").status_code == 200
        wait_compacted(b, "_schemas")
        kept = read_all(b, "_schemas")
        assert len(kept) < kept[-1].offset() + 1, "nothing was removed by compaction"
        before = snapshot(h)
        assert before["/config/r1-value"] == (200, {"compatibilityLevel": "NONE"})  # 39 % 3
        assert [s for s in before["/subjects?deleted=true"][1] if s.startswith("churn")] == \
            ["churn1-value", "churn3-value", "churn5-value", "churn7-value"]
        h.close()
        restart(b)
        h = Http(b.registry_url)
        assert snapshot(h) == before
        h.close()
        restart(b, kill=True)
        h = Http(b.registry_url)
        assert snapshot(h) == before
        h.close()
    finally:
        b.kill()


# ------------------------------------------------------------------ broker-side validation

def test_broker_side_value_validation(reg):
    topic = unique("validated")
    create_topic(reg, topic, config={"confluent.value.schema.validation": "true"})
    plain = unique("plain")
    create_topic(reg, plain)
    c = sr_client(reg)
    ctx = SerializationContext(topic, MessageField.VALUE)
    ser = AvroSerializer(sr_client(reg), USER_V1)
    good1 = ser({"name": "a", "age": 1}, ctx)  # auto-registers <topic>-value
    good_id = c.get_latest_version(f"{topic}-value").schema_id
    other_id = c.register_schema(unique("elsewhere"), avro(record("Else", [{"name": "e",
                                                                          "type": "int"}])))
    assert other_id != good_id

    p = plain_producer(reg)
    err, off = send(p, topic, value=good1)
    assert err is None and off == 0
    bad_values = [b"plain bytes, no header", b"\x00\x00", framed(999999, b"x"),
                  framed(other_id, b"\x02")]
    for bad in bad_values:
        err, _ = send(p, topic, value=bad)
        assert err is not None and err.code() == KafkaError.INVALID_RECORD == INVALID_RECORD, \
            (bad, err)
    # A record set with one bad record is refused whole.
    batching = plain_producer(reg, **{"linger.ms": 200})
    reports = []
    for v in (framed(good_id, b"\x02b\x04"), b"junk", framed(good_id, b"\x02c\x06")):
        batching.produce(topic, value=v, partition=0,
                         on_delivery=lambda err, msg: reports.append(err))
    assert batching.flush(15) == 0
    assert [e.code() if e else None for e in reports] == [INVALID_RECORD] * 3
    # A null value passes (tombstones carry no schema), then one more good one.
    assert send(p, topic, value=None)[0] is None
    good2 = ser({"name": "b", "age": 2}, ctx)
    err, off = send(p, topic, value=good2)
    assert err is None and off == 2

    msgs = read_all(reg, topic, expect=3)
    assert [m.value() for m in msgs] == [good1, None, good2]
    de = AvroDeserializer(sr_client(reg))
    assert de(msgs[2].value(), ctx) == {"name": "b", "age": 2}

    # Without the setting anything goes.
    for i, v in enumerate(bad_values):
        err, off = send(p, plain, value=v)
        assert err is None and off == i
    assert [m.value() for m in read_all(reg, plain, expect=len(bad_values))] == bad_values
    # Keys are not checked when only values are.
    err, _ = send(p, topic, key=b"plain key", value=good1)
    assert err is None


def test_broker_side_key_validation(reg):
    topic = unique("keyed")
    create_topic(reg, topic, config={"confluent.key.schema.validation": "true"})
    c = sr_client(reg)
    key_id = c.register_schema(f"{topic}-key", avro('"string"'))
    value_only = c.register_schema(f"{topic}-value",
                                   avro(record("V", [{"name": "v", "type": "long"}])))
    p = plain_producer(reg)
    good_key = framed(key_id, b"\x02k")
    assert send(p, topic, key=good_key, value=b"any value")[0] is None
    assert send(p, topic, key=None, value=b"null key passes")[0] is None
    for bad in (b"plain key", framed(424242), framed(value_only, b"\x02")):
        err, _ = send(p, topic, key=bad, value=b"v")
        assert err is not None and err.code() == INVALID_RECORD, (bad, err)
    msgs = read_all(reg, topic, expect=2)
    assert [(m.key(), m.value()) for m in msgs] == [(good_key, b"any value"),
                                                    (None, b"null key passes")]


# ------------------------------------------------------------------ bad input over HTTP

def test_bad_http_input(reg):
    h = Http(reg.registry_url)
    assert h.post("/subjects/ok-value/versions", {"schema": USER_V1}).status_code == 200
    before = (h.get("/subjects?deleted=true").json(),
              h.get("/subjects/ok-value/versions?deleted=true").json())
    ct = {"Content-Type": "application/vnd.schemaregistry.v1+json"}

    def check(r, status, code):
        assert r.status_code == status, (r.status_code, r.text)
        body = r.json()
        assert isinstance(body, dict) and set(body) >= {"error_code", "message"}, body
        assert body["error_code"] == code, body
        assert isinstance(body["message"], str) and body["message"]
        assert r.headers["content-type"].startswith("application/"), r.headers

    check(h.post("/subjects/bad-value/versions", content=b'{"schema": ', headers=ct), 400, 400)
    check(h.post("/subjects/bad-value/versions", content=b"\xff\xfe not json", headers=ct),
          400, 400)
    check(h.post("/subjects/bad-value/versions", {"schema": '{"type": "recrd"}'}), 422, 42201)
    check(h.post("/subjects/bad-value/versions",
                 {"schema": '{"type": "record", "name": "R", "fields": [{"name": "x"}]}'}),
          422, 42201)
    check(h.post("/subjects/bad-value/versions", {"schema": "not even json"}), 422, 42201)
    check(h.post("/subjects/bad-value/versions", {"schema": ""}), 422, 42201)
    check(h.post("/subjects/bad-value/versions", {"schema": '"string"', "schemaType": "XML"}),
          422, 42201)
    big = b'{"schema": "\\"' + b"x" * (2 * 1024 * 1024 + 16) + b'\\""}'
    check(h.post("/subjects/bad-value/versions", content=big, headers=ct), 413, 413)
    for v in ("99999999999", "0", "2147483648", "abc"):
        check(h.get(f"/subjects/ok-value/versions/{v}"), 422, 42202)
    check(h.get("/schemas/ids/123456"), 404, 40403)
    check(h.get("/schemas/ids/0"), 404, 40403)
    check(h.post("/subjects/bad-value/versions", content=json.dumps({"schema": '"string"'}),
                 headers={"Content-Type": "text/plain"}), 415, 415)
    check(h.put("/config", {"compatibility": "MAYBE"}), 422, 42203)
    check(h.put("/mode/ok-value", {"mode": "WRITEONLY"}), 422, 42204)
    check(h.get("/subjects/nope-value/versions"), 404, 40401)
    check(h.get("/subjects/ok-value/versions/5"), 404, 40402)

    after = (h.get("/subjects?deleted=true").json(),
             h.get("/subjects/ok-value/versions?deleted=true").json())
    assert after == before == (["ok-value"], [1])
    # Still serving.
    assert h.post("/subjects/ok-value/versions", {"schema": USER_V2}).json()["version"] == 2
    h.close()


# ------------------------------------------------------------------ _schemas, registry off

def test_schemas_topic_is_not_writable_by_clients(reg):
    h = Http(reg.registry_url)
    first = h.post("/subjects/a-value/versions", {"schema": USER_V1})
    assert first.status_code == 200
    p = plain_producer(reg)
    forged = json.dumps({"subject": "forged-value", "version": 1, "id": 77,
                         "schema": '"string"', "deleted": False}).encode()
    key = json.dumps({"keytype": "SCHEMA", "subject": "forged-value", "version": 1,
                      "magic": 1}).encode()
    err, _ = send(p, "_schemas", key=key, value=forged)
    assert err is not None and err.code() == KafkaError.TOPIC_EXCEPTION, err  # INVALID_TOPIC_EXCEPTION
    err, _ = send(p, "_schemas", key=None, value=b"junk")
    assert err is not None and err.code() == KafkaError.TOPIC_EXCEPTION, err

    # The registry keeps working, and knows nothing of the forged record.
    assert h.get("/subjects").json() == ["a-value"]
    assert h.get("/schemas/ids/77").status_code == 404
    second = h.post("/subjects/b-value/versions", {"schema": USER_V2})
    assert second.status_code == 200, second.text
    assert h.get(f"/schemas/ids/{second.json()['id']}").status_code == 200
    # Nor does it after a restart (replaying _schemas).
    h.close()
    restart(reg)
    h = Http(reg.registry_url)
    assert h.get("/subjects").json() == ["a-value", "b-value"]
    assert h.get("/schemas/ids/77").status_code == 404
    h.close()


def test_registry_off(tmp_path):
    # fjord_proc's default: --registry-listen off.
    b = Broker(tmp_path / "data").start()
    try:
        assert b.registry_url is None
        # Kafka and the admin listener (metrics, health), nothing else.
        assert listening_ports(b.proc.pid) == {b.port, b.admin_port}
        topic = unique("validated")
        create_topic(b, topic, config={"confluent.value.schema.validation": "true"})
        plain = unique("plain")
        create_topic(b, plain)
        p = plain_producer(b)
        for v in (b"plain", framed(1, b"\x02"), framed(2)):
            err, _ = send(p, topic, value=v)
            assert err is not None and err.code() == INVALID_RECORD, (v, err)
        assert send(p, plain, value=b"plain")[0] is None
        assert read_all(b, topic) == []
    finally:
        b.kill()

    # A port reserved for the registry, then turned off: nothing answers there.
    b = Broker(tmp_path / "data2", registry=True, extra=["--registry-listen", "off"]).start()
    try:
        assert connection_refused(b.registry_port)
        # Kafka and the admin listener (metrics, health), nothing else.
        assert listening_ports(b.proc.pid) == {b.port, b.admin_port}
    finally:
        b.kill()
