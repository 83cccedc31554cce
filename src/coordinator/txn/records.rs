//! `__transaction_state` records, in Kafka's schemas
//! (`TransactionLogKey` v0, `TransactionLogValue` v0):
//!
//! ```text
//! key:   i16 version=0 | string transactional_id
//! value: i16 version=0 | i64 producer_id | i16 producer_epoch | i32 timeout_ms
//!        | i8 status | [ string topic | [ i32 partition ] ] (null when empty)
//!        | i64 last_update_ms | i64 start_ms
//! ```
//!
//! A tombstone (null value) removes an expired transactional id. Unlike
//! Kafka, a Complete* record keeps its partitions, so that recovery can
//! finish markers a crash interrupted (see `runtime`).

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::{TxnMeta, TxnStatus};
use crate::coordinator::records::{put_str, Reader, Record};

pub fn key(id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_str(&mut b, id);
    b.freeze()
}

pub fn value(m: &TxnMeta) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.status as i8);
    if m.partitions.is_empty() {
        b.put_i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &m.partitions {
            match topics.last_mut() {
                Some((name, ps)) if *name == t.as_str() => ps.push(*p),
                _ => topics.push((t.as_str(), vec![*p])),
            }
        }
        b.put_i32(i32::try_from(topics.len()).unwrap_or(i32::MAX));
        for (t, ps) in topics {
            put_str(&mut b, t);
            b.put_i32(i32::try_from(ps.len()).unwrap_or(i32::MAX));
            for p in ps {
                b.put_i32(p);
            }
        }
    }
    b.put_i64(m.update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

pub fn record(id: &str, m: Option<&TxnMeta>) -> Record {
    Record {
        key: key(id),
        value: m.map(value),
    }
}

pub fn decode_key(b: &[u8]) -> Option<String> {
    let mut r = Reader { b, pos: 0 };
    if r.i16()? != 0 {
        return None;
    }
    r.string()
}

/// Decodes a value; every count is checked against the bytes left, so a
/// damaged record cannot make us allocate what it claims.
pub fn decode_value(b: &[u8]) -> Option<TxnMeta> {
    let mut r = Reader { b, pos: 0 };
    if r.i16()? != 0 {
        return None;
    }
    let producer_id = r.i64()?;
    let epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = TxnStatus::from_i8(i8::from_be_bytes(r.take(1)?.try_into().ok()?))?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let t = r.string()?;
        let n = r.i32()?;
        if usize::try_from(n).ok()? > b.len() {
            return None;
        }
        for _ in 0..n {
            partitions.insert((t.clone(), r.i32()?));
        }
    }
    let update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Some(TxnMeta {
        producer_id,
        prev_producer_id: -1,
        epoch,
        last_epoch: -1,
        timeout_ms,
        status,
        partitions,
        start_ms,
        update_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let m = TxnMeta {
            producer_id: 42,
            prev_producer_id: -1,
            epoch: 3,
            last_epoch: -1,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 5,
            update_ms: 6,
        };
        let v = value(&m);
        assert_eq!(decode_value(&v), Some(m.clone()));
        assert_eq!(decode_key(&key("tx")), Some("tx".to_string()));
        for cut in 0..v.len() {
            assert!(decode_value(&v[..cut]).is_none());
        }
        let empty = TxnMeta {
            partitions: BTreeSet::new(),
            ..m
        };
        assert_eq!(decode_value(&value(&empty)), Some(empty));
    }
}
