//! One segment: a file of concatenated record batches plus its indexes.
//!
//! `<base offset, 20 digits>.log` holds batches byte for byte as clients sent
//! them, except `base_offset` and `partition_leader_epoch`, which the broker
//! stamps. It is checksummed (every batch carries a CRC-32C), so recovery can
//! tell a torn tail from good data. Appends happen only under the owning
//! partition's lock; reads happen concurrently from the memory map and stay
//! below `committed_len`, which is published after each write completes.
//!
//! A segment may be *lazy*: a new partition's first segment has no file (nor
//! directory) until its first append. Creating a topic of a thousand
//! partitions then costs no inodes, which on ext4 took over a second; an idle
//! partition owns nothing on disk, and a restart does not create files for it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use super::index::{Indexes, OffsetEntry, TimeEntry};
use super::mmap::Map;
use super::partition::{ensure_dir, sync_dir};
use crate::protocol::batch::{self, BatchHeader, BatchSpan};

pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Where a batch lies and what it holds, as seen by a reader.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub position: usize,
    pub header: BatchHeader,
    pub len: usize,
}

/// A segment's file and its read-only map.
struct Backing {
    file: Arc<File>,
    map: Map,
}

pub struct Segment {
    pub base_offset: i64,
    dir: PathBuf,
    /// Set at creation, or by the first append of a lazy segment.
    backing: OnceLock<Backing>,
    /// Map length when a lazy segment makes its file (segment.bytes).
    capacity: usize,
    /// Bytes readers may see; only grows, published after each write.
    committed_len: AtomicUsize,
    /// Offset after the last batch in this segment.
    next_offset: AtomicI64,
    /// Largest batch max_timestamp seen, and the batch base offset that had it.
    max_timestamp: AtomicI64,
    max_timestamp_offset: AtomicI64,
    /// Wall-clock ms when the segment was created or opened (for segment.ms).
    pub created_ms: i64,
    indexes: Mutex<Option<Indexes>>,
    bytes_since_index: AtomicUsize,
    /// Sealed and synced: nothing in this file can change or be lost any more.
    durable: AtomicBool,
    index_interval_bytes: usize,
}

/// What a recovery scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanResult {
    pub valid_len: usize,
    pub file_len: usize,
    pub next_offset: i64,
    pub batches: u64,
}

/// What `Segment::open` found.
pub enum Opened {
    Ready(Segment),
    /// The tail does not check out: scan it with `Segment::recover`.
    NeedsScan(OpenOpts),
}

/// Options for opening a segment.
#[derive(Clone)]
pub struct OpenOpts {
    pub dir: PathBuf,
    pub base_offset: i64,
    /// Map capacity for an active segment (segment.bytes); 0 for sealed.
    pub capacity: usize,
    pub index_interval_bytes: usize,
    pub now_ms: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Segment {
    /// Creates a new, empty segment file (the active segment), its
    /// directory if missing, and syncs the new entries.
    pub fn create(o: OpenOpts) -> std::io::Result<Self> {
        let seg = Self::lazy(o);
        seg.backing()?;
        Ok(seg)
    }

    /// A new, empty active segment that touches no file until its first
    /// append (see the module doc).
    pub fn lazy(o: OpenOpts) -> Self {
        Self::assemble_with(o, OnceLock::new(), 0, Some(Indexes::default()))
    }

    /// The file and map, made now for a lazy segment: the directory (synced
    /// in its parent when new), the file, then the directory synced so the
    /// file's entry is durable before anything in it is acknowledged.
    /// Called under the partition lock (appends), so never concurrently.
    fn backing(&self) -> std::io::Result<&Backing> {
        if let Some(b) = self.backing.get() {
            return Ok(b);
        }
        ensure_dir(&self.dir)?;
        let path = log_path(&self.dir, self.base_offset);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        let idx = Indexes::create(&self.dir, self.base_offset)?;
        let map = Map::new(&file, self.capacity)?;
        sync_dir(&self.dir)?;
        *lock(&self.indexes) = Some(idx);
        let _ = self.backing.set(Backing {
            file: Arc::new(file),
            map,
        });
        self.backing
            .get()
            .ok_or_else(|| std::io::Error::other("segment file not set"))
    }

    fn map(&self) -> Option<&Map> {
        self.backing.get().map(|b| &b.map)
    }

    /// Zero-copy bytes `start..end`; a lazy segment has only the empty range.
    fn bytes(&self, start: usize, end: usize) -> Option<Bytes> {
        match self.map() {
            Some(m) => m.bytes(start, end),
            None => (start == 0 && end == 0).then(Bytes::new),
        }
    }

    fn assemble(o: OpenOpts, file: File, map: Map, len: usize, idx: Option<Indexes>) -> Self {
        let backing = OnceLock::from(Backing {
            file: Arc::new(file),
            map,
        });
        Self::assemble_with(o, backing, len, idx)
    }

    fn assemble_with(
        o: OpenOpts,
        backing: OnceLock<Backing>,
        len: usize,
        idx: Option<Indexes>,
    ) -> Self {
        Self {
            base_offset: o.base_offset,
            dir: o.dir,
            backing,
            capacity: o.capacity,
            committed_len: AtomicUsize::new(len),
            next_offset: AtomicI64::new(o.base_offset),
            max_timestamp: AtomicI64::new(-1),
            max_timestamp_offset: AtomicI64::new(-1),
            created_ms: o.now_ms,
            indexes: Mutex::new(idx),
            bytes_since_index: AtomicUsize::new(0),
            durable: AtomicBool::new(false),
            index_interval_bytes: o.index_interval_bytes.max(1),
        }
    }

    /// Opens an existing segment file that is trusted (clean shutdown, or
    /// below the recovery point). For the active segment, the batches after
    /// its last index entry are walked with their CRCs checked to find
    /// `next_offset`: at most one index interval of reading. If that walk
    /// does not end exactly at end-of-file (bytes were damaged or appended
    /// while the broker was stopped), the caller must `recover` it instead.
    pub fn open(o: OpenOpts, active: bool) -> std::io::Result<Opened> {
        let path = log_path(&o.dir, o.base_offset);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        if !active {
            let map = Map::new(&file, len)?;
            return Ok(Opened::Ready(Self::assemble(o, file, map, len, None)));
        }
        let base = o.base_offset;
        let mut idx = Indexes::load(&o.dir, base)?;
        let map = Map::new(&file, o.capacity.max(len))?;
        let retry = o.clone();
        let seg = Self::assemble(o, file, map, len, None);
        let start = idx.offsets.last().map_or(0, |e| e.position as usize);
        let mut end = None;
        let mut pos = start;
        while pos < len {
            let Some(rest) = seg.map().and_then(|m| m.get(pos, len)) else {
                break;
            };
            let Ok(span) = batch::check_batch(rest) else {
                break;
            };
            end = Some(span.header.last_offset() + 1);
            pos += span.len;
        }
        let walked_to_eof = pos == len && (end.is_some() || len == 0);
        if !walked_to_eof {
            return Ok(Opened::NeedsScan(retry));
        }
        seg.next_offset
            .store(end.unwrap_or(base), Ordering::Release);
        if let Some(t) = idx.max_timestamp() {
            seg.max_timestamp.store(t.max_timestamp, Ordering::Release);
            seg.max_timestamp_offset
                .store(base + i64::from(t.relative_offset), Ordering::Release);
        }
        // Keep appending to the existing index files.
        idx.persist(&seg.dir, base)?;
        *lock(&seg.indexes) = Some(idx);
        Ok(Opened::Ready(seg))
    }

    /// Opens a segment that may be damaged: checks every batch, truncates the
    /// file at the first bad one, and rebuilds both indexes.
    pub fn recover(
        o: OpenOpts,
        active: bool,
        min_offset: i64,
    ) -> std::io::Result<(Self, ScanResult)> {
        Self::recover_after(o, active, min_offset, i64::MIN)
    }

    /// As `recover`, trusting the batches below `recovery_point` (synced
    /// before that checkpoint was written): the scan resumes at the last
    /// offset-index entry below it, if the batch that entry points at checks
    /// out, instead of at the start of the file. Restart time then follows
    /// what was written since the checkpoint, not the segment's size.
    pub fn recover_after(
        o: OpenOpts,
        active: bool,
        min_offset: i64,
        recovery_point: i64,
    ) -> std::io::Result<(Self, ScanResult)> {
        let path = log_path(&o.dir, o.base_offset);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let file_len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        let scan_map = Map::new(&file, file_len)?;
        let base = o.base_offset;
        let interval = o.index_interval_bytes.max(1);
        let resume = resume_point(
            &o.dir,
            base,
            &scan_map,
            file_len,
            min_offset,
            recovery_point,
        );
        let (mut idx, mut pos, mut next, mut max_ts) = match resume {
            Some(r) => (r.indexes, r.position, r.offset, r.max_ts),
            None => (Indexes::default(), 0, base.max(min_offset), (-1i64, -1i64)),
        };
        let mut batches = 0u64;
        let mut since_index = interval;
        while pos < file_len {
            let Some(rest) = scan_map.get(pos, file_len) else {
                break;
            };
            let Ok(span) = batch::check_batch(rest) else {
                break;
            };
            let h = span.header;
            if h.base_offset < next
                || h.last_offset() < h.base_offset
                || h.last_offset() - base > i64::from(u32::MAX)
            {
                break;
            }
            let rel = u32::try_from(h.base_offset - base).unwrap_or(u32::MAX);
            if since_index >= interval {
                idx.offsets.push(OffsetEntry {
                    relative_offset: rel,
                    position: u32::try_from(pos).unwrap_or(u32::MAX),
                });
                since_index = 0;
            }
            if h.max_timestamp > max_ts.0 {
                max_ts = (h.max_timestamp, h.base_offset);
                idx.times.push(TimeEntry {
                    max_timestamp: h.max_timestamp,
                    relative_offset: rel,
                });
            }
            since_index += span.len;
            next = h.last_offset() + 1;
            pos += span.len;
            batches += 1;
        }
        drop(scan_map);
        if pos < file_len {
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        idx.persist(&o.dir, base)?;
        // A sealed segment's indexes are mapped from the files on first use.
        let idx = active.then_some(idx);
        let map = Map::new(&file, if active { o.capacity.max(pos) } else { pos })?;
        let seg = Self::assemble(o, file, map, pos, idx);
        seg.next_offset.store(next, Ordering::Release);
        seg.max_timestamp.store(max_ts.0, Ordering::Release);
        seg.max_timestamp_offset.store(max_ts.1, Ordering::Release);
        seg.bytes_since_index.store(since_index, Ordering::Release);
        Ok((
            seg,
            ScanResult {
                valid_len: pos,
                file_len,
                next_offset: next,
                batches,
            },
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment's file; `None` for a lazy segment not yet appended to.
    pub fn file(&self) -> Option<&Arc<File>> {
        self.backing.get().map(|b| &b.file)
    }

    pub fn committed_len(&self) -> usize {
        self.committed_len.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Sets the end offset of a sealed segment (known from its successor).
    pub fn set_next_offset(&self, next: i64) {
        self.next_offset.store(next, Ordering::Release);
    }

    /// Room left before the map (and so the segment) is full.
    pub fn capacity_left(&self) -> usize {
        self.map()
            .map_or(self.capacity, Map::len)
            .saturating_sub(self.committed_len())
    }

    /// Appends one validated batch, stamping its base offset and epoch.
    /// Caller holds the partition lock and has checked capacity.
    pub fn append(
        &self,
        bytes: &[u8],
        span: &BatchSpan,
        base_offset: i64,
        leader_epoch: i32,
    ) -> std::io::Result<()> {
        let file = &self.backing()?.file;
        let pos = self.committed_len();
        let mut prefix = [0u8; 16];
        let (head, rest) = bytes
            .split_at_checked(16)
            .ok_or_else(|| std::io::Error::other("batch shorter than its header"))?;
        prefix.copy_from_slice(head);
        batch::stamp_header(&mut prefix, base_offset, leader_epoch);
        file.write_all_at(&prefix, pos as u64)?;
        file.write_all_at(rest, (pos + 16) as u64)?;
        let rel = u32::try_from(base_offset - self.base_offset).unwrap_or(u32::MAX);
        let since = self.bytes_since_index.load(Ordering::Relaxed);
        {
            let mut g = lock(&self.indexes);
            if let Some(idx) = g.as_mut() {
                if pos == 0 || since >= self.index_interval_bytes {
                    idx.push_offset(OffsetEntry {
                        relative_offset: rel,
                        position: u32::try_from(pos).unwrap_or(u32::MAX),
                    })?;
                    self.bytes_since_index.store(0, Ordering::Relaxed);
                }
                let ts = span.header.max_timestamp;
                if ts > self.max_timestamp.load(Ordering::Relaxed) {
                    idx.push_time(TimeEntry {
                        max_timestamp: ts,
                        relative_offset: rel,
                    })?;
                    self.max_timestamp.store(ts, Ordering::Release);
                    self.max_timestamp_offset
                        .store(base_offset, Ordering::Release);
                }
            }
        }
        self.bytes_since_index
            .fetch_add(bytes.len(), Ordering::Relaxed);
        self.next_offset.store(
            base_offset + i64::from(span.header.last_offset_delta) + 1,
            Ordering::Release,
        );
        self.committed_len
            .store(pos + bytes.len(), Ordering::Release);
        Ok(())
    }

    /// Makes every byte written so far durable. A sealed segment is synced
    /// once and then skipped; the active one is synced every time.
    pub fn sync(&self, sealed: bool) -> std::io::Result<()> {
        if self.durable.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(b) = self.backing.get() else {
            // Lazy and never appended to: nothing to sync.
            return Ok(());
        };
        b.file.sync_data()?;
        if sealed {
            self.durable.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Stops index appends; the segment is now read-only.
    pub fn seal(&self) {
        // Every entry is already in the index files (appended unbuffered), so
        // the in-memory vectors can go; the next lookup maps the files.
        *lock(&self.indexes) = None;
    }

    /// The header of the batch at `pos`, if a whole header lies below `end`.
    pub fn header_at(&self, pos: usize, end: usize) -> Option<BatchHeader> {
        let b = self.map()?.get(pos, end)?;
        let h = BatchHeader::parse(b).ok()?;
        let len = h.total_len().ok()?;
        (pos.checked_add(len)? <= end).then_some(h)
    }

    fn with_indexes<R>(&self, f: impl FnOnce(&Indexes) -> R) -> R {
        let mut g = lock(&self.indexes);
        if g.is_none() {
            // Sealed segments map their index files on first use.
            *g = Some(Indexes::load_mapped(&self.dir, self.base_offset).unwrap_or_default());
        }
        match g.as_ref() {
            Some(idx) => f(idx),
            None => f(&Indexes::default()),
        }
    }

    /// The first batch whose last offset is at least `offset`.
    pub fn locate(&self, offset: i64) -> Option<Located> {
        let end = self.committed_len();
        let rel = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut pos = self.with_indexes(|i| i.position_for(rel) as usize);
        while let Some(h) = self.header_at(pos, end) {
            let len = h.total_len().ok()?;
            if h.last_offset() >= offset {
                return Some(Located {
                    position: pos,
                    header: h,
                    len,
                });
            }
            pos += len;
        }
        None
    }

    /// The first batch whose max timestamp is at least `ts`.
    pub fn locate_time(&self, ts: i64) -> Option<Located> {
        if self.max_timestamp() < ts {
            return None;
        }
        let end = self.committed_len();
        let start_rel = self.with_indexes(|i| i.scan_start_for_time(ts));
        let mut pos = self.with_indexes(|i| i.position_for(start_rel) as usize);
        while let Some(h) = self.header_at(pos, end) {
            let len = h.total_len().ok()?;
            if h.max_timestamp >= ts {
                return Some(Located {
                    position: pos,
                    header: h,
                    len,
                });
            }
            pos += len;
        }
        None
    }

    /// Zero-copy bytes of whole batches from `start`, at most `max_bytes`
    /// unless the first batch alone is larger (then that batch, KIP-74).
    pub fn read(&self, start: usize, max_bytes: usize) -> Option<Bytes> {
        self.read_below(start, max_bytes, i64::MAX)
    }

    /// As `read`, stopping before the first batch whose base offset is at
    /// or past `limit_offset` (read_committed stops at the LSO, which always
    /// falls on a batch boundary).
    pub fn read_below(&self, start: usize, max_bytes: usize, limit_offset: i64) -> Option<Bytes> {
        let end = self.committed_len();
        let mut pos = start;
        while let Some(h) = self.header_at(pos, end) {
            if h.base_offset >= limit_offset {
                break;
            }
            let len = h.total_len().ok()?;
            if pos > start && pos + len - start > max_bytes {
                break;
            }
            pos += len;
            if pos - start >= max_bytes {
                break;
            }
        }
        self.bytes(start, pos)
    }

    /// The whole committed log, zero-copy from the map (for upload).
    pub fn read_all(&self) -> Option<Bytes> {
        self.bytes(0, self.committed_len())
    }

    /// Largest batch max_timestamp in the segment (-1 if none).
    pub fn max_timestamp(&self) -> i64 {
        let ts = self.max_timestamp.load(Ordering::Acquire);
        if ts >= 0 || self.committed_len() == 0 {
            return ts;
        }
        // A sealed segment opened without a scan: take it from its time index.
        let t = self.with_indexes(|i| i.max_timestamp());
        if let Some(t) = t {
            self.max_timestamp.store(t.max_timestamp, Ordering::Release);
            self.max_timestamp_offset.store(
                self.base_offset + i64::from(t.relative_offset),
                Ordering::Release,
            );
            return t.max_timestamp;
        }
        ts
    }

    /// Base offset of the batch holding the segment's max timestamp.
    pub fn max_timestamp_offset(&self) -> i64 {
        let _ = self.max_timestamp();
        self.max_timestamp_offset.load(Ordering::Acquire)
    }

    /// Deletes the segment's files.
    pub fn delete_files(&self) {
        for p in [
            log_path(&self.dir, self.base_offset),
            super::index::offset_index_path(&self.dir, self.base_offset),
            super::index::time_index_path(&self.dir, self.base_offset),
            super::txn_index::path(&self.dir, self.base_offset),
        ] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Where `recover_after` may resume: the trusted index entries and the
/// batch to scan from.
struct Resume {
    indexes: Indexes,
    position: usize,
    offset: i64,
    max_ts: (i64, i64),
}

/// The last offset-index entry of the segment at `base` whose batch starts
/// below `recovery_point`, if its entries before it ascend and the batch it
/// points at is whole, has its CRC and carries the offset the entry names.
/// Anything else (no index, a torn or stale one): `None`, scan it all.
fn resume_point(
    dir: &Path,
    base: i64,
    map: &Map,
    file_len: usize,
    min_offset: i64,
    recovery_point: i64,
) -> Option<Resume> {
    if recovery_point <= base {
        return None;
    }
    let loaded = Indexes::load(dir, base).ok()?;
    let below =
        |e: &OffsetEntry| base.saturating_add(i64::from(e.relative_offset)) < recovery_point;
    let n = loaded.offsets.iter().take_while(|e| below(e)).count();
    let kept = loaded.offsets.get(..n)?;
    let ascending = kept.windows(2).all(|w| match w {
        [a, b] => a.relative_offset < b.relative_offset && a.position < b.position,
        _ => true,
    });
    let last = kept.last()?;
    let position = usize::try_from(last.position).ok()?;
    let offset = base.saturating_add(i64::from(last.relative_offset));
    let span = batch::check_batch(map.get(position, file_len)?).ok()?;
    if !ascending || span.header.base_offset != offset || offset < min_offset {
        return None;
    }
    // The scan re-adds the entry for the batch it starts at.
    let offsets = kept.get(..n - 1)?.to_vec();
    let times: Vec<TimeEntry> = loaded
        .times
        .iter()
        .take_while(|t| t.relative_offset < last.relative_offset)
        .copied()
        .collect();
    let max_ts = times.last().map_or((-1, -1), |t| {
        (
            t.max_timestamp,
            base.saturating_add(i64::from(t.relative_offset)),
        )
    });
    let mut indexes = Indexes::default();
    indexes.offsets = offsets;
    indexes.times = times;
    Some(Resume {
        indexes,
        position,
        offset,
        max_ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::{build, validate_produce};

    fn opts(dir: &Path, base: i64) -> OpenOpts {
        OpenOpts {
            dir: dir.to_path_buf(),
            base_offset: base,
            capacity: 1 << 20,
            index_interval_bytes: 100,
            now_ms: 0,
        }
    }

    fn append(seg: &Segment, next: i64, n: usize, ts: i64) -> i64 {
        let b = build::simple(ts, n, 50);
        let spans = validate_produce(&b).unwrap();
        seg.append(&b, &spans[0], next, 0).unwrap();
        next + n as i64
    }

    #[test]
    fn append_locate_read() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(opts(dir.path(), 100)).unwrap();
        let mut next = 100;
        for i in 0..20 {
            next = append(&seg, next, 3, 1000 + i);
        }
        assert_eq!(seg.next_offset(), 160);
        let l = seg.locate(131).unwrap();
        assert_eq!(l.header.base_offset, 130);
        assert!(seg.locate(160).is_none());
        let all = seg.read(0, usize::MAX).unwrap();
        assert_eq!(all.len(), seg.committed_len());
        let one = seg.read(l.position, 1).unwrap();
        assert_eq!(
            one.len(),
            l.len,
            "first batch is returned whole even past max_bytes"
        );
        // Batch i holds timestamps 1000+i ..= 1002+i, so batch 3 (offsets 109..) first reaches 1005.
        assert_eq!(seg.locate_time(1005).unwrap().header.base_offset, 109);
        assert_eq!(seg.max_timestamp(), 1019 + 2);
    }

    #[test]
    fn reopen_finds_end_and_recover_truncates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(opts(dir.path(), 0)).unwrap();
        let mut next = 0;
        for i in 0..10 {
            next = append(&seg, next, 2, i);
        }
        let good_len = seg.committed_len();
        drop(seg);
        let Opened::Ready(seg) = Segment::open(opts(dir.path(), 0), true).unwrap() else {
            panic!("a clean segment must open without a scan")
        };
        assert_eq!(seg.next_offset(), 20);
        drop(seg);
        let mut f = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path(), 0))
            .unwrap();
        std::io::Write::write_all(&mut f, &[7u8; 33]).unwrap();
        assert!(matches!(
            Segment::open(opts(dir.path(), 0), true).unwrap(),
            Opened::NeedsScan(_)
        ));
        let (seg, scan) = Segment::recover(opts(dir.path(), 0), true, 0).unwrap();
        assert_eq!(scan.valid_len, good_len);
        assert_eq!(scan.next_offset, 20);
        assert_eq!(seg.locate(19).unwrap().header.base_offset, 18);
        // Appending after recovery continues at the right offset.
        let n = append(&seg, seg.next_offset(), 1, 99);
        assert_eq!(n, 21);
    }

    #[test]
    fn recover_after_resumes_below_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(opts(dir.path(), 0)).unwrap();
        let mut next = 0;
        for i in 0..20 {
            next = append(&seg, next, 3, 1000 + i);
        }
        let good_len = seg.committed_len();
        drop(seg);
        let mut f = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path(), 0))
            .unwrap();
        std::io::Write::write_all(&mut f, &[7u8; 33]).unwrap();
        drop(f);
        let full = |dir: &Path| {
            let copy = tempfile::tempdir().unwrap();
            for name in [
                "00000000000000000000.log",
                "00000000000000000000.index",
                "00000000000000000000.timeindex",
            ] {
                std::fs::copy(dir.join(name), copy.path().join(name)).unwrap();
            }
            copy
        };
        let reference_dir = full(dir.path());
        let (reference, whole) = Segment::recover(opts(reference_dir.path(), 0), true, 0).unwrap();
        assert_eq!(whole.batches, 20);
        let resumed_dir = full(dir.path());
        let (seg, scan) = Segment::recover_after(opts(resumed_dir.path(), 0), true, 0, 45).unwrap();
        // Only the batches from the last index entry below offset 45 on.
        assert!(scan.batches < 8, "scanned {} batches", scan.batches);
        assert_eq!((scan.valid_len, scan.next_offset), (good_len, 60));
        for o in 0..60 {
            let (a, b) = (seg.locate(o).unwrap(), reference.locate(o).unwrap());
            assert_eq!(
                (a.position, a.header.base_offset),
                (b.position, b.header.base_offset)
            );
        }
        for ts in [999, 1000, 1007, 1015, 1021] {
            let (a, b) = (seg.locate_time(ts), reference.locate_time(ts));
            assert_eq!(a.map(|l| l.position), b.map(|l| l.position), "ts {ts}");
        }
        assert_eq!(seg.max_timestamp(), reference.max_timestamp());
        // An index entry that points into the middle of a batch is not
        // trusted: the whole segment is scanned.
        let bad_dir = full(dir.path());
        let idx = bad_dir.path().join("00000000000000000000.index");
        let mut raw = std::fs::read(&idx).unwrap();
        let n = raw.len();
        raw[n - 1] ^= 4;
        std::fs::write(&idx, &raw).unwrap();
        let (_, scan) = Segment::recover_after(opts(bad_dir.path(), 0), true, 0, 1000).unwrap();
        assert_eq!((scan.batches, scan.next_offset), (20, 60));
        // No index at all, or a recovery point at the base: a whole scan.
        let none_dir = full(dir.path());
        std::fs::remove_file(none_dir.path().join("00000000000000000000.index")).unwrap();
        let (_, scan) = Segment::recover_after(opts(none_dir.path(), 0), true, 0, 45).unwrap();
        assert_eq!(scan.batches, 20);
        let (_, scan) =
            Segment::recover_after(opts(full(dir.path()).path(), 0), true, 0, 0).unwrap();
        assert_eq!(scan.batches, 20);
    }

    #[test]
    fn recover_truncates_mid_batch() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(opts(dir.path(), 0)).unwrap();
        let mut next = 0;
        for i in 0..5 {
            next = append(&seg, next, 2, i);
        }
        let len = seg.committed_len();
        drop(seg);
        let f = OpenOptions::new()
            .write(true)
            .open(log_path(dir.path(), 0))
            .unwrap();
        f.set_len((len - 10) as u64).unwrap();
        let (_seg, scan) = Segment::recover(opts(dir.path(), 0), true, 0).unwrap();
        assert_eq!(scan.next_offset, 8);
        assert_eq!(scan.batches, 4);
    }
}
