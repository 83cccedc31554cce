//! Every advertised version of every transaction API through `handle`, as
//! clients encode and decode them, plus their error answers: unknown ids,
//! stale epochs, wrong states, unknown partitions, timeouts out of range,
//! and idempotent produce (duplicates, gaps, fencing, unverified writes,
//! sequences reused across a transaction marker).

use bytes::Bytes;
use kafka_protocol::messages::*;

use super::group_versions_tests::{call, s, versions};
use crate::config::Settings;
use crate::protocol::batch::{build, ATTR_TRANSACTIONAL};
use crate::protocol::codes;

fn batch(pid: i64, epoch: i16, seq: i32, txn: bool) -> Bytes {
    let v = b"value".to_vec();
    Bytes::from(build::batch_with(
        1_000,
        &[build::Rec {
            key: None,
            value: Some(&v),
            timestamp_delta: 0,
        }],
        build::Producer {
            id: pid,
            epoch,
            base_sequence: seq,
            attributes: if txn { ATTR_TRANSACTIONAL } else { 0 },
        },
    ))
}

async fn produce(
    b: &super::Broker,
    txn: Option<&str>,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s("tv")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])]);
    let r: ProduceResponse = call(b, ApiKey::Produce, 9, &req).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init(
    b: &super::Broker,
    v: i16,
    txn: Option<&str>,
    timeout_ms: i32,
) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    call(b, ApiKey::InitProducerId, v, &req).await
}

async fn add(
    b: &super::Broker,
    v: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    parts: &[(&str, i32)],
) -> Vec<i16> {
    let mut topics: Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        topics.push(
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(vec![*p]),
        );
    }
    let req = if v <= 3 {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(topics)
    } else {
        AddPartitionsToTxnRequest::default().with_transactions(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_topics(topics),
        ])
    };
    let r: AddPartitionsToTxnResponse = call(b, ApiKey::AddPartitionsToTxn, v, &req).await;
    let topics = if v <= 3 {
        r.results_by_topic_v3_and_below
    } else {
        r.results_by_transaction[0].topic_results.clone()
    };
    topics
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

async fn end(b: &super::Broker, v: i16, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r: EndTxnResponse = call(b, ApiKey::EndTxn, v, &req).await;
    r.error_code
}

#[tokio::test]
async fn every_transaction_api_version_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_dir(dir.path().to_path_buf());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.group_initial_rebalance_delay_ms = 0;
    let running = crate::runtime::start(settings).await.unwrap();
    let b = &running.broker;
    b.log
        .create_topic("tv", 2, Default::default(), false, 0)
        .await
        .unwrap();
    // Idempotent producer: fresh ids, duplicates, gaps, stale epochs.
    let r = init(b, 0, None, 0).await;
    assert_eq!(r.error_code, codes::NONE);
    let pid = r.producer_id.0;
    assert_eq!(
        produce(b, None, 0, batch(pid, 0, 0, false)).await,
        (codes::NONE, 0)
    );
    assert_eq!(
        produce(b, None, 0, batch(pid, 0, 1, false)).await,
        (codes::NONE, 1)
    );
    assert_eq!(
        produce(b, None, 0, batch(pid, 0, 0, false)).await,
        (codes::NONE, 0),
        "duplicate"
    );
    assert_eq!(
        produce(b, None, 0, batch(pid, 0, 5, false)).await.0,
        codes::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        produce(b, None, 0, batch(pid, 1, 0, false)).await.0,
        codes::NONE
    );
    assert_eq!(
        produce(b, None, 0, batch(pid, 0, 2, false)).await.0,
        codes::INVALID_PRODUCER_EPOCH
    );
    for v in versions(ApiKey::InitProducerId) {
        let r = init(b, v, None, 0).await;
        assert_eq!(r.error_code, codes::NONE, "InitProducerId v{v}");
        assert!(r.producer_id.0 > pid);
        let r = init(b, v, Some("x"), i32::MAX).await;
        assert_eq!(r.error_code, codes::INVALID_TRANSACTION_TIMEOUT);
    }
    // A whole transaction at every version of each API.
    for v in versions(ApiKey::AddPartitionsToTxn) {
        let id = format!("tx{v}");
        let r = init(b, 4, Some(&id), 60_000).await;
        assert_eq!(r.error_code, codes::NONE);
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        // Not added yet: the write is refused (KIP-890 verification).
        assert_eq!(
            produce(b, Some(&id), 1, batch(pid, epoch, 0, true)).await.0,
            codes::INVALID_TXN_STATE
        );
        assert_eq!(
            add(b, v, &id, pid, epoch, &[("tv", 1)]).await,
            vec![codes::NONE]
        );
        assert_eq!(
            add(b, v, &id, pid, epoch, &[("tv", 1), ("nope", 0)]).await,
            vec![
                codes::OPERATION_NOT_ATTEMPTED,
                codes::UNKNOWN_TOPIC_OR_PARTITION
            ]
        );
        let stale = add(b, v, &id, pid, epoch - 1, &[("tv", 1)]).await;
        let want = if v >= 2 {
            codes::PRODUCER_FENCED
        } else {
            codes::INVALID_PRODUCER_EPOCH
        };
        assert_eq!(stale, vec![want], "AddPartitionsToTxn v{v}");
        assert_eq!(
            add(b, v, "unknown", pid, epoch, &[("tv", 1)]).await,
            vec![codes::INVALID_PRODUCER_ID_MAPPING]
        );
        let (code, first) = produce(b, Some(&id), 1, batch(pid, epoch, 0, true)).await;
        assert_eq!(code, codes::NONE);
        let av = v.min(4);
        let r: AddOffsetsToTxnResponse = call(
            b,
            ApiKey::AddOffsetsToTxn,
            av,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(s("tg"))),
        )
        .await;
        assert_eq!(r.error_code, codes::NONE, "AddOffsetsToTxn v{av}");
        let tv = v.min(5);
        let r: TxnOffsetCommitResponse = call(
            b,
            ApiKey::TxnOffsetCommit,
            tv,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s(&id)))
                .with_group_id(GroupId(s("tg")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id(-1)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("tv")))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(first + 1)
                                .with_committed_leader_epoch(-1),
                        ]),
                ]),
        )
        .await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            codes::NONE,
            "TxnOffsetCommit v{tv}"
        );
        // read_committed stops at the open transaction.
        let fetch = |iso: i8| {
            FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_isolation_level(iso)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(s("tv")))
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(1)
                        .with_fetch_offset(first)
                        .with_partition_max_bytes(1 << 20)])])
        };
        let r: FetchResponse = call(b, ApiKey::Fetch, 12, &fetch(1)).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.last_stable_offset, first);
        assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
        let ev = v.min(4);
        let commit = v % 2 == 0;
        assert_eq!(
            end(b, ev, &id, pid, epoch, commit).await,
            codes::NONE,
            "EndTxn v{ev}"
        );
        // A retry of the same outcome is fine; the other one is not.
        assert_eq!(end(b, ev, &id, pid, epoch, commit).await, codes::NONE);
        assert_eq!(
            end(b, ev, &id, pid, epoch, !commit).await,
            codes::INVALID_TXN_STATE
        );
        let r: FetchResponse = call(b, ApiKey::Fetch, 12, &fetch(1)).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.last_stable_offset, p.high_watermark);
        let aborted = p.aborted_transactions.clone().unwrap_or_default();
        assert_eq!(aborted.len(), usize::from(!commit), "aborted list v{v}");
        // Committed offsets are visible only after a commit.
        let r: OffsetFetchResponse = call(
            b,
            ApiKey::OffsetFetch,
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s("tg")))
                .with_require_stable(true)
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("tv")))
                        .with_partition_indexes(vec![0]),
                ])),
        )
        .await;
        let got = r.topics[0].partitions[0].committed_offset;
        if commit {
            assert_eq!(got, first + 1);
        }
        // The next transaction reusing the ended one's sequence is out of
        // order, not a duplicate answered with the old batch's offset
        // (librdkafka does this after an abort purged a batch it had sent).
        assert_eq!(
            add(b, v, &id, pid, epoch, &[("tv", 1)]).await,
            vec![codes::NONE]
        );
        assert_eq!(
            produce(b, Some(&id), 1, batch(pid, epoch, 0, true)).await.0,
            codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
            "a sequence of an ended transaction, v{v}"
        );
        let (code, next) = produce(b, Some(&id), 1, batch(pid, epoch, 1, true)).await;
        assert_eq!(code, codes::NONE);
        assert!(next > first);
        assert_eq!(end(b, ev, &id, pid, epoch, false).await, codes::NONE);
    }
    // EndTxn on an empty transaction, and with a stale epoch.
    let r = init(b, 4, Some("e"), 60_000).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    for v in versions(ApiKey::EndTxn) {
        assert_eq!(
            end(b, v, "e", pid, epoch, true).await,
            codes::INVALID_TXN_STATE
        );
        let want = if v >= 2 {
            codes::PRODUCER_FENCED
        } else {
            codes::INVALID_PRODUCER_EPOCH
        };
        assert_eq!(end(b, v, "e", pid, epoch - 1, true).await, want);
    }
    // Admin views.
    let r: DescribeTransactionsResponse = call(
        b,
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s("e")), TransactionalId(s("nope"))]),
    )
    .await;
    assert_eq!(r.transaction_states[0].transaction_state.as_str(), "Empty");
    assert_eq!(
        r.transaction_states[1].error_code,
        codes::TRANSACTIONAL_ID_NOT_FOUND
    );
    for v in versions(ApiKey::ListTransactions) {
        let r: ListTransactionsResponse = call(
            b,
            ApiKey::ListTransactions,
            v,
            &ListTransactionsRequest::default()
                .with_state_filters(vec![s("Empty"), s("Bogus")])
                .with_duration_filter(-1),
        )
        .await;
        assert_eq!(r.unknown_state_filters, vec![s("Bogus")]);
        assert_eq!(r.transaction_states.len(), 1, "ListTransactions v{v}");
    }
    let r: DescribeProducersResponse = call(
        b,
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![
            describe_producers_request::TopicRequest::default()
                .with_name(TopicName(s("tv")))
                .with_partition_indexes(vec![0, 9]),
        ]),
    )
    .await;
    assert!(!r.topics[0].partitions[0].active_producers.is_empty());
    assert_eq!(
        r.topics[0].partitions[1].error_code,
        codes::UNKNOWN_TOPIC_OR_PARTITION
    );
    // WriteTxnMarkers on a partition with no open transaction is accepted.
    let r: WriteTxnMarkersResponse = call(
        b,
        ApiKey::WriteTxnMarkers,
        1,
        &WriteTxnMarkersRequest::default().with_markers(vec![
            write_txn_markers_request::WritableTxnMarker::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_transaction_result(false)
                .with_topics(vec![
                    write_txn_markers_request::WritableTxnMarkerTopic::default()
                        .with_name(TopicName(s("tv")))
                        .with_partition_indexes(vec![0, 7]),
                ]),
        ]),
    )
    .await;
    let parts = &r.markers[0].topics[0].partitions;
    assert_eq!(parts[0].error_code, codes::NONE);
    assert_eq!(parts[1].error_code, codes::UNKNOWN_TOPIC_OR_PARTITION);
    running.shutdown().await.unwrap();
}
