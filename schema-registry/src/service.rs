//! The registry as a service: the state machine behind a lock, its
//! changes made durable in a `Store` before anyone can see them.
//!
//! Reads share the lock. A write holds it exclusively from the state
//! machine's decision until the store has the records, so no reader sees a
//! change that is not yet durable, and writes are applied in the order they
//! reach the log. If the store fails, the state is rebuilt from what the
//! store holds, so memory never runs ahead of the log.

use std::sync::Arc;

use tokio::sync::RwLock;

use crate::compat::Rules;
use crate::error::{RegistryError, RegistryResult};
use crate::registry::{CompatChecker, IdIndex, Record, Registry};
use crate::store::Store;

pub struct Service {
    state: RwLock<Registry>,
    /// Rebuilt after every change; read without waiting by Produce.
    ids: std::sync::RwLock<Arc<IdIndex>>,
    store: Arc<dyn Store>,
    checker: Rules,
}

/// Rebuilds a registry from a store's records; also the count skipped.
fn replay(store: &dyn Store) -> Result<(Registry, usize, usize), String> {
    let mut r = Registry::new();
    let mut skipped = 0usize;
    let records = store.load()?;
    for rec in &records {
        if !r.replay(&rec.key, rec.value.as_deref()) {
            skipped = skipped.saturating_add(1);
        }
    }
    Ok((r, records.len(), skipped))
}

impl Service {
    /// Loads the registry from `store`. Records that do not decode are
    /// skipped and counted (a bad record must not stop the broker).
    pub fn open(store: Arc<dyn Store>) -> Result<Self, String> {
        let (registry, n, skipped) = replay(store.as_ref())?;
        if skipped > 0 {
            tracing::warn!(skipped, "schema registry skipped undecodable records");
        }
        tracing::info!(records = n, "schema registry loaded");
        Ok(Self {
            ids: std::sync::RwLock::new(Arc::new(registry.id_index())),
            state: RwLock::new(registry),
            store,
            checker: Rules,
        })
    }

    /// Runs `f` over the current state.
    pub async fn read<T>(&self, f: impl FnOnce(&Registry, &dyn CompatChecker) -> T) -> T {
        let state = self.state.read().await;
        f(&state, &self.checker)
    }

    /// Runs a change: `f` decides and returns its answer and the records
    /// to write; the answer is returned once the records are durable.
    pub async fn write<T>(
        &self,
        f: impl FnOnce(&mut Registry, &dyn CompatChecker) -> RegistryResult<(T, Vec<Record>)>,
    ) -> RegistryResult<T> {
        let mut state = self.state.write().await;
        let (answer, records) = f(&mut state, &self.checker)?;
        if records.is_empty() {
            return Ok(answer);
        }
        if let Err(e) = self.store.append(&records).await {
            tracing::error!(error = %e, "schema registry cannot write; reloading from the store");
            match replay(self.store.as_ref()) {
                Ok((fresh, _, _)) => *state = fresh,
                Err(e2) => tracing::error!(error = %e2, "schema registry cannot reload"),
            }
            self.publish_ids(&state);
            return Err(RegistryError::Store(e));
        }
        self.publish_ids(&state);
        Ok(answer)
    }

    fn publish_ids(&self, state: &Registry) {
        let fresh = Arc::new(state.id_index());
        *self.ids.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// The current ids, without waiting for a write in progress.
    pub fn id_index(&self) -> Arc<IdIndex> {
        self.ids.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
