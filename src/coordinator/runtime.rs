//! Runs the group coordinator: one lock around the state machine, the
//! records it returns appended to `__consumer_offsets` in the order the
//! operations ran, and waiting requests answered only once those records
//! are durable (fsync in fsync durability, as for `acks=all`).
//!
//! At start-up the partition is read from its start and every record is
//! replayed, so groups and committed offsets survive restarts and SIGKILL.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::consumer::{ConsumerLimits, HeartbeatRequest, HeartbeatResponse, Image};
use super::effects::{Effects, JoinResult, Reply, SyncResult};
use super::group::{JoinRequest, SyncRequest, WaitId};
use super::machine::{Commit, Config, GroupCoordinator};
use super::partition_io::{self, Replayed};
use super::records::{self, Record};
use super::OFFSETS_TOPIC;
use crate::config::{Durability, Settings};
use crate::log::partition::Partition;
use crate::log::sync::Syncer;
use crate::log::{LogError, LogManager};
use crate::protocol::batch;
use crate::protocol::codes::{self, ErrorCode};

struct Inner {
    machine: GroupCoordinator,
    waiters: HashMap<WaitId, oneshot::Sender<Reply>>,
    /// Offsets committed in open transactions, by producer id: written to
    /// the log, applied only when the commit marker is (TxnOffsetCommit).
    pending_txn: HashMap<i64, Vec<Record>>,
}

pub struct GroupRuntime {
    inner: Mutex<Inner>,
    next_wait: AtomicU64,
    log: Arc<LogManager>,
    syncer: Syncer,
    fsync: bool,
    handle: tokio::runtime::Handle,
}

/// Replies to send once a write is durable.
struct Delivery {
    sends: Vec<(oneshot::Sender<Reply>, Reply)>,
    durable: Option<oneshot::Receiver<Result<(), String>>>,
    failed: Option<ErrorCode>,
}

impl GroupRuntime {
    /// Creates `__consumer_offsets` if needed and replays it.
    pub async fn open(
        log: Arc<LogManager>,
        settings: &Settings,
        syncer: Syncer,
        now_ms: i64,
    ) -> anyhow::Result<Self> {
        if log.topic(OFFSETS_TOPIC).is_none() {
            let configs = BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), "104857600".to_string()),
            ]);
            log.create_topic(OFFSETS_TOPIC, 1, configs, false, now_ms)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create {OFFSETS_TOPIC}: {e}"))?;
        }
        let cfg = Config {
            limits: super::group::classic::Limits {
                initial_delay_ms: i64::try_from(settings.group_initial_rebalance_delay_ms)
                    .unwrap_or(i64::MAX),
                max_size: settings.group_max_size,
            },
            min_session_timeout_ms: settings.group_min_session_timeout_ms,
            max_session_timeout_ms: settings.group_max_session_timeout_ms,
            offsets_retention_ms: i64::try_from(settings.offsets_retention_minutes)
                .unwrap_or(i64::MAX / 60_000)
                .saturating_mul(60_000),
            offsets_retention_check_interval_ms: i64::try_from(
                settings.offsets_retention_check_interval_ms,
            )
            .unwrap_or(i64::MAX),
            offset_metadata_max_bytes: settings.offset_metadata_max_bytes,
            consumer: ConsumerLimits {
                session_timeout_ms: i64::try_from(settings.group_consumer_session_timeout_ms)
                    .unwrap_or(i64::MAX),
                max_size: settings.group_max_size,
            },
        };
        let mut machine = GroupCoordinator::new(cfg);
        let part = offsets_partition(&log)?;
        let log2 = log.clone();
        let (machine, n, bad, pending_txn) = tokio::task::spawn_blocking(move || {
            let mut pending = HashMap::new();
            let (n, bad) = replay(&part, &mut machine, &mut pending, now_ms);
            drop(log2);
            (machine, n, bad, pending)
        })
        .await?;
        tracing::info!(
            records = n,
            undecodable = bad,
            groups = machine.groups().count(),
            "group coordinator loaded"
        );
        Ok(GroupRuntime {
            inner: Mutex::new(Inner {
                machine,
                waiters: HashMap::new(),
                pending_txn,
            }),
            next_wait: AtomicU64::new(1),
            log,
            syncer,
            fsync: settings.durability == Durability::Fsync,
            handle: tokio::runtime::Handle::current(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the state machine under the lock.
    pub fn read<T>(&self, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        f(&self.lock().machine)
    }

    fn register(&self, inner: &mut Inner) -> (WaitId, oneshot::Receiver<Reply>) {
        let id = WaitId(self.next_wait.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        inner.waiters.insert(id, tx);
        (id, rx)
    }

    /// Appends records to `__consumer_offsets`; returns the files to sync.
    fn append(&self, recs: &[Record], now_ms: i64) -> Result<Vec<Arc<std::fs::File>>, LogError> {
        if recs.is_empty() {
            return Ok(Vec::new());
        }
        let topic = self
            .log
            .topic(OFFSETS_TOPIC)
            .ok_or_else(|| LogError::Invalid(format!("{OFFSETS_TOPIC} is missing")))?;
        let part = topic
            .partition(0)
            .ok_or_else(|| LogError::Invalid(format!("{OFFSETS_TOPIC} has no partition 0")))?;
        let bytes = partition_io::encode(recs, now_ms, batch::build::Producer::NONE);
        Ok(part.append(&bytes, &topic.config(), now_ms)?.files)
    }

    /// Writes an operation's records and pairs its replies with their
    /// waiters. A failed write turns successful SyncGroup answers into
    /// errors: the assignment is not stored, so the members must rejoin.
    fn apply(&self, inner: &mut Inner, fx: Effects, now_ms: i64) -> Delivery {
        let (durable, failed) = match self.append(&fx.records, now_ms) {
            Ok(files) if self.fsync && !files.is_empty() => (Some(self.syncer.submit(files)), None),
            Ok(_) => (None, None),
            Err(e) => {
                tracing::error!(error = %e, "cannot write group records");
                let code = match e {
                    LogError::TooLarge { .. } => codes::UNKNOWN_SERVER_ERROR,
                    _ => codes::COORDINATOR_NOT_AVAILABLE,
                };
                (None, Some(code))
            }
        };
        let sends = fx
            .replies
            .into_iter()
            .filter_map(|(id, r)| inner.waiters.remove(&id).map(|tx| (tx, r)))
            .collect();
        Delivery {
            sends,
            durable,
            failed,
        }
    }

    fn deliver(&self, d: Delivery) {
        self.handle.spawn(async move {
            let mut failed = d.failed;
            if let Some(w) = d.durable {
                if let Err(e) = w.await.unwrap_or_else(|_| Err("syncer stopped".into())) {
                    tracing::error!(error = %e, "cannot sync group records");
                    failed = Some(codes::COORDINATOR_NOT_AVAILABLE);
                }
            }
            for (tx, mut r) in d.sends {
                if let (Some(code), Reply::Sync(s)) = (failed, &mut r) {
                    if s.error == codes::NONE {
                        *s = SyncResult::error(code);
                    }
                }
                let _ = tx.send(r);
            }
        });
    }

    pub async fn join(&self, group: &str, req: JoinRequest, now_ms: i64) -> JoinResult {
        let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
        let rx = {
            let mut inner = self.lock();
            let (id, rx) = self.register(&mut inner);
            let fx = inner.machine.join(group, req, id, &new_id, now_ms);
            let d = self.apply(&mut inner, fx, now_ms);
            self.deliver(d);
            rx
        };
        match rx.await {
            Ok(Reply::Join(r)) => r,
            _ => JoinResult::error(codes::NOT_COORDINATOR, ""),
        }
    }

    pub async fn sync(&self, group: &str, req: SyncRequest, now_ms: i64) -> SyncResult {
        let rx = {
            let mut inner = self.lock();
            let (id, rx) = self.register(&mut inner);
            let fx = inner.machine.sync(group, req, id, now_ms);
            let d = self.apply(&mut inner, fx, now_ms);
            self.deliver(d);
            rx
        };
        match rx.await {
            Ok(Reply::Sync(r)) => r,
            _ => SyncResult::error(codes::NOT_COORDINATOR),
        }
    }

    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> ErrorCode {
        self.lock()
            .machine
            .heartbeat(group, generation, member_id, instance_id, now_ms)
    }

    pub fn leave(
        &self,
        group: &str,
        who: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (ErrorCode, Vec<ErrorCode>) {
        let mut inner = self.lock();
        let (top, each, fx) = inner.machine.leave(group, who, now_ms);
        let d = self.apply(&mut inner, fx, now_ms);
        self.deliver(d);
        (top, each)
    }

    /// ConsumerGroupHeartbeat: the topic image is taken from the log.
    pub async fn consumer_heartbeat(
        &self,
        group: &str,
        req: HeartbeatRequest,
        now_ms: i64,
    ) -> HeartbeatResponse {
        let new_id = uuid::Uuid::new_v4().to_string();
        let image: Image = self
            .log
            .topics()
            .iter()
            .filter(|t| t.name != OFFSETS_TOPIC)
            .map(|t| (t.name.clone(), (t.id, t.meta().partitions)))
            .collect();
        let (resp, durable) = {
            let mut inner = self.lock();
            let (resp, fx) = inner
                .machine
                .consumer_heartbeat(group, req, &new_id, &image, now_ms);
            match self.append(&fx.records, now_ms) {
                Ok(files) if self.fsync && !files.is_empty() => {
                    (resp, Some(self.syncer.submit(files)))
                }
                Ok(_) => (resp, None),
                Err(e) => {
                    tracing::error!(error = %e, "cannot write consumer group records");
                    return HeartbeatResponse::error(
                        codes::COORDINATOR_NOT_AVAILABLE,
                        "cannot store the group",
                    );
                }
            }
        };
        if let Some(w) = durable {
            if w.await
                .unwrap_or_else(|_| Err("syncer stopped".into()))
                .is_err()
            {
                return HeartbeatResponse::error(
                    codes::COORDINATOR_NOT_AVAILABLE,
                    "cannot store the group",
                );
            }
        }
        resp
    }

    /// Runs every group's timers.
    pub fn tick(&self, now_ms: i64) {
        let mut inner = self.lock();
        self.tick_locked(&mut inner, None, now_ms);
    }

    /// Timers are checked every GROUP_TICK_MS; operations whose answer
    /// depends on who is still a member (DeleteGroups, OffsetDelete,
    /// OffsetCommit) first run those of their groups, so a session that has
    /// just lapsed counts as lapsed to the millisecond, as with Kafka's
    /// per-member timers.
    fn tick_locked(&self, inner: &mut Inner, ids: Option<&[&str]>, now_ms: i64) {
        let fx = match ids {
            None => inner.machine.tick(now_ms),
            Some(ids) => inner.machine.tick_groups(ids, now_ms),
        };
        if fx.records.is_empty() && fx.replies.is_empty() {
            return;
        }
        let d = self.apply(inner, fx, now_ms);
        self.deliver(d);
    }

    /// OffsetCommit: checked against the group, written, then applied, so
    /// an offset is never visible before its record is in the log.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        version: i16,
        commits: Vec<Commit>,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        let durable = {
            let mut inner = self.lock();
            self.tick_locked(&mut inner, Some(&[group]), now_ms);
            inner
                .machine
                .check_commit(group, generation, member_id, instance_id, version)?;
            if commits.is_empty() {
                return Ok(());
            }
            let recs = GroupCoordinator::commit_records(group, &commits);
            let files = self.append(&recs, now_ms).map_err(|e| match e {
                LogError::TooLarge { .. } => codes::INVALID_COMMIT_OFFSET_SIZE,
                _ => codes::NOT_COORDINATOR,
            })?;
            inner
                .machine
                .apply_commit(group, member_id, commits, now_ms);
            (self.fsync && !files.is_empty()).then(|| self.syncer.submit(files))
        };
        if let Some(w) = durable {
            w.await
                .unwrap_or_else(|_| Err("syncer stopped".into()))
                .map_err(|_| codes::NOT_COORDINATOR)?;
        }
        Ok(())
    }

    /// TxnOffsetCommit: the offsets are written now, in a transactional
    /// batch of the producer, and applied when its commit marker is.
    #[allow(clippy::too_many_arguments)]
    pub async fn txn_commit(
        &self,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        commits: Vec<Commit>,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        let durable = {
            let mut inner = self.lock();
            if generation >= 0 || !member_id.is_empty() {
                inner
                    .machine
                    .check_commit(group, generation, member_id, instance_id, 9)?;
            }
            if commits.is_empty() {
                return Ok(());
            }
            let recs = GroupCoordinator::commit_records(group, &commits);
            let (topic, part) = self.offsets().map_err(|_| codes::NOT_COORDINATOR)?;
            let bytes = partition_io::encode(
                &recs,
                now_ms,
                batch::build::Producer {
                    id: producer_id,
                    epoch: producer_epoch,
                    base_sequence: -1,
                    attributes: batch::ATTR_TRANSACTIONAL,
                },
            );
            let files = part
                .append_coordinator(&bytes, &topic.config(), now_ms)
                .map_err(|e| match e {
                    LogError::TooLarge { .. } => codes::INVALID_COMMIT_OFFSET_SIZE,
                    LogError::Producer(p) => crate::handlers::errors::producer_error(&p),
                    _ => codes::NOT_COORDINATOR,
                })?
                .files;
            inner
                .pending_txn
                .entry(producer_id)
                .or_default()
                .extend(recs);
            (self.fsync && !files.is_empty()).then(|| self.syncer.submit(files))
        };
        if let Some(w) = durable {
            w.await
                .unwrap_or_else(|_| Err("syncer stopped".into()))
                .map_err(|_| codes::NOT_COORDINATOR)?;
        }
        Ok(())
    }

    /// A group's partitions whose offsets wait for a transaction's outcome
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn pending_txn_offsets(&self, group: &str) -> Vec<(String, i32)> {
        let inner = self.lock();
        inner
            .pending_txn
            .values()
            .flatten()
            .filter_map(|r| match records::decode_key(&r.key) {
                Some(records::Key::Offset {
                    group: g,
                    topic,
                    partition,
                }) if g == group => Some((topic, partition)),
                _ => None,
            })
            .collect()
    }

    /// Writes the transaction marker for `producer_id` to
    /// `__consumer_offsets` and applies (commit) or drops (abort) its
    /// pending offsets. Returns the files to sync; nothing if the producer
    /// has no offsets pending.
    pub fn complete_txn(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Vec<Arc<std::fs::File>>, LogError> {
        let mut inner = self.lock();
        let (topic, part) = self.offsets()?;
        if !part.has_open_txn(producer_id) {
            inner.pending_txn.remove(&producer_id);
            return Ok(Vec::new());
        }
        let appended =
            part.append_marker(producer_id, epoch, commit, 0, &topic.config(), now_ms)?;
        let recs = inner.pending_txn.remove(&producer_id).unwrap_or_default();
        if commit {
            for r in recs {
                inner.machine.replay(&r.key, r.value.as_deref(), now_ms);
            }
        }
        Ok(appended.files)
    }

    fn offsets(&self) -> Result<(Arc<crate::log::topic::Topic>, Arc<Partition>), LogError> {
        let topic = self
            .log
            .topic(OFFSETS_TOPIC)
            .ok_or_else(|| LogError::Invalid(format!("{OFFSETS_TOPIC} is missing")))?;
        let part = topic
            .partition(0)
            .ok_or_else(|| LogError::Invalid(format!("{OFFSETS_TOPIC} has no partition 0")))?;
        Ok((topic, part))
    }

    /// An operation that only writes records (DeleteGroups, OffsetDelete).
    pub async fn write<T>(
        &self,
        groups: &[&str],
        now_ms: i64,
        op: impl FnOnce(&mut GroupCoordinator) -> (T, Effects),
    ) -> Result<T, ErrorCode> {
        let durable = {
            let mut inner = self.lock();
            self.tick_locked(&mut inner, Some(groups), now_ms);
            let (out, fx) = op(&mut inner.machine);
            let files = self
                .append(&fx.records, now_ms)
                .map_err(|_| codes::COORDINATOR_NOT_AVAILABLE)?;
            (
                out,
                (self.fsync && !files.is_empty()).then(|| self.syncer.submit(files)),
            )
        };
        if let Some(w) = durable.1 {
            w.await
                .unwrap_or_else(|_| Err("syncer stopped".into()))
                .map_err(|_| codes::COORDINATOR_NOT_AVAILABLE)?;
        }
        Ok(durable.0)
    }

    /// Stops answering: every waiting JoinGroup and SyncGroup gets
    /// NOT_COORDINATOR, as when Kafka unloads a coordinator.
    pub fn close(&self) {
        let waiters: Vec<_> = self.lock().waiters.drain().collect();
        drop(waiters);
    }
}

fn offsets_partition(log: &LogManager) -> anyhow::Result<Arc<Partition>> {
    log.topic(OFFSETS_TOPIC)
        .and_then(|t| t.partition(0))
        .ok_or_else(|| anyhow::anyhow!("{OFFSETS_TOPIC} has no partition 0"))
}

/// Replays the partition into the machine; returns (records applied,
/// records that did not decode). A batch that does not decode is skipped.
fn replay(
    part: &Partition,
    machine: &mut GroupCoordinator,
    pending: &mut HashMap<i64, Vec<Record>>,
    now_ms: i64,
) -> (u64, u64) {
    let (mut applied, mut bad) = (0u64, 0u64);
    partition_io::replay(part, |batch| match batch {
        Replayed::Marker {
            producer_id,
            commit,
        } => {
            // A transaction's outcome: apply or drop its offsets.
            let recs = pending.remove(&producer_id).unwrap_or_default();
            if commit {
                for r in recs {
                    if machine.replay(&r.key, r.value.as_deref(), now_ms) {
                        applied += 1;
                    }
                }
            }
        }
        Replayed::Records {
            transactional_producer: Some(pid),
            records,
        } => pending.entry(pid).or_default().extend(records),
        Replayed::Records {
            transactional_producer: None,
            records,
        } => {
            for r in records {
                if machine.replay(&r.key, r.value.as_deref(), now_ms) {
                    applied += 1;
                } else {
                    bad += 1;
                }
            }
        }
        Replayed::Undecodable => bad += 1,
    });
    machine.finish_replay(now_ms);
    (applied, bad)
}
