"""Helpers shared by the idempotent-producer and transaction suites (test_txn_*.py).

* `ProxiedBroker` + `FaultProxy`: a fjord process that advertises the address
  of a small TCP proxy in front of it, so every client connection (bootstrap
  and the ones Metadata points at) goes through the proxy, and the proxy can
  cut connections at chosen Produce requests - before forwarding one (the
  request is lost) or after forwarding it while swallowing its response (the
  broker appended the batch, the client never heard: it must retry, and the
  broker must recognise the retry as a duplicate). `on_forward` lets a test
  act the moment a given request (e.g. EndTxn) reaches the broker.
* `read_all`: every record of some partitions from the beginning to the end
  (high watermark under read_uncommitted, last stable offset under
  read_committed), through a real confluent-kafka consumer with the given
  isolation level.
* `latest` / `wait_stable`: ListOffsets latest under either isolation level
  (AdminClient.list_offsets), and waiting until no transaction is open.

Every client call here is bounded by T seconds; every loop has a deadline.
"""
import contextlib
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from fjord_proc import FJORD_BIN, Broker, free_port
from group_support import T, create_topic, unique  # noqa: F401 - re-exported

RC, RU = "read_committed", "read_uncommitted"
# Flags for tests that want timed-out transactions aborted quickly.
FAST_TXN_CLEANUP = ["--transaction-abort-timed-out-transaction-cleanup-interval-ms", "200"]


@contextlib.contextmanager
def alarm_bound(seconds, what="test"):
    """Like conftest.time_bound, with a chosen bound (for the longer crash tests)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"{what} exceeded its {seconds} s bound")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- proxied broker


class ProxiedBroker(Broker):
    """A fjord process that listens on its own port but advertises `advertise`
    (the proxy's address) in Metadata and FindCoordinator. fjord refuses a
    repeated --advertise flag, so this builds the command line itself."""

    def __init__(self, data_dir, advertise, port=None, extra=()):
        super().__init__(data_dir, port=port, extra=extra)
        self.advertise = advertise

    def start(self, timeout_s=30.0):
        os.makedirs(self.data_dir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        args = [FJORD_BIN, "--data-dir", self.data_dir,
                "--listen", self.bootstrap, "--advertise", self.advertise] + self.registry_args() + self.admin_args() + self.extra
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fjord exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"fjord did not listen on {self.bootstrap} within {timeout_s}s")


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class FaultProxy:
    """A 127.0.0.1 TCP proxy to one upstream port that understands Kafka's
    request framing (4-byte size, then api_key, api_version, ...) on the
    client->broker side and cuts the connection at every `cut_every`-th
    Produce request (0: never). Cuts alternate between
      * "lost":    the Produce request is never forwarded, and
      * "applied": the request is forwarded, its response (and anything else
                   the broker sends on that connection afterwards) is
                   swallowed, and the connection is closed 0.1 s later.
    A seeded random jitter (cut at n, n+1 or n+2) keeps the cut points from
    lining up with the client's batching. cut_next_produce() forces one cut
    and can refuse new connections for a while after it. Threads are
    daemons; stop() closes every socket."""

    def __init__(self, upstream_port, cut_every=0, seed=0):
        self.upstream_port = upstream_port
        self.cut_every = cut_every
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.produce_seen = 0
        self.next_cut = self._plan(0)
        self.cuts = {"lost": 0, "applied": 0}
        self.connections = 0
        self.on_forward = None  # called with the api_key of each request forwarded uncut
        self.forced = None  # (kind, refuse_s) for the next Produce
        self.refuse_until = 0.0  # new connections are closed at once until then
        self.stopped = threading.Event()
        self.socks = set()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _plan(self, after):
        if not self.cut_every:
            return None
        return after + self.cut_every + self.rng.randint(0, 2)

    def start(self):
        self.thread.start()
        return self

    def set_cut_every(self, n):
        with self.lock:
            self.cut_every = n
            self.next_cut = self._plan(self.produce_seen)

    def cut_next_produce(self, kind, refuse_s=0.0):
        """Cut the next Produce request ("lost" or "applied"); then close
        every new connection at once for `refuse_s` seconds (connections
        already open, such as the one to the transaction coordinator, stay)."""
        with self.lock:
            self.forced = (kind, refuse_s)

    def stop(self):
        self.stopped.set()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            self._close(s)
        self.listener.close()
        self.thread.join(5)

    def _close(self, s):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()
        with self.lock:
            self.socks.discard(s)

    def _accept_loop(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # broker down: the client sees a refused/closed connection
                continue
            client.settimeout(None)
            with self.lock:
                self.socks.update((client, upstream))
                self.connections += 1
            state = {"swallow": False}
            threading.Thread(target=self._client_to_broker, args=(client, upstream, state),
                             daemon=True).start()
            threading.Thread(target=self._broker_to_client, args=(client, upstream, state),
                             daemon=True).start()

    def _decide(self, api_key):
        """None, "lost" or "applied" for the next request."""
        if api_key != 0:
            return None
        with self.lock:
            self.produce_seen += 1
            if self.forced is not None:
                kind, refuse_s = self.forced
                self.forced = None
                self.refuse_until = time.monotonic() + refuse_s
                self.cuts[kind] += 1
                return kind
            if self.next_cut is None or self.produce_seen < self.next_cut:
                return None
            self.next_cut = self._plan(self.produce_seen)
            kind = "lost" if (self.cuts["lost"] + self.cuts["applied"]) % 2 == 0 else "applied"
            self.cuts[kind] += 1
            return kind

    def _client_to_broker(self, client, upstream, state):
        try:
            while not self.stopped.is_set():
                head = _recv_exact(client, 4)
                if head is None:
                    break
                (size,) = struct.unpack(">i", head)
                if size < 4 or size > 200_000_000:
                    break
                body = _recv_exact(client, size)
                if body is None:
                    break
                (api_key,) = struct.unpack_from(">h", body, 0)
                cut = self._decide(api_key)
                if cut == "lost":
                    break
                if cut == "applied":
                    state["swallow"] = True
                    upstream.sendall(head + body)
                    time.sleep(0.1)  # let the broker append it; its response is dropped
                    break
                upstream.sendall(head + body)
                if self.on_forward is not None:
                    self.on_forward(api_key)
        except OSError:
            pass
        finally:
            self._close(client)
            self._close(upstream)

    def _broker_to_client(self, client, upstream, state):
        try:
            while not self.stopped.is_set():
                data = upstream.recv(65536)
                if not data:
                    break
                if state["swallow"]:
                    continue
                client.sendall(data)
        except OSError:
            pass
        finally:
            if not state["swallow"]:
                self._close(client)
                self._close(upstream)


@contextlib.contextmanager
def proxied_broker(tmp_path, cut_every=0, seed=0, extra=()):
    """A broker behind a FaultProxy; yields (broker, proxy). Clients must
    bootstrap from proxy.address."""
    port = free_port()
    proxy = FaultProxy(port, cut_every=cut_every, seed=seed).start()
    b = ProxiedBroker(tmp_path / "data-proxied", advertise=proxy.address, port=port, extra=extra)
    try:
        b.start()
        yield b, proxy
    finally:
        b.kill()
        proxy.stop()


# ---------------------------------------------------------------- clients


class Deliveries:
    """Delivery-report collector: acked [(partition, offset, value)], failed [(err, value)]."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = []
        self.failed = []

    def cb(self, err, msg):
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), msg.value()))
            else:
                self.failed.append((err, msg.value()))


class ErrorLog:
    """error_cb collector (librdkafka reports fatal errors here too)."""

    def __init__(self):
        self.errors = []

    def cb(self, err):
        self.errors.append(err)

    def fatal(self):
        return [e for e in self.errors if e.fatal()]


def txn_producer(bootstrap, tid, errors=None, **conf):
    cfg = {"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5}
    if errors is not None:
        cfg["error_cb"] = errors.cb
    cfg.update(conf)
    return Producer(cfg)


def plain_producer(bootstrap, **conf):
    """Non-idempotent producer (records outside any transaction)."""
    cfg = {"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all", "linger.ms": 0}
    cfg.update(conf)
    return Producer(cfg)


def read_all(bootstrap, tps, isolation, timeout=25):
    """{(topic, partition): [(offset, value)]}: every record the given
    isolation level shows, from the beginning to the end (a manual-assign
    consumer, until end-of-partition on all of `tps`)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("txn-reader"),
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "error", "isolation.level": isolation})
    tps = [tuple(tp) for tp in tps]
    out = {tp: [] for tp in tps}
    eof, errors = set(), []
    try:
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in tps])
        deadline = time.monotonic() + timeout
        while eof != set(tps):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{isolation} reader did not reach the end of {sorted(set(tps) - eof)} in "
                    f"{timeout}s; got {({tp: len(v) for tp, v in out.items()})}, errors {errors[-5:]}")
            for m in c.consume(1000, 0.2):
                tp = (m.topic(), m.partition())
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(tp)
                    else:
                        errors.append(m.error())
                    continue
                eof.discard(tp)
                out[tp].append((m.offset(), m.value()))
        assert not errors, errors
        return out
    finally:
        c.close()


def values(records):
    """[value] of [(offset, value)]."""
    return [v for _, v in records]


def latest(bootstrap, tps, isolation):
    """{(topic, partition): ListOffsets(latest)} under the isolation level:
    the high watermark (read_uncommitted) or the last stable offset (read_committed)."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    level = IsolationLevel.READ_COMMITTED if isolation == RC else IsolationLevel.READ_UNCOMMITTED
    futs = a.list_offsets({TopicPartition(t, p): OffsetSpec.latest() for t, p in tps},
                          isolation_level=level, request_timeout=T)
    return {(tp.topic, tp.partition): f.result(timeout=T).offset for tp, f in futs.items()}


def wait_stable(bootstrap, tps, timeout=20, expect_hw=None):
    """Wait until LSO == HW on every partition (no transaction open there any
    more, markers written), and, with expect_hw, until HW == expect_hw.
    Returns the high watermarks."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            hw, lso = latest(bootstrap, tps, RU), latest(bootstrap, tps, RC)
            last = {"hw": hw, "lso": lso}
            if hw == lso and (expect_hw is None or hw == expect_hw):
                return hw
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"partitions not stable within {timeout}s (expected HW "
                                 f"{expect_hw}): last ListOffsets {last}")
        time.sleep(0.2)
