//! The aborted-transaction index: one `<base offset>.txnindex` per segment,
//! listing the transactions whose abort marker lies in that segment.
//!
//! Entry layout (Kafka's `TransactionIndex`, 34 bytes, big-endian):
//! `i16 version=0 | i64 producer_id | i64 first_offset | i64 last_offset |
//! i64 last_stable_offset`. Entries are appended (and synced) when an abort
//! marker is written; a torn last entry is ignored on load. The files are
//! derived data: recovery re-adds the entries of any marker it rescans, and
//! drops entries past the recovered log end.
//!
//! Worked example: producer 7 writes offsets 40..44 in a transaction and
//! aborts; the marker lands at 45 in segment 0. `00..00.txnindex` gains
//! (7, 40, 45, 40) and a read_committed Fetch from offset 42 is told that
//! producer 7's records from 40 on are aborted.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::producer_state::AbortedTxn;

const ENTRY_LEN: usize = 34;

pub fn path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.txnindex"))
}

fn encode(t: &AbortedTxn) -> [u8; ENTRY_LEN] {
    let mut b = [0u8; ENTRY_LEN];
    let mut at = 2usize;
    for v in [
        t.producer_id,
        t.first_offset,
        t.last_offset,
        t.last_stable_offset,
    ] {
        if let Some(slot) = b.get_mut(at..at + 8) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
        at += 8;
    }
    b
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads a segment's entries; a missing file has none.
pub fn load(dir: &Path, base: i64) -> Vec<AbortedTxn> {
    let Ok(bytes) = std::fs::read(path(dir, base)) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(ENTRY_LEN)
        .filter_map(|c| {
            Some(AbortedTxn {
                producer_id: i64_at(c, 2)?,
                first_offset: i64_at(c, 10)?,
                last_offset: i64_at(c, 18)?,
                last_stable_offset: i64_at(c, 26)?,
            })
        })
        .collect()
}

/// Appends one entry to a segment's index and syncs it.
pub fn append(dir: &Path, base: i64, t: &AbortedTxn) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(dir, base))?;
    f.write_all(&encode(t))?;
    f.sync_data()
}

/// Replaces a segment's index with `entries` (recovery, after truncation).
pub fn rewrite(dir: &Path, base: i64, entries: &[AbortedTxn]) -> std::io::Result<()> {
    let p = path(dir, base);
    if entries.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(encode).collect();
    super::partition::write_atomic(&p, &bytes)
}

/// The aborted transactions a read of `[from, to)` must report: those whose
/// range overlaps it. `all` is sorted by `last_offset`.
pub fn overlapping(all: &[AbortedTxn], from: i64, to: i64) -> Vec<AbortedTxn> {
    let start = all.partition_point(|t| t.last_offset < from);
    all.iter()
        .skip(start)
        .filter(|t| t.first_offset < to)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let t = AbortedTxn {
            producer_id: 7,
            first_offset: 40,
            last_offset: 45,
            last_stable_offset: 40,
        };
        append(dir.path(), 0, &t).unwrap();
        append(
            dir.path(),
            0,
            &AbortedTxn {
                last_offset: 50,
                ..t
            },
        )
        .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path(dir.path(), 0))
            .unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let got = load(dir.path(), 0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], t);
        assert_eq!(overlapping(&got, 46, 100).len(), 1);
        assert_eq!(overlapping(&got, 0, 40).len(), 0);
        assert_eq!(overlapping(&got, 0, 41).len(), 2);
        rewrite(dir.path(), 0, &got[..1]).unwrap();
        assert_eq!(load(dir.path(), 0), vec![t]);
    }
}
