"""Hostile and malformed input on the Kafka wire must not hurt the broker.

Every test speaks raw bytes over a plain socket (frames are built by hand with
`struct`: a 4-byte big-endian size, then a request header v1/v2 and a body)
and throws one kind of bad input at a fresh broker:

* frame sizes that are negative, zero, too small for a header, or far above
  --max-frame-bytes; frames that are truncated and then closed or half-closed;
* request bodies whose array / bytes / varint counts claim billions of
  elements while the frame holds a handful of bytes (Metadata v1, Produce v3,
  Produce v9 compact arrays, an overlong varint), and a CRC-valid record batch
  whose record count lies;
* unknown API keys, unsupported versions (Produce v99: an error response with
  error 35 UNSUPPORTED_VERSION or a closed connection; ApiVersions v99: the
  KIP-511 fallback, a v0-format response with error 35 and the API list);
* pure garbage (random bytes, an HTTP request, a TLS ClientHello);
* a frame dribbled in slowly (served, and other clients are not blocked);
* many connections against a small --max-connections (excess ones closed,
  the admitted ones work, slots are freed on close);
* 50 pipelined requests against a small --max-inflight-requests (all answered,
  in order).

Each case must end in "an error response or a closed connection" within a
socket timeout - never a hang. Afterwards the test proves the broker process
is still alive, its resident memory (current RSS and the VmHWM peak) stayed
under RSS_LIMIT_KB, and it still serves a raw ApiVersions v3 round trip plus a
real client (confluent-kafka Producer with acks=all, then a manually assigned
Consumer that reads the records back).
"""
import os
import random
import socket
import struct
import time
import uuid
import zlib

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

RSS_LIMIT_KB = 200 * 1024  # 200 MB
IO_TIMEOUT_S = 5.0


# --------------------------------------------------------------------------
# Per-test wall-clock bound (no pytest-timeout plugin needed).
# --------------------------------------------------------------------------

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")


# --------------------------------------------------------------------------
# Wire helpers
# --------------------------------------------------------------------------

def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def nstring(s):
    """Nullable STRING (int16 length)."""
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):
    return uvarint((n << 1) ^ (n >> 63))


def compact_string(s):
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def request(api_key, api_version, corr, body=b"", client_id="fjord-attack", flexible=False):
    """A complete frame: size prefix + header v1 (v2 when flexible) + body."""
    hdr = struct.pack(">hhi", api_key, api_version, corr) + nstring(client_id)
    if flexible:
        hdr += b"\x00"  # empty tagged fields
    payload = hdr + body
    return i32(len(payload)) + payload


def api_versions_v3(corr):
    body = compact_string("fjord-compat-tests") + compact_string("1.0") + b"\x00"
    return request(18, 3, corr, body, flexible=True)


from wire import crc32c  # noqa: E402


def record_batch(values, claimed_count=None, base_offset=0, raw_records=None, attributes=0,
                 last_offset_delta=None):
    """A magic-2 record batch with a correct CRC32C; `claimed_count` may lie."""
    recs = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        recs += varint(len(body)) + body
    if raw_records is not None:
        recs = raw_records
    count = len(values) if claimed_count is None else claimed_count
    lod = len(values) - 1 if last_offset_delta is None else last_offset_delta
    ts = int(time.time() * 1000)
    after_crc = (i16(attributes) + i32(lod) + i64(ts) + i64(ts) + i64(-1) + i16(-1)
                 + i32(-1) + i32(count) + recs)
    crc = struct.pack(">I", crc32c(after_crc))
    after_len = i32(-1) + b"\x02" + crc + after_crc
    return i64(base_offset) + i32(len(after_len)) + after_len


# --------------------------------------------------------------------------
# Socket helpers
# --------------------------------------------------------------------------

class Hang(AssertionError):
    pass


def connect(broker, timeout=IO_TIMEOUT_S):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock, n):
    """n bytes, or None if the peer closed / reset first. socket.timeout -> Hang."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            raise Hang(f"no data and no close within the socket timeout ({len(buf)}/{n} bytes)")
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_response(sock):
    """('response', corr_id, body) or ('closed', None, None). Raises Hang."""
    size = recv_exact(sock, 4)
    if size is None:
        return ("closed", None, None)
    (n,) = struct.unpack(">i", size)
    assert 4 <= n <= 64 * 1024 * 1024, f"broker sent an absurd response frame size {n}"
    data = recv_exact(sock, n)
    if data is None:
        return ("closed", None, None)
    (corr,) = struct.unpack(">i", data[:4])
    return ("response", corr, data[4:])


def send_quietly(sock, data):
    """sendall that treats a reset/broken pipe as 'the broker closed us'."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
        return False


def attack(broker, data, corr=None, shut_wr=False):
    """Send `data`, then demand an error response or a close - never a hang."""
    with connect(broker) as s:
        if not send_quietly(s, data):
            return ("closed", None, None)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        kind, rcorr, body = read_response(s)
        if kind == "response" and corr is not None:
            assert rcorr == corr, f"response correlation id {rcorr} != request's {corr}"
        return (kind, rcorr, body)


class Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)
        self.p += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def uvarint(self):
        shift = 0
        out = 0
        while True:
            b = self.d[self.p]
            self.p += 1
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.p += self.uvarint()

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.d[self.p:self.p + n].decode()
        self.p += n
        return s


def parse_api_versions_v3(body):
    r = Reader(body)
    err = r.take(">h")
    apis = {}
    for _ in range(r.uvarint() - 1):
        k, lo, hi = r.take(">hhh")
        r.skip_tags()
        apis[k] = (lo, hi)
    r.take(">i")  # throttle
    r.skip_tags()
    return err, apis


def parse_produce_v3(body):
    """{(topic, partition): (error, base_offset)}"""
    r = Reader(body)
    out = {}
    for _ in range(r.take(">i")):
        t = r.string()
        for _ in range(r.take(">i")):
            p, err, base, _ts = r.take(">ihqq")
            out[(t, p)] = (err, base)
    return out


def produce_v3(corr, topic, records, acks=-1):
    body = (nstring(None) + i16(acks) + i32(10000) + i32(1) + nstring(topic) + i32(1)
            + i32(0) + i32(len(records)) + records)
    return request(0, 3, corr, body)


# --------------------------------------------------------------------------
# Health checks
# --------------------------------------------------------------------------

def status_kb(broker, field):
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def assert_memory_ok(broker):
    rss = broker.rss_kb()
    peak = status_kb(broker, "VmHWM")
    assert rss < RSS_LIMIT_KB, f"broker RSS {rss} kB >= {RSS_LIMIT_KB} kB"
    assert peak < RSS_LIMIT_KB, f"broker peak RSS (VmHWM) {peak} kB >= {RSS_LIMIT_KB} kB"


def raw_api_versions_ok(broker, corr=4242):
    with connect(broker) as s:
        s.sendall(api_versions_v3(corr))
        kind, rcorr, body = read_response(s)
        assert kind == "response", "broker closed a valid ApiVersions v3 request"
        assert rcorr == corr
        err, apis = parse_api_versions_v3(body)
        assert err == 0, f"ApiVersions v3 error {err}"
        assert 18 in apis and 0 in apis and 1 in apis and 3 in apis, sorted(apis)
        return apis


def client_roundtrip_ok(broker, n=3):
    topic = f"health-{uuid.uuid4().hex[:10]}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 20000})
    acks = []
    for i in range(n):
        p.produce(topic, value=b"health-%d" % i,
                  on_delivery=lambda err, msg: acks.append((err, msg.offset())))
    assert p.flush(25) == 0, "producer could not deliver to the broker"
    assert [e for e, _ in acks if e is not None] == [], acks
    assert sorted(o for _, o in acks) == list(range(n)), acks

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "health-" + topic,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF and len(got) >= n:
                    break
                continue
            got.append((m.offset(), m.value()))
        assert got == [(i, b"health-%d" % i) for i in range(n)], got
    finally:
        c.close()


def require(broker, key, version):
    lo, hi = raw_api_versions_ok(broker).get(key, (None, None))
    if lo is None or not lo <= version <= hi:
        pytest.skip(f"broker does not support api {key} v{version} (range {lo}..{hi})")


def assert_healthy(broker, full=True):
    assert broker.alive(), f"broker died; see {broker.log_path}"
    assert_memory_ok(broker)
    raw_api_versions_ok(broker)
    if full:
        client_roundtrip_ok(broker)
    assert broker.alive(), f"broker died; see {broker.log_path}"
    assert_memory_ok(broker)


def ok_outcome(kind):
    assert kind in ("response", "closed"), kind


# --------------------------------------------------------------------------
# Frame-level attacks
# --------------------------------------------------------------------------

@pytest.mark.parametrize("size", [-1, -2147483648, -100], ids=["minus1", "int_min", "minus100"])
def test_negative_frame_length(broker, size):
    kind, _, _ = attack(broker, i32(size) + b"\x00" * 16)
    assert kind == "closed", "a negative frame length must close the connection"
    assert_healthy(broker)


@pytest.mark.parametrize("size", [0x7FFFFFFF, 104857600 + 1, 0x40000000],
                         ids=["int_max", "max_frame_plus_1", "1GiB"])
def test_huge_frame_length(broker, size):
    kind, _, _ = attack(broker, i32(size) + api_versions_v3(1)[4:])
    assert kind == "closed", f"a {size}-byte frame exceeds --max-frame-bytes; expected a close"
    assert_healthy(broker)


def test_frame_just_over_custom_max_frame_bytes(broker_factory):
    b = broker_factory(extra=["--max-frame-bytes", "4096"])
    kind, _, _ = attack(b, i32(4097) + b"\x00" * 4097)
    assert kind == "closed"
    # a frame under the limit is still served on a new connection
    assert_healthy(b)


@pytest.mark.parametrize("size", [0, 1, 3, 7], ids=lambda s: f"size{s}")
def test_frame_too_small_for_a_header(broker, size):
    kind, _, _ = attack(broker, i32(size) + b"\x00" * size)
    ok_outcome(kind)
    assert_healthy(broker, full=(size == 0))


def test_many_claimed_near_max_frames_do_not_commit_memory(broker):
    """10 connections each announce a ~100 MB frame and send 1 KB of it."""
    socks = []
    try:
        for _ in range(10):
            s = connect(broker)
            send_quietly(s, i32(104857600 - 8) + b"\x00" * 1024)
            socks.append(s)
        time.sleep(1.0)
        assert broker.alive()
        assert_memory_ok(broker)
        raw_api_versions_ok(broker)
    finally:
        for s in socks:
            s.close()
    assert_healthy(broker)


def test_truncated_frame_then_close(broker):
    frame = api_versions_v3(7)
    for cut in (2, 4, 9, len(frame) - 1):
        with connect(broker) as s:
            s.sendall(frame[:cut])
        # also a frame announcing 100 bytes that delivers 30 and closes
    with connect(broker) as s:
        s.sendall(i32(100) + b"\x01" * 30)
    time.sleep(0.3)
    assert_healthy(broker)


def test_truncated_frame_then_half_close_is_closed_not_hung(broker):
    """EOF in the middle of a frame: the broker must close its side too."""
    kind, _, _ = attack(broker, i32(100) + b"\x01" * 30, shut_wr=True)
    assert kind == "closed"
    assert_healthy(broker, full=False)


# --------------------------------------------------------------------------
# Lying counts inside request bodies
# --------------------------------------------------------------------------

@pytest.mark.parametrize("count", [0x7FFFFFFF, 0x10000000, -2], ids=["int_max", "2^28", "minus2"])
def test_metadata_v1_huge_topic_array_count(broker, count):
    kind, _, _ = attack(broker, request(3, 1, 11, i32(count)), corr=11)
    ok_outcome(kind)
    assert_healthy(broker)


def test_metadata_v1_topic_name_length_lies(broker):
    # 1 topic whose STRING length claims 32767 bytes, frame holds 3.
    kind, _, _ = attack(broker, request(3, 1, 12, i32(1) + i16(0x7FFF) + b"abc"), corr=12)
    ok_outcome(kind)
    assert_healthy(broker)


@pytest.mark.parametrize("count", [4_000_000_000, 2_000_000_000, 0xFFFFFFFF],
                         ids=["4e9", "2e9", "u32max"])
def test_produce_v9_compact_array_claims_billions(broker, count):
    body = b"\x00" + i16(-1) + i32(1000) + uvarint(count)
    kind, _, _ = attack(broker, request(0, 9, 13, body, flexible=True), corr=13)
    ok_outcome(kind)
    assert_healthy(broker)


def test_produce_v9_overlong_varint(broker):
    body = b"\x00" + i16(-1) + i32(1000) + b"\xff" * 12
    kind, _, _ = attack(broker, request(0, 9, 14, body, flexible=True), corr=14)
    ok_outcome(kind)
    assert_healthy(broker)


def test_produce_v9_records_compact_bytes_claims_2gb(broker):
    topic = f"attack-{uuid.uuid4().hex[:8]}"
    body = (b"\x00" + i16(-1) + i32(1000) + uvarint(2) + compact_string(topic) + uvarint(2)
            + i32(0) + uvarint(2_000_000_000) + b"\x00" * 16 + b"\x00\x00\x00")
    kind, _, _ = attack(broker, request(0, 9, 15, body, flexible=True), corr=15)
    ok_outcome(kind)
    assert_healthy(broker)


def test_produce_v3_records_bytes_claims_2gb(broker):
    topic = f"attack-{uuid.uuid4().hex[:8]}"
    body = (nstring(None) + i16(-1) + i32(1000) + i32(1) + nstring(topic) + i32(1) + i32(0)
            + i32(0x7FFFFFF0) + b"\x00" * 16)
    kind, _, _ = attack(broker, request(0, 3, 16, body), corr=16)
    ok_outcome(kind)
    assert_healthy(broker)


@pytest.mark.parametrize("claimed", [0x7FFFFFFF, 1000, -1], ids=["int_max", "1000", "minus1"])
def test_record_batch_with_lying_record_count(broker, claimed):
    """CRC-valid batch holding 2 records but claiming `claimed`: rejected, not stored."""
    require(broker, 0, 3)
    require(broker, 3, 4)
    topic = f"liar-{uuid.uuid4().hex[:8]}"
    # create the topic (Metadata auto-create), then one honest produce
    with connect(broker) as s:
        s.sendall(metadata_v4(99, [topic]))
        assert read_response(s)[0] == "response"
        for attempt in range(20):
            s.sendall(produce_v3(100 + attempt, topic, record_batch([b"honest"])))
            kind, corr, body = read_response(s)
            assert kind == "response"
            err, base = parse_produce_v3(body)[(topic, 0)]
            if err == 0:
                break
            time.sleep(0.25)  # e.g. LEADER_NOT_AVAILABLE while auto-creating
        assert err == 0 and base == 0, (err, base)

        s.sendall(produce_v3(200, topic, record_batch([b"bad-1", b"bad-2"], claimed_count=claimed)))
        kind, corr, body = read_response(s)
    if kind == "response":
        assert corr == 200
        err, _ = parse_produce_v3(body)[(topic, 0)]
        assert err != 0, "a batch whose record count lies was accepted (error 0)"
    assert_healthy(broker, full=False)
    # the next honest produce lands at offset 1: the lying batch left nothing behind
    with connect(broker) as s:
        s.sendall(produce_v3(300, topic, record_batch([b"honest-2"])))
        kind, corr, body = read_response(s)
        assert kind == "response"
        assert parse_produce_v3(body)[(topic, 0)] == (0, 1)
    assert_healthy(broker)


@pytest.mark.parametrize("length", [0x7FFF, -5], ids=["32767", "minus5"])
def test_header_client_id_length_lies(broker, length):
    payload = struct.pack(">hhi", 18, 0, 17) + i16(length) + b"ab"
    kind, _, _ = attack(broker, i32(len(payload)) + payload)
    ok_outcome(kind)
    assert_healthy(broker, full=False)


BAD_TOPIC_NAMES = ["../escape-dotdot", "..", ".", "a/b", "/abs-path", "x" * 300, "",
                   "nul\x00byte", "sp ace"]


def metadata_v4(corr, topics, auto_create=True):
    body = i32(len(topics)) + b"".join(nstring(t) for t in topics) + (b"\x01" if auto_create else b"\x00")
    return request(3, 4, corr, body)


def parse_metadata_v4_topic_errors(body):
    r = Reader(body)
    r.take(">i")  # throttle
    for _ in range(r.take(">i")):
        r.take(">i")
        r.string()
        r.take(">i")
        r.string()
    r.string()  # cluster id
    r.take(">i")  # controller
    out = {}
    for _ in range(r.take(">i")):
        err = r.take(">h")
        name = r.string()
        r.take(">b")
        for _ in range(r.take(">i")):
            r.take(">hii")
            for _ in range(2):
                r.p += 4 * r.take(">i")
        out[name] = err
    return out


def test_bad_topic_names_rejected_and_never_touch_the_filesystem(broker, tmp_path):
    require(broker, 3, 4)
    require(broker, 0, 3)
    before = sorted(os.listdir(tmp_path))
    data_before = set(os.listdir(broker.data_dir))
    with connect(broker) as s:
        for i, name in enumerate(BAD_TOPIC_NAMES):
            s.sendall(metadata_v4(40 + i, [name]))
            kind, corr, body = read_response(s)
            if kind == "closed":
                s = connect(broker)
                continue
            assert corr == 40 + i
            errs = parse_metadata_v4_topic_errors(body)
            assert errs.get(name) == 17, (
                f"topic name {name!r}: expected error 17 INVALID_TOPIC_EXCEPTION, got {errs}")
        for i, name in enumerate(BAD_TOPIC_NAMES):
            s.sendall(produce_v3(60 + i, name, record_batch([b"x"])))
            kind, corr, body = read_response(s)
            if kind == "closed":
                s = connect(broker)
                continue
            err = parse_produce_v3(body).get((name, 0), (None,))[0]
            assert err not in (0, None), f"produce to invalid topic {name!r} answered {err}"
        s.close()
    assert sorted(os.listdir(tmp_path)) == before, "something was created outside the data dir"
    new = set(os.listdir(broker.data_dir)) - data_before
    assert not new, f"invalid topic names created {new} in the data dir"
    assert_healthy(broker)


def create_topic_raw(broker, topic):
    with connect(broker) as s:
        s.sendall(metadata_v4(98, [topic]))
        kind, _, body = read_response(s)
        assert kind == "response" and parse_metadata_v4_topic_errors(body).get(topic) == 0


def gzip_bomb_records(value_len):
    """One record whose value is `value_len` zero bytes, gzip-compressed (~1000:1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    prefix = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(value_len)
    out = [comp.compress(varint(len(prefix) + value_len + 1) + prefix)]
    chunk = bytes(1 << 20)
    for _ in range(value_len // len(chunk)):
        out.append(comp.compress(chunk))
    out.append(comp.compress(bytes(value_len % len(chunk)) + varint(0)))
    out.append(comp.flush())
    return b"".join(out)


def test_gzip_decompression_bomb(broker):
    """A ~300 KB gzip batch that inflates to 400 MB: refused or stored, never inflated in RAM."""
    require(broker, 0, 3)
    require(broker, 3, 4)
    topic = f"bomb-{uuid.uuid4().hex[:8]}"
    create_topic_raw(broker, topic)
    recs = gzip_bomb_records(400 * 1024 * 1024)
    assert len(recs) < 1_000_000, len(recs)
    batch = record_batch([b""], raw_records=recs, attributes=1)
    with connect(broker, timeout=20) as s:
        s.sendall(produce_v3(77, topic, batch))
        kind, corr, body = read_response(s)
    ok_outcome(kind)
    if kind == "response":
        assert corr == 77
    assert_healthy(broker)


def plain_records(values):
    out = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        out += varint(len(body)) + body
    return out


def gzip_bytes(data):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


UNDECODABLE = {
    # attributes=1 (gzip) but the payload is not gzip
    "garbage_gzip": dict(raw_records=b"definitely not gzip " * 5, attributes=1),
    # a valid gzip stream cut in half
    "truncated_gzip": dict(raw_records=gzip_bytes(plain_records([b"v" * 300, b"w" * 300]))[:40],
                           attributes=1),
    # valid gzip holding 1 record while the header says 2 records, offsets 0..1
    "gzip_fewer_records_than_header": dict(raw_records=gzip_bytes(plain_records([b"only"])),
                                           attributes=1),
    # compression codec id 7 does not exist
    "codec_7": dict(attributes=7),
    # uncompressed, records section is garbage
    "garbage_plain_records": dict(raw_records=b"\xff" * 40),
}


# Fjord checks CRC, codec id and the record framing of uncompressed batches on
# produce, but by design never decompresses on the hot path (../shared/DESIGN.md,
# "never decode client record batches on the hot path"). A producer that seals
# a broken compressed payload under a valid CRC is therefore stored, where
# Kafka's LogValidator would refuse it. strict: these start passing (and must be
# un-marked) the day compressed payloads are validated. See compat-tests/FINDINGS.md.
COMPRESSED_PAYLOAD_NOT_VALIDATED = {"garbage_gzip", "truncated_gzip", "gzip_fewer_records_than_header"}


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason="compressed payloads are not decompressed on produce (design choice)"))
    if c in COMPRESSED_PAYLOAD_NOT_VALIDATED else c
    for c in sorted(UNDECODABLE)
])
def test_undecodable_batches_rejected_not_stored(broker, case):
    """Kafka's LogValidator iterates (and decompresses) every record of a produced
    batch and refuses one it cannot decode (CORRUPT_MESSAGE / INVALID_RECORD ...).
    A broker that stores it plants a poison pill every consumer chokes on."""
    require(broker, 0, 3)
    require(broker, 3, 4)
    topic = f"undecodable-{uuid.uuid4().hex[:8]}"
    create_topic_raw(broker, topic)
    with connect(broker) as s:
        s.sendall(produce_v3(70, topic, record_batch([b"x1", b"x2"], **UNDECODABLE[case])))
        kind, corr, body = read_response(s)
    if kind == "response":
        err, base = parse_produce_v3(body)[(topic, 0)]
        assert err != 0, (f"{case}: batch a consumer cannot decode was accepted and stored "
                          f"at offset {base} (error 0)")
    # the topic still holds nothing, and a real client can use it
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce(topic, value=b"good", partition=0)
    assert p.flush(20) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "u-" + topic,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got, errors = [], []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    break
                errors.append(str(m.error()))
                continue
            got.append((m.offset(), m.value()))
        assert got == [(0, b"good")], (got, errors)
    finally:
        c.close()
    assert_healthy(broker, full=False)


def test_client_that_never_reads_responses(broker):
    """Pipelines requests and never reads: the broker must apply backpressure,
    not buffer responses without bound, and keep serving others."""
    flood = connect(broker)
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reqs = b"".join(request(3, 4, i, i32(-1) + b"\x00") for i in range(2000))  # all-topics metadata
    sent = 0
    deadline = time.monotonic() + 15
    flood.settimeout(2.0)
    try:
        while time.monotonic() < deadline and sent < 200 * 1024 * 1024:
            try:
                sent += flood.send(reqs)
            except socket.timeout:
                break  # the broker stopped reading us: backpressure works
            except (BrokenPipeError, ConnectionResetError):
                break
        assert broker.alive()
        assert_memory_ok(broker)
        raw_api_versions_ok(broker)  # others are still served meanwhile
        assert_memory_ok(broker)
    finally:
        flood.close()
    assert_healthy(broker)


def test_fetch_with_absurd_sizes_and_offsets(broker):
    require(broker, 1, 4)
    client_roundtrip_ok(broker)  # makes sure fetch works in general
    topic = f"fetchx-{uuid.uuid4().hex[:8]}"
    create_topic_raw(broker, topic)
    with connect(broker) as s:
        s.sendall(produce_v3(5, topic, record_batch([b"a", b"b", b"c"])))
        assert parse_produce_v3(read_response(s)[2])[(topic, 0)] == (0, 0)
        cases = [(0, 0x7FFFFFFF, 0x7FFFFFFF, 0), (0, 0, 0, None), (10 ** 12, 1 << 20, 1 << 20, 1),
                 (-5, 1 << 20, 1 << 20, 1), (3, -1, -1, None), (0, 1 << 20, -7, None)]
        for i, (off, max_bytes, part_max, want_err) in enumerate(cases):
            body = (i32(-1) + i32(100) + i32(0) + i32(max_bytes) + b"\x00" + i32(1)
                    + nstring(topic) + i32(1) + i32(0) + i64(off) + i32(part_max))
            s.sendall(request(1, 4, 600 + i, body))
            kind, corr, rb = read_response(s)
            if kind == "closed":
                s = connect(broker)
                continue
            assert corr == 600 + i
            r = Reader(rb)
            r.take(">i")
            assert r.take(">i") == 1
            assert r.string() == topic
            assert r.take(">i") == 1
            _, err = r.take(">ih")
            if want_err is not None:
                assert err == want_err, f"fetch offset={off} max={max_bytes}/{part_max}: error {err}"
        s.close()
    assert_healthy(broker)


# --------------------------------------------------------------------------
# Unknown API keys and unsupported versions
# --------------------------------------------------------------------------

@pytest.mark.parametrize("key", [999, -1, 32767], ids=lambda k: f"key{k}")
def test_unknown_api_key(broker, key):
    kind, _, _ = attack(broker, request(key, 0, 21, b"\x00" * 8), corr=21)
    ok_outcome(kind)
    assert_healthy(broker)


def test_produce_v99_unsupported_version(broker):
    kind, corr, body = attack(broker, request(0, 99, 22, b"\x00" * 16), corr=22)
    if kind == "response":
        assert b"\x00\x23" in body, \
            f"Produce v99 answered without error 35 UNSUPPORTED_VERSION: {body.hex()}"
    assert_healthy(broker)


def test_api_versions_v99_kip511_fallback(broker):
    """KIP-511: unsupported ApiVersions version -> v0 response, error 35, API list."""
    # header v2 + a v3-style body; a v99 client would send something like this
    body = compact_string("future-client") + compact_string("9.9") + b"\x00"
    kind, corr, body = attack(broker, request(18, 99, 23, body, flexible=True), corr=23)
    assert kind == "response", "ApiVersions v99 must be answered (KIP-511), not closed"
    r = Reader(body)
    err = r.take(">h")
    assert err == 35, f"error {err}, expected 35 UNSUPPORTED_VERSION"
    n = r.take(">i")
    assert 0 < n < 1000, f"v0 api_keys array count {n}"
    assert len(body) == 2 + 4 + 6 * n, (
        f"ApiVersions v99 reply is not v0-format: {len(body)} body bytes for {n} apis")
    apis = {}
    for _ in range(n):
        k, lo, hi = r.take(">hhh")
        apis[k] = (lo, hi)
    assert 18 in apis and apis[18][1] >= 3, apis
    assert 0 in apis, apis
    # and the advertised max actually works on a new connection
    assert set(raw_api_versions_ok(broker)) == set(apis)
    assert_healthy(broker)


def test_api_versions_v0_still_served(broker):
    kind, corr, body = attack(broker, request(18, 0, 24), corr=24)
    assert kind == "response"
    r = Reader(body)
    assert r.take(">h") == 0
    n = r.take(">i")
    assert len(body) == 6 + 6 * n
    assert_healthy(broker, full=False)


# --------------------------------------------------------------------------
# Garbage
# --------------------------------------------------------------------------

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100a5010000a10303") + bytes(32) + bytes.fromhex("000020c02bc02fc02cc030cca9cca8c013c014"
                                                          "009c009d002f0035000a0100005800000018")


@pytest.mark.parametrize("kind_", ["random", "http", "tls", "random_in_valid_frame", "zeros"])
def test_garbage(broker, kind_):
    rnd = random.Random(20240611)
    if kind_ == "random":
        data = bytes(rnd.getrandbits(8) for _ in range(8192))
    elif kind_ == "http":
        data = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl\r\n\r\n"
    elif kind_ == "tls":
        data = TLS_CLIENT_HELLO
    elif kind_ == "zeros":
        data = b"\x00" * 4096
    else:
        junk = bytes(rnd.getrandbits(8) for _ in range(500))
        data = i32(len(junk)) + junk
    kind, _, _ = attack(broker, data)
    ok_outcome(kind)
    assert_healthy(broker)


def test_many_random_frames(broker):
    """200 connections, each one valid-size frame of random body bytes."""
    rnd = random.Random(7)
    for i in range(200):
        # no Produce (an acks=0 decode would legitimately get no reply) and no CreateTopics
        key = rnd.choice([1, 2, 3, 8, 9, 10, 11, 12, 14, 18, 32, 60, 999])
        ver = rnd.randrange(0, 16)
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 200)))
        flexible = rnd.random() < 0.5
        kind, _, _ = attack(broker, request(key, ver, i, junk, flexible=flexible))
        ok_outcome(kind)
        if i % 50 == 0:
            assert broker.alive(), f"broker died on random frame #{i}"
    assert_healthy(broker)


# --------------------------------------------------------------------------
# Slow clients, connection limits, pipelining
# --------------------------------------------------------------------------

def test_slow_partial_frame_is_served_and_does_not_block_others(broker):
    frame = api_versions_v3(31)
    half = len(frame) // 2
    with connect(broker, timeout=10) as s:
        s.sendall(frame[:2])          # half of the size prefix
        time.sleep(0.5)
        s.sendall(frame[2:half])      # up to half of the frame
        # meanwhile other clients are served
        raw_api_versions_ok(broker)
        time.sleep(2.0)
        s.sendall(frame[half:])
        kind, corr, body = read_response(s)
        assert kind == "response", "slow but complete frame was not served"
        assert corr == 31
        assert parse_api_versions_v3(body)[0] == 0
        # the connection remains usable
        s.sendall(api_versions_v3(32))
        kind, corr, _ = read_response(s)
        assert (kind, corr) == ("response", 32)
    assert_healthy(broker)


def test_byte_by_byte_frame(broker):
    frame = api_versions_v3(33)
    with connect(broker) as s:
        for b in frame:
            s.sendall(bytes([b]))
            time.sleep(0.01)
        kind, corr, _ = read_response(s)
        assert (kind, corr) == ("response", 33)
    assert_healthy(broker, full=False)


def test_max_connections(broker_factory):
    limit = 6
    b = broker_factory(extra=["--max-connections", str(limit)])
    time.sleep(0.2)  # let the readiness probe's connection be reaped
    socks = []
    try:
        for _ in range(24):
            try:
                s = connect(b)
            except OSError:
                socks.append(None)
                continue
            socks.append(s)
        for i, s in enumerate(socks):
            if s is not None and not send_quietly(s, api_versions_v3(500 + i)):
                socks[i] = None
        served, closed, hung = [], [], []
        deadline = time.monotonic() + 6
        for i, s in enumerate(socks):
            if s is None:
                closed.append(i)
                continue
            s.settimeout(max(0.2, deadline - time.monotonic()))
            try:
                kind, corr, _ = read_response(s)
            except Hang:
                hung.append(i)
                continue
            if kind == "response":
                assert corr == 500 + i
                served.append(i)
            else:
                closed.append(i)
        assert hung == [], (f"connections over --max-connections {limit} were neither served "
                            f"nor closed (hang): {hung}; served={served} closed={closed}")
        assert 1 <= len(served) <= limit, f"served {len(served)} with limit {limit}: {served}"
        # admitted connections keep working
        for i in served:
            socks[i].settimeout(IO_TIMEOUT_S)
            socks[i].sendall(api_versions_v3(900 + i))
            kind, corr, _ = read_response(socks[i])
            assert (kind, corr) == ("response", 900 + i)
        assert b.alive()
    finally:
        for s in socks:
            if s is not None:
                s.close()
    # slots are released when clients go away
    deadline = time.monotonic() + 10
    while True:
        try:
            raw_api_versions_ok(b)
            break
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert_healthy(b)


def test_pipelined_requests_answered_in_order(broker_factory):
    b = broker_factory(extra=["--max-inflight-requests", "2"])
    n = 50
    with connect(b, timeout=10) as s:
        s.sendall(b"".join(api_versions_v3(1000 + i) for i in range(n)))
        corrs = []
        for _ in range(n):
            kind, corr, body = read_response(s)
            assert kind == "response", f"closed after {len(corrs)} pipelined responses"
            corrs.append(corr)
        assert corrs == [1000 + i for i in range(n)]
    assert_healthy(b)


def test_error_then_valid_request_on_new_connections_repeatedly(broker):
    """Alternate attacks and valid requests 30 times; nothing accumulates."""
    for i in range(30):
        attack(broker, i32(-1))
        attack(broker, request(3, 1, i, i32(0x7FFFFFFF)))
        attack(broker, request(999, 0, i))
        raw_api_versions_ok(broker, corr=i)
    assert_healthy(broker)
