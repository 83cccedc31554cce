//! Transaction APIs: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
//! EndTxn, TxnOffsetCommit, WriteTxnMarkers, and the admin views
//! DescribeProducers, DescribeTransactions and ListTransactions.
//!
//! Handlers translate wire structs; the decisions are the coordinator's
//! (`coordinator::txn`). PRODUCER_FENCED (KIP-588) is sent only to versions
//! that know it; older ones get INVALID_PRODUCER_EPOCH, as Kafka does.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    describe_producers_response, describe_transactions_response, list_transactions_response,
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Broker};
use crate::coordinator::OFFSETS_TOPIC;
use crate::log::producer_state::ProducerError;
use crate::log::LogError;
use crate::protocol::codes::{self, ErrorCode};

/// Most partitions one AddPartitionsToTxn may name (bounds the state a
/// client can make us hold per request).
const MAX_PARTITIONS_PER_REQUEST: usize = 10_000;

/// PRODUCER_FENCED for versions that know it, else INVALID_PRODUCER_EPOCH.
fn fenced(code: ErrorCode, version: i16, since: i16) -> ErrorCode {
    if code == codes::PRODUCER_FENCED && version < since {
        codes::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

pub async fn init_producer_id(
    b: &Broker,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    let id = req.transactional_id.as_ref().map(|t| t.0.as_str());
    let expected =
        (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    match b
        .txns
        .init_producer_id(id, req.transaction_timeout_ms, expected, b.now_ms())
        .await
    {
        Ok((pid, epoch)) => {
            resp.producer_id = ProducerId(pid);
            resp.producer_epoch = epoch;
        }
        Err(code) => resp.error_code = fenced(code, version, 4),
    }
    resp
}

pub async fn add_partitions(
    b: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    if version <= 3 {
        resp.results_by_topic_v3_and_below = add_one(
            b,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return resp;
    }
    for t in &req.transactions {
        let mut r = AddPartitionsToTxnResult::default();
        r.transactional_id = t.transactional_id.clone();
        r.topic_results = add_one(
            b,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            &t.topics,
            t.verify_only,
            version,
        )
        .await;
        resp.results_by_transaction.push(r);
    }
    resp
}

async fn add_one(
    b: &Broker,
    id: &TransactionalId,
    pid: i64,
    epoch: i16,
    topics: &[kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let id = id.0.as_str();
    // Per partition: unknown ones fail, and then the rest are not attempted.
    let mut parts: Vec<(String, i32, ErrorCode)> = Vec::new();
    let total: usize = topics.iter().map(|t| t.partitions.len()).sum();
    for t in topics {
        let topic = b.log.topic(t.name.as_str());
        for p in &t.partitions {
            let code = if total > MAX_PARTITIONS_PER_REQUEST {
                codes::INVALID_REQUEST
            } else if crate::coordinator::is_internal(t.name.as_str()) {
                codes::INVALID_TOPIC_EXCEPTION
            } else if topic.as_ref().and_then(|tp| tp.partition(*p)).is_none() {
                codes::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                codes::NONE
            };
            parts.push((t.name.to_string(), *p, code));
        }
    }
    let any_bad = parts.iter().any(|(_, _, c)| *c != codes::NONE);
    if any_bad {
        for p in parts.iter_mut().filter(|p| p.2 == codes::NONE) {
            p.2 = codes::OPERATION_NOT_ATTEMPTED;
        }
    } else if verify_only {
        for p in parts.iter_mut() {
            p.2 = fenced(
                b.txns.verify(id, pid, epoch, &(p.0.clone(), p.1)),
                version,
                2,
            );
        }
    } else {
        let list: Vec<(String, i32)> = parts.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        let code = match b
            .txns
            .add_partitions(id, pid, epoch, &list, b.now_ms())
            .await
        {
            Ok(()) => codes::NONE,
            Err(c) => fenced(c, version, 2),
        };
        for p in parts.iter_mut() {
            p.2 = code;
        }
    }
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (t, p, code) in parts {
        let mut pr = AddPartitionsToTxnPartitionResult::default();
        pr.partition_index = p;
        pr.partition_error_code = code;
        match out.iter_mut().find(|r| r.name.as_str() == t) {
            Some(r) => r.results_by_partition.push(pr),
            None => {
                let mut r = AddPartitionsToTxnTopicResult::default();
                r.name = TopicName(StrBytes::from_string(t));
                r.results_by_partition.push(pr);
                out.push(r);
            }
        }
    }
    out
}

pub async fn add_offsets(
    b: &Broker,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let mut resp = AddOffsetsToTxnResponse::default();
    if req.group_id.is_empty() {
        resp.error_code = codes::INVALID_GROUP_ID;
        return resp;
    }
    let part = (OFFSETS_TOPIC.to_string(), 0);
    if let Err(c) = b
        .txns
        .add_partitions(
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            &[part],
            b.now_ms(),
        )
        .await
    {
        resp.error_code = fenced(c, version, 2);
    }
    resp
}

pub async fn end_txn(b: &Broker, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Err(c) = b
        .txns
        .end_txn(
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            b.now_ms(),
        )
        .await
    {
        resp.error_code = fenced(c, version, 2);
    }
    resp
}

pub async fn txn_offset_commit(
    b: &Broker,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let now = b.now_ms();
    let max_meta = b.settings.offset_metadata_max_bytes;
    let group = req.group_id.as_str();
    // The offsets partition must be part of the open transaction
    // (AddOffsetsToTxn first), as KIP-890 verification requires.
    let mut top = if group.is_empty() {
        codes::INVALID_GROUP_ID
    } else {
        match b.txns.verify(
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            &(OFFSETS_TOPIC.to_string(), 0),
        ) {
            codes::PRODUCER_FENCED => fenced(codes::PRODUCER_FENCED, version, 3),
            codes::INVALID_PRODUCER_ID_MAPPING | codes::INVALID_TXN_STATE => {
                codes::INVALID_TXN_STATE
            }
            c => c,
        }
    };
    let mut per: Vec<(String, i32, ErrorCode)> = Vec::new();
    let mut commits = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let proposed = super::offsets::Proposed {
                topic: &t.name,
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_deref().unwrap_or(""),
            };
            let code = match super::offsets::checked_commit(b, proposed, max_meta, now) {
                Ok(c) => {
                    commits.push(c);
                    codes::NONE
                }
                Err(code) => code,
            };
            per.push((t.name.to_string(), p.partition_index, code));
        }
    }
    if top == codes::NONE {
        let (generation, member, instance) = if version >= 3 {
            (
                req.generation_id,
                req.member_id.as_str(),
                req.group_instance_id.as_deref(),
            )
        } else {
            (-1, "", None)
        };
        if let Err(c) = b
            .groups
            .txn_commit(
                group,
                req.producer_id.0,
                req.producer_epoch,
                generation,
                member,
                instance,
                commits,
                now,
            )
            .await
        {
            top = c;
        }
    }
    let mut resp = TxnOffsetCommitResponse::default();
    for (t, p, code) in per {
        let mut pr = TxnOffsetCommitResponsePartition::default();
        pr.partition_index = p;
        pr.error_code = if code == codes::NONE { top } else { code };
        match resp.topics.iter_mut().find(|r| r.name.as_str() == t) {
            Some(r) => r.partitions.push(pr),
            None => {
                let mut r = TxnOffsetCommitResponseTopic::default();
                r.name = TopicName(StrBytes::from_string(t));
                r.partitions.push(pr);
                resp.topics.push(r);
            }
        }
    }
    resp
}

/// WriteTxnMarkers: the inter-broker API, served so that admin tools (and
/// Kafka's `--abort` of a hanging transaction) can write markers.
pub async fn write_txn_markers(
    b: &Broker,
    req: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    let now = b.now_ms();
    let mut resp = WriteTxnMarkersResponse::default();
    let mut files = Vec::new();
    for m in &req.markers {
        let mut mr = WritableTxnMarkerResult::default();
        mr.producer_id = m.producer_id;
        for t in &m.topics {
            let mut tr = WritableTxnMarkerTopicResult::default();
            tr.name = t.name.clone();
            let topic = b.log.topic(t.name.as_str());
            for p in &t.partition_indexes {
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = *p;
                pr.error_code = match topic
                    .as_ref()
                    .and_then(|tp| tp.partition(*p).map(|x| (tp, x)))
                {
                    None => codes::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(_) if crate::coordinator::is_internal(t.name.as_str()) => {
                        codes::INVALID_TOPIC_EXCEPTION
                    }
                    Some((tp, part)) => match part.append_marker(
                        m.producer_id.0,
                        m.producer_epoch,
                        m.transaction_result,
                        m.coordinator_epoch,
                        &tp.config(),
                        now,
                    ) {
                        Ok(a) => {
                            files.extend(a.files);
                            codes::NONE
                        }
                        Err(LogError::Producer(ProducerError::Fenced { .. })) => {
                            codes::INVALID_PRODUCER_EPOCH
                        }
                        Err(e) => errors::log_error(&e),
                    },
                };
                tr.partitions.push(pr);
            }
            mr.topics.push(tr);
        }
        resp.markers.push(mr);
    }
    if b.settings.durability == crate::config::Durability::Fsync && !files.is_empty() {
        let _ = b.syncer.submit(files).await;
    }
    resp
}

pub async fn describe_producers(
    b: &Broker,
    req: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let mut resp = DescribeProducersResponse::default();
    for t in &req.topics {
        let mut tr = describe_producers_response::TopicResponse::default();
        tr.name = t.name.clone();
        let topic = b.log.topic(t.name.as_str());
        for p in &t.partition_indexes {
            let mut pr = describe_producers_response::PartitionResponse::default();
            pr.partition_index = *p;
            match topic.as_ref().and_then(|tp| tp.partition(*p)) {
                None => pr.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(part) => {
                    let mut list = part.producers();
                    list.sort_by_key(|(pid, _)| *pid);
                    for (pid, e) in list {
                        let mut s = describe_producers_response::ProducerState::default();
                        s.producer_id = ProducerId(pid);
                        s.producer_epoch = i32::from(e.epoch);
                        s.last_sequence = e.last_seq;
                        s.last_timestamp = e.last_timestamp_ms;
                        s.coordinator_epoch = e.coordinator_epoch;
                        s.current_txn_start_offset = e.txn_first_offset.unwrap_or(-1);
                        pr.active_producers.push(s);
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

pub async fn describe_transactions(
    b: &Broker,
    req: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let mut resp = DescribeTransactionsResponse::default();
    b.txns.read(|m| {
        for id in &req.transactional_ids {
            let mut s = describe_transactions_response::TransactionState::default();
            s.transactional_id = id.clone();
            s.producer_id = ProducerId(-1);
            s.producer_epoch = -1;
            s.transaction_start_time_ms = -1;
            match m.get(id.as_str()) {
                None => s.error_code = codes::TRANSACTIONAL_ID_NOT_FOUND,
                Some(t) => {
                    s.transaction_state = StrBytes::from_static_str(t.status.name());
                    s.transaction_timeout_ms = t.timeout_ms;
                    s.producer_id = ProducerId(t.producer_id);
                    s.producer_epoch = t.epoch;
                    let open = matches!(
                        t.status,
                        crate::coordinator::txn::TxnStatus::Ongoing
                            | crate::coordinator::txn::TxnStatus::PrepareCommit
                            | crate::coordinator::txn::TxnStatus::PrepareAbort
                    );
                    if open {
                        s.transaction_start_time_ms = t.start_ms;
                        for (topic, p) in &t.partitions {
                            match s.topics.iter_mut().find(|x| x.topic.as_str() == topic) {
                                Some(x) => x.partitions.push(*p),
                                None => {
                                    let mut x =
                                        describe_transactions_response::TopicData::default();
                                    x.topic = TopicName(StrBytes::from_string(topic.clone()));
                                    x.partitions.push(*p);
                                    s.topics.push(x);
                                }
                            }
                        }
                    }
                }
            }
            resp.transaction_states.push(s);
        }
    });
    resp
}

const STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub async fn list_transactions(
    b: &Broker,
    req: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let mut resp = ListTransactionsResponse::default();
    resp.unknown_state_filters = req
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let now = b.now_ms();
    let min_duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    b.txns.read(|m| {
        for (id, t) in m.iter() {
            let state = t.status.name();
            if !req.state_filters.is_empty()
                && !req.state_filters.iter().any(|s| s.as_str() == state)
            {
                continue;
            }
            if !req.producer_id_filters.is_empty()
                && !req.producer_id_filters.iter().any(|p| p.0 == t.producer_id)
            {
                continue;
            }
            if min_duration >= 0
                && (t.start_ms < 0 || now.saturating_sub(t.start_ms) < min_duration)
            {
                continue;
            }
            let mut s = list_transactions_response::TransactionState::default();
            s.transactional_id = TransactionalId(StrBytes::from_string(id.clone()));
            s.producer_id = ProducerId(t.producer_id);
            s.transaction_state = StrBytes::from_static_str(state);
            resp.transaction_states.push(s);
        }
    });
    resp
}
