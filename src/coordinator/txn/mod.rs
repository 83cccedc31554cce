//! The transaction coordinator as a deterministic state machine: one
//! `TxnMeta` per transactional id, with only Kafka's transitions
//! (`TransactionState.validPreviousStates`):
//!
//! ```text
//! Empty ─AddPartitions─▶ Ongoing ─EndTxn─▶ PrepareCommit ─markers─▶ CompleteCommit
//!                           │    └─EndTxn/timeout/fence─▶ PrepareAbort ─markers─▶ CompleteAbort
//! Complete* ─AddPartitions─▶ Ongoing;   Empty/Complete* ─InitProducerId─▶ Empty (epoch + 1)
//! Empty/Complete* ─expiry─▶ Dead (tombstone)
//! ```
//!
//! Operations take the time and a producer-id source as parameters and
//! return the records to write; the runtime writes them to
//! `__transaction_state`, writes markers to the data partitions between a
//! Prepare* record and its Complete* record, and answers once durable.
//! PrepareEpochFence is folded into PrepareAbort with the bumped epoch.

pub mod records;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::coordinator::records::Record;
use crate::protocol::codes::{self, ErrorCode};

/// Kafka's `TransactionState` ids, as stored in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnStatus {
    pub fn from_i8(v: i8) -> Option<Self> {
        Some(match v {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            7 => Self::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    fn is_prepare(self) -> bool {
        matches!(
            self,
            Self::PrepareCommit | Self::PrepareAbort | Self::PrepareEpochFence
        )
    }

    fn is_complete_or_empty(self) -> bool {
        matches!(
            self,
            Self::Empty | Self::CompleteCommit | Self::CompleteAbort
        )
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    /// The id before an epoch overflow gave a new one (-1: none).
    pub prev_producer_id: i64,
    pub epoch: i16,
    /// The epoch before the last InitProducerId (KIP-360 retries).
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub update_ms: i64,
}

/// Markers to write: to every partition, for this producer and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

#[derive(Debug, Clone, Copy)]
pub struct TxnConfig {
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i64,
}

/// What InitProducerId found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    Ready {
        producer_id: i64,
        epoch: i16,
    },
    /// An open transaction must be aborted first (fencing): write these
    /// markers, `complete` the id, then call `init` again.
    AbortFirst(MarkerJob),
}

/// The last epoch a producer id may have; the next bump takes a new id.
const MAX_EPOCH: i16 = i16::MAX - 1;

pub struct TxnCoordinator {
    txns: BTreeMap<String, TxnMeta>,
    cfg: TxnConfig,
}

impl TxnCoordinator {
    pub fn new(cfg: TxnConfig) -> Self {
        Self {
            txns: BTreeMap::new(),
            cfg,
        }
    }

    pub fn get(&self, id: &str) -> Option<&TxnMeta> {
        self.txns.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TxnMeta)> {
        self.txns.iter()
    }

    /// InitProducerId for a transactional id. `expected` is the
    /// (producer id, epoch) a v3+ client sends to bump its own epoch
    /// (KIP-360); `next_id` allocates a fresh producer id.
    pub fn init(
        &mut self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        next_id: &mut dyn FnMut() -> Option<i64>,
    ) -> Result<(InitOutcome, Vec<Record>), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.cfg.max_timeout_ms {
            return Err(codes::INVALID_TRANSACTION_TIMEOUT);
        }
        let Some(m) = self.txns.get_mut(id) else {
            let pid = next_id().ok_or(codes::COORDINATOR_NOT_AVAILABLE)?;
            let m = TxnMeta {
                producer_id: pid,
                prev_producer_id: -1,
                epoch: 0,
                last_epoch: -1,
                timeout_ms,
                status: TxnStatus::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                update_ms: now_ms,
            };
            let rec = records::record(id, Some(&m));
            self.txns.insert(id.to_string(), m);
            return Ok((
                InitOutcome::Ready {
                    producer_id: pid,
                    epoch: 0,
                },
                vec![rec],
            ));
        };
        if m.status.is_prepare() {
            return Err(codes::CONCURRENT_TRANSACTIONS);
        }
        let expected = expected.filter(|(pid, _)| *pid >= 0);
        if let Some((pid, _)) = expected {
            if pid != m.producer_id && pid != m.prev_producer_id {
                return Err(codes::PRODUCER_FENCED);
            }
        }
        if m.status == TxnStatus::Ongoing {
            let job = Self::prepare_abort(id, m, true, now_ms);
            let rec = records::record(id, Some(m));
            return Ok((InitOutcome::AbortFirst(job), vec![rec]));
        }
        if let Some((pid, epoch)) = expected {
            // Kafka's prepareIncrementProducerEpoch: the current epoch is
            // bumped; the previous one is a retry of a bump (or of a fence by
            // timeout) the client did not hear of, answered with the current
            // epoch; anything else is a zombie.
            let current = pid == m.producer_id && epoch == m.epoch;
            let retry = (pid == m.producer_id && epoch == m.last_epoch)
                || (pid == m.prev_producer_id && m.epoch == 0);
            if retry && !current {
                return Ok((
                    InitOutcome::Ready {
                        producer_id: m.producer_id,
                        epoch: m.epoch,
                    },
                    Vec::new(),
                ));
            }
            if !current {
                return Err(codes::PRODUCER_FENCED);
            }
        }
        m.timeout_ms = timeout_ms;
        m.last_epoch = m.epoch;
        if m.epoch >= MAX_EPOCH {
            let pid = next_id().ok_or(codes::COORDINATOR_NOT_AVAILABLE)?;
            m.prev_producer_id = m.producer_id;
            m.producer_id = pid;
            m.epoch = 0;
            m.last_epoch = -1;
        } else {
            m.epoch += 1;
        }
        m.status = TxnStatus::Empty;
        m.partitions.clear();
        m.update_ms = now_ms;
        Ok((
            InitOutcome::Ready {
                producer_id: m.producer_id,
                epoch: m.epoch,
            },
            vec![records::record(id, Some(m))],
        ))
    }

    fn prepare_abort(id: &str, m: &mut TxnMeta, bump: bool, now_ms: i64) -> MarkerJob {
        if bump && m.epoch < MAX_EPOCH {
            m.last_epoch = m.epoch;
            m.epoch += 1;
        }
        m.status = TxnStatus::PrepareAbort;
        m.update_ms = now_ms;
        MarkerJob {
            transactional_id: id.to_string(),
            producer_id: m.producer_id,
            epoch: m.epoch,
            commit: false,
            partitions: m.partitions.iter().cloned().collect(),
        }
    }

    /// Checks a request's producer id and epoch against the id's state.
    fn check<'a>(
        txns: &'a mut BTreeMap<String, TxnMeta>,
        id: &str,
        pid: i64,
        epoch: i16,
    ) -> Result<&'a mut TxnMeta, ErrorCode> {
        let m = txns.get_mut(id).ok_or(codes::INVALID_PRODUCER_ID_MAPPING)?;
        if m.producer_id != pid {
            return Err(codes::INVALID_PRODUCER_ID_MAPPING);
        }
        if m.epoch != epoch {
            return Err(codes::PRODUCER_FENCED);
        }
        if m.status.is_prepare() {
            return Err(codes::CONCURRENT_TRANSACTIONS);
        }
        if m.status == TxnStatus::Dead {
            return Err(codes::INVALID_PRODUCER_ID_MAPPING);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the offsets partition).
    pub fn add_partitions(
        &mut self,
        id: &str,
        pid: i64,
        epoch: i16,
        parts: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Vec<Record>, ErrorCode> {
        let m = Self::check(&mut self.txns, id, pid, epoch)?;
        if m.status == TxnStatus::Ongoing && parts.iter().all(|p| m.partitions.contains(p)) {
            return Ok(Vec::new());
        }
        if m.status != TxnStatus::Ongoing {
            m.status = TxnStatus::Ongoing;
            m.partitions.clear();
            m.start_ms = now_ms;
        }
        m.partitions.extend(parts.iter().cloned());
        m.update_ms = now_ms;
        Ok(vec![records::record(id, Some(m))])
    }

    /// The verify-only form of AddPartitionsToTxn (KIP-890): is each
    /// partition part of the producer's open transaction?
    pub fn verify(&self, id: &str, pid: i64, epoch: i16, part: &(String, i32)) -> ErrorCode {
        match self.txns.get(id) {
            Some(m) if m.producer_id != pid => codes::INVALID_PRODUCER_ID_MAPPING,
            Some(m) if m.epoch != epoch => codes::PRODUCER_FENCED,
            Some(m) if m.status == TxnStatus::Ongoing && m.partitions.contains(part) => codes::NONE,
            Some(_) => codes::INVALID_TXN_STATE,
            None => codes::INVALID_PRODUCER_ID_MAPPING,
        }
    }

    /// EndTxn: moves an open transaction to Prepare*; `None` answers a
    /// retry of a transaction already completed the same way.
    pub fn end(
        &mut self,
        id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<(Option<MarkerJob>, Vec<Record>), ErrorCode> {
        let m = Self::check(&mut self.txns, id, pid, epoch)?;
        match (m.status, commit) {
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => {
                Ok((None, Vec::new()))
            }
            (TxnStatus::Ongoing, _) => {
                let job = if commit {
                    m.status = TxnStatus::PrepareCommit;
                    m.update_ms = now_ms;
                    MarkerJob {
                        transactional_id: id.to_string(),
                        producer_id: m.producer_id,
                        epoch: m.epoch,
                        commit: true,
                        partitions: m.partitions.iter().cloned().collect(),
                    }
                } else {
                    Self::prepare_abort(id, m, false, now_ms)
                };
                Ok((Some(job), vec![records::record(id, Some(m))]))
            }
            _ => Err(codes::INVALID_TXN_STATE),
        }
    }

    /// After the markers are written: Prepare* becomes Complete*.
    pub fn complete(&mut self, id: &str, now_ms: i64) -> Vec<Record> {
        let Some(m) = self.txns.get_mut(id) else {
            return Vec::new();
        };
        m.status = match m.status {
            TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
            TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => TxnStatus::CompleteAbort,
            _ => return Vec::new(),
        };
        m.update_ms = now_ms;
        vec![records::record(id, Some(m))]
    }

    /// Timers: transactions open longer than their timeout are aborted with
    /// a bumped epoch (fencing the producer, as Kafka does); idle ids older
    /// than `transactional.id.expiration.ms` are removed.
    pub fn tick(&mut self, now_ms: i64) -> (Vec<MarkerJob>, Vec<Record>) {
        let mut jobs = Vec::new();
        let mut recs = Vec::new();
        let mut dead = Vec::new();
        for (id, m) in self.txns.iter_mut() {
            if m.status == TxnStatus::Ongoing
                && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            {
                jobs.push(Self::prepare_abort(id, m, true, now_ms));
                recs.push(records::record(id, Some(m)));
            } else if m.status.is_complete_or_empty()
                && now_ms.saturating_sub(m.update_ms) > self.cfg.id_expiration_ms
            {
                dead.push(id.clone());
            }
        }
        for id in dead {
            self.txns.remove(&id);
            recs.push(records::record(&id, None));
        }
        (jobs, recs)
    }

    /// Replays one record of `__transaction_state`.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> bool {
        let Some(id) = records::decode_key(key) else {
            return false;
        };
        match value {
            None => {
                self.txns.remove(&id);
                true
            }
            Some(v) => match records::decode_value(v) {
                Some(mut m) => {
                    if let Some(old) = self.txns.get(&id) {
                        if old.producer_id != m.producer_id {
                            m.prev_producer_id = old.producer_id;
                        } else {
                            m.prev_producer_id = old.prev_producer_id;
                        }
                    }
                    self.txns.insert(id, m);
                    true
                }
                None => false,
            },
        }
    }

    /// After replay: marker jobs for every transaction a crash left in a
    /// Prepare* state, and for Complete* ones (whose markers the runtime
    /// writes only where the producer's transaction is still open).
    pub fn pending_after_replay(&self) -> Vec<MarkerJob> {
        self.txns
            .iter()
            .filter_map(|(id, m)| {
                let commit = match m.status {
                    TxnStatus::PrepareCommit | TxnStatus::CompleteCommit => true,
                    TxnStatus::PrepareAbort
                    | TxnStatus::PrepareEpochFence
                    | TxnStatus::CompleteAbort => false,
                    _ => return None,
                };
                Some(MarkerJob {
                    transactional_id: id.clone(),
                    producer_id: m.producer_id,
                    epoch: m.epoch,
                    commit,
                    partitions: m.partitions.iter().cloned().collect(),
                })
            })
            .collect()
    }

    /// The id owning an open transaction of `pid`, for the fetch of
    /// producer-facing views (DescribeProducers).
    pub fn by_producer(&self, pid: i64) -> Option<(&String, &TxnMeta)> {
        self.txns.iter().find(|(_, m)| m.producer_id == pid)
    }
}
