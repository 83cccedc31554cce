//! One partition's remote tier: its manifest, and the copy and delete
//! operations that move segments through the manifest's states.
//!
//! Every operation writes the manifest before touching data objects and
//! again after, so a crash at any point leaves a manifest that names what
//! was under way; [`RemotePartition::recover`] finishes or undoes it. Only
//! one operation runs at a time per partition (a mutex); readers see the
//! last committed manifest and never wait for writers.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{TierError, TierResult};
use crate::layout::{Kind, PartitionLayout};
use crate::manifest::{Manifest, SegmentMeta, SegmentState};
use crate::manifest_store::ManifestStore;

/// Objects above this size are uploaded in parts of [`PART_BYTES`].
const SINGLE_PUT_MAX_BYTES: usize = 16 << 20;
const PART_BYTES: usize = 8 << 20;

/// A sealed segment offered for upload, as values: the bytes may be
/// memory-mapped files; nothing here writes to them.
#[derive(Clone)]
pub struct SegmentUpload {
    pub meta: SegmentMeta,
    pub log: Bytes,
    pub offset_index: Bytes,
    pub time_index: Bytes,
    pub txn_index: Option<Bytes>,
    pub producer_snapshot: Option<Bytes>,
}

impl SegmentUpload {
    fn objects(&self) -> Vec<(Kind, &Bytes)> {
        let mut v = vec![
            (Kind::Log, &self.log),
            (Kind::OffsetIndex, &self.offset_index),
            (Kind::TimeIndex, &self.time_index),
        ];
        if let Some(t) = &self.txn_index {
            v.push((Kind::TxnIndex, t));
        }
        if let Some(s) = &self.producer_snapshot {
            v.push((Kind::ProducerSnapshot, s));
        }
        v
    }
}

pub struct RemotePartition {
    manifests: ManifestStore,
    current: RwLock<Arc<Manifest>>,
    writer: tokio::sync::Mutex<()>,
}

impl RemotePartition {
    /// Loads the partition's manifest from the store.
    pub async fn open(store: Arc<dyn ObjectStore>, layout: PartitionLayout) -> TierResult<Self> {
        let manifests = ManifestStore::new(store, layout);
        let m = manifests.load().await?;
        Ok(Self {
            manifests,
            current: RwLock::new(Arc::new(m)),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    pub fn layout(&self) -> &PartitionLayout {
        self.manifests.layout()
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.manifests.store()
    }

    /// The last committed manifest.
    pub fn manifest(&self) -> Arc<Manifest> {
        let g = self.current.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&g)
    }

    fn set(&self, m: Manifest) {
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(m);
    }

    /// Applies `f` to a copy of the manifest and commits it. On a conflict
    /// the manifest is reloaded from the store and the error returned.
    async fn update(
        &self,
        f: impl FnOnce(&mut Manifest) -> Result<(), crate::manifest::TransitionError>,
    ) -> TierResult<()> {
        let mut m = (*self.manifest()).clone();
        f(&mut m)?;
        match self.manifests.commit(&mut m).await {
            Ok(()) => {
                self.set(m);
                Ok(())
            }
            Err(TierError::Conflict(v)) => {
                if let Ok(fresh) = self.manifests.load().await {
                    self.set(fresh);
                }
                Err(TierError::Conflict(v))
            }
            Err(e) => Err(e),
        }
    }

    async fn put(&self, kind: Kind, meta: &SegmentMeta, bytes: &Bytes) -> TierResult<()> {
        let path = self
            .layout()
            .segment(meta.base_offset, meta.last_offset, kind);
        let store = self.store();
        if bytes.len() <= SINGLE_PUT_MAX_BYTES {
            store.put(&path, PutPayload::from(bytes.clone())).await?;
            return Ok(());
        }
        let upload = store.put_multipart(&path).await?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        for part in bytes.chunks(PART_BYTES) {
            w.wait_for_capacity(2).await?;
            w.put(bytes.slice_ref(part));
        }
        w.finish().await?;
        Ok(())
    }

    /// Copies a sealed segment: COPY_STARTED, every object, COPY_FINISHED.
    /// Safe to call again after any failure (objects are overwritten).
    pub async fn copy(&self, seg: &SegmentUpload, now_ms: i64) -> TierResult<()> {
        let _w = self.writer.lock().await;
        self.copy_locked(seg, now_ms).await
    }

    async fn copy_locked(&self, seg: &SegmentUpload, now_ms: i64) -> TierResult<()> {
        let meta = &seg.meta;
        let listed = self
            .manifest()
            .segments
            .iter()
            .find(|s| s.base_offset == meta.base_offset)
            .map(|s| s.state);
        match listed {
            Some(SegmentState::CopyFinished) => return Ok(()),
            Some(SegmentState::CopyStarted) if self.has_same(meta) => {}
            _ => self.update(|m| m.start_copy(meta, now_ms)).await?,
        }
        for (kind, bytes) in seg.objects() {
            self.put(kind, meta, bytes).await?;
        }
        self.update(|m| m.finish_copy(meta.base_offset, now_ms))
            .await
    }

    fn has_same(&self, meta: &SegmentMeta) -> bool {
        self.manifest().segments.iter().any(|s| {
            s.base_offset == meta.base_offset
                && s.last_offset == meta.last_offset
                && s.has_txn_index == meta.has_txn_index
                && s.has_snapshot == meta.has_snapshot
        })
    }

    /// Deletes a remote segment: DELETE_STARTED, every object, entry gone.
    pub async fn delete(&self, base_offset: i64, now_ms: i64) -> TierResult<()> {
        let _w = self.writer.lock().await;
        self.delete_locked(base_offset, now_ms).await
    }

    async fn delete_locked(&self, base_offset: i64, now_ms: i64) -> TierResult<()> {
        let m = self.manifest();
        let Some(seg) = m.segments.iter().find(|s| s.base_offset == base_offset) else {
            return Ok(());
        };
        let last = seg.last_offset;
        if seg.state != SegmentState::DeleteStarted {
            self.update(|m| m.start_delete(base_offset, now_ms)).await?;
        }
        for kind in Kind::ALL {
            let path = self.layout().segment(base_offset, last, kind);
            match self.store().delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.update(|m| m.finish_delete(base_offset)).await
    }

    /// Moves the remote log start forward (DeleteRecords on the partition)
    /// and deletes the segments wholly below it.
    pub async fn advance_log_start(&self, offset: i64, now_ms: i64) -> TierResult<()> {
        {
            let _w = self.writer.lock().await;
            if self.manifest().log_start_offset < offset {
                self.update(|m| {
                    m.advance_log_start(offset);
                    Ok(())
                })
                .await?;
            }
        }
        let below: Vec<i64> = self
            .manifest()
            .readable()
            .filter(|s| s.last_offset < offset)
            .map(|s| s.base_offset)
            .collect();
        for b in below {
            self.delete(b, now_ms).await?;
        }
        Ok(())
    }

    /// Finishes what a crash interrupted: interrupted copies are redone when
    /// `local` still has the segment and abandoned (their objects deleted)
    /// when not; interrupted deletes are redone.
    pub async fn recover(
        &self,
        local: impl Fn(i64, i64) -> Option<SegmentUpload>,
        now_ms: i64,
    ) -> TierResult<()> {
        let _w = self.writer.lock().await;
        let pending: Vec<(i64, i64, SegmentState)> = self
            .manifest()
            .segments
            .iter()
            .filter(|s| s.state != SegmentState::CopyFinished)
            .map(|s| (s.base_offset, s.last_offset, s.state))
            .collect();
        for (base, last, state) in pending {
            match (state, local(base, last)) {
                (SegmentState::CopyStarted, Some(seg)) => self.copy_locked(&seg, now_ms).await?,
                _ => self.delete_locked(base, now_ms).await?,
            }
        }
        Ok(())
    }
}
