"""Transactions and idempotence survive SIGKILLs of the broker.

(a) test_transactions_survive_sigkill: three confluent-kafka transactional
    producers (threads, one transactional.id each) run transactions of 20
    numbered records over 2 partitions, committing about 70 % and aborting
    the rest at random (flushed first, so aborted records are in the log),
    while the broker is SIGKILLed 4 times at random moments and restarted
    on the same data directory and port after 0.2-4 s. commit and abort are
    bounded to 3 s, so a kill during one surfaces as an error. A producer
    that hits an error drops its instance and makes a new one with the same
    transactional.id (init_transactions fences the old one and completes or
    aborts whatever it left open). Each producer records what it knows:
    committed (commit_transaction returned OK), aborted (it never asked to
    commit), unknown (commit_transaction was called and raised). At the end
    a read_committed consumer reading from the beginning must see every
    record of every committed transaction, nothing of any aborted one, each
    unknown transaction all-or-nothing, no record twice, and each producer's
    transactions in order.
(a') test_commit_interrupted_by_sigkill: the broker is SIGKILLed 0-2 ms
    after the producer's EndTxn(commit) reaches it (seen by a proxy), 10
    times; a commit that returned OK (possibly
    after the restart) is fully visible, one that raised is all-or-nothing.
(b) test_idempotent_producer_survives_sigkill: an idempotent producer
    (enable.idempotence=true, no transactions) produces numbered records to
    2 partitions while the broker is SIGKILLed 3 times; every acknowledged
    record is stored exactly once at the offset its delivery report gave,
    nothing is stored twice (batches appended before a kill whose response
    was lost are retried after the restart: the broker must have rebuilt
    its producer state), and each partition is in send order.

Kill points come from a seeded RNG; the seed is printed and can be fixed with
TXN_CRASH_SEED=<n>.
"""
import os
import random
import re
import threading
import time

from confluent_kafka import KafkaException, Producer

from fjord_proc import free_port
from txn_support import (RC, RU, T, Deliveries, ErrorLog, FaultProxy, ProxiedBroker, alarm_bound,
                         create_topic, read_all, unique, wait_stable)

SEED = int(os.environ.get("TXN_CRASH_SEED", random.randrange(1 << 30)))
TXN_RECORDS = 20


def restart(broker_factory, data_dir, port):
    return broker_factory(data_dir=data_dir, port=port)


def kill_loop(broker_factory, b, data_dir, rng, kills, run_s, down_s, log):
    """SIGKILL the broker `kills` times after random run times; restart it on
    the same dir and port after a random down time. Returns the live broker."""
    for k in range(kills):
        time.sleep(rng.uniform(*run_s))
        b.kill()
        log.append(("kill", k, time.monotonic()))
        time.sleep(rng.uniform(*down_s))
        b = restart(broker_factory, data_dir, b.port)
        log.append(("restart", k, time.monotonic()))
    return b


# ---------------------------------------------------------------- (a) transactions


class TxnWorker(threading.Thread):
    def __init__(self, k, bootstrap, topic, seed, stop):
        super().__init__(daemon=True, name=f"txn-worker-{k}")
        self.k, self.bootstrap, self.topic, self.stop = k, bootstrap, topic, stop
        self.tid = f"{topic}-tid-{k}"
        self.rng = random.Random(seed * 31 + k)
        self.committed, self.aborted, self.unknown = {}, set(), set()  # committed: n -> time
        self.errors = []
        self.instances = 0
        self.crashed = None

    def make(self):
        """A new producer instance with init_transactions done, or None when stopping."""
        p = None
        while not self.stop.is_set():
            if p is None:
                self.instances += 1
                p = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": self.tid,
                              "transaction.timeout.ms": 10000, "linger.ms": 5,
                              "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 300,
                              "retry.backoff.ms": 50, "retry.backoff.max.ms": 300,
                              "socket.connection.setup.timeout.ms": 3000})
            try:
                p.init_transactions(5)
                return p
            except KafkaException as e:
                err = e.args[0]
                self.errors.append(("init", str(err)))
                if not err.retriable():
                    p = None  # fatal or abortable: a fresh instance
                time.sleep(0.1)
        return None


    def run(self):
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.crashed = e

    def _run(self):
        p, n = None, 0
        while not self.stop.is_set():
            if p is None:
                p = self.make()
                if p is None:
                    return
            state = "open"
            try:
                p.begin_transaction()
                for i in range(TXN_RECORDS):
                    p.produce(self.topic, value=b"%d:%d:%d" % (self.k, n, i), partition=i % 2)
                if self.rng.random() < 0.7:
                    state = "committing"
                    # A short bound: a commit cut off by a kill raises (even when
                    # merely retriable) and its outcome stays unknown.
                    p.commit_transaction(3)
                    self.committed[n] = time.monotonic()
                else:
                    p.flush(3)  # let the records reach the log, then abort them
                    p.abort_transaction(3)
                    self.aborted.add(n)
            except KafkaException as e:
                (self.unknown if state == "committing" else self.aborted).add(n)
                self.errors.append((state, str(e.args[0])))
                p.purge()
                p = None  # the next instance fences this one
            n += 1
            time.sleep(self.rng.uniform(0, 0.03))


def test_transactions_survive_sigkill(broker_factory, tmp_path):
    print(f"seed {SEED} (TXN_CRASH_SEED)")
    rng = random.Random(SEED)
    data_dir = tmp_path / "txn-crash"
    b = broker_factory(data_dir=data_dir)
    topic = unique("txn-crash")
    create_topic(b, topic, 2)
    tps = [(topic, 0), (topic, 1)]
    stop = threading.Event()
    workers = [TxnWorker(k, b.bootstrap, topic, SEED, stop) for k in range(3)]
    log = []
    with alarm_bound(150, "transactions under SIGKILL"):
        for w in workers:
            w.start()
        try:
            b = kill_loop(broker_factory, b, data_dir, rng, kills=4, run_s=(2.5, 5.0),
                          down_s=(0.2, 4.0), log=log)
            last_restart = time.monotonic()
            # Every producer must commit again after the last restart. How soon
            # depends on the machine (a loaded CI box took over 4 s once), so
            # wait for it, bounded, rather than sleep a fixed time.
            deadline = last_restart + 40
            while time.monotonic() < deadline and not all(
                    any(t > last_restart for t in list(w.committed.values())) for w in workers):
                time.sleep(0.1)
            time.sleep(1)
        finally:
            stop.set()
            for w in workers:
                w.join(30)
        for w in workers:
            assert not w.is_alive(), f"{w.name} did not stop"
            assert w.crashed is None, f"{w.name} crashed: {w.crashed!r}"
            print(f"{w.tid}: {len(w.committed)} committed, {len(w.aborted)} aborted, "
                  f"{len(w.unknown)} unknown, {w.instances} instances, errors {w.errors[:6]}")
        assert all(any(t > last_restart for t in w.committed.values()) for w in workers), (
            f"seed {SEED}: some producer committed nothing after the last restart")

        # Fence every transactional.id once more: whatever the last instance left
        # open is completed or aborted, so the LSO can reach the high watermark.
        for w in workers:
            p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": w.tid})
            p.init_transactions(T)
        wait_stable(b.bootstrap, tps, timeout=20)
        rc = read_all(b.bootstrap, tps, RC, timeout=30)
        ru = read_all(b.bootstrap, tps, RU, timeout=30)

    seen = {}  # (k, n) -> [i]
    order = {}  # (k, partition) -> [n in log order]
    dups = []
    values_seen = set()
    for (_, q), recs in rc.items():
        for _, v in recs:
            if v in values_seen:
                dups.append(v)
            values_seen.add(v)
            k, n, i = map(int, v.split(b":"))
            seen.setdefault((k, n), []).append(i)
            order.setdefault((k, q), []).append(n)
    assert not dups, f"seed {SEED}: {len(dups)} records visible twice, first {dups[:5]}"
    problems = []
    for w in workers:
        for n in w.committed:
            got = sorted(seen.get((w.k, n), []))
            if got != list(range(TXN_RECORDS)):
                problems.append(f"producer {w.k} txn {n}: committed (commit returned OK) but "
                                f"{len(got)}/{TXN_RECORDS} records visible")
        for n in w.aborted:
            if (w.k, n) in seen:
                problems.append(f"producer {w.k} txn {n}: never committed but "
                                f"{len(seen[(w.k, n)])} records visible")
        for n in w.unknown:
            got = sorted(seen.get((w.k, n), []))
            if got not in ([], list(range(TXN_RECORDS))):
                problems.append(f"producer {w.k} txn {n}: outcome unknown and only "
                                f"{len(got)}/{TXN_RECORDS} records visible (not all-or-nothing)")
        known = set(w.committed) | w.aborted | w.unknown
        strays = [n for (k, n) in seen if k == w.k and n not in known]
        if strays:
            problems.append(f"producer {w.k}: visible records of transactions it never ran: {strays[:5]}")
    for (k, q), ns in order.items():
        if ns != sorted(ns):
            problems.append(f"producer {k} partition {q}: transactions out of order")
    assert not problems, f"seed {SEED}: " + "; ".join(problems[:10])
    n_ru = sum(len(r) for r in ru.values())
    n_rc = sum(len(r) for r in rc.values())
    print(f"visible {n_rc} records ({len(seen)} transactions) of {n_ru} stored; kills {log}; "
          f"restarts that completed a prepared transaction: {finished_on_load(b.log_path)}")
    assert n_rc > 0 and n_ru > n_rc, (n_rc, n_ru)


# ---------------------------------------------------------------- (a') a kill during commit


def finished_on_load(log_path):
    """Sum of `finished=N` over the transaction coordinator's load lines: how
    many transactions a restart found prepared but not completed."""
    total = 0
    with open(log_path, errors="replace") as f:
        for line in f:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the log may be coloured
            if "transaction coordinator loaded" in line:
                m = re.search(r"finished=(\d+)", line)
                total += int(m.group(1)) if m else 0
    return total


def test_commit_interrupted_by_sigkill(tmp_path):
    """The producer talks to the broker through a FaultProxy; the moment its
    EndTxn(commit) request is forwarded, the broker is SIGKILLed after a
    random 0-2 ms (a commit takes ~1 ms: the kill lands before, inside or
    after the coordinator's prepare / markers / complete steps) and
    restarted 0.1 s later; the commit call keeps going against the new
    process. A commit that returned OK is fully visible; one that raised is
    all-or-nothing."""
    print(f"seed {SEED} (TXN_CRASH_SEED)")
    rng = random.Random(SEED + 2)
    data_dir = tmp_path / "commit-kill"
    port = free_port()
    proxy = FaultProxy(port).start()
    endtxn = threading.Event()
    armed = [False]

    def on_forward(api_key):
        if api_key == 26 and armed[0]:  # EndTxn
            armed[0] = False
            endtxn.set()

    proxy.on_forward = on_forward
    b = ProxiedBroker(data_dir, advertise=proxy.address, port=port).start()
    outcomes = {}
    try:
        topic = unique("commit-kill")
        create_topic(b, topic, 2)
        tps = [(topic, 0), (topic, 1)]
        tid = unique("commit-kill-tid")
        with alarm_bound(60, "commit interrupted by SIGKILL"):
            for r in range(10):
                p = Producer({"bootstrap.servers": proxy.address, "transactional.id": tid,
                              "transaction.timeout.ms": 10000, "linger.ms": 0,
                              "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 100,
                              "retry.backoff.ms": 20, "retry.backoff.max.ms": 100})
                p.init_transactions(T)  # completes or aborts what the last round left
                p.begin_transaction()
                for i in range(TXN_RECORDS):
                    p.produce(topic, value=b"%d:%d" % (r, i), partition=i % 2)
                assert p.flush(T) == 0
                res = {}

                def commit(p=p, res=res):
                    try:
                        p.commit_transaction(8)
                        res["ok"] = True
                    except KafkaException as e:
                        res["err"] = e.args[0]

                endtxn.clear()
                armed[0] = True
                th = threading.Thread(target=commit, daemon=True)
                th.start()
                assert endtxn.wait(5), f"round {r}: no EndTxn request seen"
                until = time.perf_counter() + rng.uniform(0, 0.002)
                while time.perf_counter() < until:
                    pass
                b.kill()
                time.sleep(0.1)
                b = ProxiedBroker(data_dir, advertise=proxy.address, port=port).start()
                th.join(12)
                assert not th.is_alive(), f"round {r}: commit_transaction did not return"
                outcomes[r] = "committed" if res.get("ok") else f"unknown ({res.get('err')})"
                del p
            q = Producer({"bootstrap.servers": proxy.address, "transactional.id": tid})
            q.init_transactions(T)
            wait_stable(proxy.address, tps, timeout=20)
            rc = read_all(proxy.address, tps, RC)
    finally:
        b.kill()
        proxy.stop()
    seen = {}
    for recs in rc.values():
        for _, v in recs:
            r, i = map(int, v.split(b":"))
            seen.setdefault(r, []).append(i)
    finished = finished_on_load(b.log_path)
    print(f"outcomes {outcomes}; visible rounds {sorted(seen)}; "
          f"restarts that completed a prepared transaction: {finished}")
    problems = []
    for r, what in outcomes.items():
        got = sorted(seen.get(r, []))
        if what == "committed" and got != list(range(TXN_RECORDS)):
            problems.append(f"round {r}: commit returned OK but {len(got)}/{TXN_RECORDS} visible")
        if got not in ([], list(range(TXN_RECORDS))):
            problems.append(f"round {r} ({what}): {len(got)}/{TXN_RECORDS} visible, not all-or-nothing")
    assert not problems, f"seed {SEED}: " + "; ".join(problems)


# ---------------------------------------------------------------- (b) idempotence


def test_idempotent_producer_survives_sigkill(broker_factory, tmp_path):
    print(f"seed {SEED} (TXN_CRASH_SEED)")
    rng = random.Random(SEED + 1)
    data_dir = tmp_path / "idem-crash"
    b = broker_factory(data_dir=data_dir)
    topic = unique("idem-crash")
    create_topic(b, topic, 2)
    tps = [(topic, 0), (topic, 1)]
    d, errors = Deliveries(), ErrorLog()
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 2,
                  "message.timeout.ms": 30000, "retry.backoff.ms": 50,
                  "retry.backoff.max.ms": 300, "reconnect.backoff.ms": 50,
                  "reconnect.backoff.max.ms": 300, "error_cb": errors.cb})
    stop = threading.Event()
    produced = [0]

    def run():
        seq = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=b"%07d" % seq, partition=seq % 2, on_delivery=d.cb)
            except BufferError:
                p.poll(0.01)
                continue
            seq += 1
            produced[0] = seq
            if seq % 20 == 0:
                p.poll(0)
                time.sleep(0.005)

    log = []
    with alarm_bound(60, "idempotent producer under SIGKILL"):
        t = threading.Thread(target=run, daemon=True)
        t.start()
        try:
            b = kill_loop(broker_factory, b, data_dir, rng, kills=3, run_s=(1.5, 3.5),
                          down_s=(0.2, 1.0), log=log)
            time.sleep(2)
        finally:
            stop.set()
            t.join(10)
        left = p.flush(30)
        got = read_all(b.bootstrap, tps, RU, timeout=30)
    print(f"produced {produced[0]}, acked {len(d.acked)}, failed {len(d.failed)}, errors "
          f"{[str(e) for e in errors.errors[:5]]}, kills {log}")
    assert left == 0, f"seed {SEED}: {left} records never delivered"
    assert not errors.fatal(), f"seed {SEED}: fatal idempotence error: {errors.fatal()}"
    assert d.failed == [], f"seed {SEED}: {len(d.failed)} delivery failures, first {d.failed[:3]}"

    stored = {}
    for (_, q), recs in got.items():
        vals = [int(v) for _, v in recs]
        assert [o for o, _ in recs] == list(range(len(recs))), f"partition {q}: offsets not contiguous"
        dup = len(vals) - len(set(vals))
        assert dup == 0, f"seed {SEED}: partition {q}: {dup} records stored twice"
        assert vals == sorted(vals), f"seed {SEED}: partition {q}: not in send order"
        for o, v in recs:
            stored[(q, o)] = v
    wrong = [(q, o, v) for q, o, v in d.acked if stored.get((q, o)) != v]
    assert not wrong, (f"seed {SEED}: {len(wrong)} of {len(d.acked)} acknowledged records "
                       f"missing or moved, first {wrong[:3]}")
    assert len(stored) == len(d.acked) == produced[0], (len(stored), len(d.acked), produced[0])
