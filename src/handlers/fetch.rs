//! Fetch: serve whole batches from memory-mapped segments, long-polling
//! until `min_bytes` are available or `max_wait_ms` passes.
//!
//! The response is answered as soon as `min_bytes` is met; it never parks
//! when data is there. Waiting uses each partition's high-watermark watch,
//! so an append wakes exactly the fetches that read its partition.
//!
//! Offsets below a tiered partition's local log start are read from the
//! remote tier once, before the wait loop (remote data never changes).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{errors, Broker};
use crate::log::Partition;
use crate::protocol::codes;

/// Longest a fetch may wait, whatever the client asks (bounds held state).
const MAX_WAIT_MS: u64 = 300_000;

struct Slot {
    topic: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    target: Result<Arc<Partition>, i16>,
}

pub async fn handle(b: &Broker, req: FetchRequest, version: i16) -> FetchResponse {
    let mut resp = FetchResponse::default();
    let mut slots = Vec::new();
    for (ti, ft) in req.topics.iter().enumerate() {
        let topic = if version >= 13 {
            b.log.topic_by_id(ft.topic_id)
        } else {
            b.log.topic(&ft.topic)
        };
        let mut tr = FetchableTopicResponse::default();
        tr.topic = match &topic {
            Some(t) if version >= 13 => TopicName(t.name.clone().into()),
            _ => ft.topic.clone(),
        };
        tr.topic_id = ft.topic_id;
        resp.responses.push(tr);
        let missing = if version >= 13 {
            codes::UNKNOWN_TOPIC_ID
        } else {
            codes::UNKNOWN_TOPIC_OR_PARTITION
        };
        for fp in &ft.partitions {
            let target = match topic.as_ref().map(|t| t.partition(fp.partition)) {
                None => Err(missing),
                Some(None) => Err(codes::UNKNOWN_TOPIC_OR_PARTITION),
                Some(Some(p)) => {
                    match errors::leader_epoch_error(fp.current_leader_epoch, p.leader_epoch()) {
                        Some(code) => Err(code),
                        None => Ok(p),
                    }
                }
            };
            slots.push(Slot {
                topic: ti,
                partition: fp.partition,
                fetch_offset: fp.fetch_offset,
                max_bytes: usize::try_from(fp.partition_max_bytes).unwrap_or(0),
                target,
            });
        }
    }
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0).min(MAX_WAIT_MS));
    let deadline = Instant::now() + wait;
    let mut watches: Vec<watch::Receiver<i64>> = slots
        .iter()
        .filter_map(|s| s.target.as_ref().ok().map(|p| p.subscribe()))
        .collect();
    let read_committed = req.isolation_level == 1;
    let remote = read_remote(b, &slots, max_bytes, read_committed).await;
    if slots.is_empty() {
        // Nothing to read: wait max_wait_ms as Kafka does, so a client
        // polling with empty fetches does not spin.
        tokio::time::sleep_until(deadline).await;
        return resp;
    }
    loop {
        for w in watches.iter_mut() {
            w.borrow_and_update();
        }
        let (parts, total, any_error) = read_all(&slots, &remote, max_bytes, read_committed);
        let now = Instant::now();
        if total >= min_bytes || any_error || now >= deadline || watches.is_empty() {
            for (slot, pd) in slots.iter().zip(parts) {
                if let Some(t) = resp.responses.get_mut(slot.topic) {
                    t.partitions.push(pd);
                }
            }
            count_out(b, &resp);
            return resp;
        }
        let changed =
            futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline: loop once more to read and answer.
            continue;
        }
    }
}

/// Bytes and records served, per topic, for the metrics (batch headers
/// only: nothing is decompressed).
fn count_out(b: &Broker, resp: &FetchResponse) {
    for t in &resp.responses {
        let (bytes, records) = t.partitions.iter().filter_map(|p| p.records.as_ref()).fold(
            (0u64, 0u64),
            |(n, r), recs| {
                (
                    n + u64::try_from(recs.len()).unwrap_or(0),
                    r + crate::protocol::batch::count_records(recs),
                )
            },
        );
        if bytes > 0 {
            let m = b.metrics.topic(t.topic.as_str());
            m.bytes_out.increment(bytes);
            m.records_out.increment(records);
        }
    }
}

fn aborted_list(aborted: &[(i64, i64)]) -> Vec<AbortedTransaction> {
    aborted
        .iter()
        .map(|&(pid, first)| {
            let mut a = AbortedTransaction::default();
            a.producer_id = ProducerId(pid);
            a.first_offset = first;
            a
        })
        .collect()
}

/// Reads the slots whose offset lies in the remote tier (one read each;
/// `None` for the others).
async fn read_remote(
    b: &Broker,
    slots: &[Slot],
    max_bytes: usize,
    read_committed: bool,
) -> Vec<Option<PartitionData>> {
    if b.tier.is_none() {
        // No tier: nothing to read remotely, and nothing allocated.
        return Vec::new();
    }
    let mut out = Vec::with_capacity(slots.len());
    let mut total = 0usize;
    for s in slots {
        let (Some(tier), Ok(p)) = (b.tier.as_ref(), s.target.as_ref()) else {
            out.push(None);
            continue;
        };
        if !crate::tier::read::is_remote_offset(p, s.fetch_offset) {
            out.push(None);
            continue;
        }
        let budget = s.max_bytes.min(max_bytes.saturating_sub(total)).max(1);
        let mut pd = PartitionData::default();
        pd.partition_index = s.partition;
        pd.preferred_read_replica = BrokerId(-1);
        pd.high_watermark = p.high_watermark();
        pd.last_stable_offset = p.last_stable_offset();
        pd.log_start_offset = p.log_start_offset();
        pd.records = Some(Bytes::new());
        pd.aborted_transactions = read_committed.then(Vec::new);
        match crate::tier::read::read(tier, &b.log, p, s.fetch_offset, budget).await {
            crate::tier::read::Remote::Records(r) => {
                total += r.records.len();
                if read_committed {
                    let list: Vec<(i64, i64)> = r
                        .aborted
                        .iter()
                        .map(|t| (t.producer_id, t.first_offset))
                        .collect();
                    pd.aborted_transactions = Some(aborted_list(&list));
                }
                pd.records = Some(r.records);
            }
            crate::tier::read::Remote::Nothing => pd.error_code = codes::OFFSET_OUT_OF_RANGE,
            crate::tier::read::Remote::Unavailable(why) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %why, "remote read failed");
                pd.error_code = codes::KAFKA_STORAGE_ERROR;
            }
        }
        out.push(Some(pd));
    }
    out
}

/// Reads every slot once. Returns partition data, total record bytes, and
/// whether any partition has an error (errors are answered at once).
fn read_all(
    slots: &[Slot],
    remote: &[Option<PartitionData>],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        if let Some(Some(pd)) = remote.get(i) {
            total += pd.records.as_ref().map_or(0, Bytes::len);
            any_error |= pd.error_code != codes::NONE;
            out.push(pd.clone());
            continue;
        }
        let mut pd = PartitionData::default();
        pd.partition_index = s.partition;
        pd.preferred_read_replica = BrokerId(-1);
        pd.records = Some(Bytes::new());
        pd.aborted_transactions = read_committed.then(Vec::new);
        match &s.target {
            Err(code) => {
                pd.error_code = *code;
                pd.high_watermark = -1;
                pd.last_stable_offset = -1;
                pd.log_start_offset = -1;
                any_error = true;
            }
            Ok(p) => {
                // KIP-74: the first batch of the response is returned whole
                // even past max_bytes, so a big batch can never stall a consumer.
                let budget = if total == 0 {
                    s.max_bytes.min(max_bytes).max(1)
                } else {
                    s.max_bytes.min(max_bytes.saturating_sub(total))
                };
                if budget == 0 {
                    pd.high_watermark = p.high_watermark();
                    pd.last_stable_offset = p.last_stable_offset();
                    pd.log_start_offset = p.log_start_offset();
                } else {
                    match p.read_isolated(s.fetch_offset, budget, read_committed) {
                        Ok(r) => {
                            total += r.records.len();
                            pd.high_watermark = r.high_watermark;
                            pd.last_stable_offset = r.last_stable_offset;
                            pd.log_start_offset = r.log_start_offset;
                            pd.records = Some(r.records);
                            if read_committed {
                                pd.aborted_transactions = Some(
                                    r.aborted
                                        .iter()
                                        .map(|t| {
                                            let mut a = AbortedTransaction::default();
                                            a.producer_id = ProducerId(t.producer_id);
                                            a.first_offset = t.first_offset;
                                            a
                                        })
                                        .collect(),
                                );
                            }
                        }
                        Err(e) => {
                            pd.error_code = errors::log_error(&e);
                            pd.high_watermark = p.high_watermark();
                            pd.last_stable_offset = p.last_stable_offset();
                            pd.log_start_offset = p.log_start_offset();
                            any_error = true;
                        }
                    }
                }
            }
        }
        out.push(pd);
    }
    (out, total, any_error)
}

/// The record sets worth splicing, in the order the encoder writes them
/// (the splice buffer copies anything shorter than its threshold).
pub fn records_in_order(resp: &FetchResponse) -> Vec<Bytes> {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter().filter_map(|p| p.records.clone()))
        .filter(|r| r.len() >= crate::protocol::splice::SPLICE_MIN)
        .collect()
}
