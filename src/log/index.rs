//! Sparse offset and time indexes of one segment.
//!
//! Files beside the segment, append-only, rebuilt from the segment on crash
//! (never trusted past the recovery point):
//!
//! ```text
//! <base>.index      8 bytes per entry: relative_offset u32, position u32 (big-endian)
//! <base>.timeindex 12 bytes per entry: max_timestamp i64, relative_offset u32
//! ```
//!
//! An offset entry is written for a batch when at least `index.interval.bytes`
//! were appended since the last entry, pointing at the batch's first byte.
//! Example: batches at positions 0, 4000, 8200 with base offsets 100, 150,
//! 200 and an interval of 4096 give entries (0 → 0) and (100 → 8200) in a
//! segment with base 100. A time entry records the largest timestamp seen so
//! far and the batch where it was reached, only when it grew.
//!
//! The active segment keeps its entries in sorted vectors (8 bytes per
//! ~4 KiB of log, 0.2 %) and appends each new one to its file. A new
//! segment creates its files with its first entry, not before: a partition
//! that was never written to has no index files, which halves the inodes
//! CreateTopics allocates (the file system's allocator is most of its time). A sealed
//! segment's index files are memory-mapped on first lookup and searched in
//! place, so start-up reads none of them and a replay of old data leaves
//! them to the page cache rather than the heap.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::mmap::Map;

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub max_timestamp: i64,
    pub relative_offset: u32,
}

/// Both indexes of a segment: in memory (active) or mapped (sealed).
#[derive(Default)]
pub struct Indexes {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    offset_file: Option<File>,
    time_file: Option<File>,
    /// A new segment's files, created with their first entry.
    pending: Option<(PathBuf, PathBuf)>,
    /// Sealed segments: the index files, mapped read-only.
    mapped: Option<(Map, Map)>,
}

const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

fn offset_entry(m: &Map, i: usize) -> Option<OffsetEntry> {
    let b = m.get(i * OFFSET_ENTRY, (i + 1) * OFFSET_ENTRY)?;
    Some(OffsetEntry {
        relative_offset: u32::from_be_bytes(b.get(0..4)?.try_into().ok()?),
        position: u32::from_be_bytes(b.get(4..8)?.try_into().ok()?),
    })
}

fn time_entry(m: &Map, i: usize) -> Option<TimeEntry> {
    let b = m.get(i * TIME_ENTRY, (i + 1) * TIME_ENTRY)?;
    Some(TimeEntry {
        max_timestamp: i64::from_be_bytes(b.get(0..8)?.try_into().ok()?),
        relative_offset: u32::from_be_bytes(b.get(8..12)?.try_into().ok()?),
    })
}

/// First index in 0..n for which `pred` is false (entries are sorted).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn map_file(path: &Path) -> std::io::Result<Map> {
    match File::open(path) {
        Ok(f) => {
            let len = usize::try_from(f.metadata()?.len()).unwrap_or(0);
            Map::new(&f, len)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Map::new(&File::open("/dev/null")?, 0)
        }
        Err(e) => Err(e),
    }
}

pub fn offset_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

pub fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut v)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(v)
}

impl Indexes {
    /// Maps both files of a sealed segment for in-place lookups. A torn
    /// trailing partial entry is ignored (lookups count whole entries only).
    pub fn load_mapped(dir: &Path, base: i64) -> std::io::Result<Self> {
        let offsets = map_file(&offset_index_path(dir, base))?;
        let times = map_file(&time_index_path(dir, base))?;
        Ok(Self {
            mapped: Some((offsets, times)),
            ..Self::default()
        })
    }

    /// Loads both files into memory; a torn trailing partial entry is ignored.
    pub fn load(dir: &Path, base: i64) -> std::io::Result<Self> {
        let raw = read_all(&offset_index_path(dir, base))?;
        let offsets = raw
            .chunks_exact(8)
            .filter_map(|c| {
                Some(OffsetEntry {
                    relative_offset: u32::from_be_bytes(c.get(0..4)?.try_into().ok()?),
                    position: u32::from_be_bytes(c.get(4..8)?.try_into().ok()?),
                })
            })
            .collect();
        let raw = read_all(&time_index_path(dir, base))?;
        let times = raw
            .chunks_exact(12)
            .filter_map(|c| {
                Some(TimeEntry {
                    max_timestamp: i64::from_be_bytes(c.get(0..8)?.try_into().ok()?),
                    relative_offset: u32::from_be_bytes(c.get(8..12)?.try_into().ok()?),
                })
            })
            .collect();
        Ok(Self {
            offsets,
            times,
            offset_file: None,
            time_file: None,
            mapped: None,
            pending: None,
        })
    }

    /// Starts empty indexes for a segment that will be appended to; their
    /// files appear with the first entry. Files a former segment with the
    /// same base left behind are removed, so none is read as this one's.
    pub fn create(dir: &Path, base: i64) -> std::io::Result<Self> {
        let paths = (offset_index_path(dir, base), time_index_path(dir, base));
        for p in [&paths.0, &paths.1] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(Self {
            pending: Some(paths),
            ..Self::default()
        })
    }

    /// Creates both files of a new segment, on its first entry.
    fn open_pending(&mut self) -> std::io::Result<()> {
        if let Some((o, t)) = self.pending.take() {
            let open = |p: PathBuf| {
                OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(p)
            };
            self.offset_file = Some(open(o)?);
            self.time_file = Some(open(t)?);
        }
        Ok(())
    }

    /// Rewrites both files from the in-memory entries (after a rebuild).
    /// With no entries no file is created (a segment never written to has
    /// none, and a restart must not allocate two inodes per idle
    /// partition); existing ones are emptied.
    pub fn persist(&mut self, dir: &Path, base: i64) -> std::io::Result<()> {
        if self.offsets.is_empty() && self.times.is_empty() {
            let paths = (offset_index_path(dir, base), time_index_path(dir, base));
            for p in [&paths.0, &paths.1] {
                match OpenOptions::new().write(true).truncate(true).open(p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            self.offset_file = None;
            self.time_file = None;
            self.pending = Some(paths);
            return Ok(());
        }
        let mut o = Vec::with_capacity(self.offsets.len() * 8);
        for e in &self.offsets {
            o.extend_from_slice(&e.relative_offset.to_be_bytes());
            o.extend_from_slice(&e.position.to_be_bytes());
        }
        let mut t = Vec::with_capacity(self.times.len() * 12);
        for e in &self.times {
            t.extend_from_slice(&e.max_timestamp.to_be_bytes());
            t.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        let mut of = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(offset_index_path(dir, base))?;
        of.write_all(&o)?;
        let mut tf = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(time_index_path(dir, base))?;
        tf.write_all(&t)?;
        self.offset_file = Some(of);
        self.time_file = Some(tf);
        self.pending = None;
        Ok(())
    }

    pub fn push_offset(&mut self, e: OffsetEntry) -> std::io::Result<()> {
        self.open_pending()?;
        if let Some(f) = self.offset_file.as_mut() {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&e.relative_offset.to_be_bytes());
            b[4..].copy_from_slice(&e.position.to_be_bytes());
            f.write_all(&b)?;
        }
        self.offsets.push(e);
        Ok(())
    }

    pub fn push_time(&mut self, e: TimeEntry) -> std::io::Result<()> {
        self.open_pending()?;
        if let Some(f) = self.time_file.as_mut() {
            let mut b = [0u8; 12];
            b[..8].copy_from_slice(&e.max_timestamp.to_be_bytes());
            b[8..].copy_from_slice(&e.relative_offset.to_be_bytes());
            f.write_all(&b)?;
        }
        self.times.push(e);
        Ok(())
    }

    /// Position of the last indexed batch starting at or before `relative`.
    pub fn position_for(&self, relative: u32) -> u32 {
        let found = match &self.mapped {
            Some((m, _)) => {
                let i = partition_point(m.len() / OFFSET_ENTRY, |i| {
                    offset_entry(m, i).is_some_and(|e| e.relative_offset <= relative)
                });
                i.checked_sub(1).and_then(|i| offset_entry(m, i))
            }
            None => {
                let i = self
                    .offsets
                    .partition_point(|e| e.relative_offset <= relative);
                i.checked_sub(1).and_then(|i| self.offsets.get(i).copied())
            }
        };
        found.map_or(0, |e| e.position)
    }

    /// A relative offset from which scanning finds the first batch whose max
    /// timestamp is at least `ts`: the batch that reached the last recorded
    /// maximum below `ts` can be skipped, and so can all before it.
    pub fn scan_start_for_time(&self, ts: i64) -> u32 {
        let found = match &self.mapped {
            Some((_, m)) => {
                let i = partition_point(m.len() / TIME_ENTRY, |i| {
                    time_entry(m, i).is_some_and(|e| e.max_timestamp < ts)
                });
                i.checked_sub(1).and_then(|i| time_entry(m, i))
            }
            None => {
                let i = self.times.partition_point(|e| e.max_timestamp < ts);
                i.checked_sub(1).and_then(|i| self.times.get(i).copied())
            }
        };
        found.map_or(0, |e| e.relative_offset)
    }

    /// Largest timestamp recorded, if any.
    pub fn max_timestamp(&self) -> Option<TimeEntry> {
        match &self.mapped {
            Some((_, m)) => (m.len() / TIME_ENTRY)
                .checked_sub(1)
                .and_then(|i| time_entry(m, i)),
            None => self.times.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_floor_entries() {
        let mut ix = Indexes::default();
        for (r, p) in [(0, 0), (50, 4100), (100, 8200)] {
            ix.push_offset(OffsetEntry {
                relative_offset: r,
                position: p,
            })
            .unwrap();
        }
        assert_eq!(ix.position_for(0), 0);
        assert_eq!(ix.position_for(49), 0);
        assert_eq!(ix.position_for(50), 4100);
        assert_eq!(ix.position_for(99), 4100);
        assert_eq!(ix.position_for(1000), 8200);
    }

    #[test]
    fn files_appear_with_the_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (o, t) = (
            offset_index_path(dir.path(), 7),
            time_index_path(dir.path(), 7),
        );
        // A stale file of a former segment with the same base goes.
        std::fs::write(&o, [1u8; 8]).unwrap();
        let mut ix = Indexes::create(dir.path(), 7).unwrap();
        assert!(!o.exists() && !t.exists());
        // Persisting nothing creates nothing.
        ix.persist(dir.path(), 7).unwrap();
        assert!(!o.exists() && !t.exists());
        ix.push_offset(OffsetEntry {
            relative_offset: 0,
            position: 0,
        })
        .unwrap();
        ix.push_time(TimeEntry {
            max_timestamp: 5,
            relative_offset: 0,
        })
        .unwrap();
        assert_eq!(std::fs::metadata(&o).unwrap().len(), 8);
        assert_eq!(std::fs::metadata(&t).unwrap().len(), 12);
        let back = Indexes::load(dir.path(), 7).unwrap();
        assert_eq!((back.offsets.len(), back.times.len()), (1, 1));
        // Persisting an emptied index empties the files it has.
        let mut empty = Indexes::default();
        empty.persist(dir.path(), 7).unwrap();
        assert_eq!(std::fs::metadata(&o).unwrap().len(), 0);
    }

    #[test]
    fn mapped_lookups_match_in_memory_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Indexes::create(dir.path(), 0).unwrap();
        for i in 0..1000u32 {
            ix.push_offset(OffsetEntry {
                relative_offset: i * 3,
                position: i * 4096,
            })
            .unwrap();
            ix.push_time(TimeEntry {
                max_timestamp: i64::from(i) * 10,
                relative_offset: i * 3,
            })
            .unwrap();
        }
        let mapped = Indexes::load_mapped(dir.path(), 0).unwrap();
        for probe in [0, 1, 2, 3, 299, 300, 2997, 5000] {
            assert_eq!(
                mapped.position_for(probe),
                ix.position_for(probe),
                "offset {probe}"
            );
        }
        for ts in [0, 5, 10, 9995, 10_000, 99_999] {
            assert_eq!(
                mapped.scan_start_for_time(ts),
                ix.scan_start_for_time(ts),
                "time {ts}"
            );
        }
        assert_eq!(mapped.max_timestamp(), ix.max_timestamp());
    }

    #[test]
    fn time_lookup_skips_earlier_batches() {
        let mut ix = Indexes::default();
        for (t, r) in [(10, 0), (20, 5), (30, 9)] {
            ix.push_time(TimeEntry {
                max_timestamp: t,
                relative_offset: r,
            })
            .unwrap();
        }
        assert_eq!(ix.scan_start_for_time(5), 0);
        assert_eq!(ix.scan_start_for_time(15), 0);
        assert_eq!(ix.scan_start_for_time(25), 5);
        assert_eq!(ix.scan_start_for_time(99), 9);
    }

    #[test]
    fn files_round_trip_and_ignore_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Indexes::create(dir.path(), 7).unwrap();
        ix.push_offset(OffsetEntry {
            relative_offset: 3,
            position: 99,
        })
        .unwrap();
        ix.push_time(TimeEntry {
            max_timestamp: 5,
            relative_offset: 3,
        })
        .unwrap();
        drop(ix);
        let mut f = OpenOptions::new()
            .append(true)
            .open(offset_index_path(dir.path(), 7))
            .unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let back = Indexes::load(dir.path(), 7).unwrap();
        assert_eq!(
            back.offsets,
            vec![OffsetEntry {
                relative_offset: 3,
                position: 99
            }]
        );
        assert_eq!(
            back.times,
            vec![TimeEntry {
                max_timestamp: 5,
                relative_offset: 3
            }]
        );
    }
}
