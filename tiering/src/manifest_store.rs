//! Persisting a partition's manifest: immutable, versioned objects.
//!
//! Version N+1 is created only if absent (`PutMode::Create`: an `If-None-Match`
//! request on S3 and Azure, a no-clobber link on a local directory), so of
//! two writers updating from version N exactly one wins; the other gets
//! [`TierError::Conflict`] and must reload. Where the store cannot create
//! conditionally (an S3 endpoint with conditional puts disabled), writes
//! fall back to plain overwrites and a warning says two writers are unsafe.
//!
//! Loading lists `manifest/` and reads the newest object that decodes; a
//! damaged newest one is skipped (and reported) but its version is still
//! counted, so the next write goes above it. Old versions are pruned after
//! each successful write, keeping [`KEEP_VERSIONS`]; a writer so far behind
//! that it recreated a pruned version sees the newer ones when it lists
//! after writing, withdraws its object and gets the conflict too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{TierError, TierResult};
use crate::layout::PartitionLayout;
use crate::manifest::Manifest;

/// Manifest versions kept after a write (the newest and its predecessor).
pub const KEEP_VERSIONS: u64 = 2;
/// The most manifest objects a load considers (newest first).
const MAX_CANDIDATES: usize = 16;

pub struct ManifestStore {
    store: Arc<dyn ObjectStore>,
    layout: PartitionLayout,
    conditional: AtomicBool,
}

impl ManifestStore {
    pub fn new(store: Arc<dyn ObjectStore>, layout: PartitionLayout) -> Self {
        Self {
            store,
            layout,
            conditional: AtomicBool::new(true),
        }
    }

    pub fn layout(&self) -> &PartitionLayout {
        &self.layout
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The versions stored, ascending.
    async fn versions(&self) -> TierResult<Vec<u64>> {
        let prefix = self.layout.manifests();
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut v: Vec<u64> = metas
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()
                    .and_then(PartitionLayout::manifest_version)
            })
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The newest readable manifest, with `version` set to the newest
    /// version stored; an empty one at version 0 when there is none.
    pub async fn load(&self) -> TierResult<Manifest> {
        let versions = self.versions().await?;
        let Some(&newest) = versions.last() else {
            return Ok(Manifest::default());
        };
        let mut last_error = None;
        for &v in versions.iter().rev().take(MAX_CANDIDATES) {
            let path = self.layout.manifest(v);
            let bytes = match self.store.get(&path).await {
                Ok(r) => r.bytes().await?,
                // Pruned between the list and the read: try the next one.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            match Manifest::decode(&bytes) {
                Ok(mut m) => {
                    if v != newest {
                        tracing::warn!(
                            manifest = %path, newest,
                            "newer remote manifests are damaged; using this one"
                        );
                    }
                    m.version = newest;
                    return Ok(m);
                }
                Err(e) => {
                    tracing::warn!(manifest = %path, error = %e, "skipping a damaged remote manifest");
                    last_error = Some(e);
                }
            }
        }
        Err(TierError::Corrupt(last_error.unwrap_or_else(|| {
            format!("no readable manifest under {}", self.layout.manifests())
        })))
    }

    /// Stores `m` as version `m.version + 1` and, on success, sets
    /// `m.version` to it.
    pub async fn commit(&self, m: &mut Manifest) -> TierResult<()> {
        let next = m.version.saturating_add(1);
        let mut to_write = m.clone();
        to_write.version = next;
        let path = self.layout.manifest(next);
        let payload = PutPayload::from(to_write.encode());
        let conditional = self.conditional.load(Ordering::Relaxed);
        let mode = if conditional {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self.store.put_opts(&path, payload.clone(), opts).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {
                return Err(TierError::Conflict(next));
            }
            Err(object_store::Error::NotImplemented { .. }) if conditional => {
                tracing::warn!(
                    "the object store cannot create objects conditionally: manifest writes \
                     overwrite, so two brokers must never tier the same partition"
                );
                self.conditional.store(false, Ordering::Relaxed);
                self.store.put(&path, payload).await?;
            }
            Err(e) => return Err(e.into()),
        }
        // A writer far behind could recreate a version that was pruned:
        // a newer version stored means it lost all the same.
        let versions = self.versions().await?;
        if versions.last().is_some_and(|v| *v > next) {
            let _ = self.store.delete(&path).await;
            return Err(TierError::Conflict(next));
        }
        m.version = next;
        self.prune(next, versions).await;
        Ok(())
    }

    /// Deletes manifest versions older than the newest [`KEEP_VERSIONS`];
    /// failures are left for the next write.
    async fn prune(&self, newest: u64, versions: Vec<u64>) {
        let keep_from = newest.saturating_sub(KEEP_VERSIONS - 1);
        for v in versions.into_iter().filter(|v| *v < keep_from) {
            if let Err(e) = self.store.delete(&self.layout.manifest(v)).await {
                if !matches!(e, object_store::Error::NotFound { .. }) {
                    tracing::debug!(error = %e, "pruning an old manifest failed");
                    return;
                }
            }
        }
    }
}
