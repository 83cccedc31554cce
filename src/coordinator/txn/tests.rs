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
    let (_, recs) = c.tick(10_000_000);
    assert!(c.get("t").is_none());
    assert!(recs[0].value.is_none());
    assert_eq!(
        c.init("t", 120_000, None, 0, &mut next).unwrap_err(),
        codes::INVALID_TRANSACTION_TIMEOUT
    );
}
