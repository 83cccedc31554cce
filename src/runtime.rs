//! Wiring: open the log, serve, run background duties, stop cleanly.
//!
//! Used by `main` and by tests that run a broker in-process.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::coordinator::runtime::GroupRuntime;
use crate::coordinator::txn_runtime::TxnRuntime;
use crate::handlers::Broker;
use crate::log::sync::Syncer;
use crate::log::LogManager;
use crate::metrics::http::Admin;
use crate::metrics::Metrics;
use crate::server::{self, Live};

/// Reads or creates the persisted cluster id (Kafka's 22-character form).
fn cluster_id(dir: &std::path::Path) -> std::io::Result<String> {
    let path = dir.join("cluster-id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let short: String = id.chars().take(22).collect();
    crate::log::partition::write_atomic(&path, short.as_bytes())?;
    Ok(short)
}

/// A running broker.
pub struct Running {
    pub broker: Arc<Broker>,
    pub local_addr: std::net::SocketAddr,
    /// Where the schema registry listens, when it is on.
    pub registry_addr: Option<std::net::SocketAddr>,
    /// Where the admin listener (metrics, health) listens, when it is on.
    pub admin_addr: Option<std::net::SocketAddr>,
    stop: watch::Sender<bool>,
    live: Arc<Live>,
    serve: tokio::task::JoinHandle<()>,
    duties: Vec<tokio::task::JoinHandle<()>>,
}

/// Opens the log and starts serving. Must run inside a tokio runtime.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let settings = Arc::new(settings);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let started = std::time::Instant::now();
    let (stop, stop_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    let admin = Admin::new(metrics.clone());
    // Up before recovery, so /healthz answers while the log is opened.
    let (admin_addr, admin_task) = match settings.admin_addr()? {
        Some(addr) => {
            let (local, task) =
                crate::metrics::http::serve(admin.clone(), addr, stop_rx.clone()).await?;
            (Some(local), Some(task))
        }
        None => (None, None),
    };
    let s2 = settings.clone();
    let now = clock.now_ms();
    let log = tokio::task::spawn_blocking(move || LogManager::open(s2, now)).await??;
    let log = Arc::new(log);
    let r = &log.recovery;
    tracing::info!(
        clean = r.clean,
        segments_scanned = r.segments_scanned,
        bytes_truncated = r.bytes_truncated,
        topics = log.topics().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "log opened"
    );
    let (host, port) = settings.advertised()?;
    let syncer = Syncer::start(metrics.sync_seconds.clone());
    let groups =
        Arc::new(GroupRuntime::open(log.clone(), &settings, syncer.clone(), clock.now_ms()).await?);
    let txns = Arc::new(
        TxnRuntime::open(
            log.clone(),
            &settings,
            syncer.clone(),
            groups.clone(),
            clock.now_ms(),
        )
        .await?,
    );
    let registry_addr = settings.registry_addr()?;
    let schemas = match registry_addr {
        Some(_) => Some(
            crate::registry::open(log.clone(), &settings, syncer.clone(), clock.clone()).await?,
        ),
        None => None,
    };
    let tier = crate::tier::Tier::open(&settings)?;
    if tier.is_none() {
        // Tiering was on before and is off now: without the store, data
        // below the local start cannot be read, so it is not offered.
        for t in log.topics() {
            for p in t
                .partitions()
                .iter()
                .filter(|p| p.remote_log_start().is_some())
            {
                p.set_remote_log_start(None)?;
            }
        }
    }
    let broker = Arc::new(Broker {
        log: log.clone(),
        settings: settings.clone(),
        clock: clock.clone(),
        syncer,
        groups: groups.clone(),
        txns: txns.clone(),
        schemas: schemas.clone(),
        tier: tier.clone(),
        metrics: metrics.clone(),
        cluster_id: cluster_id(&settings.data_dir)?,
        advertised_host: host,
        advertised_port: i32::from(port),
    });
    let listener = TcpListener::bind(settings.listen).await?;
    let local_addr = listener.local_addr()?;
    let live = Arc::new(Live::default());
    let serve = tokio::spawn(server::serve(
        broker.clone(),
        listener,
        stop_rx.clone(),
        live.clone(),
    ));
    let mut registry_local = None;
    let mut registry_task = None;
    if let (Some(service), Some(addr)) = (schemas, registry_addr) {
        let (local, task) =
            crate::registry::serve(service, addr, &settings, stop_rx.clone()).await?;
        registry_local = Some(local);
        registry_task = Some(task);
    }
    let mut duties = vec![
        tokio::spawn(group_timers(groups, clock.clone(), stop_rx.clone())),
        tokio::spawn(txn_timers(
            txns,
            clock.clone(),
            settings.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            stop_rx.clone(),
        )),
        tokio::spawn(every(
            settings.recovery_checkpoint_interval_ms,
            stop_rx.clone(),
            {
                let log = log.clone();
                let clock = clock.clone();
                move || {
                    log.expire_producers(clock.now_ms());
                    if let Err(e) = log.checkpoint() {
                        tracing::error!(error = %e, "recovery checkpoint failed");
                    }
                }
            },
        )),
        tokio::spawn(every(settings.log_cleaner_interval_ms, stop_rx.clone(), {
            let log = log.clone();
            let clock = clock.clone();
            let max_keys = (settings.log_cleaner_dedupe_buffer_bytes / 32).max(1024);
            move || {
                log.clean(clock.now_ms(), max_keys);
            }
        })),
        tokio::spawn(every(
            settings.retention_check_interval_ms,
            stop_rx.clone(),
            {
                let log = log.clone();
                let clock = clock.clone();
                move || {
                    let n = log.apply_retention(clock.now_ms());
                    if n > 0 {
                        tracing::info!(segments = n, "retention deleted segments");
                    }
                }
            },
        )),
    ];
    duties.extend(registry_task);
    duties.extend(admin_task);
    duties.push(tokio::spawn(every_async(
        METRICS_UPKEEP_MS,
        stop_rx.clone(),
        move || metrics.upkeep(),
    )));
    if let Some(tier) = tier {
        duties.push(tokio::spawn(tier_rounds(
            tier,
            log.clone(),
            clock.clone(),
            settings.tier_interval_ms,
            stop_rx.clone(),
        )));
    }
    admin.set_ready(crate::metrics::State {
        broker: broker.clone(),
        live: live.clone(),
    });
    tracing::info!(listen = %local_addr, advertise = %settings.advertise, data_dir = %settings.data_dir.display(), admin = ?admin_addr, "fjord serving Kafka");
    Ok(Running {
        broker,
        local_addr,
        registry_addr: registry_local,
        admin_addr,
        stop,
        live,
        serve,
        duties,
    })
}

/// Runs the tier's rounds (uploads, local and remote retention) every
/// `interval_ms` until stopped.
async fn tier_rounds(
    tier: Arc<crate::tier::Tier>,
    log: Arc<LogManager>,
    clock: Arc<dyn Clock>,
    interval_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => tier.run_once(&log, clock.now_ms()).await,
            _ = stop.changed() => return,
        }
    }
}

/// Runs the group coordinator's timers until stopped, then releases every
/// waiting JoinGroup and SyncGroup.
async fn group_timers(
    groups: Arc<GroupRuntime>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(GROUP_TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => break,
            _ = tick.tick() => groups.tick(clock.now_ms()),
        }
    }
    groups.close();
}

/// Aborts timed-out transactions and expires idle transactional ids every
/// `interval_ms`.
async fn txn_timers(
    txns: Arc<TxnRuntime>,
    clock: Arc<dyn Clock>,
    interval_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => break,
            _ = tick.tick() => txns.tick(clock.now_ms()).await,
        }
    }
}

/// Resolution of group timers (sessions, rebalance deadlines).
const GROUP_TICK_MS: u64 = 50;

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP_MS: u64 = 5_000;

/// Runs the quick `f` on the runtime every `interval_ms` until stopped.
async fn every_async(
    interval_ms: u64,
    mut stop: watch::Receiver<bool>,
    f: impl Fn() + Send + 'static,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => return,
            _ = tick.tick() => f(),
        }
    }
}

/// Runs `f` on a blocking thread every `interval_ms` until stopped.
async fn every(
    interval_ms: u64,
    mut stop: watch::Receiver<bool>,
    f: impl Fn() + Send + Sync + Clone + 'static,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => return,
            _ = tick.tick() => {
                let f = f.clone();
                let _ = tokio::task::spawn_blocking(f).await;
            }
        }
    }
}

impl Running {
    /// Graceful stop: refuse new work, answer what was read, sync, mark clean.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.serve.await;
        let timeout = Duration::from_millis(self.broker.settings.shutdown_timeout_ms);
        if !self.live.drained(timeout).await {
            tracing::warn!(
                connections = self.live.count(),
                "shutdown timeout; closing remaining connections"
            );
        }
        for d in self.duties {
            let _ = d.await;
        }
        let log = self.broker.log.clone();
        tokio::task::spawn_blocking(move || log.shutdown()).await??;
        tracing::info!("clean shutdown complete");
        Ok(())
    }
}
