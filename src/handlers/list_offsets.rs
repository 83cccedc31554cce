//! ListOffsets: earliest, latest, by timestamp, and max timestamp.
//!
//! By-timestamp lookups find the batch through the time index, then decode
//! that one batch to return the exact first record at or after the time, as
//! Kafka does. This is the only place the broker decodes records.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::{errors, Broker};
use crate::log::Partition;
use crate::protocol::codes;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// (offset, timestamp) of the first record with timestamp >= `ts`, in the
/// remote tier first (it holds the older data), then locally.
async fn offset_for_time(b: &Broker, p: &Partition, ts: i64) -> Option<(i64, i64)> {
    let remote = match &b.tier {
        Some(tier) => crate::tier::read::batch_for_time(tier, &b.log, p, ts)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e,
                    "remote time lookup failed; answering from local data");
                None
            }),
        None => None,
    };
    let mut bytes = remote.or_else(|| p.batch_for_time(ts))?;
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp))
}

/// (offset, timestamp) of the record with the largest timestamp (first if tied).
fn max_timestamp(p: &Partition) -> Option<(i64, i64)> {
    let mut bytes = p.batch_with_max_timestamp()?;
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    let mut best: Option<(i64, i64)> = None;
    for r in &set.records {
        if best.is_none_or(|(_, t)| r.timestamp > t) {
            best = Some((r.offset, r.timestamp));
        }
    }
    best
}

pub async fn handle(b: &Broker, mut req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for t in std::mem::take(&mut req.topics) {
        let topic = b.log.topic(&t.name);
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for rp in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = rp.partition_index;
            r.timestamp = -1;
            r.offset = -1;
            r.leader_epoch = -1;
            match topic.as_ref().and_then(|t| t.partition(rp.partition_index)) {
                None => r.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(p) => {
                    let epoch = p.leader_epoch();
                    if let Some(code) = errors::leader_epoch_error(rp.current_leader_epoch, epoch) {
                        r.error_code = code;
                    } else {
                        if version >= 4 {
                            r.leader_epoch = epoch;
                        }
                        let found = match rp.timestamp {
                            LATEST if req.isolation_level == 1 => {
                                Some((p.last_stable_offset(), -1))
                            }
                            LATEST => Some((p.high_watermark(), -1)),
                            EARLIEST => Some((p.log_start_offset(), -1)),
                            EARLIEST_LOCAL => Some((p.local_log_start(), -1)),
                            MAX_TIMESTAMP => max_timestamp(&p),
                            LATEST_TIERED => match &b.tier {
                                Some(tier) => Some((
                                    crate::tier::read::latest_tiered(tier, &b.log, &p)
                                        .await
                                        .unwrap_or(-1),
                                    -1,
                                )),
                                None => Some((-1, -1)),
                            },
                            ts if ts >= 0 => offset_for_time(b, &p, ts).await,
                            _ => {
                                r.error_code = codes::INVALID_REQUEST;
                                None
                            }
                        };
                        if let Some((offset, ts)) = found {
                            r.offset = offset;
                            r.timestamp = ts;
                        }
                    }
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}
