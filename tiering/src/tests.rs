//! The tier end to end over an in-memory store: copy, read back, retention,
//! conflicts between writers, and a crash at every write of an upload or a
//! delete followed by recovery (no loss, no orphan).

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::cache::ChunkCache;
use crate::error::TierError;
use crate::faulty::Faulty;
use crate::format;
use crate::layout::{Kind, PartitionLayout};
use crate::manifest::{SegmentMeta, SegmentState};
use crate::partition::{RemotePartition, SegmentUpload};
use crate::read::{ReadOptions, RemoteReader};

fn layout() -> PartitionLayout {
    PartitionLayout::new(&Path::from("pfx"), "events", 0, "tid")
}

/// A segment of `batches` batches of `per_batch` records from `base`, each
/// batch 200 bytes, timestamps `base * 10 + record`; an index entry and a
/// time entry per batch.
fn segment(base: i64, batches: i64, per_batch: i32) -> SegmentUpload {
    let mut log = Vec::new();
    let mut index = Vec::new();
    let mut time = Vec::new();
    let mut offset = base;
    for _ in 0..batches {
        let rel = u32::try_from(offset - base).unwrap();
        index.extend(rel.to_be_bytes());
        index.extend(u32::try_from(log.len()).unwrap().to_be_bytes());
        let max_ts = (offset + i64::from(per_batch) - 1) * 10;
        time.extend(max_ts.to_be_bytes());
        time.extend(rel.to_be_bytes());
        log.extend(format::tests::batch(offset, per_batch, max_ts, 139));
        offset += i64::from(per_batch);
    }
    SegmentUpload {
        meta: SegmentMeta {
            base_offset: base,
            last_offset: offset - 1,
            max_timestamp_ms: (offset - 1) * 10,
            size_bytes: log.len() as u64,
            has_txn_index: false,
            has_snapshot: true,
        },
        log: Bytes::from(log),
        offset_index: Bytes::from(index),
        time_index: Bytes::from(time),
        txn_index: None,
        producer_snapshot: Some(Bytes::from_static(b"snapshot")),
    }
}

async fn open(store: Arc<dyn ObjectStore>) -> Arc<RemotePartition> {
    Arc::new(RemotePartition::open(store, layout()).await.unwrap())
}

fn reader(p: &Arc<RemotePartition>, chunk_bytes: usize) -> RemoteReader {
    RemoteReader::new(
        Arc::clone(p),
        Arc::new(ChunkCache::new(1 << 20)),
        ReadOptions {
            chunk_bytes,
            read_ahead_chunks: 2,
        },
    )
}

/// Every batch's base offset, replaying from `from` with `max_bytes` reads.
async fn replay(r: &RemoteReader, from: i64, max_bytes: usize) -> Vec<i64> {
    let mut out = Vec::new();
    let mut offset = from;
    while let Some(got) = r.read(offset, max_bytes).await.unwrap() {
        let mut pos = 0;
        while let Some(b) = format::batch_at(&got.records, pos) {
            out.push(b.base_offset);
            offset = b.last_offset + 1;
            pos += b.len;
        }
        assert_eq!(pos, got.records.len(), "whole batches only");
    }
    out
}

/// Every object under the partition, and what the manifest accounts for.
async fn objects(
    store: &Arc<dyn ObjectStore>,
    p: &RemotePartition,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let all: Vec<_> = store
        .list(Some(p.layout().root()))
        .try_collect()
        .await
        .unwrap();
    let have: BTreeSet<String> = all
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|s| !s.contains("/manifest/"))
        .collect();
    let mut want = BTreeSet::new();
    for s in &p.manifest().segments {
        for k in Kind::ALL {
            let listed = match k {
                Kind::TxnIndex => s.has_txn_index,
                Kind::ProducerSnapshot => s.has_snapshot,
                _ => true,
            };
            if listed {
                want.insert(
                    p.layout()
                        .segment(s.base_offset, s.last_offset, k)
                        .to_string(),
                );
            }
        }
    }
    (have, want)
}

#[tokio::test]
async fn copied_segments_read_back_in_order_from_any_offset() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let p = open(Arc::clone(&store)).await;
    for base in [0, 50, 100] {
        p.copy(&segment(base, 10, 5), 1).await.unwrap();
    }
    let m = p.manifest();
    assert_eq!((m.start_offset(), m.end_offset()), (Some(0), Some(150)));
    // Chunks smaller than a batch, equal, and larger; reads of one batch
    // and of many.
    let expected: Vec<i64> = (0..30).map(|i| i * 5).collect();
    for chunk in [64, 200, 1000, 1 << 20] {
        let r = reader(&p, chunk);
        assert_eq!(replay(&r, 0, 1).await, expected, "chunk {chunk}");
        assert_eq!(replay(&r, 0, 700).await, expected, "chunk {chunk}");
        // From the middle of a batch: that batch first.
        assert_eq!(replay(&r, 57, 1).await, expected[11..].to_vec());
    }
    let r = reader(&p, 256);
    assert!(r.read(150, 100).await.unwrap().is_none(), "past the end");
    // By time: record 73 has timestamp 730; its batch starts at 70.
    let b = r.batch_for_time(730).await.unwrap().unwrap();
    assert_eq!(format::batch_at(&b, 0).unwrap().base_offset, 70);
    let b = r.batch_for_time(0).await.unwrap().unwrap();
    assert_eq!(format::batch_at(&b, 0).unwrap().base_offset, 0);
    assert!(r.batch_for_time(1_500).await.unwrap().is_none());
    // A reopened partition (a restarted broker) sees the same.
    let again = open(Arc::clone(&store)).await;
    assert_eq!(replay(&reader(&again, 512), 0, 4096).await, expected);
    let (have, want) = objects(&store, &again).await;
    assert_eq!(have, want);
}

#[tokio::test]
async fn deletes_and_log_start_hide_old_data_and_leave_no_objects() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let p = open(Arc::clone(&store)).await;
    for base in [0, 50, 100] {
        p.copy(&segment(base, 10, 5), 1).await.unwrap();
    }
    p.delete(0, 2).await.unwrap();
    assert_eq!(p.manifest().start_offset(), Some(50));
    let r = reader(&p, 300);
    assert!(r.read(10, 100).await.unwrap().is_none(), "below the start");
    assert_eq!(replay(&r, 50, 100).await.first(), Some(&50));
    // DeleteRecords in the middle of a segment.
    p.advance_log_start(120, 3).await.unwrap();
    assert_eq!(p.manifest().start_offset(), Some(120));
    assert_eq!(p.manifest().segments.len(), 1);
    assert_eq!(replay(&r, 120, 100).await.first(), Some(&120));
    let (have, want) = objects(&store, &p).await;
    assert_eq!(have, want);
}

#[tokio::test]
async fn of_two_writers_only_one_wins_each_version() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = open(Arc::clone(&store)).await;
    let b = open(Arc::clone(&store)).await;
    a.copy(&segment(0, 2, 5), 1).await.unwrap();
    // b still holds version 0: its first write conflicts, then it has
    // reloaded and sees a's segment.
    let e = b.copy(&segment(10, 2, 5), 1).await.unwrap_err();
    assert!(matches!(e, TierError::Conflict(_)), "{e}");
    assert_eq!(b.manifest().end_offset(), Some(10));
    b.copy(&segment(10, 2, 5), 2).await.unwrap();
    let fresh = open(Arc::clone(&store)).await;
    assert_eq!(fresh.manifest().end_offset(), Some(20));
}

#[tokio::test]
async fn a_store_that_is_down_fails_operations_and_changes_nothing() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faulty = Arc::new(Faulty::new(Arc::clone(&inner), 7));
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let p = open(Arc::clone(&store)).await;
    p.copy(&segment(0, 2, 5), 1).await.unwrap();
    faulty.set_down(true);
    assert!(p.copy(&segment(10, 2, 5), 2).await.is_err());
    assert!(reader(&p, 1 << 20).read(0, 100).await.is_err());
    assert_eq!(p.manifest().end_offset(), Some(10));
    faulty.set_down(false);
    p.copy(&segment(10, 2, 5), 3).await.unwrap();
    assert_eq!(
        replay(&reader(&p, 1 << 20), 0, 100).await,
        vec![0, 5, 10, 15]
    );
}

#[tokio::test]
async fn random_faults_only_delay_uploads() {
    for seed in 1..20u64 {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let faulty = Arc::new(Faulty::new(Arc::clone(&inner), seed));
        faulty.set_fail_per_mille(300);
        let store: Arc<dyn ObjectStore> = faulty.clone();
        let p = loop {
            if let Ok(p) = RemotePartition::open(Arc::clone(&store), layout()).await {
                break Arc::new(p);
            }
        };
        for base in [0, 10, 20] {
            let mut tries = 0;
            while p.copy(&segment(base, 2, 5), 1).await.is_err() {
                tries += 1;
                assert!(tries < 200, "seed {seed}: no progress");
            }
        }
        let mut tries = 0;
        while p.delete(0, 2).await.is_err() {
            tries += 1;
            assert!(tries < 200, "seed {seed}: no progress");
        }
        faulty.set_fail_per_mille(0);
        let fresh = open(Arc::clone(&inner)).await;
        assert_eq!(fresh.manifest().start_offset(), Some(10), "seed {seed}");
        assert_eq!(
            replay(&reader(&fresh, 64), 10, 1).await,
            vec![10, 15, 20, 25],
            "seed {seed}"
        );
        let (have, want) = objects(&inner, &fresh).await;
        assert_eq!(have, want, "seed {seed}: orphans or missing objects");
    }
}

/// A crash after each number of writes of "copy segment 10, delete segment
/// 0", then a restart that recovers with (or without) the local segment.
#[tokio::test]
async fn a_crash_at_any_write_recovers_with_no_loss_and_no_orphan() {
    for local_kept in [true, false] {
        for crash_at in 0..20u64 {
            let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let base = open(Arc::clone(&inner)).await;
            base.copy(&segment(0, 2, 5), 1).await.unwrap();
            let faulty = Arc::new(Faulty::new(Arc::clone(&inner), 1));
            let store: Arc<dyn ObjectStore> = faulty.clone();
            let p = open(store).await;
            faulty.crash_after_writes(crash_at);
            let copied = p.copy(&segment(10, 2, 5), 2).await.is_ok();
            let deleted = copied && p.delete(0, 3).await.is_ok();

            // Restart on the real store.
            let after = open(Arc::clone(&inner)).await;
            let seg10 = segment(10, 2, 5);
            after
                .recover(
                    |b, l| (local_kept && b == 10 && l == 19).then(|| seg10.clone()),
                    4,
                )
                .await
                .unwrap();
            // The broker's upload loop copies what the tier lacks.
            if local_kept && after.manifest().end_offset() < Some(20) {
                after.copy(&seg10, 5).await.unwrap();
            }
            let m = after.manifest();
            assert!(
                m.segments
                    .iter()
                    .all(|s| s.state == SegmentState::CopyFinished),
                "crash at {crash_at}: {m:?}"
            );
            let from = after.manifest().start_offset().unwrap_or(0);
            let got = replay(&reader(&after, 128), from, 1).await;
            // Segment 0 is there unless its delete got far enough to hide it;
            // segment 10 is there if its copy finished or could be redone.
            let has0 = got.contains(&0);
            let has10 = got.contains(&10);
            assert!(
                has10 || !local_kept || !copied,
                "crash at {crash_at}: {got:?}"
            );
            if copied {
                assert!(has10, "crash at {crash_at}: acknowledged copy lost");
            }
            if deleted {
                assert!(!has0, "crash at {crash_at}");
            }
            if local_kept {
                assert!(has10, "crash at {crash_at}: redo failed");
            }
            let (have, want) = objects(&inner, &after).await;
            assert_eq!(
                have, want,
                "crash at {crash_at}: orphans or missing objects"
            );
            if crash_at == 19 {
                assert!(copied && deleted, "20 writes are enough for both");
            }
        }
    }
}

#[tokio::test]
async fn damaged_remote_objects_give_errors_not_panics() {
    use object_store::{ObjectStoreExt, PutPayload};
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let p = open(Arc::clone(&store)).await;
    p.copy(&segment(0, 4, 5), 1).await.unwrap();
    let log = p.layout().segment(0, 19, Kind::Log);
    let idx = p.layout().segment(0, 19, Kind::OffsetIndex);
    // A log whose batch lengths are garbage, a truncated log, an index
    // pointing past the end: every read is an error or nothing, never a
    // panic or an allocation of what the bytes claim.
    for (path, bytes) in [
        (&log, vec![0xffu8; 800]),
        (&log, vec![0u8; 30]),
        (
            &idx,
            [0u32.to_be_bytes(), 4_000_000u32.to_be_bytes()].concat(),
        ),
    ] {
        store.put(path, PutPayload::from(bytes)).await.unwrap();
        for chunk in [64, 4096] {
            let r = reader(&p, chunk);
            let _ = r.read(0, 1000).await;
            let _ = r.read(12, 1000).await;
            let _ = r.batch_for_time(50).await;
        }
    }
    // A damaged newest manifest: the previous one is used, and the next
    // write goes above the damaged one.
    let newest = p.manifest().version;
    store
        .put(
            &p.layout().manifest(newest + 1),
            PutPayload::from(&b"{garbage"[..]),
        )
        .await
        .unwrap();
    let again = open(Arc::clone(&store)).await;
    assert_eq!(again.manifest().version, newest + 1);
    assert_eq!(again.manifest().end_offset(), Some(20));
    again.copy(&segment(20, 1, 5), 2).await.unwrap();
    assert_eq!(
        open(Arc::clone(&store)).await.manifest().end_offset(),
        Some(25)
    );
}
