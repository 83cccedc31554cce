//! The schema registry inside the broker: its state lives in the
//! compacted `_schemas` topic (`store`), its REST API is served on its own
//! listener, and Produce consults it for topics that ask for schema
//! validation (`validation`).
//!
//! The `fjord-schema-registry` crate knows nothing of the broker; this
//! module is the seam: it gives the crate a `Store` over the log and the
//! broker a handle on the registry's ids.

pub mod store;
pub mod validation;

use std::net::SocketAddr;
use std::sync::Arc;

use fjord_schema_registry::http::{self, HttpLimits};
use fjord_schema_registry::service::Service;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{Durability, Settings};
use crate::log::sync::Syncer;
use crate::log::LogManager;

/// The internal topic holding the registry's records (Confluent's name).
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// Opens the registry over `_schemas` (creating it if needed) and replays it.
pub async fn open(
    log: Arc<LogManager>,
    settings: &Settings,
    syncer: Syncer,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Service>> {
    let store =
        store::LogStore::open(log, syncer, settings.durability == Durability::Fsync, clock).await?;
    let store: Arc<dyn fjord_schema_registry::store::Store> = Arc::new(store);
    let service = tokio::task::spawn_blocking(move || Service::open(store))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot load the schema registry: {e}"))?;
    Ok(Arc::new(service))
}

/// Binds the REST listener and serves until `stop` turns true.
pub async fn serve(
    service: Arc<Service>,
    addr: SocketAddr,
    settings: &Settings,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the schema registry to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let limits = HttpLimits {
        max_connections: settings.max_connections,
        ..HttpLimits::default()
    };
    let task = tokio::spawn(async move {
        let shutdown = async move { crate::server::stopped(&mut stop).await };
        if let Err(e) = http::serve(listener, service, limits, shutdown).await {
            tracing::error!(error = %e, "schema registry stopped");
        }
    });
    tracing::info!(listen = %local, "schema registry serving");
    Ok((local, task))
}
