//! Per-partition producer state: what makes idempotent produce exactly-once
//! and tells readers where transactions begin and end.
//!
//! For every producer id that wrote to the partition we keep its epoch, its
//! last sequence, the sequences and offsets of its last 5 batches (Kafka's
//! `max.in.flight.requests.per.connection` bound for idempotence, so a
//! retried batch is always found), and the first offset of its open
//! transaction. The open transactions' first offsets give the last stable
//! offset (LSO): the smallest of them, or the high watermark if none.
//!
//! A transaction marker empties the duplicate window but keeps the last
//! sequence. A batch of a transaction is never retried after its marker
//! (clients wait for every batch before EndTxn(commit); an abort gives up
//! on the ones left), yet librdkafka, after an abort purged a batch it sent
//! but never heard back about, sends its next transaction's first batch
//! with that batch's sequences. Taken for a duplicate, the new batch would
//! be acknowledged with the aborted batch's offsets and never written: its
//! transaction would commit with those records missing. Across a marker it
//! is an out-of-order sequence instead, which fails that transaction in
//! the client, as it should.
//!
//! The state lives under the partition lock, so a check and the append it
//! allows are atomic. It is rebuilt at start-up from the newest snapshot
//! (`<offset>.snapshot`, written at each recovery checkpoint) plus the batch
//! headers after it (`recovery`), never by reading the whole log.
//!
//! Snapshot layout (big-endian), checksummed so a torn file is ignored:
//!
//! ```text
//! "FJPS" u32 version=2 | i64 offset | u32 count
//! count × { i64 pid | i16 epoch | i64 last_timestamp_ms | i64 txn_first_offset (-1: none)
//!           | i32 coordinator_epoch | i32 last_seq (-1: none)
//!           | u8 n | n × { i32 first_seq | i32 last_seq | i64 first_offset | i64 last_offset } }
//! u32 CRC-32C of everything before it
//! ```
//!
//! Version 1 (written before markers emptied the window) has no `last_seq`;
//! it is read as its newest batch's.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::protocol::batch::{BatchHeader, ATTR_TRANSACTIONAL};

/// A producer id, as Kafka assigns it (InitProducerId).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerId(pub i64);

/// A producer epoch; bumped to fence older incarnations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerEpoch(pub i16);

/// The snapshot layout written (module docs); version 1 is still read.
const SNAPSHOT_VERSION: u32 = 2;

/// Batches remembered per producer for duplicate detection.
pub const CACHED_BATCHES: usize = 5;

/// One appended batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub epoch: i16,
    /// The last sequence appended at `epoch` (-1: none yet).
    pub last_seq: i32,
    /// The duplicate window: the last batches of the open transaction (or,
    /// for a producer without transactions, simply the last batches).
    pub batches: VecDeque<BatchMeta>,
    pub last_timestamp_ms: i64,
    /// First offset of the producer's open transaction here, if any.
    pub txn_first_offset: Option<i64>,
    pub coordinator_epoch: i32,
}

impl Entry {
    fn new(epoch: i16) -> Self {
        Self {
            epoch,
            last_seq: -1,
            batches: VecDeque::new(),
            last_timestamp_ms: -1,
            txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }
}

/// An aborted transaction's range, as Fetch reports it to read_committed
/// consumers (see `txn_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// Why a producer's batch is refused; `handlers::errors` maps these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {pid} epoch {got} is older than the current epoch {current}")]
    Fenced { pid: i64, got: i16, current: i16 },
    #[error("producer {pid}: out of order sequence {got} (expected {expected})")]
    OutOfOrder { pid: i64, got: i32, expected: i32 },
    #[error("producer {pid}: {why}")]
    InvalidTxnState { pid: i64, why: &'static str },
}

/// The result of checking a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Fresh,
    /// Already appended: answer with these offsets and write nothing.
    Duplicate(BatchMeta),
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

/// All producers of one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    map: HashMap<i64, Entry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Changed since the last snapshot.
    pub dirty: bool,
}

impl ProducerStates {
    pub fn get(&self, pid: i64) -> Option<&Entry> {
        self.map.get(&pid)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&i64, &Entry)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// First offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Checks a producer's batch against what was appended before (Kafka's
    /// `ProducerAppendInfo`): duplicates of the cached batches, fencing by
    /// epoch, and sequence continuity. A producer we do not know (new, or
    /// expired) may start at any sequence, as in Kafka since KIP-360.
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict, ProducerError> {
        let pid = h.producer_id;
        let transactional = h.attributes & ATTR_TRANSACTIONAL != 0;
        let Some(e) = self.map.get(&pid) else {
            return Ok(Verdict::Fresh);
        };
        if h.producer_epoch < e.epoch {
            return Err(ProducerError::Fenced {
                pid,
                got: h.producer_epoch,
                current: e.epoch,
            });
        }
        let last_seq = h.base_sequence.wrapping_add(h.last_offset_delta);
        if h.producer_epoch == e.epoch {
            if let Some(d) = e
                .batches
                .iter()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
            {
                return Ok(Verdict::Duplicate(*d));
            }
            let last = e.last_seq;
            if !in_sequence(last, h.base_sequence) {
                return Err(ProducerError::OutOfOrder {
                    pid,
                    got: h.base_sequence,
                    expected: last.wrapping_add(1),
                });
            }
        } else if h.base_sequence != 0 && e.epoch >= 0 {
            return Err(ProducerError::OutOfOrder {
                pid,
                got: h.base_sequence,
                expected: 0,
            });
        }
        if !transactional && e.txn_first_offset.is_some() {
            return Err(ProducerError::InvalidTxnState {
                pid,
                why: "non-transactional write during an open transaction",
            });
        }
        Ok(Verdict::Fresh)
    }

    /// Records an appended data batch (also used when replaying the log).
    pub fn record(&mut self, h: &BatchHeader, first_offset: i64, last_offset: i64, ts_ms: i64) {
        let pid = h.producer_id;
        if pid < 0 {
            return;
        }
        let e = self
            .map
            .entry(pid)
            .or_insert_with(|| Entry::new(h.producer_epoch));
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.last_seq = -1;
            e.batches.clear();
        }
        if h.base_sequence >= 0 {
            e.last_seq = h.base_sequence.wrapping_add(h.last_offset_delta);
            e.batches.push_back(BatchMeta {
                first_seq: h.base_sequence,
                last_seq: e.last_seq,
                first_offset,
                last_offset,
            });
            while e.batches.len() > CACHED_BATCHES {
                e.batches.pop_front();
            }
        }
        e.last_timestamp_ms = e.last_timestamp_ms.max(ts_ms);
        if h.attributes & ATTR_TRANSACTIONAL != 0 && e.txn_first_offset.is_none() {
            e.txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, pid);
        }
        self.dirty = true;
    }

    /// Checks a transaction marker's epoch: a marker from an older epoch
    /// than the producer's is refused.
    pub fn check_marker(&self, pid: i64, epoch: i16) -> Result<(), ProducerError> {
        match self.map.get(&pid) {
            Some(e) if epoch < e.epoch => Err(ProducerError::Fenced {
                pid,
                got: epoch,
                current: e.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Whether `pid` has an open transaction here.
    pub fn has_open_txn(&self, pid: i64) -> bool {
        self.map
            .get(&pid)
            .is_some_and(|e| e.txn_first_offset.is_some())
    }

    /// Applies a commit or abort marker at `marker_offset`. Returns the
    /// aborted range if this ended an open transaction with an abort.
    pub fn complete_txn(
        &mut self,
        pid: i64,
        epoch: i16,
        marker_offset: i64,
        commit: bool,
        coordinator_epoch: i32,
        ts_ms: i64,
    ) -> Option<AbortedTxn> {
        let e = self.map.entry(pid).or_insert_with(|| Entry::new(epoch));
        if epoch > e.epoch {
            e.epoch = epoch;
            e.last_seq = -1;
        }
        // The transaction's batches leave the duplicate window (module docs).
        e.batches.clear();
        e.coordinator_epoch = coordinator_epoch;
        e.last_timestamp_ms = e.last_timestamp_ms.max(ts_ms);
        let first = e.txn_first_offset.take();
        self.dirty = true;
        let first = first?;
        self.ongoing.remove(&first);
        (!commit).then(|| AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: marker_offset,
            last_stable_offset: self
                .first_unstable_offset()
                .unwrap_or(marker_offset.saturating_add(1)),
        })
    }

    /// Forgets producers idle for longer than `expiration_ms` with no open
    /// transaction (`producer.id.expiration.ms`). Returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| {
            e.txn_first_offset.is_some()
                || e.last_timestamp_ms < 0
                || now_ms.saturating_sub(e.last_timestamp_ms) <= expiration_ms
        });
        let n = before - self.map.len();
        if n > 0 {
            self.dirty = true;
        }
        n
    }

    /// Serialises the state as of `offset` (see the module docs).
    pub fn to_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut b = Vec::with_capacity(20 + self.map.len() * 64);
        b.extend_from_slice(b"FJPS");
        b.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(
            &u32::try_from(self.map.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        let mut pids: Vec<&i64> = self.map.keys().collect();
        pids.sort_unstable();
        for pid in pids {
            let Some(e) = self.map.get(pid) else { continue };
            b.extend_from_slice(&pid.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.extend_from_slice(&e.last_timestamp_ms.to_be_bytes());
            b.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            b.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            b.extend_from_slice(&e.last_seq.to_be_bytes());
            b.push(u8::try_from(e.batches.len()).unwrap_or(u8::MAX));
            for m in &e.batches {
                b.extend_from_slice(&m.first_seq.to_be_bytes());
                b.extend_from_slice(&m.last_seq.to_be_bytes());
                b.extend_from_slice(&m.first_offset.to_be_bytes());
                b.extend_from_slice(&m.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Reads a snapshot; `None` if it is torn, corrupt or not ours.
    /// Returns the state and the offset it describes.
    pub fn from_snapshot(bytes: &[u8]) -> Option<(Self, i64)> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader { b: body, at: 0 };
        if r.take(4)? != b"FJPS" {
            return None;
        }
        let version = r.u32()?;
        if version != 1 && version != SNAPSHOT_VERSION {
            return None;
        }
        let offset = r.i64()?;
        let count = r.u32()?;
        let mut s = Self::default();
        for _ in 0..count {
            let pid = r.i64()?;
            let mut e = Entry::new(r.i16()?);
            e.last_timestamp_ms = r.i64()?;
            let first = r.i64()?;
            e.coordinator_epoch = r.i32()?;
            let last_seq = if version >= 2 { Some(r.i32()?) } else { None };
            let n = r.u8()?;
            for _ in 0..n {
                e.batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            e.last_seq = last_seq.unwrap_or_else(|| e.batches.back().map_or(-1, |b| b.last_seq));
            if first >= 0 {
                e.txn_first_offset = Some(first);
                s.ongoing.insert(first, pid);
            }
            s.map.insert(pid, e);
        }
        (r.at == body.len()).then_some((s, offset))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, n: i32, txn: bool) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: if txn { ATTR_TRANSACTIONAL } else { 0 },
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, 0, 3, false);
        assert_eq!(s.check(&h), Ok(Verdict::Fresh));
        s.record(&h, 10, 12, 1);
        // The same batch again is a duplicate with its original offsets.
        assert!(matches!(s.check(&h), Ok(Verdict::Duplicate(m)) if m.first_offset == 10));
        // A gap.
        assert!(matches!(
            s.check(&header(7, 0, 5, 1, false)),
            Err(ProducerError::OutOfOrder { expected: 3, .. })
        ));
        assert_eq!(s.check(&header(7, 0, 3, 1, false)), Ok(Verdict::Fresh));
        // An older epoch is fenced; a newer one must start at 0.
        s.record(&header(7, 2, 0, 1, false), 13, 13, 2);
        assert!(matches!(
            s.check(&header(7, 1, 1, 1, false)),
            Err(ProducerError::Fenced { .. })
        ));
        assert!(s.check(&header(7, 3, 4, 1, false)).is_err());
        assert_eq!(s.check(&header(7, 3, 0, 1, false)), Ok(Verdict::Fresh));
        // Unknown producers may start anywhere.
        assert_eq!(s.check(&header(8, 0, 42, 1, false)), Ok(Verdict::Fresh));
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1, false), i64::from(i), i64::from(i), 0);
        }
        assert_eq!(s.get(1).map(|e| e.batches.len()), Some(CACHED_BATCHES));
        assert!(s.check(&header(1, 0, 0, 1, false)).is_err());
        assert!(matches!(
            s.check(&header(1, 0, 6, 1, false)),
            Ok(Verdict::Duplicate(_))
        ));
    }

    #[test]
    fn transactions_move_the_lso_and_snapshots_round_trip() {
        let mut s = ProducerStates::default();
        s.record(&header(1, 0, 0, 2, true), 5, 6, 0);
        s.record(&header(2, 0, 0, 1, true), 7, 7, 0);
        assert_eq!(s.first_unstable_offset(), Some(5));
        // Non-transactional writes during a transaction are refused.
        assert!(s.check(&header(1, 0, 2, 1, false)).is_err());
        let snap = s.to_snapshot(8);
        let (back, offset) = ProducerStates::from_snapshot(&snap).unwrap();
        assert_eq!(offset, 8);
        assert_eq!(back.first_unstable_offset(), Some(5));
        assert_eq!(back.get(1), s.get(1));
        let aborted = s.complete_txn(1, 0, 8, false, 0, 0).unwrap();
        assert_eq!((aborted.first_offset, aborted.last_offset), (5, 8));
        assert_eq!(s.first_unstable_offset(), Some(7));
        assert_eq!(s.complete_txn(2, 0, 9, true, 0, 0), None);
        assert_eq!(s.first_unstable_offset(), None);
        // A torn snapshot is refused.
        assert!(ProducerStates::from_snapshot(&snap[..snap.len() - 1]).is_none());
        let mut bad = snap.clone();
        bad[20] ^= 1;
        assert!(ProducerStates::from_snapshot(&bad).is_none());
    }

    #[test]
    fn a_marker_ends_the_duplicate_window() {
        // A transaction's batch, then its abort marker: a later batch with
        // the same sequences (librdkafka after purging it) is out of order,
        // never answered with the aborted batch's offsets.
        let mut s = ProducerStates::default();
        s.record(&header(1, 0, 0, 10, true), 0, 9, 0);
        assert!(matches!(
            s.check(&header(1, 0, 0, 10, true)),
            Ok(Verdict::Duplicate(_))
        ));
        assert!(s.complete_txn(1, 0, 10, false, 0, 0).is_some());
        assert_eq!(
            s.check(&header(1, 0, 0, 10, true)),
            Err(ProducerError::OutOfOrder {
                pid: 1,
                got: 0,
                expected: 10
            })
        );
        // The sequence goes on from the last one appended, across the
        // marker and a snapshot of the state.
        assert_eq!(s.check(&header(1, 0, 10, 10, true)), Ok(Verdict::Fresh));
        let (back, _) = ProducerStates::from_snapshot(&s.to_snapshot(11)).unwrap();
        assert_eq!(back.get(1), s.get(1));
        assert_eq!(back.get(1).map(|e| e.last_seq), Some(9));
        assert_eq!(back.check(&header(1, 0, 10, 10, true)), Ok(Verdict::Fresh));
        assert!(back.check(&header(1, 0, 0, 10, true)).is_err());
    }

    #[test]
    fn version_1_snapshots_still_load() {
        // pid 4, epoch 2, one cached batch with sequences 5..=7, no transaction.
        let mut b = b"FJPS".to_vec();
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&30i64.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&4i64.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(&100i64.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(1);
        for v in [5i32, 7] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for v in [20i64, 22] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        let (s, offset) = ProducerStates::from_snapshot(&b).unwrap();
        assert_eq!(offset, 30);
        assert_eq!(s.get(4).map(|e| e.last_seq), Some(7));
        assert!(matches!(
            s.check(&header(4, 2, 5, 3, false)),
            Ok(Verdict::Duplicate(m)) if m.first_offset == 20
        ));
        assert_eq!(s.check(&header(4, 2, 8, 1, false)), Ok(Verdict::Fresh));
        // An unknown version is refused.
        let mut v9 = b.clone();
        v9[7] = 9;
        let n = v9.len() - 4;
        let crc = crc32c::crc32c(&v9[..n]);
        v9[n..].copy_from_slice(&crc.to_be_bytes());
        assert!(ProducerStates::from_snapshot(&v9).is_none());
    }

    #[test]
    fn expiry_keeps_open_transactions() {
        let mut s = ProducerStates::default();
        s.record(&header(1, 0, 0, 1, false), 0, 0, 100);
        s.record(&header(2, 0, 0, 1, true), 1, 1, 100);
        assert_eq!(s.expire(10_000, 1000), 1);
        assert!(s.get(1).is_none() && s.get(2).is_some());
    }
}
