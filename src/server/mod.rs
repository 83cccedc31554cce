//! The network edge: accept connections, enforce limits, shut down cleanly.
//!
//! Invariants: only this module touches sockets; every connection is
//! counted against `max_connections`; on shutdown no new connection or
//! request is accepted, requests already read are answered, then the log
//! is synced and marked clean.

pub mod connection;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

use crate::handlers::Broker;

/// Counts live connections so shutdown can wait for them.
#[derive(Default)]
pub struct Live {
    count: AtomicUsize,
    idle: Notify,
}

impl Live {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no connection is live, or the timeout passes.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.count() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

pub struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    live: Arc<Live>,
) {
    let slots = Arc::new(Semaphore::new(broker.settings.max_connections));
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = broker.settings.max_connections, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        broker.metrics.connections_accepted.increment(1);
        let guard = live.enter();
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection::run(broker, stream, shutdown).await;
            drop(permit);
            drop(guard);
        });
    }
}

/// Completes when the shutdown flag turns true (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
