//! Seeded fuzzing of the request path, run by `cargo test`.
//!
//! Real requests (encoded as a client would) are the seed corpus; each is
//! mutated thousands of times (bit flips, truncation, huge counts and
//! lengths spliced in) and handed to [`super::handle`]. The property: the
//! broker never panics, never allocates from a claimed count, and still
//! serves a valid request afterwards. The seed is printed so a failure can
//! be replayed with FJORD_FUZZ_SEED.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::{handle, Outcome};
use crate::config::Settings;
use crate::protocol::batch::build;

fn encode<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

fn corpus() -> Vec<Bytes> {
    let batch = Bytes::from(build::simple(1_700_000_000_000, 3, 20));
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic("fz"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch)),
            ])]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(10)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic("fz"))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let list = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic("fz"))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(0)
            ]),
    ]);
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic("fz2"))
            .with_num_partitions(2)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("1000")))]),
    ]);
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("fz")),
    ]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic("fz"))),
    ]));
    let group = || GroupId(StrBytes::from_static_str("fzg"));
    let join = JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x02fz"))]);
    let sync = SyncGroupRequest::default()
        .with_group_id(group())
        .with_generation_id(1)
        .with_member_id(StrBytes::from_static_str("m"))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_static_str("m"))
                .with_assignment(Bytes::from_static(b"assignment")),
        ]);
    let commit = OffsetCommitRequest::default()
        .with_group_id(group())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("fz"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(StrBytes::from_static_str("m"))),
                ]),
        ]);
    let offsets = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(group())
            .with_topics(None),
    ]);
    let cg = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("fzc")))
        .with_member_id(StrBytes::from_static_str("m"))
        .with_rebalance_timeout_ms(1000)
        .with_subscribed_topic_names(Some(vec![topic("fz")]))
        .with_topic_partitions(Some(vec![]));
    let leave = LeaveGroupRequest::default()
        .with_group_id(group())
        .with_members(vec![leave_group_request::MemberIdentity::default()
            .with_member_id(StrBytes::from_static_str("m"))]);
    let txn_id = || TransactionalId(StrBytes::from_static_str("fzt"));
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id()))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id())
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(topic("fz"))
                .with_partitions(vec![0, 1]),
        ]);
    let add4 = AddPartitionsToTxnRequest::default().with_transactions(vec![
        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id())
            .with_verify_only(true)
            .with_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic("fz"))
                    .with_partitions(vec![0]),
            ]),
    ]);
    let end = EndTxnRequest::default()
        .with_transactional_id(txn_id())
        .with_committed(true);
    let txn_commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id())
        .with_group_id(group())
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic("fz"))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_committed_offset(3),
                ]),
        ]);
    let markers = WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(1))
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(topic("fz"))
                    .with_partition_indexes(vec![0]),
            ]),
    ]);
    let producers = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic("fz"))
            .with_partition_indexes(vec![0]),
    ]);
    vec![
        encode(ApiKey::InitProducerId, 5, &init),
        encode(ApiKey::InitProducerId, 0, &init),
        encode(ApiKey::AddPartitionsToTxn, 3, &add),
        encode(ApiKey::AddPartitionsToTxn, 5, &add4),
        encode(
            ApiKey::AddOffsetsToTxn,
            4,
            &AddOffsetsToTxnRequest::default().with_group_id(group()),
        ),
        encode(ApiKey::EndTxn, 4, &end),
        encode(ApiKey::TxnOffsetCommit, 5, &txn_commit),
        encode(ApiKey::WriteTxnMarkers, 1, &markers),
        encode(ApiKey::DescribeProducers, 0, &producers),
        encode(
            ApiKey::ListTransactions,
            1,
            &ListTransactionsRequest::default(),
        ),
        encode(
            ApiKey::DescribeTransactions,
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id()]),
        ),
        encode(ApiKey::JoinGroup, 5, &join),
        encode(ApiKey::JoinGroup, 9, &join),
        encode(ApiKey::SyncGroup, 5, &sync),
        encode(ApiKey::OffsetCommit, 8, &commit),
        encode(ApiKey::OffsetFetch, 9, &offsets),
        encode(ApiKey::ConsumerGroupHeartbeat, 1, &cg),
        encode(ApiKey::LeaveGroup, 5, &leave),
        encode(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
        encode(ApiKey::Metadata, 12, &metadata),
        encode(ApiKey::Metadata, 1, &metadata),
        encode(ApiKey::Produce, 9, &produce),
        encode(ApiKey::Produce, 3, &produce),
        encode(ApiKey::Fetch, 12, &fetch),
        encode(ApiKey::Fetch, 4, &fetch),
        encode(ApiKey::ListOffsets, 7, &list),
        encode(ApiKey::CreateTopics, 5, &create),
        encode(ApiKey::DescribeConfigs, 4, &describe),
    ]
}

/// xorshift64*: a tiny deterministic generator, so failures replay by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Bytes {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v.truncate(at),
            2 => {
                // Claim a huge Int32 count or length.
                let end = (at + 4).min(v.len());
                v[at..end].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff][..end - at]);
            }
            3 => {
                // Claim a huge unsigned varint (compact arrays, strings).
                v.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            4 => v[at] = rng.next() as u8,
            _ => {
                let end = (at + 2).min(v.len());
                v[at..end].copy_from_slice(&[0xff, 0xff][..end - at]);
            }
        }
        if v.is_empty() {
            break;
        }
    }
    // Keep the api key and version valid half the time so bodies get decoded.
    if rng.below(2) == 0 && v.len() >= 4 && seed.len() >= 4 {
        v[..4].copy_from_slice(&seed[..4]);
    }
    Bytes::from(v)
}

async fn serve_one(broker: &super::Broker, frame: Bytes) -> Option<Outcome> {
    tokio::time::timeout(
        Duration::from_millis(200),
        handle(broker, "/127.0.0.1", frame),
    )
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_dir(dir.path().to_path_buf());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.durability = crate::config::Durability::PageCache;
    settings.group_initial_rebalance_delay_ms = 0;
    let running = crate::runtime::start(settings).await.unwrap();
    let broker = Arc::clone(&running.broker);
    let seed: u64 = std::env::var("FJORD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("FJORD_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let corpus = corpus();
    // The seeds themselves must be served.
    for frame in &corpus {
        let out = serve_one(&broker, frame.clone()).await;
        assert!(
            matches!(out, Some(Outcome::Respond(_) | Outcome::Deferred(_))),
            "seed refused: {out:?}"
        );
    }
    let rounds: usize = std::env::var("FJORD_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    for _ in 0..rounds {
        let seed_frame = &corpus[rng.below(corpus.len())];
        let frame = mutate(&mut rng, seed_frame);
        if let Some(Outcome::Deferred(f)) = serve_one(&broker, frame).await {
            let _ = tokio::time::timeout(Duration::from_millis(200), f).await;
        }
    }
    let out = serve_one(&broker, corpus[0].clone()).await;
    assert!(
        matches!(out, Some(Outcome::Respond(_))),
        "broker stopped serving: {out:?}"
    );
    running.shutdown().await.unwrap();
}

/// The 8-byte request that aborts a process decoding blindly with
/// kafka-protocol 0.18: a Metadata v1 body claiming 2^31-1 topics.
#[tokio::test]
async fn huge_array_counts_close_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_dir(dir.path().to_path_buf());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    let running = crate::runtime::start(settings).await.unwrap();
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(1);
    frame.put_i32(1);
    frame.put_i16(-1); // null client id
    frame.put_i32(i32::MAX); // topics: 2^31-1 claimed, none present
    let out = handle(&running.broker, "/127.0.0.1", frame.freeze()).await;
    assert!(matches!(out, Outcome::Close(None)), "{out:?}");
    // Compact array (Metadata v12): varint 0xffffffff.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(12);
    frame.put_i32(2);
    frame.put_i16(-1);
    frame.put_u8(0); // header tagged fields
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let out = handle(&running.broker, "/127.0.0.1", frame.freeze()).await;
    assert!(matches!(out, Outcome::Close(None)), "{out:?}");
    running.shutdown().await.unwrap();
}
