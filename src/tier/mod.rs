//! The broker's side of tiered storage (the `fjord-tiering` crate holds the
//! mechanism; this module feeds it the log's sealed segments and applies
//! its verdicts to local partitions).
//!
//! One background round every `tier_interval_ms`, for each partition of a
//! topic with `remote.storage.enable=true`:
//!
//! 1. open the partition's manifest (once), and finish whatever a crash
//!    interrupted (`RemotePartition::recover`);
//! 2. carry DeleteRecords over to the tier;
//! 3. upload sealed, synced segments below the last stable offset that the
//!    tier does not hold yet, oldest first;
//! 4. publish the tier's start as the partition's remote log start (so the
//!    log start never jumps forward when local segments go);
//! 5. delete local segments the tier holds that fall outside
//!    `local.retention.*`;
//! 6. delete remote segments outside `retention.*` (the total).
//!
//! A failing store never blocks produce or local fetch: the round stops for
//! that partition, logs the upload lag and backs off; nothing local is
//! deleted that the manifest does not list as COPY_FINISHED.

pub mod read;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use fjord_tiering::backoff::Backoff;
use fjord_tiering::cache::ChunkCache;
use fjord_tiering::layout::PartitionLayout;
use fjord_tiering::location::{self, Location};
use fjord_tiering::manifest::{Manifest, SegmentMeta};
use fjord_tiering::partition::{RemotePartition, SegmentUpload};
use fjord_tiering::read::{ReadOptions, RemoteReader};
use fjord_tiering::retention::{self, Bounds, LocalSegment};
use fjord_tiering::{TierError, TierResult};
use uuid::Uuid;

use crate::config::Settings;
use crate::log::config::LogConfig;
use crate::log::segment::Segment;
use crate::log::{LogManager, Partition};

const BACKOFF_INITIAL_MS: i64 = 500;
/// Longest one partition's round may take. The store's client retries
/// connection errors for minutes; the round gives up sooner, so the lag is
/// reported and the other partitions get their turn. Cancelling is safe:
/// the manifest names whatever was under way.
const ROUND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const BACKOFF_MAX_MS: i64 = 30_000;

/// One partition's handle on the tier.
pub struct TierPartition {
    pub remote: Arc<RemotePartition>,
    pub reader: RemoteReader,
    backoff: Mutex<Backoff>,
    recovered: AtomicBool,
    /// Held for a whole round over the partition, and by `forget_topic`
    /// while it deletes: a round never writes after the deletion.
    round: tokio::sync::Mutex<()>,
}

pub struct Tier {
    location: Location,
    cache: Arc<ChunkCache>,
    read_opts: ReadOptions,
    parts: Mutex<HashMap<(Uuid, i32), Arc<TierPartition>>>,
    /// Ids of topics deleted while running: no round touches them again (a
    /// round may have listed the topic before it was deleted). 16 bytes per
    /// deleted topic, for the process's life.
    forgotten: Mutex<HashSet<Uuid>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn size_of(s: &Segment) -> u64 {
    u64::try_from(s.committed_len()).unwrap_or(u64::MAX)
}

fn local(s: &Segment) -> LocalSegment {
    LocalSegment {
        base_offset: s.base_offset,
        last_offset: s.next_offset().saturating_sub(1),
        max_timestamp_ms: s.max_timestamp(),
        size_bytes: size_of(s),
    }
}

/// The newest producer snapshot at or below `offset`, if one is on disk.
fn snapshot_for(dir: &std::path::Path, offset: i64) -> Option<bytes::Bytes> {
    let best = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let o: i64 = name.strip_suffix(".snapshot")?.parse().ok()?;
            (o <= offset).then_some((o, e.path()))
        })
        .max_by_key(|(o, _)| *o)?;
    std::fs::read(best.1).ok().map(bytes::Bytes::from)
}

/// A sealed segment as the tier takes it: the log zero-copy from its map,
/// the small index files read. Blocking (file reads and a sync).
fn upload_of(p: &Partition, s: &Segment) -> std::io::Result<SegmentUpload> {
    s.sync(true)?;
    let dir = &p.dir;
    let read_opt = |path: std::path::PathBuf| -> Option<bytes::Bytes> {
        std::fs::read(path)
            .ok()
            .filter(|b| !b.is_empty())
            .map(bytes::Bytes::from)
    };
    let next = s.next_offset();
    let txn_index = read_opt(crate::log::txn_index::path(dir, s.base_offset));
    let producer_snapshot = snapshot_for(dir, next);
    let l = local(s);
    Ok(SegmentUpload {
        meta: SegmentMeta {
            base_offset: l.base_offset,
            last_offset: l.last_offset,
            max_timestamp_ms: l.max_timestamp_ms,
            size_bytes: l.size_bytes,
            has_txn_index: txn_index.is_some(),
            has_snapshot: producer_snapshot.is_some(),
        },
        log: s.read_all().unwrap_or_default(),
        offset_index: read_opt(crate::log::index::offset_index_path(dir, s.base_offset))
            .unwrap_or_default(),
        time_index: read_opt(crate::log::index::time_index_path(dir, s.base_offset))
            .unwrap_or_default(),
        txn_index,
        producer_snapshot,
    })
}

/// `key=value,key=value` into pairs; a pair without `=` is an error.
fn parse_options(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("invalid tier_options entry {p:?}: expected key=value")
            })?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

impl Tier {
    /// The tier `settings.tier_url` names; `None` when tiering is off.
    pub fn open(settings: &Settings) -> anyhow::Result<Option<Arc<Tier>>> {
        let url = settings.tier_url.trim();
        if url.is_empty() || url.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let options = parse_options(&settings.tier_options)?;
        let location = location::open(url, &options)?;
        tracing::info!(url = %location.display, "tiered storage on");
        Ok(Some(Arc::new(Tier {
            location,
            cache: Arc::new(ChunkCache::new(settings.tier_cache_bytes)),
            read_opts: ReadOptions {
                chunk_bytes: settings.tier_chunk_bytes.max(4096),
                read_ahead_chunks: 2,
            },
            parts: Mutex::new(HashMap::new()),
            forgotten: Mutex::new(HashSet::new()),
        })))
    }

    /// The partition's handle if it is open already.
    pub fn cached(&self, topic_id: Uuid, index: i32) -> Option<Arc<TierPartition>> {
        lock(&self.parts).get(&(topic_id, index)).cloned()
    }

    /// Bytes of `p`'s sealed segments not uploaded yet, by the manifest
    /// last loaded (no store call); `None` before the first round saw it.
    pub fn upload_lag_bytes(&self, topic_id: Uuid, p: &Partition) -> Option<u64> {
        self.cached(topic_id, p.index)
            .map(|tp| upload_lag_bytes(p, &tp.remote.manifest()))
    }

    /// The partition's handle, loading its manifest the first time.
    pub async fn partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        index: i32,
    ) -> TierResult<Arc<TierPartition>> {
        if let Some(tp) = self.cached(topic_id, index) {
            return Ok(tp);
        }
        let layout = PartitionLayout::new(
            &self.location.prefix,
            topic,
            index,
            &topic_id.simple().to_string(),
        );
        let remote =
            Arc::new(RemotePartition::open(Arc::clone(&self.location.store), layout).await?);
        let tp = Arc::new(TierPartition {
            reader: RemoteReader::new(Arc::clone(&remote), Arc::clone(&self.cache), self.read_opts),
            remote,
            backoff: Mutex::new(Backoff::new(BACKOFF_INITIAL_MS, BACKOFF_MAX_MS)),
            recovered: AtomicBool::new(false),
            round: tokio::sync::Mutex::new(()),
        });
        let mut g = lock(&self.parts);
        Ok(Arc::clone(g.entry((topic_id, index)).or_insert(tp)))
    }

    /// Deletes a deleted topic's remote objects in the background, as Kafka
    /// deletes a topic's remote data with it. A failure is logged; what is
    /// left lies under the old topic id, which no new topic reuses.
    pub fn forget_topic(self: &Arc<Self>, name: String, topic_id: Uuid, partitions: i32) {
        lock(&self.forgotten).insert(topic_id);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            use futures::{StreamExt, TryStreamExt};
            for index in 0..partitions {
                let tp = lock(&me.parts).remove(&(topic_id, index));
                // Wait out a round already under way: it may still write a
                // manifest or upload, and must do so before the listing.
                let _round = match &tp {
                    Some(tp) => Some(tp.round.lock().await),
                    None => None,
                };
                let layout = PartitionLayout::new(
                    &me.location.prefix,
                    &name,
                    index,
                    &topic_id.simple().to_string(),
                );
                let store = Arc::clone(&me.location.store);
                let paths = store
                    .list(Some(layout.root()))
                    .map_ok(|m| m.location)
                    .boxed();
                let deleted: Result<Vec<_>, _> = store.delete_stream(paths).try_collect().await;
                if let Err(e) = deleted {
                    tracing::warn!(topic = %name, partition = index, error = %e,
                        "could not delete the deleted topic's remote objects");
                }
            }
        });
    }

    fn is_forgotten(&self, topic_id: Uuid) -> bool {
        lock(&self.forgotten).contains(&topic_id)
    }

    /// One round over every tiered partition.
    pub async fn run_once(&self, log: &LogManager, now_ms: i64) {
        for t in log.topics() {
            let cfg = t.config();
            if !cfg.remote_storage {
                continue;
            }
            for p in t.partitions().iter() {
                if let Some(tp) = self.cached(t.id, p.index) {
                    if !lock(&tp.backoff).ready(now_ms) {
                        continue;
                    }
                }
                let r =
                    tokio::time::timeout(ROUND_TIMEOUT, self.tend(&t.name, t.id, &cfg, p, now_ms))
                        .await
                        .unwrap_or_else(|_| {
                            Err(TierError::Timeout(
                                u64::try_from(ROUND_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                            ))
                        });
                let Some(tp) = self.cached(t.id, p.index) else {
                    if let Err(e) = r {
                        tracing::warn!(topic = %t.name, partition = p.index, error = %e,
                            "remote tier unavailable; uploads wait");
                    }
                    continue;
                };
                let mut b = lock(&tp.backoff);
                match r {
                    Ok(()) => b.succeeded(),
                    Err(e) => {
                        let delay_ms = b.failed(now_ms);
                        let lag = upload_lag_bytes(p, &tp.remote.manifest());
                        tracing::warn!(topic = %t.name, partition = p.index, error = %e,
                            upload_lag_bytes = lag, retry_in_ms = delay_ms,
                            failures = b.failures(), "tiered storage round failed");
                    }
                }
            }
        }
    }

    async fn tend(
        &self,
        topic: &str,
        topic_id: Uuid,
        cfg: &LogConfig,
        p: &Arc<Partition>,
        now_ms: i64,
    ) -> TierResult<()> {
        if self.is_forgotten(topic_id) {
            return Ok(());
        }
        let tp = self.partition(topic, topic_id, p.index).await?;
        let _round = tp.round.lock().await;
        if self.is_forgotten(topic_id) {
            // Deleted since this round listed it (see `forget_topic`).
            lock(&self.parts).remove(&(topic_id, p.index));
            return Ok(());
        }
        let remote = &tp.remote;
        if !tp.recovered.load(Ordering::Acquire) {
            let part = Arc::clone(p);
            let segs = p.segments();
            remote
                .recover(
                    |base, last| {
                        let s = segs.iter().take(segs.len().saturating_sub(1)).find(|s| {
                            s.base_offset == base && s.next_offset().saturating_sub(1) == last
                        })?;
                        upload_of(&part, s).ok()
                    },
                    now_ms,
                )
                .await?;
            tp.recovered.store(true, Ordering::Release);
        }
        // DeleteRecords below the tier's start.
        if let Some(r) = p.remote_log_start() {
            if r > remote.manifest().log_start_offset {
                remote.advance_log_start(r, now_ms).await?;
            }
        }
        // Uploads, oldest first, of sealed segments below the LSO.
        let segs = p.segments();
        let lso = p.last_stable_offset();
        let start = p.log_start_offset();
        for s in segs.iter().take(segs.len().saturating_sub(1)) {
            let l = local(s);
            let m = remote.manifest();
            if l.size_bytes == 0
                || s.next_offset() > lso
                || l.last_offset < start
                || retention::is_remote(&m, &l)
                || m.end_offset().is_some_and(|e| l.base_offset < e)
            {
                continue;
            }
            let (part, seg) = (Arc::clone(p), Arc::clone(s));
            let upload = tokio::task::spawn_blocking(move || upload_of(&part, &seg))
                .await
                .map_err(|e| TierError::Corrupt(e.to_string()))?
                .map_err(|e| TierError::Corrupt(format!("reading local segment: {e}")))?;
            remote.copy(&upload, now_ms).await?;
            tracing::debug!(
                topic,
                partition = p.index,
                base = l.base_offset,
                "segment uploaded"
            );
        }
        self.publish_start(p, &remote.manifest())?;
        // Local retention: only what the tier holds.
        let sealed: Vec<LocalSegment> = segs
            .iter()
            .take(segs.len().saturating_sub(1))
            .map(|s| local(s))
            .collect();
        let active_bytes = segs.last().map_or(0, |s| size_of(s));
        let local_bounds = Bounds {
            ms: cfg.local_retention_ms,
            bytes: cfg.local_retention_bytes,
        };
        let cut = retention::local_cut(
            &remote.manifest(),
            &sealed,
            active_bytes,
            local_bounds,
            now_ms,
        );
        if let Some(next) = segs.get(cut).filter(|_| cut > 0) {
            let to = next.base_offset;
            let part = Arc::clone(p);
            tokio::task::spawn_blocking(move || part.advance_local_start(to))
                .await
                .map_err(|e| TierError::Corrupt(e.to_string()))?
                .map_err(|e| TierError::Corrupt(format!("deleting local segments: {e}")))?;
            tracing::debug!(
                topic,
                partition = p.index,
                segments = cut,
                "local segments deleted"
            );
        }
        // Total retention over both tiers.
        if cfg.delete {
            let m = remote.manifest();
            let local_only: u64 = p
                .segments()
                .iter()
                .map(|s| local(s))
                .filter(|l| !retention::is_remote(&m, l))
                .map(|l| l.size_bytes)
                .sum();
            let total = Bounds {
                ms: cfg.retention_ms,
                bytes: cfg.retention_bytes,
            };
            for base in retention::remote_expired(&m, local_only, total, now_ms) {
                remote.delete(base, now_ms).await?;
            }
            self.publish_start(p, &remote.manifest())?;
        }
        Ok(())
    }

    /// Publishes the tier's start as the partition's remote log start; an
    /// error if it cannot be persisted (then no local segment may go).
    fn publish_start(&self, p: &Partition, m: &Manifest) -> TierResult<()> {
        // The tier's data matters only below the local start.
        let start = m.start_offset().filter(|s| *s < p.local_log_start());
        p.set_remote_log_start(start)
            .map_err(|e| TierError::Corrupt(format!("cannot persist the remote log start: {e}")))
    }
}

/// Bytes of sealed local segments the tier does not hold yet.
fn upload_lag_bytes(p: &Partition, m: &Manifest) -> u64 {
    let segs = p.segments();
    segs.iter()
        .take(segs.len().saturating_sub(1))
        .map(|s| local(s))
        .filter(|l| !retention::is_remote(m, l))
        .map(|l| l.size_bytes)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_options_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_options(" AWS_REGION=us-east-1, aws_allow_http = true ,").unwrap(),
            vec![
                ("aws_region".to_string(), "us-east-1".to_string()),
                ("aws_allow_http".to_string(), "true".to_string())
            ]
        );
        assert!(parse_options("").unwrap().is_empty());
        assert!(parse_options("novalue").is_err());
    }

    #[test]
    fn a_bad_tier_url_stops_start_up() {
        let mut s = Settings::for_dir("/tmp/x".into());
        s.tier_url = "not a url".into();
        assert!(Tier::open(&s).is_err());
        s.tier_url = "ftp://host/x".into();
        assert!(Tier::open(&s).is_err());
        s.tier_url = String::new();
        assert!(Tier::open(&s).unwrap().is_none());
    }
}
