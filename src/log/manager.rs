//! The LogManager: every topic and partition under one data directory.
//!
//! Layout of the data directory:
//!
//! ```text
//! .lock                              flock'd while a broker owns the directory
//! .clean_shutdown                    present only after a graceful stop
//! .topics/<topic>.json               topic metadata (see `topic`)
//! recovery-point-offset-checkpoint   see `checkpoint`
//! <topic>-<partition>/               segments, indexes, log-start-offset
//! ```
//!
//! Start-up cost is bounded by what must be checked, not by log size: after
//! a clean shutdown nothing is scanned; after a crash only segments at or
//! past each partition's recovery point are.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use super::checkpoint;
use super::config::{self, ConfigValueError, LogConfig};
use super::partition::{dir_name, read_log_start, sync_dir, Partition};
use super::segment::{OpenOpts, Opened, Segment};
use super::topic::{Topic, TopicMeta};
use crate::config::Settings;

const CLEAN_MARKER: &str = ".clean_shutdown";
const META_DIR: &str = ".topics";
/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME: usize = 249;
/// A bound on partitions per topic, so a request cannot make us create
/// millions of directories.
pub const MAX_PARTITIONS: i32 = 10_000;

/// Why a topic operation failed; mapped to Kafka codes in `handlers::errors`.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic `{0}` already exists")]
    Exists(String),
    #[error("unknown topic `{0}`")]
    Unknown(String),
    #[error("invalid topic name `{0}`: {1}")]
    InvalidName(String, &'static str),
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    #[error("invalid replication factor {0}: this broker is a single node")]
    InvalidReplication(i16),
    #[error(transparent)]
    Config(#[from] ConfigValueError),
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

pub struct LogManager {
    pub settings: Arc<Settings>,
    dir: PathBuf,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion and config changes.
    admin: tokio::sync::Mutex<()>,
    _lock: std::fs::File,
    /// What start-up found, for logs and tests.
    pub recovery: RecoveryReport,
}

#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub clean: bool,
    pub segments_scanned: usize,
    pub bytes_truncated: u64,
}

pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad = |why| Err(TopicError::InvalidName(name.to_string(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_TOPIC_NAME {
        return bad("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    // SAFETY-free: flock on a valid descriptor we own.
    let rc = rustix_flock(f.as_raw_fd());
    if rc != 0 {
        return Err(std::io::Error::other(format!(
            "{} is in use by another fjord process",
            dir.display()
        )));
    }
    Ok(f)
}

#[allow(unsafe_code)]
fn rustix_flock(fd: i32) -> i32 {
    // SAFETY: flock(2) only reads the descriptor number; an invalid one fails with EBADF.
    unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }
}

impl LogManager {
    /// Opens the data directory, recovering after an unclean stop.
    pub fn open(settings: Arc<Settings>, now_ms: i64) -> std::io::Result<Self> {
        let dir = settings.data_dir.clone();
        std::fs::create_dir_all(dir.join(META_DIR))?;
        let lock = lock_dir(&dir)?;
        let clean = dir.join(CLEAN_MARKER).exists();
        let points = if clean {
            checkpoint::Points::new()
        } else {
            checkpoint::read(&dir)
        };
        let mut report = RecoveryReport {
            clean,
            ..Default::default()
        };
        let mut topics = HashMap::new();
        for entry in std::fs::read_dir(dir.join(META_DIR))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let meta = TopicMeta::load(&path)?;
            let cfg = LogConfig::resolve(&settings, &meta.configs);
            let mut parts = Vec::new();
            for p in 0..meta.partitions {
                let point = if clean {
                    None
                } else {
                    Some(points.get(&(meta.name.clone(), p)).copied().unwrap_or(0))
                };
                let part = open_partition(&dir, &meta, p, &cfg, point, now_ms, &mut report)?;
                parts.push(Arc::new(part));
            }
            topics.insert(meta.name.clone(), Arc::new(Topic::new(meta, cfg, parts)));
        }
        remove_orphans(&dir, &topics)?;
        // From here on a crash is unclean until the next graceful stop.
        match std::fs::remove_file(dir.join(CLEAN_MARKER)) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            settings,
            dir,
            topics: RwLock::new(topics),
            admin: tokio::sync::Mutex::new(()),
            _lock: lock,
            recovery: report,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// remote.storage.enable needs the broker's tier and a non-compacted
    /// topic, as in Kafka (KIP-405).
    fn check_tiering(&self, configs: &BTreeMap<String, String>) -> Result<(), ConfigValueError> {
        let on = configs
            .get("remote.storage.enable")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !on {
            return Ok(());
        }
        let invalid = |reason: &str| ConfigValueError::Invalid {
            name: "remote.storage.enable".into(),
            value: "true".into(),
            reason: reason.into(),
        };
        if self.settings.tier_url.trim().is_empty() {
            return Err(invalid(
                "tiered storage is off on this broker (start it with --tier-url)",
            ));
        }
        if configs
            .get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|x| x.trim() == "compact"))
        {
            return Err(invalid("compacted topics cannot be tiered"));
        }
        Ok(())
    }

    /// Creates a topic. With `validate_only`, checks everything and writes nothing.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(partitions));
        }
        for (k, v) in &configs {
            config::validate(k, v)?;
        }
        self.check_tiering(&configs)?;
        let _g = self.admin.lock().await;
        if self.topic(name).is_some() {
            return Err(TopicError::Exists(name.to_string()));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            configs,
            leader_epoch: 0,
        };
        let cfg = LogConfig::resolve(&self.settings, &meta.configs);
        if validate_only {
            return Ok(Arc::new(Topic::new(meta, cfg, Vec::new())));
        }
        let parts = self
            .new_partitions(&meta, 0..partitions, &cfg, now_ms)
            .await?;
        meta.save(&self.dir.join(META_DIR))?;
        let topic = Arc::new(Topic::new(meta, cfg, parts));
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Creates partitions `indexes` of a topic, empty, on a blocking thread
    /// (each is a `stat`, and a stale directory may need removing).
    async fn new_partitions(
        &self,
        meta: &TopicMeta,
        indexes: std::ops::Range<i32>,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> std::io::Result<Vec<Arc<Partition>>> {
        let (dir, meta, cfg) = (self.dir.clone(), meta.clone(), cfg.clone());
        tokio::task::spawn_blocking(move || create_partitions(&dir, &meta, indexes, &cfg, now_ms))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Auto-creates a topic with the default partition count, if enabled.
    pub async fn get_or_create(&self, name: &str, now_ms: i64) -> Option<Arc<Topic>> {
        if let Some(t) = self.topic(name) {
            return Some(t);
        }
        if !self.settings.auto_create_topics {
            return None;
        }
        match self
            .create_topic(
                name,
                self.settings.num_partitions,
                BTreeMap::new(),
                false,
                now_ms,
            )
            .await
        {
            Ok(t) => Some(t),
            Err(TopicError::Exists(_)) => self.topic(name),
            Err(e) => {
                tracing::debug!(topic = name, error = %e, "auto-create refused");
                None
            }
        }
    }

    /// Deletes a topic: metadata first (the commit point), then its files.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let _g = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        std::fs::remove_file(TopicMeta::path(&self.dir.join(META_DIR), name))?;
        sync_dir(&self.dir.join(META_DIR))?;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        for p in topic.partitions().iter() {
            // Readers may still hold maps; unlinking is safe under them.
            let _ = std::fs::remove_dir_all(&p.dir);
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
        now_ms: i64,
    ) -> Result<(), TopicError> {
        let _g = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let mut meta = topic.meta();
        if count <= meta.partitions || count > MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(count));
        }
        if validate_only {
            return Ok(());
        }
        let cfg = topic.config();
        let more = self
            .new_partitions(&meta, meta.partitions..count, &cfg, now_ms)
            .await?;
        meta.partitions = count;
        meta.save(&self.dir.join(META_DIR))?;
        topic.add_partitions(more);
        topic.set_meta(
            meta.clone(),
            LogConfig::resolve(&self.settings, &meta.configs),
        );
        Ok(())
    }

    /// Replaces a topic's config overrides (validated first).
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for (k, v) in &configs {
            config::validate(k, v)?;
        }
        self.check_tiering(&configs)?;
        let _g = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let mut meta = topic.meta();
        meta.configs = configs;
        meta.save(&self.dir.join(META_DIR))?;
        let cfg = LogConfig::resolve(&self.settings, &meta.configs);
        topic.set_meta(meta, cfg);
        Ok(())
    }

    /// Syncs every partition's files, then records their end offsets as
    /// recovery points. Blocking: call from a blocking thread.
    pub fn checkpoint(&self) -> std::io::Result<()> {
        let mut points = checkpoint::Points::new();
        for t in self.topics() {
            for p in t.partitions().iter() {
                points.insert((t.name.clone(), p.index), p.sync_to_disk()?);
            }
        }
        checkpoint::write(&self.dir, &points)
    }

    /// Forgets producers idle past `producer.id.expiration.ms`.
    pub fn expire_producers(&self, now_ms: i64) -> usize {
        let ms = self.settings.producer_id_expiration_ms;
        self.topics()
            .iter()
            .flat_map(|t| t.partitions().iter().cloned().collect::<Vec<_>>())
            .map(|p| p.expire_producers(now_ms, ms))
            .sum()
    }

    /// Retention over every partition. Returns segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        let mut n = 0;
        for t in self.topics() {
            let cfg = t.config();
            // Tiered topics: the tier applies local and total retention.
            if !cfg.delete || (cfg.remote_storage && !self.settings.tier_url.trim().is_empty()) {
                continue;
            }
            for p in t.partitions().iter() {
                n += p.apply_retention(&cfg, now_ms);
            }
        }
        n
    }

    /// Compacts every partition of every compacted topic that is due.
    pub fn clean(&self, now_ms: i64, max_keys: usize) -> super::cleaner::CleanStats {
        let mut total = super::cleaner::CleanStats::default();
        for t in self.topics() {
            let cfg = t.config();
            if !cfg.compact {
                continue;
            }
            for p in t.partitions().iter() {
                match super::cleaner::clean(p, &cfg, now_ms, max_keys) {
                    Ok(s) => total.add(&s),
                    Err(e) => {
                        tracing::error!(topic = %t.name, partition = p.index, error = %e, "cleaning failed")
                    }
                }
            }
        }
        total
    }

    /// Graceful stop: sync everything, checkpoint, write the clean marker.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.checkpoint()?;
        std::fs::File::create(self.dir.join(CLEAN_MARKER))?.sync_all()?;
        sync_dir(&self.dir)
    }
}

/// Base offsets of the segment files in `pdir`, ascending; none if the
/// directory does not exist (a partition never written to).
fn segment_bases(pdir: &Path) -> std::io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    let entries = match std::fs::read_dir(pdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(bases),
        Err(e) => return Err(e),
    };
    for e in entries {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(super::cleaner::CLEANED_SUFFIX) {
            // A cleaner crashed before its swap: the original is intact.
            let _ = std::fs::remove_file(pdir.join(name.as_ref()));
            continue;
        }
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(b) = stem.parse::<i64>() {
                bases.push(b);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Opens one partition. `recovery_point` is `None` after a clean shutdown.
fn open_partition(
    dir: &Path,
    meta: &TopicMeta,
    p: i32,
    cfg: &LogConfig,
    recovery_point: Option<i64>,
    now_ms: i64,
    report: &mut RecoveryReport,
) -> std::io::Result<Partition> {
    let pdir = dir.join(dir_name(&meta.name, p));
    let bases = segment_bases(&pdir)?;
    let opts = |base: i64| OpenOpts {
        dir: pdir.clone(),
        base_offset: base,
        capacity: cfg.segment_bytes,
        index_interval_bytes: cfg.index_interval_bytes,
        now_ms,
    };
    if bases.is_empty() {
        // Never written to (or emptied): a lazy segment at the log start,
        // with no file until the first append.
        let start = read_log_start(&pdir);
        let segs = vec![Arc::new(Segment::lazy(opts(start)))];
        let txn = super::recovery::rebuild(&pdir, &segs, start, start);
        return Ok(Partition::new(
            &meta.name,
            p,
            pdir,
            segs,
            start,
            meta.leader_epoch,
            txn,
        ));
    }
    // Index of the first segment that must be scanned.
    let first_scan = match recovery_point {
        None => bases.len(),
        Some(rp) => bases.partition_point(|b| *b <= rp).saturating_sub(1),
    };
    let mut segs: Vec<Arc<Segment>> = Vec::new();
    let last = bases.len() - 1;
    let mut i = 0;
    while i < bases.len() {
        let Some(&base) = bases.get(i) else { break };
        let active = i == last;
        let trusted = if i < first_scan {
            match Segment::open(opts(base), active)? {
                Opened::Ready(seg) => Some(seg),
                Opened::NeedsScan(_) => {
                    tracing::warn!(partition = %pdir.display(), base, "segment tail does not check out; scanning it");
                    None
                }
            }
        } else {
            None
        };
        if let Some(seg) = trusted {
            if let Some(next_base) = bases.get(i + 1) {
                seg.set_next_offset(*next_base);
            }
            segs.push(Arc::new(seg));
        } else {
            let min = segs.last().map_or(base, |s| s.next_offset());
            let rp = recovery_point.unwrap_or(i64::MIN);
            let (seg, scan) = Segment::recover_after(opts(base), active, min, rp)?;
            report.segments_scanned += 1;
            let damaged = scan.valid_len < scan.file_len;
            if damaged {
                report.bytes_truncated += (scan.file_len - scan.valid_len) as u64;
                tracing::warn!(partition = %pdir.display(), base, valid = scan.valid_len, file = scan.file_len, "truncated damaged segment tail");
            }
            segs.push(Arc::new(seg));
            if damaged && !active {
                // Everything after a damaged batch is unreachable: drop later
                // segments and reopen this one as the active segment.
                for later in bases.iter().skip(i + 1) {
                    for path in [
                        super::segment::log_path(&pdir, *later),
                        super::index::offset_index_path(&pdir, *later),
                        super::index::time_index_path(&pdir, *later),
                    ] {
                        let _ = std::fs::remove_file(path);
                    }
                }
                segs.pop();
                let (seg, _) = Segment::recover(opts(base), true, min)?;
                segs.push(Arc::new(seg));
                break;
            }
        }
        i += 1;
    }
    let log_start = read_log_start(&pdir);
    let end = segs.last().map_or(0, |s| s.next_offset());
    let first = segs.first().map_or(0, |s| s.base_offset);
    let txn = super::recovery::rebuild(&pdir, &segs, log_start.max(first).min(end), end);
    Ok(Partition::new(
        &meta.name,
        p,
        pdir,
        segs,
        log_start,
        meta.leader_epoch,
        txn,
    ))
}

/// Removes partition directories that no topic owns (interrupted create or
/// delete), and leftover temp files.
fn remove_orphans(dir: &Path, topics: &HashMap<String, Arc<Topic>>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if !e.file_type()?.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        if name == META_DIR {
            continue;
        }
        let owned = name
            .rsplit_once('-')
            .and_then(|(t, p)| Some((topics.get(t)?, p.parse::<i32>().ok()?)))
            .is_some_and(|(t, p)| p >= 0 && p < t.meta().partitions);
        if !owned {
            tracing::warn!(dir = %e.path().display(), "removing orphan partition directory");
            std::fs::remove_dir_all(e.path())?;
        }
    }
    Ok(())
}

/// New, empty partitions: each with a lazy segment, so nothing is created on
/// disk until a partition's first append (which makes its directory and
/// segment file and syncs their entries). A directory left by an earlier
/// topic of the same name (an interrupted delete) is removed first.
fn create_partitions(
    dir: &Path,
    meta: &TopicMeta,
    indexes: std::ops::Range<i32>,
    cfg: &LogConfig,
    now_ms: i64,
) -> std::io::Result<Vec<Arc<Partition>>> {
    let mut removed = false;
    let mut made = Vec::new();
    for p in indexes {
        let pdir = dir.join(dir_name(&meta.name, p));
        if pdir.exists() {
            std::fs::remove_dir_all(&pdir)?;
            removed = true;
        }
        let seg = Segment::lazy(OpenOpts {
            dir: pdir.clone(),
            base_offset: 0,
            capacity: cfg.segment_bytes,
            index_interval_bytes: cfg.index_interval_bytes,
            now_ms,
        });
        made.push(Arc::new(Partition::new(
            &meta.name,
            p,
            pdir,
            vec![Arc::new(seg)],
            0,
            meta.leader_epoch,
            super::partition::TxnState::default(),
        )));
    }
    if removed {
        // The old data must not come back after a crash as the new topic's.
        sync_dir(dir)?;
    }
    Ok(made)
}
