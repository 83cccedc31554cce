//! Produce: validate each batch's header and CRC, append the client's bytes,
//! and, for `acks=all` in fsync durability, wait for the group commit.
//!
//! Records are never decoded here. A partition's record set is all-or-
//! nothing: one bad batch refuses the whole set and writes nothing.

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::{errors, Broker};
use crate::config::Durability;
use crate::log::LogError;
use crate::protocol::codes;

fn partition_result(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = index;
    r.error_code = code;
    r.base_offset = -1;
    r.log_append_time_ms = -1;
    r.log_start_offset = -1;
    r.error_message = message.map(StrBytes::from_string);
    r
}

/// KIP-890 verification: a transactional batch is accepted only for a
/// partition in its producer's open transaction (AddPartitionsToTxn first),
/// so a late or stray write can never open a transaction that no marker
/// will end. `None` when the write may go ahead. Runs under the partition
/// lock (`Partition::append_verified`), atomically with the append.
fn unverified(
    b: &Broker,
    txn_id: Option<&str>,
    topic: &str,
    partition: i32,
    h: &crate::protocol::batch::BatchHeader,
) -> Option<i16> {
    if h.attributes & crate::protocol::batch::ATTR_TRANSACTIONAL == 0 {
        return None;
    }
    let Some(id) = txn_id else {
        return Some(codes::INVALID_TXN_STATE);
    };
    match b.txns.verify(
        id,
        h.producer_id,
        h.producer_epoch,
        &(topic.to_string(), partition),
    ) {
        codes::NONE => None,
        codes::PRODUCER_FENCED => Some(codes::INVALID_PRODUCER_EPOCH),
        _ => Some(codes::INVALID_TXN_STATE),
    }
}

/// Broker-side schema validation, for topics that turn it on.
fn validated(
    b: &Broker,
    topic: &str,
    records: &bytes::Bytes,
    cfg: &crate::log::config::LogConfig,
) -> Result<(), LogError> {
    if !crate::registry::validation::wanted(cfg) {
        return Ok(());
    }
    let ids = b.schemas.as_ref().map(|s| s.id_index());
    crate::registry::validation::check(ids.as_deref(), topic, records, cfg).map_err(|r| {
        LogError::InvalidRecords {
            message: r.message,
            indexes: r.record_indexes,
        }
    })
}

/// Appends every partition's records; the response may still wait for a sync.
pub fn handle(b: &Broker, req: ProduceRequest, version: i16) -> Produced {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let now = b.now_ms();
    let mut to_sync = Vec::new();
    // (topic index, partition index in response) of appends awaiting sync.
    let mut pending = Vec::new();
    let mut resp = ProduceResponse::default();
    let txn_id = req.transactional_id.as_ref().map(|t| t.to_string());
    let txn_id = txn_id.as_deref();
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name.clone();
        tr.topic_id = td.topic_id;
        let topic = b.log.topic(&td.name);
        // The topic's metric counters, looked up once per topic, on its first append.
        let mut counters = None;
        for pd in td.partition_data {
            let idx = pd.index;
            let result = if !valid_acks {
                partition_result(idx, codes::INVALID_REQUIRED_ACKS, None)
            } else if crate::coordinator::is_internal(td.name.as_str()) {
                partition_result(
                    idx,
                    codes::INVALID_TOPIC_EXCEPTION,
                    Some("cannot append to an internal topic".into()),
                )
            } else {
                match (
                    topic.as_ref(),
                    topic.as_ref().and_then(|t| t.partition(idx)),
                ) {
                    (Some(t), Some(p)) => match pd.records.as_ref() {
                        None => partition_result(
                            idx,
                            codes::CORRUPT_MESSAGE,
                            Some("null record set".into()),
                        ),
                        Some(records) => match validated(b, &td.name, records, &t.config())
                            .and_then(|()| {
                                p.append_verified(records, &t.config(), now, &|h| {
                                    unverified(b, txn_id, &td.name, idx, h)
                                })
                            }) {
                            Ok(a) => {
                                let m = counters.get_or_insert_with(|| b.metrics.topic(&td.name));
                                m.bytes_in
                                    .increment(u64::try_from(records.len()).unwrap_or(0));
                                m.records_in.increment(
                                    u64::try_from(
                                        a.last_offset
                                            .saturating_sub(a.base_offset)
                                            .saturating_add(1),
                                    )
                                    .unwrap_or(0),
                                );
                                let mut r = partition_result(idx, codes::NONE, None);
                                r.base_offset = a.base_offset;
                                r.log_append_time_ms = a.log_append_time_ms;
                                r.log_start_offset = a.log_start_offset;
                                if acks == -1 && b.settings.durability == Durability::Fsync {
                                    to_sync.extend(a.files);
                                    pending.push((ti, tr.partition_responses.len()));
                                }
                                r
                            }
                            Err(e) => {
                                tracing::debug!(topic = %td.name.0, partition = idx, error = %e, "produce refused");
                                let mut r = partition_result(
                                    idx,
                                    errors::log_error(&e),
                                    Some(e.to_string()),
                                );
                                if let (LogError::InvalidRecords { indexes, .. }, true) =
                                    (&e, version >= 8)
                                {
                                    r.record_errors = indexes
                                        .iter()
                                        .map(|i| {
                                            let mut be = BatchIndexAndErrorMessage::default();
                                            be.batch_index = *i;
                                            be.batch_index_error_message = (version >= 8)
                                                .then(|| StrBytes::from_string(e.to_string()));
                                            be
                                        })
                                        .collect();
                                }
                                r
                            }
                        },
                    },
                    _ => partition_result(idx, codes::UNKNOWN_TOPIC_OR_PARTITION, None),
                }
            };
            tr.partition_responses.push(result);
        }
        resp.responses.push(tr);
    }
    if acks == 0 {
        return Produced::Silent;
    }
    if to_sync.is_empty() {
        return Produced::Ready(resp);
    }
    Produced::AwaitSync {
        resp,
        wait: b.syncer.submit(to_sync),
        pending,
    }
}

/// A produce request after its appends.
pub enum Produced {
    /// acks=0: no response.
    Silent,
    Ready(ProduceResponse),
    /// acks=all in fsync durability: answer once the sync round completes.
    AwaitSync {
        resp: ProduceResponse,
        wait: oneshot::Receiver<Result<(), String>>,
        pending: Vec<(usize, usize)>,
    },
}

/// Completes a response once its data is synced. A failed sync turns every
/// waiting partition's result into KAFKA_STORAGE_ERROR: written but not
/// known durable, so the client must not count it as acknowledged.
pub async fn finish(
    mut resp: ProduceResponse,
    wait: oneshot::Receiver<Result<(), String>>,
    pending: Vec<(usize, usize)>,
) -> ProduceResponse {
    let result = wait
        .await
        .unwrap_or_else(|_| Err("syncer stopped".to_string()));
    if let Err(e) = result {
        tracing::error!(error = %e, "fsync failed");
        for (ti, pi) in pending {
            if let Some(r) = resp
                .responses
                .get_mut(ti)
                .and_then(|t| t.partition_responses.get_mut(pi))
            {
                *r = partition_result(r.index, codes::KAFKA_STORAGE_ERROR, Some(e.clone()));
            }
        }
    }
    resp
}
