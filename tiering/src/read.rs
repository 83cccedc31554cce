//! Reading records back from the remote tier.
//!
//! A read finds the remote segment holding the offset in the manifest,
//! looks the offset up in the segment's offset index (fetched whole and
//! cached), and fetches the log object in fixed-size chunks through the
//! shared [`ChunkCache`]. The answer is whole batches from the batch that
//! holds the offset, at most `max_bytes` except that the first batch is
//! returned whole (KIP-74). After each read the next chunks are requested
//! in the background (read-ahead), so a sequential replay finds them cached.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::cache::{ChunkCache, Key, WHOLE};
use crate::error::{TierError, TierResult};
use crate::format::{self, AbortedTxn, BatchInfo, BATCH_HEADER_LEN};
use crate::layout::Kind;
use crate::manifest::RemoteSegment;
use crate::partition::RemotePartition;

/// The most bytes one read returns, whatever a batch header or the
/// manifest claims (a batch is at most max.message.bytes, far below).
const MAX_READ_BYTES: usize = 64 << 20;

/// How a partition reads: chunk size and read-ahead depth.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub chunk_bytes: usize,
    pub read_ahead_chunks: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            chunk_bytes: 4 << 20,
            read_ahead_chunks: 2,
        }
    }
}

/// Records read from the tier.
#[derive(Debug, Clone)]
pub struct RemoteRecords {
    /// Whole batches, starting with the one that holds the offset asked.
    pub records: Bytes,
    /// The aborted transactions that overlap them (read_committed).
    pub aborted: Vec<AbortedTxn>,
}

/// Reads one partition's remote data through a shared cache.
pub struct RemoteReader {
    partition: Arc<RemotePartition>,
    cache: Arc<ChunkCache>,
    opts: ReadOptions,
}

/// Lossless on every platform Fjord runs on (usize is at most 64 bits).
fn u64_of(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn err(e: Arc<String>) -> TierError {
    TierError::Corrupt(e.to_string())
}

impl RemoteReader {
    pub fn new(partition: Arc<RemotePartition>, cache: Arc<ChunkCache>, opts: ReadOptions) -> Self {
        let opts = ReadOptions {
            chunk_bytes: opts.chunk_bytes.max(BATCH_HEADER_LEN),
            ..opts
        };
        Self {
            partition,
            cache,
            opts,
        }
    }

    fn path(&self, seg: &RemoteSegment, kind: Kind) -> Path {
        self.partition
            .layout()
            .segment(seg.base_offset, seg.last_offset, kind)
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(self.partition.store())
    }

    /// A small object (an index), fetched whole and cached.
    async fn whole(&self, path: Path) -> TierResult<Bytes> {
        let store = self.store();
        let key: Key = (path.to_string(), WHOLE);
        self.cache
            .get_or_fetch(key, move || {
                async move {
                    let r = store.get(&path).await.map_err(|e| e.to_string())?;
                    r.bytes().await.map_err(|e| e.to_string())
                }
                .boxed()
            })
            .await
            .map_err(err)
    }

    fn chunk_fetch(
        &self,
        path: &Path,
        n: u64,
        size: u64,
    ) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<Bytes, String>> {
        let store = self.store();
        let path = path.clone();
        let chunk = u64_of(self.opts.chunk_bytes);
        move || {
            async move {
                let start = n.saturating_mul(chunk);
                let end = start.saturating_add(chunk).min(size);
                if start >= end {
                    return Ok(Bytes::new());
                }
                store
                    .get_range(&path, start..end)
                    .await
                    .map_err(|e| e.to_string())
            }
            .boxed()
        }
    }

    async fn chunk(&self, path: &Path, n: u64, size: u64) -> TierResult<Bytes> {
        let key: Key = (path.to_string(), n);
        self.cache
            .get_or_fetch(key, self.chunk_fetch(path, n, size))
            .await
            .map_err(err)
    }

    /// Bytes `[start, end)` of the object at `path` (of `size` bytes),
    /// assembled from chunks; a slice without copying when one chunk holds
    /// them.
    async fn range(&self, path: &Path, size: u64, start: u64, end: u64) -> TierResult<Bytes> {
        let end = end.min(size);
        if start >= end {
            return Ok(Bytes::new());
        }
        let chunk = u64_of(self.opts.chunk_bytes);
        let (first, last) = (start / chunk, (end - 1) / chunk);
        if first == last {
            let c = self.chunk(path, first, size).await?;
            let from = usize::try_from(start - first * chunk).unwrap_or(usize::MAX);
            let to = usize::try_from(end - first * chunk).unwrap_or(usize::MAX);
            return c.get(from..to).map(|s| c.slice_ref(s)).ok_or_else(|| {
                TierError::Corrupt(format!("{path} is shorter than the manifest says"))
            });
        }
        let want = usize::try_from(end - start).unwrap_or(usize::MAX);
        let mut out = BytesMut::with_capacity(want);
        for n in first..=last {
            let c = self.chunk(path, n, size).await?;
            let base = n * chunk;
            let from = usize::try_from(start.saturating_sub(base)).unwrap_or(usize::MAX);
            let to = usize::try_from(end.saturating_sub(base).min(chunk)).unwrap_or(usize::MAX);
            let part = c.get(from..to).ok_or_else(|| {
                TierError::Corrupt(format!("{path} is shorter than the manifest says"))
            })?;
            out.extend_from_slice(part);
        }
        Ok(out.freeze())
    }

    fn read_ahead(&self, path: &Path, size: u64, after: u64) {
        let chunk = u64_of(self.opts.chunk_bytes);
        let next = after.div_ceil(chunk);
        for n in next..next.saturating_add(self.opts.read_ahead_chunks) {
            if n.saturating_mul(chunk) >= size {
                break;
            }
            self.cache
                .prefetch((path.to_string(), n), self.chunk_fetch(path, n, size));
        }
    }

    /// The header of the batch at `pos` of the segment's log.
    async fn batch_at(&self, path: &Path, size: u64, pos: u64) -> TierResult<Option<BatchInfo>> {
        let h = self
            .range(
                path,
                size,
                pos,
                pos.saturating_add(u64_of(BATCH_HEADER_LEN)),
            )
            .await?;
        Ok(format::batch_at(&h, 0))
    }

    /// The position of the first batch of `seg` whose last offset is at
    /// least `offset` and which satisfies `stop`, scanning from the index.
    async fn find(
        &self,
        seg: &RemoteSegment,
        offset: i64,
        stop: impl Fn(&BatchInfo) -> bool,
    ) -> TierResult<Option<(u64, BatchInfo)>> {
        let log = self.path(seg, Kind::Log);
        let mut pos = if offset <= seg.base_offset {
            0
        } else {
            let idx = self.whole(self.path(seg, Kind::OffsetIndex)).await?;
            u64::from(format::index_position(&idx, seg.base_offset, offset))
        };
        while pos < seg.size_bytes {
            let Some(b) = self.batch_at(&log, seg.size_bytes, pos).await? else {
                return Err(TierError::Corrupt(format!("no batch at {pos} of {log}")));
            };
            if b.last_offset >= offset && stop(&b) {
                return Ok(Some((pos, b)));
            }
            pos = pos.saturating_add(u64_of(b.len));
        }
        Ok(None)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (the
    /// first batch whole regardless). `None` when the tier holds nothing at
    /// or after `offset` (below its start, or past its end).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> TierResult<Option<RemoteRecords>> {
        let m = self.partition.manifest();
        let mut next = m.segment_for(offset).cloned();
        while let Some(seg) = next {
            let log = self.path(&seg, Kind::Log);
            if let Some((pos, first)) = self.find(&seg, offset, |_| true).await? {
                let want =
                    u64::try_from(first.len.max(max_bytes).min(MAX_READ_BYTES)).unwrap_or(u64::MAX);
                let bytes = self
                    .range(&log, seg.size_bytes, pos, pos.saturating_add(want))
                    .await?;
                let whole = format::whole_batches_len(&bytes);
                if whole == 0 {
                    return Err(TierError::Corrupt(format!("torn batch at {pos} of {log}")));
                }
                let records = bytes.slice(..whole);
                let end = pos.saturating_add(u64_of(whole));
                self.read_ahead(&log, seg.size_bytes, end);
                let aborted = if seg.has_txn_index {
                    let last = format::last_offset_of(&records).unwrap_or(offset);
                    let idx = self.whole(self.path(&seg, Kind::TxnIndex)).await?;
                    format::txn_index_entries(&idx)
                        .into_iter()
                        .filter(|t| t.last_offset >= offset && t.first_offset <= last)
                        .collect()
                } else {
                    Vec::new()
                };
                return Ok(Some(RemoteRecords { records, aborted }));
            }
            // Nothing at or after the offset in this segment: the next one.
            next = m
                .readable()
                .find(|s| s.base_offset > seg.last_offset)
                .cloned();
        }
        Ok(None)
    }

    /// The first batch holding a record with a timestamp at least `ts`
    /// (ListOffsets by time), searching remote segments in order.
    pub async fn batch_for_time(&self, ts: i64) -> TierResult<Option<Bytes>> {
        let m = self.partition.manifest();
        let start = m.log_start_offset;
        let candidates: Vec<RemoteSegment> = m
            .readable()
            .filter(|s| s.last_offset >= start && s.max_timestamp_ms >= ts)
            .cloned()
            .collect();
        for seg in candidates {
            let ti = self.whole(self.path(&seg, Kind::TimeIndex)).await?;
            let from = format::time_index_scan_start(&ti, seg.base_offset, ts).max(start);
            let found = self
                .find(&seg, from.min(seg.last_offset), |b| {
                    b.max_timestamp_ms >= ts
                })
                .await?;
            if let Some((pos, b)) = found {
                let log = self.path(&seg, Kind::Log);
                let bytes = self
                    .range(
                        &log,
                        seg.size_bytes,
                        pos,
                        pos.saturating_add(u64::try_from(b.len.min(MAX_READ_BYTES)).unwrap_or(0)),
                    )
                    .await?;
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }
}
