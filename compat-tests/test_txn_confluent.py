"""Idempotent producers and transactions with confluent-kafka 2.16.1 / librdkafka 2.16.

Proves that librdkafka's exactly-once machinery works against fjord as it does
against Kafka:

* an idempotent producer (enable.idempotence=true) whose connections are cut
  behind a proxy - Produce requests lost before the broker saw them, and
  Produce requests the broker appended whose responses were swallowed - still
  stores each of 20,000 numbered records exactly once, in send order per
  partition, at the offsets its delivery reports gave (the broker recognises
  retried batches by producer id / epoch / sequence);
* transactions committed and aborted across two topics: read_committed sees
  exactly the committed records, read_uncommitted sees all of them, every
  transaction leaves one control marker per partition (the offsets skip it),
  and ListOffsets latest is the high watermark / last stable offset;
* a read_committed consumer stops at the last stable offset while a
  transaction is open (even for later non-transactional records) and gets
  the rest once it commits;
* consume-transform-produce (send_offsets_to_transaction with the consumer's
  group metadata): one batch aborted and redone after rewinding to the
  committed offsets; the output holds every input exactly once and the
  group's committed offsets end at the end of the input;
* zombie fencing: a second producer with the same transactional.id fences
  the first (its next produce and its commit fail with a fatal _FENCED
  error, its late record is never stored) and its open transaction is aborted;
* transaction timeout: the broker aborts a transaction that outlives
  transaction.timeout.ms (the LSO moves past it, its records never become
  visible, the producer's late commit fails); a transaction.timeout.ms above
  --transaction-max-timeout-ms fails init_transactions with
  INVALID_TRANSACTION_TIMEOUT.

confluent-kafka 2.16's AdminClient has no list_transactions /
describe_transactions / describe_producers; test_txn_kafka_python.py covers
those APIs with kafka-python's admin client.
"""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from group_support import FAST_GROUPS, committed_offsets, produce
from txn_support import (FAST_TXN_CLEANUP, RC, RU, T, Deliveries, ErrorLog, create_topic, latest,
                         plain_producer, proxied_broker, read_all, txn_producer, unique, values,
                         wait_stable)

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")

FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def produce_all(p, topic, items, deliveries=None):
    """items: (partition, value); handles a full local queue."""
    for part, v in items:
        while True:
            try:
                p.produce(topic, value=v, partition=part,
                          on_delivery=deliveries.cb if deliveries else None)
                break
            except BufferError:
                p.poll(0.05)


def rc_consumer(b, tps, **conf):
    """A manual-assign consumer from the beginning of `tps`."""
    cfg = {"bootstrap.servers": b.bootstrap, "group.id": unique("txn-watch"),
           "enable.auto.commit": False, "enable.partition.eof": True,
           "auto.offset.reset": "error", "isolation.level": RC}
    cfg.update(conf)
    c = Consumer(cfg)
    c.assign([TopicPartition(t, p, 0) for t, p in tps])
    return c


def poll_into(c, out, eof, seconds):
    """Poll for `seconds`, appending (topic, partition, offset, value) to out and EOF tps to eof."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for m in c.consume(100, 0.1):
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                eof.add((m.topic(), m.partition()))
            else:
                out.append((m.topic(), m.partition(), m.offset(), m.value()))


# ---------------------------------------------------------------- idempotence


def test_idempotent_producer_exactly_once_under_cut_connections(tmp_path):
    n, parts = 20000, 3
    with proxied_broker(tmp_path, seed=848) as (b, proxy):
        topic = unique("idem")
        create_topic(b, topic, parts)
        proxy.set_cut_every(6)
        errors, d = ErrorLog(), Deliveries()
        p = Producer({"bootstrap.servers": proxy.address, "enable.idempotence": True,
                      "linger.ms": 2, "batch.num.messages": 150, "message.timeout.ms": 45000,
                      "retry.backoff.ms": 20, "reconnect.backoff.ms": 20,
                      "reconnect.backoff.max.ms": 200, "error_cb": errors.cb})
        produce_all(p, topic, [(i % parts, b"%06d" % i) for i in range(n)], d)
        left = p.flush(45)
        proxy.set_cut_every(0)
        print(f"proxy: {proxy.cuts} cuts, {proxy.connections} connections, "
              f"{proxy.produce_seen} produce requests; client errors {errors.errors[:5]}")
        assert left == 0, f"{left} records still undelivered; {len(d.acked)} acked"
        assert not errors.fatal(), f"idempotent producer raised a fatal error: {errors.fatal()}"
        assert d.failed == [], f"{len(d.failed)} delivery failures, first {d.failed[:3]}"
        assert proxy.cuts["lost"] >= 3 and proxy.cuts["applied"] >= 3, (
            f"too few cuts to prove anything: {proxy.cuts}")

        tps = [(topic, q) for q in range(parts)]
        got = read_all(proxy.address, tps, RU)
        for q in range(parts):
            recs = got[(topic, q)]
            vals = [int(v) for v in values(recs)]
            dups = len(vals) - len(set(vals))
            assert dups == 0, f"partition {q}: {dups} records stored twice (retried batches appended again)"
            assert vals == list(range(q, n, parts)), (
                f"partition {q}: stored {len(vals)} records, expected {len(range(q, n, parts))} "
                f"in send order; first difference at index "
                f"{next((i for i, (a, e) in enumerate(zip(vals, range(q, n, parts))) if a != e), None)}")
            assert [o for o, _ in recs] == list(range(len(recs))), f"partition {q}: offsets not contiguous"
        stored = {(q, o): v for q in range(parts) for o, v in got[(topic, q)]}
        wrong = [(q, o, v) for q, o, v in d.acked if stored.get((q, o)) != v]
        assert not wrong, f"{len(wrong)} delivery reports name the wrong offset, first {wrong[:3]}"


def test_sequence_reused_after_an_abort_is_not_a_duplicate(tmp_path):
    """A transaction's batch reaches the broker and is appended, but the
    connection dies before the answer; while the client cannot reconnect it
    aborts, purging that batch (its outcome unknown to it), and librdkafka
    then sends the next transaction's first batch with the purged batch's
    sequence. The broker must not answer it as a duplicate of the aborted
    batch (which would acknowledge records it never wrote, and let their
    transaction commit without them): a commit that returns OK has its
    records visible; one that fails leaves nothing. (Fjord answers
    OUT_OF_ORDER_SEQUENCE_NUMBER: a marker ends the duplicate window.)"""
    with proxied_broker(tmp_path) as (b, proxy):
        topic = unique("seq-reuse")
        create_topic(b, topic, 1)
        tid = unique("seq-reuse-tid")
        p = txn_producer(proxy.address, tid,
                         **{"linger.ms": 0, "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 100,
                            "retry.backoff.ms": 50, "retry.backoff.max.ms": 100})
        p.init_transactions(T)
        p.begin_transaction()
        p.produce(topic, b"before", partition=0)
        p.commit_transaction(T)
        # The next Produce is appended, its answer lost; reconnects fail for 2 s.
        proxy.cut_next_produce("applied", refuse_s=2.0)
        p.begin_transaction()
        p.produce(topic, b"aborted", partition=0)
        p.flush(1.0)
        p.abort_transaction(T)
        p.begin_transaction()
        p.produce(topic, b"after", partition=0)
        try:
            p.commit_transaction(T)
            committed = True
        except KafkaException as e:
            # librdkafka 2.12 calls this "sequence desynchronization" and
            # raises it as fatal: the instance is done.
            print(f"commit after the abort failed: {e.args[0]}")
            committed = False
        # A new instance fences the old one and ends whatever it left open.
        txn_producer(proxy.address, tid).init_transactions(T)
        tps = [(topic, 0)]
        wait_stable(b.bootstrap, tps)
        ru = values(read_all(b.bootstrap, tps, RU)[(topic, 0)])
        rc = values(read_all(b.bootstrap, tps, RC)[(topic, 0)])
        print(f"committed={committed}; stored {ru}; visible {rc}; proxy cuts {proxy.cuts}")
        assert proxy.cuts["applied"] == 1
        assert b"aborted" in ru, "the cut batch was not appended: the scenario did not happen"
        assert b"aborted" not in rc
        assert (b"after" in rc) == committed, (
            f"commit returned {'OK' if committed else 'an error'} but 'after' is "
            f"{'' if b'after' in rc else 'not '}visible")
        assert rc.count(b"before") == 1


# ---------------------------------------------------------------- commit / abort


def test_commit_and_abort_visibility(broker_factory):
    b = broker_factory()
    t1, t2 = unique("txn-a"), unique("txn-b")
    create_topic(b, t1, 2)
    create_topic(b, t2, 1)
    tps = [(t1, 0), (t1, 1), (t2, 0)]
    d = Deliveries()
    p = txn_producer(b.bootstrap, unique("tid"))
    p.init_transactions(T)

    def txn(tag, n, commit):
        p.begin_transaction()
        for i in range(n):
            for t, q in tps:
                p.produce(t, value=b"%s-%d" % (tag, i), partition=q, on_delivery=d.cb)
        if commit:
            p.commit_transaction(T)
        else:
            assert p.flush(T) == 0  # the aborted records reach the log first
            p.abort_transaction(T)

    txn(b"c1", 5, True)
    txn(b"a2", 4, False)
    txn(b"c3", 3, True)
    assert not d.failed, d.failed
    # 12 records and 3 control markers (one per transaction) in every partition
    wait_stable(b.bootstrap, tps, expect_hw={tp: 15 for tp in tps})

    committed = [b"c1-%d" % i for i in range(5)] + [b"c3-%d" % i for i in range(3)]
    aborted = [b"a2-%d" % i for i in range(4)]
    rc = read_all(b.bootstrap, tps, RC)
    ru = read_all(b.bootstrap, tps, RU)
    for tp in tps:
        assert values(rc[tp]) == committed, f"{tp} read_committed: {values(rc[tp])}"
        assert [o for o, _ in rc[tp]] == [0, 1, 2, 3, 4, 11, 12, 13], rc[tp]
        assert values(ru[tp]) == committed[:5] + aborted + committed[5:], f"{tp} read_uncommitted"
        # offsets 5, 10 and 14 hold the control markers
        assert [o for o, _ in ru[tp]] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13], ru[tp]
    acked = sorted((q, o, v) for q, o, v in d.acked)
    assert len(acked) == 36

    # the consumers' own watermark queries (ListOffsets with their isolation level)
    for iso in (RC, RU):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("wm"), "isolation.level": iso})
        try:
            for t, q in tps:
                assert c.get_watermark_offsets(TopicPartition(t, q), timeout=T) == (0, 15), (iso, t, q)
        finally:
            c.close()


def test_read_committed_stops_at_open_transaction(broker_factory):
    b = broker_factory()
    t = unique("txn-lso")
    create_topic(b, t, 1)
    tp = (t, 0)
    p = txn_producer(b.bootstrap, unique("tid"))
    p.init_transactions(T)
    p.begin_transaction()
    produce_all(p, t, [(0, b"A-%d" % i) for i in range(3)])
    p.commit_transaction(T)                       # offsets 0-2, marker 3
    wait_stable(b.bootstrap, [tp], expect_hw={tp: 4})

    p.begin_transaction()
    produce_all(p, t, [(0, b"B-%d" % i) for i in range(4)])
    assert p.flush(T) == 0                        # offsets 4-7, transaction open
    plain = plain_producer(b.bootstrap)
    produce_all(plain, t, [(0, b"C-%d" % i) for i in range(2)])
    assert plain.flush(T) == 0                    # offsets 8-9, no transaction

    assert latest(b.bootstrap, [tp], RU) == {tp: 10}
    assert latest(b.bootstrap, [tp], RC) == {tp: 4}, "LSO must be the open transaction's first offset"

    c = rc_consumer(b, [tp])
    try:
        got, eof = [], set()
        deadline = time.monotonic() + 10
        while tp not in eof and time.monotonic() < deadline:
            poll_into(c, got, eof, 0.3)
        assert tp in eof, f"read_committed consumer never reached the LSO; got {got}"
        poll_into(c, got, eof, 2.0)               # and nothing more arrives while it is open
        assert [(o, v) for _, _, o, v in got] == [(i, b"A-%d" % i) for i in range(3)], got
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=T) == (0, 4)
        ru = read_all(b.bootstrap, [tp], RU)[tp]
        assert values(ru) == [b"A-0", b"A-1", b"A-2", b"B-0", b"B-1", b"B-2", b"B-3", b"C-0", b"C-1"]

        p.commit_transaction(T)                   # marker at 10
        deadline = time.monotonic() + 15
        while len(got) < 9 and time.monotonic() < deadline:
            poll_into(c, got, eof, 0.3)
        assert [(o, v) for _, _, o, v in got[3:]] == (
            [(4 + i, b"B-%d" % i) for i in range(4)] + [(8, b"C-0"), (9, b"C-1")]), got
        wait_stable(b.bootstrap, [tp], expect_hw={tp: 11})
    finally:
        c.close()


# ---------------------------------------------------------------- consume-transform-produce


def test_consume_transform_produce_exactly_once(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    tin, tout, g = unique("ctp-in"), unique("ctp-out"), unique("ctp-g")
    create_topic(b, tin, 2)
    create_topic(b, tout, 2)
    n = 120
    produce(b, tin, [{"partition": i % 2, "value": b"in-%03d" % i} for i in range(n)])
    end = {(tin, 0): n // 2, (tin, 1): n // 2}

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": g, "enable.auto.commit": False,
                  "isolation.level": RC, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([tin])
    p = txn_producer(b.bootstrap, unique("ctp-tid"))
    p.init_transactions(T)
    batches, aborted, committed_pos = 0, [], {}
    deadline = time.monotonic() + 40
    try:
        while committed_pos != end:
            assert time.monotonic() < deadline, (
                f"pipeline did not finish: {batches} batches, committed {committed_pos}")
            msgs = c.consume(15, 0.5)
            assert not [m.error() for m in msgs if m.error()], [m.error() for m in msgs if m.error()]
            if not msgs:
                continue
            p.begin_transaction()
            for m in msgs:
                p.produce(tout, value=b"out-" + m.value(), partition=m.partition())
            pos = [tp for tp in c.position(c.assignment()) if tp.offset >= 0]
            p.send_offsets_to_transaction(pos, c.consumer_group_metadata(), T)
            batches += 1
            if batches == 3:
                assert p.flush(T) == 0
                p.abort_transaction(T)
                aborted = [m.value() for m in msgs]
                # rewind to the committed offsets and redo the batch
                comm = c.committed(c.assignment(), timeout=T)
                got = {(tp.topic, tp.partition): tp.offset for tp in comm if tp.offset >= 0}
                assert got == committed_pos, (
                    f"the aborted transaction's offsets became visible: committed {got}, "
                    f"expected {committed_pos}")
                for tp in comm:
                    c.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
            else:
                p.commit_transaction(T)
                committed_pos.update({(tp.topic, tp.partition): tp.offset for tp in pos})
    finally:
        c.close()
    assert batches >= 5 and aborted, (batches, aborted)

    offs = committed_offsets(b, g)
    assert {tp: o for tp, (o, _) in offs.items()} == end, offs
    out_tps = [(tout, 0), (tout, 1)]
    wait_stable(b.bootstrap, out_tps)
    rc = read_all(b.bootstrap, out_tps, RC)
    for q in (0, 1):
        want = [b"out-in-%03d" % i for i in range(q, n, 2)]
        assert values(rc[(tout, q)]) == want, (
            f"output partition {q} (read_committed) is not each input exactly once, in order: "
            f"{len(rc[(tout, q)])} records, first {values(rc[(tout, q)])[:5]}")
    ru = read_all(b.bootstrap, out_tps, RU)
    all_ru = [v for q in (0, 1) for v in values(ru[(tout, q)])]
    assert len(all_ru) == n + len(aborted), (len(all_ru), n, len(aborted))
    assert all(b"out-" + v in all_ru for v in aborted)


# ---------------------------------------------------------------- fencing


def test_zombie_producer_is_fenced(broker_factory):
    b = broker_factory()
    t = unique("txn-fence")
    create_topic(b, t, 1)
    tp = (t, 0)
    tid = unique("zombie")
    a_errors = ErrorLog()
    a = txn_producer(b.bootstrap, tid, a_errors)
    a.init_transactions(T)
    a.begin_transaction()
    produce_all(a, t, [(0, b"A-%d" % i) for i in range(10)])
    assert a.flush(T) == 0                        # offsets 0-9, transaction open

    bp = txn_producer(b.bootstrap, tid)
    bp.init_transactions(T)                       # fences A and aborts its transaction (marker 10)

    late = Deliveries()
    a.produce(t, value=b"A-late", partition=0, on_delivery=late.cb)
    with pytest.raises(KafkaException) as ei:
        a.commit_transaction(T)
    err = ei.value.args[0]
    print(f"zombie commit: {err}; error_cb: {a_errors.errors}")
    assert err.fatal(), f"fencing must be a fatal error, got {err}"
    assert err.code() in FENCED, f"expected a fencing error, got {err}"
    a.flush(5)
    assert late.acked == [], f"the fenced producer's record was stored: {late.acked}"
    with pytest.raises(KafkaException):
        a.begin_transaction()

    bp.begin_transaction()
    produce_all(bp, t, [(0, b"B-%d" % i) for i in range(5)])
    bp.commit_transaction(T)                      # offsets 11-15, marker 16
    wait_stable(b.bootstrap, [tp], expect_hw={tp: 17})
    assert values(read_all(b.bootstrap, [tp], RC)[tp]) == [b"B-%d" % i for i in range(5)]
    ru = values(read_all(b.bootstrap, [tp], RU)[tp])
    assert ru == [b"A-%d" % i for i in range(10)] + [b"B-%d" % i for i in range(5)], ru


# ---------------------------------------------------------------- timeouts


def test_transaction_timeout_aborts(broker_factory):
    b = broker_factory(extra=FAST_TXN_CLEANUP)
    t = unique("txn-timeout")
    create_topic(b, t, 1)
    tp = (t, 0)
    tid = unique("slow")
    errors = ErrorLog()
    p = txn_producer(b.bootstrap, tid, errors, **{"transaction.timeout.ms": 2000})
    p.init_transactions(T)
    p.begin_transaction()
    produce_all(p, t, [(0, b"T-%d" % i) for i in range(5)])
    assert p.flush(T) == 0
    started = time.monotonic()
    assert latest(b.bootstrap, [tp], RC) == {tp: 0}

    # the broker aborts it: abort marker at 5, LSO moves to 6
    wait_stable(b.bootstrap, [tp], timeout=10, expect_hw={tp: 6})
    waited = time.monotonic() - started
    assert waited >= 1.5, f"transaction aborted after {waited:.1f}s, before its 2 s timeout"
    assert read_all(b.bootstrap, [tp], RC)[tp] == []
    assert values(read_all(b.bootstrap, [tp], RU)[tp]) == [b"T-%d" % i for i in range(5)]

    time.sleep(max(0.0, 5 - (time.monotonic() - started)))
    with pytest.raises(KafkaException) as ei:
        p.commit_transaction(T)
    err = ei.value.args[0]
    print(f"late commit: {err} fatal={err.fatal()} abortable={err.txn_requires_abort()}; "
          f"error_cb {errors.errors}")

    # a new instance with the same transactional.id works normally
    q = txn_producer(b.bootstrap, tid, **{"transaction.timeout.ms": 10000})
    q.init_transactions(T)
    q.begin_transaction()
    produce_all(q, t, [(0, b"after")])
    q.commit_transaction(T)
    wait_stable(b.bootstrap, [tp], expect_hw={tp: 8})
    assert values(read_all(b.bootstrap, [tp], RC)[tp]) == [b"after"]


def test_transaction_timeout_above_broker_max_is_refused(broker_factory):
    b = broker_factory(extra=["--transaction-max-timeout-ms", "30000"])
    p = txn_producer(b.bootstrap, unique("too-long"), **{"transaction.timeout.ms": 60000})
    with pytest.raises(KafkaException) as ei:
        p.init_transactions(T)
    assert ei.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, ei.value
    ok = txn_producer(b.bootstrap, unique("just-right"), **{"transaction.timeout.ms": 30000})
    ok.init_transactions(T)


def test_admin_transaction_apis_not_in_confluent_kafka():
    missing = [m for m in ("list_transactions", "describe_transactions", "describe_producers")
               if not hasattr(AdminClient, m)]
    if missing:
        pytest.skip(f"confluent-kafka 2.16 AdminClient lacks {missing}; "
                    "test_txn_kafka_python.py covers them")
