//! Where the registry's records live: a small trait over an append-only
//! log of `_schemas` records. The broker implements it over its internal
//! compacted topic; `MemoryStore` serves tests and embedding.
//!
//! The contract the service relies on: `append` returns only once the
//! records are as durable as the broker's acks=all data, in order; `load`
//! returns every record appended so far (after compaction, at least the
//! latest per key), in order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::registry::Record;

/// A boxed future, so the trait stays object-safe without extra crates.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// The registry's durable log.
pub trait Store: Send + Sync + 'static {
    /// Appends `records`, in order, and resolves once they are durable.
    fn append<'a>(&'a self, records: &'a [Record]) -> StoreFuture<'a, ()>;
    /// Every record, in order, for replay.
    fn load(&self) -> Result<Vec<Record>, String>;
}

/// An in-memory store; `fail_appends` makes appends fail, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<Vec<Record>>,
    fail: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later append fail (or succeed again).
    pub fn fail_appends(&self, fail: bool) {
        self.fail.store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn append<'a>(&'a self, records: &'a [Record]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("the store is failing (test)".into());
            }
            self.lock().extend_from_slice(records);
            Ok(())
        })
    }

    fn load(&self) -> Result<Vec<Record>, String> {
        Ok(self.lock().clone())
    }
}
