//! Runs the transaction coordinator: the state machine under one lock, its
//! records appended to `__transaction_state`, and markers written to the
//! data partitions.
//!
//! Order of an EndTxn, each step durable before the next (fsync mode):
//! 1. Prepare{Commit,Abort} record — the decision; from here the outcome
//!    survives any crash;
//! 2. a marker in every partition where the producer's transaction is open
//!    (and `__consumer_offsets`, applying its transactional offsets);
//! 3. Complete{Commit,Abort} record; then the client is answered.
//!
//! At start-up the partition is replayed and every Prepare* or Complete*
//! transaction gets its markers wherever the producer's transaction is
//! still open, so a SIGKILL between 1 and 3 ends with the transaction fully
//! committed or fully aborted. Markers are written only where a transaction
//! is open, which makes this idempotent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::partition_io::{self, Replayed};
use super::producer_id::ProducerIdAllocator;
use super::records::Record;
use super::runtime::GroupRuntime;
use super::txn::{InitOutcome, MarkerJob, TxnConfig, TxnCoordinator};
use super::OFFSETS_TOPIC;
use crate::config::{Durability, Settings};
use crate::log::sync::Syncer;
use crate::log::{LogError, LogManager};
use crate::protocol::batch;
use crate::protocol::codes::{self, ErrorCode};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

pub struct TxnRuntime {
    machine: Mutex<TxnCoordinator>,
    log: Arc<LogManager>,
    groups: Arc<GroupRuntime>,
    pids: ProducerIdAllocator,
    syncer: Syncer,
    fsync: bool,
}

type Files = Vec<Arc<std::fs::File>>;

impl TxnRuntime {
    /// Creates `__transaction_state` if needed, replays it and finishes
    /// what a crash interrupted.
    pub async fn open(
        log: Arc<LogManager>,
        settings: &Settings,
        syncer: Syncer,
        groups: Arc<GroupRuntime>,
        now_ms: i64,
    ) -> anyhow::Result<Self> {
        if log.topic(TXN_TOPIC).is_none() {
            let configs = BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), "104857600".to_string()),
            ]);
            log.create_topic(TXN_TOPIC, 1, configs, false, now_ms)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create {TXN_TOPIC}: {e}"))?;
        }
        let mut machine = TxnCoordinator::new(TxnConfig {
            max_timeout_ms: settings.transaction_max_timeout_ms,
            id_expiration_ms: settings.transactional_id_expiration_ms,
        });
        let part = log
            .topic(TXN_TOPIC)
            .and_then(|t| t.partition(0))
            .ok_or_else(|| anyhow::anyhow!("{TXN_TOPIC} has no partition 0"))?;
        let (machine, n) = tokio::task::spawn_blocking(move || {
            let n = replay(&part, &mut machine);
            (machine, n)
        })
        .await?;
        let rt = TxnRuntime {
            pids: ProducerIdAllocator::open(log.data_dir())?,
            machine: Mutex::new(machine),
            log,
            groups,
            syncer,
            fsync: settings.durability == Durability::Fsync,
        };
        let jobs = rt.lock().pending_after_replay();
        let mut finished = 0usize;
        for job in jobs {
            let wrote = rt.write_markers(&job, now_ms).await;
            match wrote {
                Ok(true) => finished += 1,
                Ok(false) => {}
                Err(code) => {
                    tracing::error!(id = %job.transactional_id, code, "cannot finish transaction")
                }
            }
            let recs = rt.lock().complete(&job.transactional_id, now_ms);
            let _ = rt.write(&recs, now_ms).await;
        }
        tracing::info!(
            records = n,
            finished,
            transactional_ids = rt.lock().iter().count(),
            "transaction coordinator loaded"
        );
        Ok(rt)
    }

    fn lock(&self) -> MutexGuard<'_, TxnCoordinator> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the state machine under the lock.
    pub fn read<T>(&self, f: impl FnOnce(&TxnCoordinator) -> T) -> T {
        f(&self.lock())
    }

    fn append(&self, recs: &[Record], now_ms: i64) -> Result<Files, LogError> {
        if recs.is_empty() {
            return Ok(Vec::new());
        }
        let topic = self
            .log
            .topic(TXN_TOPIC)
            .ok_or_else(|| LogError::Invalid(format!("{TXN_TOPIC} is missing")))?;
        let part = topic
            .partition(0)
            .ok_or_else(|| LogError::Invalid(format!("{TXN_TOPIC} has no partition 0")))?;
        let bytes = partition_io::encode(recs, now_ms, batch::build::Producer::NONE);
        Ok(part.append(&bytes, &topic.config(), now_ms)?.files)
    }

    async fn sync(&self, files: Files) -> Result<(), ErrorCode> {
        if !self.fsync || files.is_empty() {
            return Ok(());
        }
        self.syncer
            .submit(files)
            .await
            .unwrap_or_else(|_| Err("syncer stopped".into()))
            .map_err(|e| {
                tracing::error!(error = %e, "cannot sync transaction records");
                codes::COORDINATOR_NOT_AVAILABLE
            })
    }

    async fn write(&self, recs: &[Record], now_ms: i64) -> Result<(), ErrorCode> {
        let files = self.append(recs, now_ms).map_err(|e| {
            tracing::error!(error = %e, "cannot write transaction records");
            codes::COORDINATOR_NOT_AVAILABLE
        })?;
        self.sync(files).await
    }

    /// Writes a job's markers where the producer's transaction is open.
    /// Returns whether any marker was written.
    async fn write_markers(&self, job: &MarkerJob, now_ms: i64) -> Result<bool, ErrorCode> {
        let mut files: Files = Vec::new();
        for (topic, p) in &job.partitions {
            let result = if topic == OFFSETS_TOPIC {
                self.groups
                    .complete_txn(job.producer_id, job.epoch, job.commit, now_ms)
            } else {
                let Some((t, part)) = self
                    .log
                    .topic(topic)
                    .and_then(|t| t.partition(*p).map(|part| (t, part)))
                else {
                    continue; // deleted since it joined the transaction
                };
                if !part.has_open_txn(job.producer_id) {
                    continue;
                }
                part.append_marker(
                    job.producer_id,
                    job.epoch,
                    job.commit,
                    0,
                    &t.config(),
                    now_ms,
                )
                .map(|a| a.files)
            };
            match result {
                Ok(f) => {
                    for x in f {
                        if !files.iter().any(|y| Arc::ptr_eq(&x, y)) {
                            files.push(x);
                        }
                    }
                }
                Err(LogError::Producer(e)) => {
                    // The producer moved to a newer epoch here already.
                    tracing::warn!(topic = %topic, partition = p, error = %e, "marker refused");
                }
                Err(e) => {
                    tracing::error!(topic = %topic, partition = p, error = %e, "cannot write marker");
                    return Err(codes::COORDINATOR_NOT_AVAILABLE);
                }
            }
        }
        let wrote = !files.is_empty();
        self.sync(files).await?;
        Ok(wrote)
    }

    /// Prepare → markers → Complete, for one decided transaction.
    async fn finish(&self, job: &MarkerJob, now_ms: i64) -> Result<(), ErrorCode> {
        self.write_markers(job, now_ms).await?;
        let recs = self.lock().complete(&job.transactional_id, now_ms);
        self.write(&recs, now_ms).await
    }

    /// InitProducerId. Without a transactional id: a fresh producer id.
    pub async fn init_producer_id(
        &self,
        transactional_id: Option<&str>,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<(i64, i16), ErrorCode> {
        let next = || {
            self.pids.next().map_err(|e| {
                tracing::error!(error = %e, "cannot allocate producer ids");
                codes::COORDINATOR_NOT_AVAILABLE
            })
        };
        let Some(id) = transactional_id else {
            return Ok((next()?, 0));
        };
        // At most: fence and abort an open transaction, then bump.
        for _ in 0..3 {
            let (outcome, recs) = {
                let mut m = self.lock();
                let mut alloc = || next().ok();
                m.init(id, timeout_ms, expected, now_ms, &mut alloc)?
            };
            self.write(&recs, now_ms).await?;
            match outcome {
                InitOutcome::Ready { producer_id, epoch } => return Ok((producer_id, epoch)),
                InitOutcome::AbortFirst(job) => self.finish(&job, now_ms).await?,
            }
        }
        Err(codes::CONCURRENT_TRANSACTIONS)
    }

    pub async fn add_partitions(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        parts: &[(String, i32)],
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        let recs = self.lock().add_partitions(id, pid, epoch, parts, now_ms)?;
        self.write(&recs, now_ms).await
    }

    pub fn verify(&self, id: &str, pid: i64, epoch: i16, part: &(String, i32)) -> ErrorCode {
        self.lock().verify(id, pid, epoch, part)
    }

    pub async fn end_txn(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        let (job, recs) = self.lock().end(id, pid, epoch, commit, now_ms)?;
        self.write(&recs, now_ms).await?;
        match job {
            Some(job) => self.finish(&job, now_ms).await,
            None => Ok(()),
        }
    }

    /// Aborts timed-out transactions and expires idle ids.
    pub async fn tick(&self, now_ms: i64) {
        let (jobs, recs) = self.lock().tick(now_ms);
        if recs.is_empty() {
            return;
        }
        if self.write(&recs, now_ms).await.is_err() {
            return;
        }
        for job in jobs {
            tracing::info!(id = %job.transactional_id, producer_id = job.producer_id, "aborting timed-out transaction");
            if let Err(code) = self.finish(&job, now_ms).await {
                tracing::error!(id = %job.transactional_id, code, "cannot abort timed-out transaction");
            }
        }
    }
}

/// Replays `__transaction_state`; returns the records applied.
fn replay(part: &crate::log::Partition, machine: &mut TxnCoordinator) -> u64 {
    let mut applied = 0u64;
    partition_io::replay(part, |batch| {
        if let Replayed::Records { records, .. } = batch {
            for r in records {
                if machine.replay(&r.key, r.value.as_deref()) {
                    applied += 1;
                }
            }
        }
    });
    applied
}
