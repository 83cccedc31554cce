//! Kafka's segment file formats, read from downloaded bytes.
//!
//! The broker stores segments as Kafka does, so the remote tier reads them
//! with Kafka's layouts and needs nothing from the broker:
//!
//! ```text
//! <base>.log        v2 record batches: base_offset i64 | batch_length i32 | ...
//!                   | last_offset_delta i32 @23 | max_timestamp i64 @35 | ...
//! <base>.index      8 bytes per entry: relative_offset u32, position u32
//! <base>.timeindex 12 bytes per entry: max_timestamp i64, relative_offset u32
//! <base>.txnindex  34 bytes per entry: version i16, producer_id i64,
//!                   first_offset i64, last_offset i64, last_stable_offset i64
//! ```
//!
//! All integers are big-endian. Every reader here takes bytes that came
//! from a remote store and may be damaged: a short or absurd entry ends the
//! walk, nothing panics and nothing is allocated from a claimed length.

/// Bytes of a v2 batch header up to and including the records count.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batch_length` counts: base offset and the length itself.
const LOG_OVERHEAD: usize = 12;

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(i64::from_be_bytes(s.try_into().ok()?))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes(s.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

/// What the tier needs of one record batch's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    /// The whole batch's length in bytes, header included.
    pub len: usize,
}

/// The batch starting at `pos` of `log`, if a whole header is there. The
/// batch itself may extend past the end of `log` (`len` says how far).
pub fn batch_at(log: &[u8], pos: usize) -> Option<BatchInfo> {
    let h = log.get(pos..pos.checked_add(BATCH_HEADER_LEN)?)?;
    let base_offset = i64_at(h, 0)?;
    let batch_length = usize::try_from(i32_at(h, 8)?).ok()?;
    let len = batch_length.checked_add(LOG_OVERHEAD)?;
    if len < BATCH_HEADER_LEN {
        return None;
    }
    let delta = i64::from(i32_at(h, 23)?);
    Some(BatchInfo {
        base_offset,
        last_offset: base_offset.checked_add(delta)?,
        max_timestamp_ms: i64_at(h, 35)?,
        len,
    })
}

/// The length of the longest prefix of `log` made of whole batches.
pub fn whole_batches_len(log: &[u8]) -> usize {
    let mut pos = 0usize;
    while let Some(b) = batch_at(log, pos) {
        match pos.checked_add(b.len) {
            Some(end) if end <= log.len() => pos = end,
            _ => break,
        }
    }
    pos
}

/// The byte position an offset index points to for `target`: the entry
/// with the largest offset not above it, or 0 (the segment's start).
pub fn index_position(index: &[u8], base_offset: i64, target: i64) -> u32 {
    let Some(rel) = target.checked_sub(base_offset) else {
        return 0;
    };
    let entries = index.len() / 8;
    // Binary search over whole entries; a torn tail is ignored.
    let (mut lo, mut hi) = (0usize, entries);
    let mut best = 0u32;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at = mid * 8;
        let (Some(r), Some(p)) = (u32_at(index, at), u32_at(index, at + 4)) else {
            break;
        };
        if i64::from(r) <= rel {
            best = p;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    best
}

/// Where a search for the first batch with a timestamp of at least `ts`
/// may start: the offset of the last time index entry whose (running
/// maximum) timestamp is below `ts`, or the segment's base. Every batch
/// before that entry has smaller timestamps.
pub fn time_index_scan_start(timeindex: &[u8], base_offset: i64, ts: i64) -> i64 {
    let mut start = base_offset;
    let mut at = 0usize;
    while let (Some(t), Some(rel)) = (i64_at(timeindex, at), u32_at(timeindex, at + 8)) {
        if t >= ts {
            break;
        }
        start = base_offset.saturating_add(i64::from(rel));
        at += 12;
    }
    start
}

/// The last offset of the last whole batch of `log`.
pub fn last_offset_of(log: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut last = None;
    while let Some(b) = batch_at(log, pos) {
        match pos.checked_add(b.len) {
            Some(end) if end <= log.len() => {
                last = Some(b.last_offset);
                pos = end;
            }
            _ => break,
        }
    }
    last
}

/// One aborted transaction of a transaction index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// The entries of a transaction index; a torn last entry is ignored.
pub fn txn_index_entries(bytes: &[u8]) -> Vec<AbortedTxn> {
    bytes
        .chunks_exact(34)
        .filter_map(|e| {
            Some(AbortedTxn {
                producer_id: i64_at(e, 2)?,
                first_offset: i64_at(e, 10)?,
                last_offset: i64_at(e, 18)?,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A v2 batch header with `records` records and `payload` filler bytes
    /// (not valid records: the tier never decodes them).
    pub fn batch(base: i64, records: i32, max_ts: i64, payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_LEN + payload];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        let len = i32::try_from(BATCH_HEADER_LEN + payload - LOG_OVERHEAD).unwrap();
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
        b[27..35].copy_from_slice(&max_ts.to_be_bytes());
        b[35..43].copy_from_slice(&max_ts.to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    #[test]
    fn batches_are_walked_and_torn_tails_ignored() {
        let mut log = batch(100, 5, 1_000, 10);
        log.extend(batch(105, 1, 2_000, 0));
        let first = batch_at(&log, 0).unwrap();
        assert_eq!(
            first,
            BatchInfo {
                base_offset: 100,
                last_offset: 104,
                max_timestamp_ms: 1_000,
                len: 71
            }
        );
        assert_eq!(batch_at(&log, 71).unwrap().base_offset, 105);
        assert_eq!(whole_batches_len(&log), log.len());
        assert_eq!(whole_batches_len(&log[..log.len() - 1]), 71);
        assert_eq!(whole_batches_len(&log[..30]), 0);
        assert_eq!(last_offset_of(&log), Some(105));
        assert_eq!(last_offset_of(&log[..log.len() - 1]), Some(104));
        // A length below the header's is damage, not a batch.
        let mut bad = batch(0, 1, 0, 0);
        bad[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(batch_at(&bad, 0), None);
        bad[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(batch_at(&bad, 0), None);
    }

    #[test]
    fn indexes_are_searched_like_kafka() {
        let mut idx = Vec::new();
        for (rel, pos) in [(0u32, 0u32), (50, 4096), (100, 8200)] {
            idx.extend(rel.to_be_bytes());
            idx.extend(pos.to_be_bytes());
        }
        assert_eq!(index_position(&idx, 1000, 999), 0);
        assert_eq!(index_position(&idx, 1000, 1000), 0);
        assert_eq!(index_position(&idx, 1000, 1049), 0);
        assert_eq!(index_position(&idx, 1000, 1050), 4096);
        assert_eq!(index_position(&idx, 1000, 1500), 8200);
        assert_eq!(index_position(&idx[..20], 1000, 1500), 4096);
        assert_eq!(index_position(&[], 1000, 1500), 0);

        let mut ti = Vec::new();
        for (ts, rel) in [(10i64, 0u32), (20, 7), (35, 12)] {
            ti.extend(ts.to_be_bytes());
            ti.extend(rel.to_be_bytes());
        }
        assert_eq!(time_index_scan_start(&ti, 100, 5), 100);
        assert_eq!(time_index_scan_start(&ti, 100, 20), 100);
        assert_eq!(time_index_scan_start(&ti, 100, 21), 107);
        assert_eq!(time_index_scan_start(&ti, 100, 36), 112);
        assert_eq!(time_index_scan_start(&ti[..30], 100, 36), 107);
    }

    #[test]
    fn txn_index_entries_are_read() {
        let mut b = Vec::new();
        b.extend(0i16.to_be_bytes());
        for v in [7i64, 40, 45, 40] {
            b.extend(v.to_be_bytes());
        }
        b.extend([0u8; 20]); // torn
        assert_eq!(
            txn_index_entries(&b),
            vec![AbortedTxn {
                producer_id: 7,
                first_offset: 40,
                last_offset: 45
            }]
        );
    }
}
