//! How coordinators talk to their internal partition: records become one
//! batch (optionally a producer's transactional batch), and replay walks
//! the partition from its start, one decoded batch at a time. Shared by
//! the group and transaction runtimes.

use bytes::{Buf, Bytes};

use super::records::Record;
use crate::log::partition::Partition;
use crate::protocol::batch::{self, BatchHeader};

/// Encodes records as one uncompressed batch stamped `now_ms`.
pub fn encode(recs: &[Record], now_ms: i64, producer: batch::build::Producer) -> Vec<u8> {
    let built: Vec<batch::build::Rec<'_>> = recs
        .iter()
        .map(|r| batch::build::Rec {
            key: Some(&r.key),
            value: r.value.as_deref(),
            timestamp_delta: 0,
        })
        .collect();
    batch::build::batch_with(now_ms, &built, producer)
}

/// One batch met during replay.
pub enum Replayed {
    /// A transaction marker: its producer and whether it commits.
    Marker { producer_id: i64, commit: bool },
    /// A data batch's records; `producer_id` is set for transactional ones.
    Records {
        transactional_producer: Option<i64>,
        records: Vec<Record>,
    },
    /// A batch that does not decode (skipped, counted).
    Undecodable,
}

/// Calls `f` with every batch of `part`, from its log start to its end.
pub fn replay(part: &Partition, mut f: impl FnMut(Replayed)) {
    let mut offset = part.log_start_offset();
    while offset < part.high_watermark() {
        let Ok(read) = part.read(offset, 8 << 20) else {
            break;
        };
        if read.records.is_empty() {
            break;
        }
        let mut rest: Bytes = read.records;
        while rest.len() >= batch::HEADER_LEN {
            let Ok(h) = BatchHeader::parse(&rest) else {
                break;
            };
            let Some(len) = h.total_len().ok().filter(|l| *l <= rest.len()) else {
                break;
            };
            let mut one = rest.split_to(len);
            offset = h.last_offset().saturating_add(1);
            f(decode(&h, &mut one, offset));
        }
    }
}

fn decode(h: &BatchHeader, one: &mut Bytes, next: i64) -> Replayed {
    if h.is_control() {
        return match batch::control_type(one) {
            Some(t @ (0 | 1)) => Replayed::Marker {
                producer_id: h.producer_id,
                commit: t == 1,
            },
            _ => Replayed::Undecodable,
        };
    }
    match kafka_protocol::records::RecordBatchDecoder::decode(one) {
        Ok(set) => Replayed::Records {
            transactional_producer: (h.attributes & batch::ATTR_TRANSACTIONAL != 0)
                .then_some(h.producer_id),
            records: set
                .records
                .into_iter()
                .filter_map(|r| {
                    Some(Record {
                        key: Bytes::copy_from_slice(r.key.as_ref()?.chunk()),
                        value: r.value.as_ref().map(|v| Bytes::copy_from_slice(v.chunk())),
                    })
                })
                .collect(),
        },
        Err(e) => {
            tracing::warn!(next, error = %e, "skipping an undecodable batch");
            Replayed::Undecodable
        }
    }
}
