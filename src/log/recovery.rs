//! Rebuilds a partition's producer state and aborted-transaction list at
//! open: the newest usable snapshot, then the batch headers after it.
//!
//! Snapshots (`<offset, 20 digits>.snapshot`) are written by the recovery
//! checkpoint after the data they describe is synced; the two newest are
//! kept. A snapshot past the recovered log end (its data was lost) or one
//! whose checksum fails is skipped. With no snapshot the scan starts at the
//! log start: that happens once, for a partition never checkpointed with
//! producers. Only headers are read, except one record of each control batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::partition::{write_atomic, TxnState};
use super::producer_state::{AbortedTxn, ProducerStates};
use super::segment::Segment;
use super::txn_index;
use crate::protocol::batch::{self, BatchHeader};

const KEEP_SNAPSHOTS: usize = 2;

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

/// Snapshot offsets present in `dir`, ascending.
fn snapshots(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name();
                name.to_str()?.strip_suffix(".snapshot")?.parse().ok()
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Writes a snapshot atomically and removes all but the newest two.
pub fn write_snapshot(dir: &Path, offset: i64, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(&snapshot_path(dir, offset), bytes)?;
    let all = snapshots(dir);
    for old in all.iter().take(all.len().saturating_sub(KEEP_SNAPSHOTS)) {
        let _ = std::fs::remove_file(snapshot_path(dir, *old));
    }
    Ok(())
}

/// Calls `f` for every batch from the one holding `from` to the end.
pub fn for_each_batch(segs: &[Arc<Segment>], from: i64, mut f: impl FnMut(&BatchHeader, &[u8])) {
    let first = segs
        .partition_point(|s| s.base_offset <= from)
        .saturating_sub(1);
    for seg in segs.iter().skip(first) {
        let Some(start) = seg.locate(from.max(seg.base_offset)) else {
            continue;
        };
        let Some(bytes) = seg.read(start.position, usize::MAX) else {
            continue;
        };
        let mut at = 0usize;
        while let Some(rest) = bytes.get(at..) {
            let Ok(h) = BatchHeader::parse(rest) else {
                break;
            };
            let Some(len) = h.total_len().ok().filter(|l| *l <= rest.len()) else {
                break;
            };
            if h.last_offset() >= from {
                f(&h, rest.get(..len).unwrap_or_default());
            }
            at += len;
        }
    }
}

/// Applies one batch to the state (a data batch or a marker).
fn apply(state: &mut TxnState, h: &BatchHeader, bytes: &[u8], known: &[AbortedTxn]) {
    if h.producer_id < 0 {
        return;
    }
    if !h.is_control() {
        state
            .producers
            .record(h, h.base_offset, h.last_offset(), h.max_timestamp);
        return;
    }
    let commit = match batch::control_type(bytes) {
        Some(0) => false,
        Some(1) => true,
        _ => return,
    };
    let aborted = state.producers.complete_txn(
        h.producer_id,
        h.producer_epoch,
        h.base_offset,
        commit,
        -1,
        h.max_timestamp,
    );
    if let Some(t) = aborted {
        let seen = known
            .iter()
            .any(|k| k.producer_id == t.producer_id && k.last_offset == t.last_offset);
        if !seen {
            state.aborted.push(t);
        }
    }
}

/// Rebuilds producer state and the aborted list for a partition whose log
/// ends at `end`. Writes index entries the scan found that were missing,
/// and drops entries past `end`.
pub fn rebuild(dir: &Path, segs: &[Arc<Segment>], log_start: i64, end: i64) -> TxnState {
    // Aborted entries from every segment's index, minus any past the end.
    let mut known: Vec<AbortedTxn> = Vec::new();
    for seg in segs {
        let entries = txn_index::load(dir, seg.base_offset);
        let keep: Vec<AbortedTxn> = entries
            .iter()
            .filter(|t| t.last_offset < end)
            .copied()
            .collect();
        if keep.len() != entries.len() {
            let _ = txn_index::rewrite(dir, seg.base_offset, &keep);
        }
        known.extend(keep);
    }
    known.sort_by_key(|t| t.last_offset);
    // The newest snapshot at or below the end that reads back.
    let mut state = TxnState::default();
    let mut from = log_start;
    for offset in snapshots(dir).into_iter().rev() {
        if offset > end {
            let _ = std::fs::remove_file(snapshot_path(dir, offset));
            continue;
        }
        let loaded = std::fs::read(snapshot_path(dir, offset))
            .ok()
            .and_then(|b| ProducerStates::from_snapshot(&b));
        if let Some((p, at)) = loaded.filter(|(_, at)| *at == offset) {
            state.producers = p;
            from = at;
            break;
        }
        tracing::warn!(dir = %dir.display(), offset, "ignoring unreadable producer snapshot");
    }
    if from < end {
        for_each_batch(segs, from, |h, bytes| apply(&mut state, h, bytes, &known));
    }
    // Persist entries the scan found that no index held.
    for t in &state.aborted {
        let base = segs
            .iter()
            .rev()
            .find(|s| s.base_offset <= t.last_offset)
            .map_or(0, |s| s.base_offset);
        if let Err(e) = txn_index::append(dir, base, t) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write transaction index");
        }
    }
    known.append(&mut state.aborted);
    known.sort_by_key(|t| t.last_offset);
    known.dedup_by_key(|t| (t.producer_id, t.last_offset));
    state.aborted = known;
    state.snapshot_offset = if from == end { end } else { -1 };
    state
}
