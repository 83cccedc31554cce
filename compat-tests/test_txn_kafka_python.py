"""Idempotent producers and transactions with kafka-python 3.0.12 (an
implementation sharing no code with librdkafka).

Proves that:

* kafka-python's default producer (idempotence on: InitProducerId, then
  producer id / epoch / sequence on every batch) works, and stores every
  record exactly once, in send order, even when its connections are cut
  behind a proxy so that it must retry batches the broker already appended;
* transactions committed and aborted by a kafka-python transactional producer
  are seen correctly by a read_committed kafka-python consumer (aborted
  records filtered with the Fetch response's aborted-transaction list),
  by a read_committed confluent-kafka consumer, and in full by
  read_uncommitted;
* send_offsets_to_transaction with a group consumer's group_metadata()
  commits the group's offsets with the transaction (TxnOffsetCommit), and
  not when the transaction aborts;
* the KIP-664 admin APIs: ListTransactions (with state filters),
  DescribeTransactions (state, producer id/epoch, timeout, start time,
  partitions; TRANSACTIONAL_ID_NOT_FOUND for an unknown id) and
  DescribeProducers (an open transaction's first offset, last sequence,
  epoch; idempotent producers too) before and after commit.
"""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as E
from kafka.admin._transactions import TransactionState
from kafka.structs import OffsetAndMetadata

from group_support import FAST_GROUPS, committed_offsets, produce
from txn_support import RC, RU, T, create_topic, proxied_broker, read_all, unique, values, wait_stable

# Every test here is bounded to 60 s (conftest.time_bound).
pytestmark = pytest.mark.usefixtures("time_bound")

TMS = T * 1000


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TMS)


def kp_producer(bootstrap, **conf):
    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, request_timeout_ms=TMS,
                         max_block_ms=TMS, **conf)


def kp_read(bootstrap, tps, isolation, expect, timeout=T):
    """{(topic, partition): [(offset, value)]} from the beginning with a
    kafka-python consumer: polls until `expect` records arrived, then one
    more second to catch any extra."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation, request_timeout_ms=TMS + 1000)
    out = {tuple(tp): [] for tp in tps}
    try:
        c.assign([TopicPartition(t, p) for t, p in tps])
        c.seek_to_beginning()
        deadline = time.monotonic() + timeout
        extra_until = None
        while True:
            now = time.monotonic()
            n = sum(len(v) for v in out.values())
            if n >= expect and extra_until is None:
                extra_until = now + 1.0
            if (extra_until is not None and now > extra_until) or now > deadline:
                break
            for tp, msgs in c.poll(timeout_ms=200).items():
                out[(tp.topic, tp.partition)].extend((m.offset, m.value) for m in msgs)
        return out
    finally:
        c.close()


# ---------------------------------------------------------------- idempotence


def test_default_idempotent_producer_exactly_once_under_cut_connections(tmp_path):
    n, parts = 6000, 2
    with proxied_broker(tmp_path, seed=3012) as (b, proxy):
        topic = unique("kp-idem")
        create_topic(b, topic, parts)
        proxy.set_cut_every(5)
        p = KafkaProducer(bootstrap_servers=proxy.address, linger_ms=1, batch_size=400,
                          retry_backoff_ms=20, reconnect_backoff_ms=20, request_timeout_ms=5000,
                          delivery_timeout_ms=45000, max_block_ms=TMS)
        try:
            assert p.config["enable_idempotence"], "kafka-python turned idempotence off"
            futs = [p.send(topic, value=b"%06d" % i, partition=i % parts) for i in range(n)]
            p.flush(timeout=45)
            metas = [f.get(timeout=1) for f in futs]
            pid = p._transaction_manager.producer_id_and_epoch.producer_id
        finally:
            p.close(timeout=5)
        proxy.set_cut_every(0)
        print(f"proxy: {proxy.cuts} cuts, {proxy.connections} connections, "
              f"{proxy.produce_seen} produce requests; producer id {pid}")
        assert pid >= 0, "no producer id: InitProducerId was not used"
        assert proxy.cuts["lost"] >= 3 and proxy.cuts["applied"] >= 3, proxy.cuts

        tps = [(topic, q) for q in range(parts)]
        got = kp_read(proxy.address, tps, RU, n)
        for q in range(parts):
            vals = [int(v) for v in values(got[(topic, q)])]
            assert len(vals) == len(set(vals)), (
                f"partition {q}: {len(vals) - len(set(vals))} records stored twice")
            assert vals == list(range(q, n, parts)), f"partition {q}: {len(vals)} records, not in send order"
        stored = {(q, o): v for q in range(parts) for o, v in got[(topic, q)]}
        wrong = [(m.partition, m.offset) for i, m in enumerate(metas)
                 if stored.get((m.partition, m.offset)) != b"%06d" % i]
        assert not wrong, f"{len(wrong)} records not at the offset their future gave, first {wrong[:3]}"


# ---------------------------------------------------------------- commit / abort


def test_commit_and_abort_seen_by_both_clients(broker_factory):
    b = broker_factory()
    t = unique("kp-txn")
    create_topic(b, t, 2)
    tps = [(t, 0), (t, 1)]
    p = kp_producer(b.bootstrap, transactional_id=unique("kp-tid"))
    try:
        p.init_transactions()

        def txn(tag, n, commit):
            p.begin_transaction()
            futs = [p.send(t, value=b"%s-%d" % (tag, i), partition=q) for i in range(n) for q in (0, 1)]
            p.flush(timeout=T)
            for f in futs:
                f.get(timeout=1)
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()

        txn(b"c1", 5, True)
        txn(b"a2", 4, False)
        txn(b"c3", 3, True)
    finally:
        p.close(timeout=5)
    wait_stable(b.bootstrap, tps, expect_hw={tp: 15 for tp in tps})

    committed = [b"c1-%d" % i for i in range(5)] + [b"c3-%d" % i for i in range(3)]
    everything = committed[:5] + [b"a2-%d" % i for i in range(4)] + committed[5:]
    kp_rc = kp_read(b.bootstrap, tps, RC, 16)
    kp_ru = kp_read(b.bootstrap, tps, RU, 24)
    ck_rc = read_all(b.bootstrap, tps, RC)
    for tp in tps:
        assert values(kp_rc[tp]) == committed, f"kafka-python read_committed {tp}: {values(kp_rc[tp])}"
        assert [o for o, _ in kp_rc[tp]] == [0, 1, 2, 3, 4, 11, 12, 13], kp_rc[tp]
        assert values(kp_ru[tp]) == everything, f"kafka-python read_uncommitted {tp}: {values(kp_ru[tp])}"
        assert values(ck_rc[tp]) == committed, f"confluent-kafka read_committed {tp}: {values(ck_rc[tp])}"


def test_send_offsets_to_transaction(broker_factory):
    b = broker_factory(extra=FAST_GROUPS)
    tin, tout, g = unique("kp-ctp-in"), unique("kp-ctp-out"), unique("kp-ctp-g")
    create_topic(b, tin, 1)
    create_topic(b, tout, 1)
    produce(b, tin, [{"partition": 0, "value": b"in-%d" % i} for i in range(20)])
    c = KafkaConsumer(tin, bootstrap_servers=b.bootstrap, group_id=g, enable_auto_commit=False,
                      auto_offset_reset="earliest", isolation_level=RC, session_timeout_ms=6000,
                      heartbeat_interval_ms=500, request_timeout_ms=TMS + 1000)
    p = kp_producer(b.bootstrap, transactional_id=unique("kp-ctp-tid"))
    try:
        p.init_transactions()
        got, deadline = [], time.monotonic() + 20
        while len(got) < 20 and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=200).values():
                got.extend(msgs)
        assert len(got) == 20, f"consumed {len(got)} of 20"
        tp = TopicPartition(tin, 0)

        def txn(records, commit):
            p.begin_transaction()
            for m in records:
                p.send(tout, value=b"out-" + m.value, partition=0)
            p.send_offsets_to_transaction({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)},
                                          c.group_metadata())
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()

        txn(got[:10], True)
        txn(got[10:], False)
        assert {k: o for k, (o, _) in committed_offsets(b, g).items()} == {(tin, 0): 10}
        txn(got[10:], True)
    finally:
        p.close(timeout=5)
        c.close()
    assert {k: o for k, (o, _) in committed_offsets(b, g).items()} == {(tin, 0): 20}
    wait_stable(b.bootstrap, [(tout, 0)])
    out = values(read_all(b.bootstrap, [(tout, 0)], RC)[(tout, 0)])
    assert out == [b"out-in-%d" % i for i in range(20)], out


# ---------------------------------------------------------------- admin (KIP-664)


def test_admin_list_describe_transactions_and_producers(broker_factory):
    b = broker_factory()
    t = unique("kp-adm")
    create_topic(b, t, 2)
    tid = unique("kp-adm-tid")
    a = admin(b.bootstrap)

    # an idempotent (non-transactional) producer shows up in DescribeProducers
    ip = kp_producer(b.bootstrap)
    try:
        for i in range(4):
            ip.send(t, value=b"idem-%d" % i, partition=1).get(timeout=T)
        idem_pid = ip._transaction_manager.producer_id_and_epoch.producer_id
    finally:
        ip.close(timeout=5)

    p = kp_producer(b.bootstrap, transactional_id=tid, transaction_timeout_ms=45000)
    try:
        p.init_transactions()
        p.begin_transaction()
        before = int(time.time() * 1000)
        for i in range(3):
            p.send(t, value=b"t0-%d" % i, partition=0)
        for i in range(2):
            p.send(t, value=b"t1-%d" % i, partition=1)
        p.flush(timeout=T)

        listing = a.list_transactions()
        rows = [r for rows in listing.values() for r in rows if r.transactional_id == tid]
        assert len(rows) == 1, listing
        assert rows[0].state == TransactionState.ONGOING, rows
        pid = rows[0].producer_id
        assert tid in {r.transactional_id for rows in a.list_transactions(
            state_filters=["Ongoing"]).values() for r in rows}
        assert tid not in {r.transactional_id for rows in a.list_transactions(
            state_filters=["CompleteCommit"]).values() for r in rows}
        assert tid in {r.transactional_id for rows in a.list_transactions(
            producer_id_filters=[pid]).values() for r in rows}

        d = a.describe_transactions([tid])[tid]
        assert d.state == TransactionState.ONGOING, d
        assert d.producer_id == pid and d.producer_epoch >= 0, d
        assert d.transaction_timeout_ms == 45000, d
        assert d.topic_partitions == {TopicPartition(t, 0), TopicPartition(t, 1)}, d
        assert abs(d.transaction_start_time_ms - before) < 30_000, (d, before)
        assert d.coordinator_id == 1, d

        prods = a.describe_producers([TopicPartition(t, 0), TopicPartition(t, 1)])
        p0 = {s.producer_id: s for s in prods[TopicPartition(t, 0)].active_producers}
        p1 = {s.producer_id: s for s in prods[TopicPartition(t, 1)].active_producers}
        assert set(p0) == {pid}, prods
        assert set(p1) == {pid, idem_pid}, prods
        assert p0[pid].producer_epoch == d.producer_epoch and p0[pid].last_sequence == 2, p0
        assert p0[pid].current_transaction_start_offset == 0, p0
        assert p1[pid].last_sequence == 1 and p1[pid].current_transaction_start_offset == 4, p1
        assert p1[idem_pid].last_sequence == 3, p1
        assert p1[idem_pid].current_transaction_start_offset == -1, p1

        p.commit_transaction()
    finally:
        p.close(timeout=5)

    d = a.describe_transactions([tid])[tid]
    assert d.state == TransactionState.COMPLETE_COMMIT, d
    assert d.topic_partitions == set(), d
    prods = a.describe_producers([TopicPartition(t, 0)])
    p0 = {s.producer_id: s for s in prods[TopicPartition(t, 0)].active_producers}
    assert p0[pid].current_transaction_start_offset == -1, p0
    assert tid not in {r.transactional_id for rows in a.list_transactions(
        state_filters=["Ongoing"]).values() for r in rows}
    with pytest.raises(E.TransactionalIdNotFoundError):
        a.describe_transactions([unique("never-used")])
    a.close()
