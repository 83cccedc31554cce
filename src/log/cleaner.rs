//! Log compaction (`cleanup.policy=compact`): keep the latest record of
//! each key, drop tombstones `delete.retention.ms` after they were written.
//!
//! Only sealed segments are cleaned, and only those older than
//! `min.compaction.lag.ms`; a partition is cleaned when the part written
//! since its last cleaning (the dirty part) is at least
//! `min.cleanable.dirty.ratio` of the cleanable log. Offsets never change:
//! a rewritten batch keeps its base offset and its records' bytes.
//!
//! Crash safety: a cleaned segment is written to `<base>.log.cleaned` and
//! synced; then, under the partition lock, the segment's index files are
//! removed and the cleaned file is renamed over the original (atomic);
//! then the indexes are rebuilt. A crash before the rename leaves the
//! original plus a `.cleaned` file that start-up deletes; after it, the
//! cleaned file with no index, which lookups scan and the next open
//! rebuilds. Either way the log reads the same records.
//!
//! Transactions: only segments wholly below the last stable offset are
//! cleaned, so an undecided transaction is never touched. Records of
//! aborted transactions neither shadow older values in the key map nor
//! survive cleaning. A marker (control batch) is dropped, as in Kafka, only
//! once no record of its transaction remains and it is older than
//! `delete.retention.ms`, so a consumer that read the data also sees it.
//! Cleaning always starts at the first segment, so every record of a
//! transaction is seen before its marker.
//!
//! Memory: the key map holds 24 bytes per distinct key (a 128-bit hash and
//! an offset), at most `max_keys` of them; a partition with more keys is
//! cleaned a prefix of segments at a time.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Arc;

use super::config::LogConfig;
use super::partition::{sync_dir, write_atomic, Partition};
use super::segment::{log_path, OpenOpts, Segment};
use crate::protocol::batch::{BatchHeader, ATTR_TRANSACTIONAL};
use crate::protocol::compact::{self, Filtered};

/// Suffix of a cleaned segment not yet swapped in.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Per partition: the first offset not yet cleaned.
const CHECKPOINT_FILE: &str = "cleaner-offset";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    pub partitions: u64,
    pub segments: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
}

impl CleanStats {
    pub fn add(&mut self, o: &CleanStats) {
        self.partitions += o.partitions;
        self.segments += o.segments;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.records_removed += o.records_removed;
    }
}

fn key_hash(key: &[u8]) -> u128 {
    let mut a = std::hash::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    0xA5u8.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Calls `f` with each whole batch of a segment.
fn for_each_batch(seg: &Segment, mut f: impl FnMut(&[u8], &BatchHeader)) {
    let Some(bytes) = seg.read(0, usize::MAX) else {
        return;
    };
    let mut pos = 0usize;
    while let Some(rest) = bytes.get(pos..) {
        let Ok(h) = BatchHeader::parse(rest) else {
            break;
        };
        let Some(len) = h.total_len().ok().filter(|l| *l <= rest.len() && *l > 0) else {
            break;
        };
        if let Some(b) = rest.get(..len) {
            f(b, &h);
        }
        pos += len;
    }
}

fn read_checkpoint(p: &Partition) -> i64 {
    std::fs::read_to_string(p.dir.join(CHECKPOINT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Cleans one partition if it is due. Blocking: call from a blocking thread.
pub fn clean(
    p: &Partition,
    cfg: &LogConfig,
    now_ms: i64,
    max_keys: usize,
) -> std::io::Result<CleanStats> {
    let mut stats = CleanStats::default();
    let segs = p.segments();
    let sealed = segs.len().saturating_sub(1);
    let horizon = now_ms.saturating_sub(cfg.min_compaction_lag_ms);
    let lso = p.last_stable_offset();
    let cleanable: Vec<Arc<Segment>> = segs
        .iter()
        .take(sealed)
        .take_while(|s| cfg.min_compaction_lag_ms == 0 || s.max_timestamp() <= horizon)
        .take_while(|s| s.next_offset() <= lso)
        .cloned()
        .collect();
    let aborted = p.aborted_txns();
    let is_aborted = |h: &BatchHeader| {
        h.attributes & ATTR_TRANSACTIONAL != 0
            && aborted.iter().any(|t| {
                t.producer_id == h.producer_id
                    && t.first_offset <= h.base_offset
                    && h.base_offset < t.last_offset
            })
    };
    let first_dirty = read_checkpoint(p);
    let size = |s: &Arc<Segment>| u64::try_from(s.committed_len()).unwrap_or(u64::MAX);
    let total: u64 = cleanable.iter().map(size).sum();
    let dirty: u64 = cleanable
        .iter()
        .filter(|s| s.next_offset() > first_dirty)
        .map(size)
        .sum();
    if total == 0
        || dirty == 0
        || dirty.saturating_mul(1000)
            < total.saturating_mul(u64::from(cfg.min_cleanable_dirty_permille))
    {
        return Ok(stats);
    }
    // The latest offset of every key, over as many segments as fit.
    let mut latest: HashMap<u128, i64> = HashMap::new();
    let mut mapped = Vec::new();
    for seg in &cleanable {
        for_each_batch(seg, |b, h| {
            if h.is_control() || is_aborted(h) {
                return;
            }
            let Ok(section) = compact::records_section(b) else {
                return;
            };
            let Ok(records) = compact::walk(&section) else {
                return;
            };
            for r in records {
                if let Some(k) = r.key {
                    latest.insert(key_hash(k), h.base_offset.saturating_add(r.offset_delta));
                }
            }
        });
        mapped.push(seg.clone());
        if latest.len() >= max_keys {
            break;
        }
    }
    let tombstone_horizon = now_ms.saturating_sub(cfg.delete_retention_ms);
    // Producers whose current transaction still has records kept.
    let mut retained: std::collections::HashSet<i64> = std::collections::HashSet::new();
    for seg in &mapped {
        let mut out = Vec::with_capacity(seg.committed_len());
        let mut removed = 0u64;
        let mut changed = false;
        for_each_batch(seg, |b, h| {
            if h.is_control() {
                let had_data = retained.remove(&h.producer_id);
                if had_data || h.max_timestamp >= tombstone_horizon {
                    out.extend_from_slice(b);
                } else {
                    removed += 1;
                    changed = true;
                }
                return;
            }
            if is_aborted(h) {
                removed += u64::try_from(h.records_count).unwrap_or(0);
                changed = true;
                return;
            }
            let expired_tombstones = h.max_timestamp < tombstone_horizon;
            let filtered = compact::filter(b, |offset, r| {
                let keep = match r.key {
                    None => true,
                    Some(k) => {
                        latest.get(&key_hash(k)).is_none_or(|l| *l == offset)
                            && !(r.tombstone && expired_tombstones)
                    }
                };
                if !keep {
                    removed += 1;
                }
                keep
            });
            let transactional = h.attributes & ATTR_TRANSACTIONAL != 0;
            match filtered {
                Ok(Filtered::Empty) => changed = true,
                Ok(Filtered::Unchanged) | Err(_) => {
                    if transactional {
                        retained.insert(h.producer_id);
                    }
                    out.extend_from_slice(b)
                }
                Ok(Filtered::Rewritten(nb)) => {
                    if transactional {
                        retained.insert(h.producer_id);
                    }
                    changed = true;
                    out.extend_from_slice(&nb);
                }
            }
        });
        stats.bytes_read += size(seg);
        if !changed {
            continue;
        }
        if swap(p, seg, &out, cfg, now_ms)? {
            stats.segments += 1;
            stats.bytes_written += u64::try_from(out.len()).unwrap_or(u64::MAX);
            stats.records_removed += removed;
        }
    }
    if let Some(last) = mapped.last() {
        write_atomic(
            &p.dir.join(CHECKPOINT_FILE),
            last.next_offset().to_string().as_bytes(),
        )?;
    }
    stats.partitions = 1;
    if stats.segments > 0 {
        tracing::info!(
            topic = %p.topic,
            partition = p.index,
            segments = stats.segments,
            bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written,
            records_removed = stats.records_removed,
            "compacted"
        );
    }
    Ok(stats)
}

/// Replaces a sealed segment's file with `bytes` (see the module doc).
fn swap(
    p: &Partition,
    seg: &Arc<Segment>,
    bytes: &[u8],
    cfg: &LogConfig,
    now_ms: i64,
) -> std::io::Result<bool> {
    let dir = seg.dir().to_path_buf();
    let base = seg.base_offset;
    let path = log_path(&dir, base);
    let mut tmp = path.clone().into_os_string();
    tmp.push(CLEANED_SUFFIX);
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let swapped = p.with_sealed(seg, || -> std::io::Result<()> {
        for idx in [
            super::index::offset_index_path(&dir, base),
            super::index::time_index_path(&dir, base),
        ] {
            match std::fs::remove_file(idx) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(&dir)
    });
    match swapped {
        None => {
            let _ = std::fs::remove_file(&tmp);
            Ok(false)
        }
        Some(r) => {
            r?;
            let (new, _) = Segment::recover(
                OpenOpts {
                    dir,
                    base_offset: base,
                    capacity: 0,
                    index_interval_bytes: cfg.index_interval_bytes,
                    now_ms,
                },
                false,
                base,
            )?;
            Ok(p.replace_segment(seg, Arc::new(new)))
        }
    }
}
