//! The transaction state machine driven with explicit times.

use super::*;

fn coord() -> TxnCoordinator {
    TxnCoordinator::new(TxnConfig {
        max_timeout_ms: 60_000,
        id_expiration_ms: 1_000_000,
    })
}

fn ids() -> impl FnMut() -> Option<i64> {
    let mut n = 100;
    move || {
        n += 1;
        Some(n)
    }
}

fn ready(o: InitOutcome) -> (i64, i16) {
    match o {
        InitOutcome::Ready { producer_id, epoch } => (producer_id, epoch),
        InitOutcome::AbortFirst(_) => panic!("expected ready"),
    }
}

#[test]
fn commit_cycle_and_retries() {
    let mut c = coord();
    let mut next = ids();
    let (pid, epoch) = ready(c.init("t", 10_000, None, 0, &mut next).unwrap().0);
    assert_eq!((pid, epoch), (101, 0));
    assert_eq!(
        c.end("t", pid, epoch, true, 1).unwrap_err(),
        codes::INVALID_TXN_STATE
    );
    let parts = vec![("a".to_string(), 0), ("b".to_string(), 1)];
    assert_eq!(
        c.add_partitions("t", pid, epoch, &parts, 2).unwrap().len(),
        1
    );
    // Adding the same partitions again writes nothing.
    assert!(c
        .add_partitions("t", pid, epoch, &parts, 3)
        .unwrap()
        .is_empty());
    assert_eq!(c.verify("t", pid, epoch, &parts[0]), codes::NONE);
    assert_eq!(
        c.verify("t", pid, epoch, &("z".to_string(), 0)),
        codes::INVALID_TXN_STATE
    );
    let (job, _) = c.end("t", pid, epoch, true, 4).unwrap();
    let job = job.unwrap();
    assert!(job.commit && job.partitions == parts);
    // While markers are written, everything else waits.
    assert_eq!(
        c.add_partitions("t", pid, epoch, &parts, 5).unwrap_err(),
        codes::CONCURRENT_TRANSACTIONS
    );
    assert_eq!(c.complete("t", 6).len(), 1);
    assert_eq!(c.get("t").unwrap().status, TxnStatus::CompleteCommit);
    // A retried commit is answered; an abort now is not valid.
    assert!(c.end("t", pid, epoch, true, 7).unwrap().0.is_none());
    assert_eq!(
        c.end("t", pid, epoch, false, 7).unwrap_err(),
        codes::INVALID_TXN_STATE
    );
}

#[test]
fn fencing_aborts_the_open_transaction() {
    let mut c = coord();
    let mut next = ids();
    let (pid, e0) = ready(c.init("t", 10_000, None, 0, &mut next).unwrap().0);
    c.add_partitions("t", pid, e0, &[("a".to_string(), 0)], 1)
        .unwrap();
    // A second producer with the same id: the open transaction is aborted
    // with a bumped epoch first.
    let (o, _) = c.init("t", 10_000, None, 2, &mut next).unwrap();
    let InitOutcome::AbortFirst(job) = o else {
        panic!("expected abort")
    };
    assert!(!job.commit && job.epoch == e0 + 1);
    c.complete("t", 3);
    let (pid2, e2) = ready(c.init("t", 10_000, None, 4, &mut next).unwrap().0);
    assert_eq!((pid2, e2), (pid, e0 + 2));
    // The zombie is fenced everywhere.
    assert_eq!(
        c.add_partitions("t", pid, e0, &[("a".to_string(), 0)], 5)
            .unwrap_err(),
        codes::PRODUCER_FENCED
    );
    assert_eq!(
        c.end("t", pid, e0, true, 5).unwrap_err(),
        codes::PRODUCER_FENCED
    );
    // KIP-360: a bump with a stale epoch is fenced too.
    assert_eq!(
        c.init("t", 10_000, Some((pid, e0)), 6, &mut next)
            .unwrap_err(),
        codes::PRODUCER_FENCED
    );
}

#[test]
fn timeouts_abort_and_ids_expire_and_replay_restores() {
    let mut c = coord();
    let mut next = ids();
    let (pid, e) = ready(c.init("t", 1_000, None, 0, &mut next).unwrap().0);
    c.add_partitions("t", pid, e, &[("a".to_string(), 0)], 10)
        .unwrap();
    assert!(c.tick(500).0.is_empty());
    let (jobs, recs) = c.tick(1_011);
    assert_eq!(jobs.len(), 1);
    assert_eq!(recs.len(), 1);
    // Replaying what was written gives the same state.
    let mut r = coord();
    for rec in &recs {
        assert!(r.replay(&rec.key, rec.value.as_deref()));
    }
    assert_eq!(r.get("t").map(|m| m.status), Some(TxnStatus::PrepareAbort));
    assert_eq!(r.pending_after_replay().len(), 1);
    c.complete("t", 1_012);
    // KIP-360: the timed-out producer bumps with its old epoch and is given
    // the epoch the fence set, without another bump.
    let (o, recs) = c
        .init("t", 1_000, Some((pid, e)), 1_013, &mut next)
        .unwrap();
    assert_eq!(ready(o), (pid, e + 1));
    assert!(recs.is_empty());
    let (_, recs) = c.tick(10_000_000);
    assert!(c.get("t").is_none());
    assert!(recs[0].value.is_none());
    assert_eq!(
        c.init("t", 120_000, None, 0, &mut next).unwrap_err(),
        codes::INVALID_TRANSACTION_TIMEOUT
    );
}

/// A partition as the runtime drives it: producer state plus a log of
/// (producer, epoch, sequence, transactional, marker) entries.
#[derive(Default)]
struct SimPartition {
    states: crate::log::producer_state::ProducerStates,
    log: Vec<(i64, i16, i32, bool, Option<bool>)>,
    aborted: Vec<crate::log::producer_state::AbortedTxn>,
}

impl SimPartition {
    fn next(&self) -> i64 {
        self.log.len() as i64
    }
    fn lso(&self) -> i64 {
        self.states.first_unstable_offset().unwrap_or(self.next())
    }
    fn header(pid: i64, epoch: i16, seq: i32) -> crate::protocol::batch::BatchHeader {
        crate::protocol::batch::BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: crate::protocol::batch::ATTR_TRANSACTIONAL,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: 1,
        }
    }
    /// Appends one record; true if written (not a duplicate or refused).
    fn produce(&mut self, pid: i64, epoch: i16, seq: i32) -> bool {
        let h = Self::header(pid, epoch, seq);
        match self.states.check(&h) {
            Ok(crate::log::producer_state::Verdict::Fresh) => {
                let at = self.next();
                self.states.record(&h, at, at, 0);
                self.log.push((pid, epoch, seq, true, None));
                true
            }
            _ => false,
        }
    }
    fn marker(&mut self, job: &MarkerJob) {
        if !self.states.has_open_txn(job.producer_id)
            || self
                .states
                .check_marker(job.producer_id, job.epoch)
                .is_err()
        {
            return;
        }
        let at = self.next();
        if let Some(t) = self
            .states
            .complete_txn(job.producer_id, job.epoch, at, job.commit, 0, 0)
        {
            self.aborted.push(t);
        }
        self.log
            .push((job.producer_id, job.epoch, -1, true, Some(job.commit)));
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A seeded random workload over the coordinator and three partitions,
/// checking after every step: LSO ≤ high watermark; no (producer, epoch,
/// sequence) appended twice; every decided transaction has a marker on
/// each partition it wrote to; read_committed never sees an aborted record.
#[test]
fn seeded_random_workload_keeps_the_invariants() {
    let seeds: Vec<u64> = match std::env::var("FJORD_TXN_SEED") {
        Ok(s) => s.split(',').filter_map(|x| x.parse().ok()).collect(),
        Err(_) => (1..=25).collect(),
    };
    for seed in seeds {
        run_workload(seed, 600);
    }
}

fn run_workload(seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut c = TxnCoordinator::new(TxnConfig {
        max_timeout_ms: 60_000,
        id_expiration_ms: i64::MAX / 2,
    });
    let mut parts: Vec<SimPartition> = (0..3).map(|_| SimPartition::default()).collect();
    let mut next_pid = 0i64;
    let mut alloc = move || {
        next_pid += 1;
        Some(next_pid)
    };
    // Each client: (transactional id, producer id, epoch, next sequence per partition).
    let mut clients: Vec<(String, i64, i16, [i32; 3])> = Vec::new();
    let mut now = 0i64;
    let run_job = |parts: &mut Vec<SimPartition>, job: &MarkerJob| {
        for (_, p) in &job.partitions {
            if let Some(sp) = parts.get_mut(*p as usize) {
                sp.marker(job);
            }
        }
    };
    for step in 0..steps {
        now += rng.below(300) as i64;
        let ctx = format!("seed {seed} step {step}");
        match rng.below(10) {
            0 => {
                // (Re)initialise a client: fences any older incarnation.
                let id = format!("t{}", rng.below(3));
                let mut tries = 0;
                loop {
                    tries += 1;
                    assert!(tries < 4, "{ctx}: init does not converge");
                    match c.init(&id, 5_000, None, now, &mut alloc) {
                        Ok((InitOutcome::Ready { producer_id, epoch }, _)) => {
                            clients.retain(|cl| cl.0 != id);
                            clients.push((id.clone(), producer_id, epoch, [0; 3]));
                            break;
                        }
                        Ok((InitOutcome::AbortFirst(job), _)) => {
                            run_job(&mut parts, &job);
                            c.complete(&id, now);
                        }
                        Err(e) => panic!("{ctx}: init failed {e}"),
                    }
                }
            }
            1..=5 if !clients.is_empty() => {
                // Produce to a random partition (added first), sometimes twice (a retry).
                let i = rng.below(clients.len() as u64) as usize;
                let p = rng.below(3) as usize;
                let (id, pid, epoch, seqs) = clients[i].clone();
                if c.add_partitions(&id, pid, epoch, &[("t".to_string(), p as i32)], now)
                    .is_err()
                {
                    continue;
                }
                let seq = seqs[p];
                if parts[p].produce(pid, epoch, seq) {
                    clients[i].3[p] += 1;
                }
                if rng.below(4) == 0 {
                    assert!(
                        !parts[p].produce(pid, epoch, seq),
                        "{ctx}: duplicate written"
                    );
                }
            }
            6 | 7 if !clients.is_empty() => {
                let i = rng.below(clients.len() as u64) as usize;
                let (id, pid, epoch, _) = clients[i].clone();
                let commit = rng.below(2) == 0;
                if let Ok((Some(job), _)) = c.end(&id, pid, epoch, commit, now) {
                    run_job(&mut parts, &job);
                    c.complete(&id, now);
                }
            }
            _ => {
                let (jobs, _) = c.tick(now);
                for job in jobs {
                    run_job(&mut parts, &job);
                    c.complete(&job.transactional_id, now);
                }
            }
        }
        for (pi, sp) in parts.iter().enumerate() {
            assert!(sp.lso() <= sp.next(), "{ctx}: LSO past HW on {pi}");
            let mut seen = std::collections::HashSet::new();
            for e in sp.log.iter().filter(|e| e.4.is_none()) {
                assert!(seen.insert((e.0, e.1, e.2)), "{ctx}: {e:?} appended twice");
            }
            // read_committed: below the LSO, no record of an aborted range.
            for (off, e) in sp.log.iter().enumerate() {
                let off = off as i64;
                if off >= sp.lso() || e.4.is_some() {
                    continue;
                }
                let aborted = sp
                    .aborted
                    .iter()
                    .any(|t| t.producer_id == e.0 && t.first_offset <= off && off < t.last_offset);
                let committed = sp
                    .log
                    .iter()
                    .skip(off as usize)
                    .any(|m| m.0 == e.0 && m.4 == Some(true));
                assert!(
                    aborted || committed,
                    "{ctx}: record {off} on {pi} below the LSO is undecided"
                );
            }
        }
        // Every transaction the coordinator has decided is closed everywhere.
        for (id, m) in c.iter() {
            if matches!(
                m.status,
                TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
            ) {
                for (_, p) in &m.partitions {
                    assert!(
                        !parts[*p as usize].states.has_open_txn(m.producer_id),
                        "{ctx}: {id} decided but open on partition {p}"
                    );
                }
            }
        }
    }
}
