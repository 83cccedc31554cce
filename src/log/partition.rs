//! A partition: an ordered set of segments, the last one active.
//!
//! Invariants: segments are sorted by base offset and do not overlap;
//! `log_start_offset <= high_watermark`; offsets only grow; only the active
//! (last) segment is appended to. On a single node the high watermark is the
//! log end offset. Appends take the partition lock; readers take it only to
//! clone the segment list, then read from memory maps without it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

use super::config::LogConfig;
use super::producer_state::{AbortedTxn, Entry, ProducerError, ProducerStates, Verdict};
use super::segment::{Located, OpenOpts, Segment};
use super::txn_index;
use crate::protocol::batch::{self, BatchSpan};

/// Domain errors of the log; `handlers::errors` maps them to Kafka codes.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} is outside [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("invalid batch: {0}")]
    Corrupt(#[from] batch::BatchError),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Records Kafka refuses by content; `indexes` are positions in the batch.
    #[error("{message}")]
    InvalidRecords { message: String, indexes: Vec<i32> },
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// The transaction coordinator refused a transactional write (its code).
    #[error("the partition is not part of the producer's open transaction")]
    Unverified(i16),
}

pub type LogResult<T> = Result<T, LogError>;

/// Checks a batch header under the partition lock; `Some(code)` refuses it.
pub type Verifier<'a> = dyn Fn(&batch::BatchHeader) -> Option<i16> + 'a;

struct State {
    segments: Arc<Vec<Arc<Segment>>>,
    next_offset: i64,
    producers: ProducerStates,
    /// Aborted transactions of every segment, sorted by marker offset.
    aborted: Vec<AbortedTxn>,
    snapshot_offset: i64,
}

/// Producer state and aborted transactions rebuilt at open (`recovery`).
#[derive(Debug, Default)]
pub struct TxnState {
    pub producers: ProducerStates,
    pub aborted: Vec<AbortedTxn>,
    /// Offset of the newest snapshot on disk (-1: none usable).
    pub snapshot_offset: i64,
}

impl State {
    fn last_stable(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .unwrap_or(self.next_offset)
    }
}

/// What an append produced.
#[derive(Debug)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// Every segment file written (more than one if the append rolled), for
    /// acks=all syncing.
    pub files: Vec<Arc<File>>,
}

/// What a read found.
#[derive(Debug)]
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    /// Aborted transactions overlapping the records (read_committed only).
    pub aborted: Vec<AbortedTxn>,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub dir: PathBuf,
    state: Mutex<State>,
    /// The first offset readable from local segments.
    log_start: AtomicI64,
    /// The first offset the remote tier holds (`NO_REMOTE` when it holds
    /// nothing); persisted in `remote-log-start` by the tier.
    remote_start: AtomicI64,
    leader_epoch: AtomicI64,
    hw: watch::Sender<i64>,
    /// Last stable offset, published under the state lock after each append.
    lso: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn dir_name(topic: &str, index: i32) -> String {
    format!("{topic}-{index}")
}

const LOG_START_FILE: &str = "log-start-offset";
const REMOTE_START_FILE: &str = "remote-log-start";
/// `remote_start` when the remote tier holds nothing.
pub const NO_REMOTE: i64 = i64::MAX;

fn dir_remote_start(dir: &Path) -> PathBuf {
    dir.join(REMOTE_START_FILE)
}

fn read_offset_file(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

impl Partition {
    /// Assembles a partition from opened segments (see `recovery`).
    pub fn new(
        topic: &str,
        index: i32,
        dir: PathBuf,
        segments: Vec<Arc<Segment>>,
        log_start: i64,
        leader_epoch: i32,
        txn: TxnState,
    ) -> Self {
        let next = segments.last().map_or(0, |s| s.next_offset());
        let first = segments.first().map_or(0, |s| s.base_offset);
        let (hw, _) = watch::channel(next);
        let state = State {
            segments: Arc::new(segments),
            next_offset: next,
            producers: txn.producers,
            aborted: txn.aborted,
            snapshot_offset: txn.snapshot_offset,
        };
        let lso = state.last_stable();
        let remote_start = read_offset_file(&dir_remote_start(&dir)).unwrap_or(NO_REMOTE);
        Self {
            topic: topic.to_string(),
            index,
            dir,
            state: Mutex::new(state),
            log_start: AtomicI64::new(log_start.max(first).min(next)),
            remote_start: AtomicI64::new(remote_start),
            leader_epoch: AtomicI64::new(i64::from(leader_epoch)),
            hw,
            lso: AtomicI64::new(lso),
        }
    }

    /// The last stable offset: below it every transaction is decided.
    pub fn last_stable_offset(&self) -> i64 {
        self.lso.load(Ordering::Acquire)
    }

    /// A copy of every producer's state (DescribeProducers).
    pub fn producers(&self) -> Vec<(i64, Entry)> {
        lock(&self.state)
            .producers
            .iter()
            .map(|(p, e)| (*p, e.clone()))
            .collect()
    }

    /// Every aborted transaction's range (the cleaner drops their records).
    pub fn aborted_txns(&self) -> Vec<AbortedTxn> {
        lock(&self.state).aborted.clone()
    }

    /// Whether `pid` has an open transaction in this partition.
    pub fn has_open_txn(&self, pid: i64) -> bool {
        lock(&self.state).producers.has_open_txn(pid)
    }

    /// Forgets idle producers (`producer.id.expiration.ms`).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        lock(&self.state).producers.expire(now_ms, expiration_ms)
    }

    pub fn leader_epoch(&self) -> i32 {
        i32::try_from(self.leader_epoch.load(Ordering::Acquire)).unwrap_or(0)
    }

    pub fn high_watermark(&self) -> i64 {
        lock(&self.state).next_offset
    }

    /// Kafka's log start offset: the first offset readable at all, from
    /// the remote tier or locally.
    pub fn log_start_offset(&self) -> i64 {
        self.local_log_start()
            .min(self.remote_start.load(Ordering::Acquire))
    }

    /// The first offset readable from local segments (KIP-405's local log
    /// start; ListOffsets -4).
    pub fn local_log_start(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// The first offset the remote tier holds, if it holds any.
    pub fn remote_log_start(&self) -> Option<i64> {
        let r = self.remote_start.load(Ordering::Acquire);
        (r != NO_REMOTE).then_some(r)
    }

    /// Records where the remote tier starts (`None`: it holds nothing), and
    /// persists it so that a restart knows it before the store answers.
    pub fn set_remote_log_start(&self, start: Option<i64>) -> std::io::Result<()> {
        let v = start.unwrap_or(NO_REMOTE);
        if self.remote_start.load(Ordering::Acquire) != v {
            write_atomic(&dir_remote_start(&self.dir), v.to_string().as_bytes())?;
            self.remote_start.store(v, Ordering::Release);
        }
        Ok(())
    }

    /// Watch the high watermark (long-polling fetches wait on it).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    pub fn segments(&self) -> Arc<Vec<Arc<Segment>>> {
        lock(&self.state).segments.clone()
    }

    /// Runs `f` under the partition lock if `seg` is still one of the
    /// partition's sealed segments (retention or DeleteRecords may have
    /// dropped it); `None` if it is not.
    pub fn with_sealed<R>(&self, seg: &Arc<Segment>, f: impl FnOnce() -> R) -> Option<R> {
        let st = lock(&self.state);
        let n = st.segments.len();
        let pos = st.segments.iter().position(|s| Arc::ptr_eq(s, seg))?;
        (pos + 1 < n).then(f)
    }

    /// Puts `new` where `old` was (the cleaner's swap). False if `old` is
    /// gone or has become the active segment.
    pub fn replace_segment(&self, old: &Arc<Segment>, new: Arc<Segment>) -> bool {
        let mut st = lock(&self.state);
        let n = st.segments.len();
        let Some(pos) = st.segments.iter().position(|s| Arc::ptr_eq(s, old)) else {
            return false;
        };
        if pos + 1 >= n {
            return false;
        }
        let mut segs: Vec<Arc<Segment>> = st.segments.iter().cloned().collect();
        if let Some(slot) = segs.get_mut(pos) {
            *slot = new;
        }
        st.segments = Arc::new(segs);
        true
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments()
            .iter()
            .map(|s| s.committed_len() as u64)
            .sum()
    }

    /// Validates and appends a producer's record set. Nothing is written if
    /// any batch is invalid or too large.
    pub fn append(&self, records: &[u8], cfg: &LogConfig, now_ms: i64) -> LogResult<Appended> {
        self.append_from(records, cfg, now_ms, false, None)
    }

    /// As `append`, with `verify` run on the batch header under the
    /// partition lock: a transactional write is checked against its
    /// coordinator atomically with the append, so a marker (which needs
    /// this lock) is written either before the check (and the check sees
    /// the ended transaction) or after the append (and ends it too).
    pub fn append_verified(
        &self,
        records: &[u8],
        cfg: &LogConfig,
        now_ms: i64,
        verify: &Verifier<'_>,
    ) -> LogResult<Appended> {
        self.append_from(records, cfg, now_ms, false, Some(verify))
    }

    /// Appends a coordinator's own batch (offsets committed in a
    /// transaction carry the producer's id with no sequence, as in Kafka):
    /// recorded in the producer state, not checked against it.
    pub fn append_coordinator(
        &self,
        records: &[u8],
        cfg: &LogConfig,
        now_ms: i64,
    ) -> LogResult<Appended> {
        self.append_from(records, cfg, now_ms, true, None)
    }

    fn append_from(
        &self,
        records: &[u8],
        cfg: &LogConfig,
        now_ms: i64,
        trusted: bool,
        verify: Option<&Verifier<'_>>,
    ) -> LogResult<Appended> {
        let spans = batch::validate_produce(records)?;
        for s in &spans {
            if s.len > cfg.max_message_bytes {
                return Err(LogError::TooLarge {
                    size: s.len,
                    max: cfg.max_message_bytes,
                });
            }
        }
        if cfg.compact {
            for span in &spans {
                let bytes = records
                    .get(span.start..span.start + span.len)
                    .unwrap_or_default();
                self.check_keys(bytes)?;
            }
        }
        let idempotent = spans.iter().any(|s| s.header.producer_id >= 0);
        if idempotent && spans.len() != 1 {
            // Kafka: v2 produce requests carry exactly one batch per partition.
            return Err(LogError::InvalidRecords {
                message: "an idempotent or transactional produce must carry exactly one batch"
                    .into(),
                indexes: Vec::new(),
            });
        }
        let epoch = self.leader_epoch();
        let mut st = lock(&self.state);
        if let (Some(verify), Some(span)) = (verify, spans.first()) {
            if let Some(code) = verify(&span.header) {
                return Err(LogError::Unverified(code));
            }
        }
        if let Some(span) = spans.first().filter(|_| idempotent && !trusted) {
            if let Verdict::Duplicate(d) = st.producers.check(&span.header)? {
                // Already appended: answer with the original offsets. The
                // active file is synced again so acks=all still means durable.
                let files = st
                    .segments
                    .last()
                    .and_then(|s| s.file())
                    .map(|f| vec![f.clone()])
                    .unwrap_or_default();
                return Ok(Appended {
                    base_offset: d.first_offset,
                    log_append_time_ms: -1,
                    last_offset: d.last_offset,
                    log_start_offset: self.log_start_offset(),
                    files,
                });
            }
        }
        let base = st.next_offset;
        let mut files: Vec<Arc<File>> = Vec::with_capacity(1);
        for span in &spans {
            let bytes = records
                .get(span.start..span.start + span.len)
                .ok_or_else(|| LogError::Invalid("span".into()))?;
            if cfg.log_append_time {
                // The one case where the broker changes CRC'd bytes: Kafka's
                // LogAppendTime stamps the broker's clock into the batch.
                let mut owned = bytes.to_vec();
                batch::set_log_append_time(&mut owned, now_ms)?;
                let mut stamped = *span;
                stamped.header.max_timestamp = now_ms;
                self.append_one(&mut st, &owned, &stamped, cfg, now_ms, epoch)?;
            } else {
                self.append_one(&mut st, bytes, span, cfg, now_ms, epoch)?;
            }
            if idempotent {
                let last = st.next_offset - 1;
                let first = last - i64::from(span.header.last_offset_delta);
                st.producers.record(&span.header, first, last, now_ms);
            }
            if let Some(f) = st.segments.last().and_then(|s| s.file()) {
                if !files.iter().any(|x| Arc::ptr_eq(x, f)) {
                    files.push(f.clone());
                }
            }
        }
        let last = st.next_offset - 1;
        let next = st.next_offset;
        self.lso.store(st.last_stable(), Ordering::Release);
        drop(st);
        self.hw.send_replace(next);
        Ok(Appended {
            base_offset: base,
            log_append_time_ms: if cfg.log_append_time { now_ms } else { -1 },
            last_offset: last,
            log_start_offset: self.log_start_offset(),
            files,
        })
    }

    /// Writes a transaction marker for `pid` (commit or abort) and ends its
    /// open transaction here. A marker from an epoch older than the
    /// producer's is refused. Aborts are added to the transaction index.
    pub fn append_marker(
        &self,
        pid: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> LogResult<Appended> {
        let bytes = batch::build::control(now_ms, pid, producer_epoch, commit, coordinator_epoch);
        let span = batch::check_batch(&bytes)?;
        let epoch = self.leader_epoch();
        let mut st = lock(&self.state);
        st.producers.check_marker(pid, producer_epoch)?;
        let offset = st.next_offset;
        self.append_one(&mut st, &bytes, &span, cfg, now_ms, epoch)?;
        let aborted = st.producers.complete_txn(
            pid,
            producer_epoch,
            offset,
            commit,
            coordinator_epoch,
            now_ms,
        );
        if let Some(t) = aborted {
            let seg_base = st.segments.last().map_or(offset, |s| s.base_offset);
            txn_index::append(&self.dir, seg_base, &t)?;
            st.aborted.push(t);
        }
        let files = st
            .segments
            .last()
            .and_then(|s| s.file())
            .map(|f| vec![f.clone()])
            .unwrap_or_default();
        let next = st.next_offset;
        self.lso.store(st.last_stable(), Ordering::Release);
        drop(st);
        self.hw.send_replace(next);
        Ok(Appended {
            base_offset: offset,
            log_append_time_ms: -1,
            last_offset: offset,
            log_start_offset: self.log_start_offset(),
            files,
        })
    }

    /// A compacted topic keeps the latest record per key, so a record
    /// without one is refused, as Kafka refuses it. This decodes the batch
    /// (decompressing if needed): compacted topics pay for it, others never.
    fn check_keys(&self, batch: &[u8]) -> LogResult<()> {
        let mut buf = batch;
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).map_err(|e| {
            LogError::InvalidRecords {
                message: format!("undecodable batch: {e}"),
                indexes: Vec::new(),
            }
        })?;
        let indexes: Vec<i32> = set
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(i, _)| i32::try_from(i).unwrap_or(i32::MAX))
            .collect();
        if indexes.is_empty() {
            return Ok(());
        }
        Err(LogError::InvalidRecords {
            message: format!(
                "Compacted topic cannot accept message without key in topic partition {}-{}.",
                self.topic, self.index
            ),
            indexes,
        })
    }

    fn append_one(
        &self,
        st: &mut State,
        bytes: &[u8],
        span: &BatchSpan,
        cfg: &LogConfig,
        now_ms: i64,
        epoch: i32,
    ) -> LogResult<()> {
        let offset = st.next_offset;
        let needs_roll = match st.segments.last() {
            None => true,
            Some(a) => {
                let len = a.committed_len();
                len > 0
                    && (len + span.len > cfg.segment_bytes
                        || a.capacity_left() < span.len
                        || now_ms.saturating_sub(a.created_ms) >= cfg.segment_ms
                        || offset + i64::from(span.header.last_offset_delta) - a.base_offset
                            > i64::from(i32::MAX))
            }
        };
        if needs_roll {
            self.roll(
                st,
                offset,
                cfg.segment_bytes.max(span.len),
                cfg.index_interval_bytes,
                now_ms,
            )?;
        }
        let seg = st
            .segments
            .last()
            .ok_or_else(|| LogError::Invalid("no active segment".into()))?;
        if seg.capacity_left() < span.len {
            // A fresh segment smaller than this batch: map one big enough.
            let base = seg.base_offset;
            if seg.committed_len() == 0 {
                let mut segs: Vec<Arc<Segment>> = st.segments.iter().cloned().collect();
                segs.pop();
                segs.push(Arc::new(Segment::create(self.opts(
                    base,
                    span.len,
                    cfg.index_interval_bytes,
                    now_ms,
                ))?));
                st.segments = Arc::new(segs);
            }
        }
        let seg = st
            .segments
            .last()
            .ok_or_else(|| LogError::Invalid("no active segment".into()))?;
        seg.append(bytes, span, offset, epoch)?;
        st.next_offset = offset + i64::from(span.header.last_offset_delta) + 1;
        Ok(())
    }

    fn opts(&self, base: i64, capacity: usize, interval: usize, now_ms: i64) -> OpenOpts {
        OpenOpts {
            dir: self.dir.clone(),
            base_offset: base,
            capacity,
            index_interval_bytes: interval,
            now_ms,
        }
    }

    fn roll(
        &self,
        st: &mut State,
        base: i64,
        capacity: usize,
        interval: usize,
        now_ms: i64,
    ) -> LogResult<()> {
        if let Some(old) = st.segments.last() {
            old.seal();
            // The old segment's data must reach disk before the recovery point
            // can pass it; the checkpointer syncs it. Creating the new file
            // makes its directory entry durable.
        }
        let seg = Segment::create(self.opts(base, capacity, interval, now_ms))?;
        let mut segs: Vec<Arc<Segment>> = st.segments.iter().cloned().collect();
        segs.push(Arc::new(seg));
        st.segments = Arc::new(segs);
        Ok(())
    }

    /// Reads whole batches starting with the one holding `offset`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> LogResult<ReadResult> {
        self.read_isolated(offset, max_bytes, false)
    }

    /// As `read`; with `committed`, stops at the last stable offset and
    /// lists the aborted transactions the returned records overlap.
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        committed: bool,
    ) -> LogResult<ReadResult> {
        let (segs, hw, lso, any_aborted) = {
            let st = lock(&self.state);
            // Whether an aborted transaction ends at or after `offset`:
            // almost never, and then the read costs nothing extra.
            let any_aborted =
                committed && st.aborted.last().is_some_and(|t| t.last_offset >= offset);
            (
                st.segments.clone(),
                st.next_offset,
                st.last_stable(),
                any_aborted,
            )
        };
        let limit = if committed { lso } else { i64::MAX };
        // Offsets below the local start are the remote tier's to serve
        // (the fetch handler asks it first).
        let start = self.local_log_start();
        if offset < start || offset > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start,
                end: hw,
            });
        }
        let empty = ReadResult {
            records: Bytes::new(),
            high_watermark: hw,
            log_start_offset: start,
            last_stable_offset: lso,
            aborted: Vec::new(),
        };
        if offset == hw || offset >= limit {
            return Ok(empty);
        }
        let first = segs
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for seg in segs.iter().skip(first) {
            if let Some(Located { position, .. }) = seg.locate(offset) {
                let records = seg
                    .read_below(position, max_bytes, limit)
                    .unwrap_or_default();
                let aborted = if any_aborted && !records.is_empty() {
                    let upper = last_offset_in(&records).saturating_add(1);
                    txn_index::overlapping(&lock(&self.state).aborted, offset, upper)
                } else {
                    Vec::new()
                };
                return Ok(ReadResult {
                    records,
                    aborted,
                    ..empty
                });
            }
        }
        Ok(empty)
    }

    /// The first batch with a record at or after `timestamp`, if any.
    pub fn batch_for_time(&self, timestamp: i64) -> Option<Bytes> {
        let start = self.local_log_start();
        for seg in self.segments().iter() {
            if seg.next_offset() <= start {
                continue;
            }
            if let Some(l) = seg.locate_time(timestamp) {
                return seg.read(l.position, 1);
            }
        }
        None
    }

    /// The batch holding the largest timestamp in the log.
    pub fn batch_with_max_timestamp(&self) -> Option<Bytes> {
        let segs = self.segments();
        let best = segs
            .iter()
            .filter(|s| s.committed_len() > 0)
            .max_by_key(|s| s.max_timestamp())?;
        let l = best.locate(best.max_timestamp_offset().max(best.base_offset))?;
        best.read(l.position, 1)
    }

    /// Moves the log start forward (DeleteRecords). `offset` -1 means the
    /// high watermark. Returns the new log start.
    pub fn delete_records(&self, offset: i64) -> LogResult<i64> {
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end: hw,
            });
        }
        if let Some(r) = self.remote_log_start() {
            if target > r {
                // The tier deletes what lies below on its next round.
                self.set_remote_log_start(Some(target))?;
            }
        }
        if target > self.local_log_start() {
            self.advance_local_start(target)?;
        }
        Ok(self.log_start_offset())
    }

    /// Deletes sealed segments whose every offset is below `offset`.
    fn drop_segments_below(&self, offset: i64) {
        let mut st = lock(&self.state);
        let n = st.segments.len();
        let dead: Vec<Arc<Segment>> = st
            .segments
            .iter()
            .take(n.saturating_sub(1))
            .take_while(|s| s.next_offset() <= offset)
            .cloned()
            .collect();
        if dead.is_empty() {
            return;
        }
        let keep: Vec<Arc<Segment>> = st.segments.iter().skip(dead.len()).cloned().collect();
        st.segments = Arc::new(keep);
        let first_kept = st.segments.first().map_or(offset, |s| s.base_offset);
        st.aborted.retain(|t| t.last_offset >= first_kept);
        drop(st);
        for s in dead {
            s.delete_files();
        }
    }

    /// Applies retention.ms and retention.bytes; never deletes the active
    /// segment. Returns how many segments were deleted.
    pub fn apply_retention(&self, cfg: &LogConfig, now_ms: i64) -> usize {
        let segs = self.segments();
        let sealed = segs.len().saturating_sub(1);
        let mut total: i64 = segs
            .iter()
            .map(|s| i64::try_from(s.committed_len()).unwrap_or(i64::MAX))
            .sum();
        let mut cut = 0usize;
        for s in segs.iter().take(sealed) {
            let expired = cfg.retention_ms >= 0
                && s.max_timestamp() >= 0
                && now_ms - s.max_timestamp() > cfg.retention_ms;
            let size = i64::try_from(s.committed_len()).unwrap_or(i64::MAX);
            let too_big = cfg.retention_bytes >= 0 && total - size >= cfg.retention_bytes;
            if !(expired || too_big) {
                break;
            }
            total -= size;
            cut += 1;
        }
        if cut == 0 {
            return 0;
        }
        let new_start = segs
            .get(cut)
            .map_or(self.high_watermark(), |s| s.base_offset);
        let _ = self.advance_local_start(new_start);
        cut
    }

    /// Moves the local log start to `offset` (persisted first) and deletes
    /// the sealed segments wholly below it.
    pub fn advance_local_start(&self, offset: i64) -> std::io::Result<()> {
        let target = self.local_log_start().max(offset);
        // An idle partition may have no directory yet (lazy segments).
        ensure_dir(&self.dir)?;
        write_atomic(
            &self.dir.join(LOG_START_FILE),
            target.to_string().as_bytes(),
        )?;
        self.log_start.fetch_max(target, Ordering::AcqRel);
        self.drop_segments_below(target);
        Ok(())
    }

    /// Syncs every segment that may hold unsynced bytes and returns the
    /// offset below which the partition is now on disk (its recovery point).
    /// Blocking: call from a blocking thread.
    pub fn sync_to_disk(&self) -> std::io::Result<i64> {
        let (segs, end, snapshot) = {
            let mut st = lock(&self.state);
            let end = st.next_offset;
            // A snapshot at every checkpoint that moved the log end, so
            // recovery never scans further back than the recovery point.
            let due = st.producers.dirty || st.snapshot_offset != end;
            let snap = due.then(|| st.producers.to_snapshot(end));
            st.producers.dirty = false;
            st.snapshot_offset = end;
            (st.segments.clone(), end, snap)
        };
        let last = segs.len().saturating_sub(1);
        for (i, seg) in segs.iter().enumerate() {
            seg.sync(i < last)?;
        }
        if let Some(bytes) = snapshot {
            // Written after the data it describes is synced, so a snapshot
            // never runs ahead of the log it summarises.
            if let Err(e) = super::recovery::write_snapshot(&self.dir, end, &bytes) {
                lock(&self.state).snapshot_offset = -1;
                return Err(e);
            }
        }
        Ok(end)
    }
}

/// The last offset of the last whole batch in `records`.
fn last_offset_in(records: &[u8]) -> i64 {
    let mut at = 0usize;
    let mut last = -1i64;
    while let Some(h) = records
        .get(at..)
        .and_then(|b| batch::BatchHeader::parse(b).ok())
    {
        let Ok(len) = h.total_len() else { break };
        last = h.last_offset();
        at = at.saturating_add(len);
    }
    last
}

/// Reads a partition's persisted log start offset (0 if none).
pub fn read_log_start(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes a small file atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates `dir` (one level) if it is missing; a new directory's entry is
/// synced in its parent, so files later synced inside it stay reachable.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => match dir.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory so that created, renamed or removed entries persist.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
