//! Group commit: one `fdatasync` round serves every append waiting for it.
//!
//! Produce handlers with `acks=all` (in fsync durability) send the segment
//! files they wrote to and wait. The syncer takes everything queued, syncs
//! each distinct file once on a blocking thread, and answers them all; what
//! arrives meanwhile waits for the next round. Under load a round serves many
//! producers and partitions, so sync cost per byte falls as load rises.

use std::fs::File;
use std::sync::Arc;

use metrics::Histogram;
use tokio::sync::{mpsc, oneshot};

/// Most files synced in one round; a bound on the work queued behind one sync.
const MAX_FILES_PER_ROUND: usize = 4096;

struct Request {
    files: Vec<Arc<File>>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Handle to the syncer task.
#[derive(Clone)]
pub struct Syncer {
    tx: mpsc::UnboundedSender<Request>,
}

impl Syncer {
    /// Starts the syncer on the current tokio runtime; each round's fsync
    /// time is recorded in `seconds`.
    pub fn start(seconds: Histogram) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, seconds));
        Self { tx }
    }

    /// Queues `files` for the next sync round and returns at once; the
    /// receiver completes when every byte written to them so far is on disk.
    /// Submitting eagerly (not on first poll) is what lets pipelined produce
    /// requests share one round.
    pub fn submit(&self, files: Vec<Arc<File>>) -> oneshot::Receiver<Result<(), String>> {
        let (done, wait) = oneshot::channel();
        if files.is_empty() {
            let _ = done.send(Ok(()));
        } else if let Err(mpsc::error::SendError(r)) = self.tx.send(Request { files, done }) {
            let _ = r.done.send(Err("syncer stopped".to_string()));
        }
        wait
    }

    /// Waits until every byte written to `files` so far is on disk.
    pub async fn sync(&self, files: Vec<Arc<File>>) -> Result<(), String> {
        self.submit(files)
            .await
            .map_err(|_| "syncer stopped".to_string())?
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Request>, seconds: Histogram) {
    while let Some(first) = rx.recv().await {
        let mut round = vec![first];
        while round.len() < MAX_FILES_PER_ROUND {
            match rx.try_recv() {
                Ok(r) => round.push(r),
                Err(_) => break,
            }
        }
        let mut files: Vec<Arc<File>> =
            round.iter().flat_map(|r| r.files.iter().cloned()).collect();
        files.sort_by_key(|f| Arc::as_ptr(f) as usize);
        files.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let began = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            for f in &files {
                f.sync_data().map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        seconds.record(began.elapsed().as_secs_f64());
        for r in round {
            let _ = r.done.send(result.clone());
        }
    }
}
