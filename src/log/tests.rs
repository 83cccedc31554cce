//! Partition- and manager-level tests: roll, retention, DeleteRecords,
//! clean and unclean reopen, torn tails across segments, topic lifecycle.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::LogConfig;
use super::manager::LogManager;
use crate::config::Settings;
use crate::protocol::batch::build;

fn settings(dir: &std::path::Path) -> Arc<Settings> {
    let mut s = Settings::for_dir(dir.to_path_buf());
    s.segment_bytes = 4096;
    Arc::new(s)
}

fn small_cfg(s: &Settings) -> LogConfig {
    LogConfig::resolve(s, &BTreeMap::new())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Appends `n` one-record batches with 200-byte values at timestamps ts0+i.
fn fill(p: &super::Partition, cfg: &LogConfig, n: i64, ts0: i64) {
    for i in 0..n {
        let b = build::simple(ts0 + i, 1, 200);
        p.append(&b, cfg, 0).unwrap();
    }
}

fn read_offsets(p: &super::Partition) -> Vec<i64> {
    let mut out = Vec::new();
    let mut off = p.log_start_offset();
    while off < p.high_watermark() {
        let r = p.read(off, 1 << 20).unwrap();
        let mut pos = 0;
        while pos < r.records.len() {
            let h = crate::protocol::batch::BatchHeader::parse(&r.records[pos..]).unwrap();
            for o in h.base_offset..=h.last_offset() {
                if o >= off {
                    out.push(o);
                }
            }
            off = h.last_offset() + 1;
            pos += h.total_len().unwrap();
        }
    }
    out
}

#[test]
fn segments_roll_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    rt().block_on(async {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = log
            .create_topic("roll", 1, BTreeMap::new(), false, 0)
            .await
            .unwrap();
        let p = t.partition(0).unwrap();
        fill(&p, &small_cfg(&s), 100, 1000);
        assert!(
            p.segments().len() > 5,
            "4 KiB segments must roll: {}",
            p.segments().len()
        );
        assert_eq!(read_offsets(&p), (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn retention_by_bytes_and_time_keeps_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    rt().block_on(async {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = log
            .create_topic("ret", 1, BTreeMap::new(), false, 0)
            .await
            .unwrap();
        let p = t.partition(0).unwrap();
        let mut cfg = small_cfg(&s);
        fill(&p, &cfg, 100, 1000);
        let before = p.segments().len();
        cfg.retention_bytes = 8192;
        assert!(p.apply_retention(&cfg, 2000) > 0);
        assert!(p.segments().len() < before);
        assert!(p.size_bytes() <= 8192 + 4096);
        let start = p.log_start_offset();
        assert!(start > 0);
        assert_eq!(p.segments()[0].base_offset, start);
        assert!(matches!(
            p.read(0, 100),
            Err(super::LogError::OffsetOutOfRange { .. })
        ));
        // Time: everything older than 10 ms at "now" = 10_000 goes, but the active segment stays.
        cfg.retention_bytes = -1;
        cfg.retention_ms = 10;
        p.apply_retention(&cfg, 10_000);
        assert_eq!(p.segments().len(), 1);
        assert_eq!(p.high_watermark(), 100);
    });
}

#[test]
fn delete_records_moves_log_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    rt().block_on(async {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = log
            .create_topic("del", 1, BTreeMap::new(), false, 0)
            .await
            .unwrap();
        let p = t.partition(0).unwrap();
        fill(&p, &small_cfg(&s), 50, 1000);
        assert_eq!(p.delete_records(30).unwrap(), 30);
        assert!(p.delete_records(51).is_err());
        assert_eq!(read_offsets(&p), (30..50).collect::<Vec<_>>());
        log.shutdown().unwrap();
    });
    drop(rt());
    let log = LogManager::open(s, 0).unwrap();
    let p = log.topic("del").unwrap().partition(0).unwrap();
    assert_eq!(p.log_start_offset(), 30);
    assert_eq!(p.high_watermark(), 50);
}

#[test]
fn idle_partitions_own_no_files_until_their_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let pdir = |i: i32| dir.path().join(format!("lazy-{i}"));
    // A directory left by an earlier topic of the same name must not come
    // back as the new topic's data.
    std::fs::create_dir(pdir(2)).unwrap();
    std::fs::write(pdir(2).join("00000000000000000000.log"), b"old bytes").unwrap();
    {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = rt()
            .block_on(log.create_topic("lazy", 4, BTreeMap::new(), false, 0))
            .unwrap();
        for i in 0..4 {
            assert!(
                !pdir(i).exists(),
                "partition {i} has a directory before any append"
            );
        }
        let p0 = t.partition(0).unwrap();
        assert_eq!(p0.high_watermark(), 0);
        assert!(p0.read(0, 1 << 20).unwrap().records.is_empty());
        fill(&p0, &small_cfg(&s), 30, 1000);
        assert!(pdir(0).join("00000000000000000000.log").exists());
        // DeleteRecords on an idle partition makes its directory for the
        // log-start file, and nothing else.
        let p1 = t.partition(1).unwrap();
        assert_eq!(p1.delete_records(0).unwrap(), 0);
        // Unclean stop: idle partitions are synced (a no-op) and reopened lazily.
        log.checkpoint().unwrap();
        fill(&p0, &small_cfg(&s), 5, 2000);
    }
    for clean in [false, true] {
        let log = LogManager::open(s.clone(), 0).unwrap();
        assert_eq!(log.recovery.clean, clean);
        let t = log.topic("lazy").unwrap();
        assert_eq!(
            read_offsets(&t.partition(0).unwrap()),
            (0..35).collect::<Vec<_>>()
        );
        for i in 1..4 {
            let p = t.partition(i).unwrap();
            assert_eq!((p.log_start_offset(), p.high_watermark()), (0, 0));
        }
        assert!(!pdir(2).exists() && !pdir(3).exists());
        log.shutdown().unwrap();
    }
    // The first append to a reopened idle partition lands at offset 0.
    let log = LogManager::open(s.clone(), 0).unwrap();
    let p3 = log.topic("lazy").unwrap().partition(3).unwrap();
    fill(&p3, &small_cfg(&s), 3, 3000);
    assert_eq!(read_offsets(&p3), vec![0, 1, 2]);
    drop(log);
    let log = LogManager::open(s, 0).unwrap();
    let p3 = log.topic("lazy").unwrap().partition(3).unwrap();
    assert_eq!(read_offsets(&p3), vec![0, 1, 2]);
}

#[test]
fn unclean_reopen_scans_only_past_checkpoint_and_truncates_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let path;
    {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = rt()
            .block_on(log.create_topic("crash", 1, BTreeMap::new(), false, 0))
            .unwrap();
        let p = t.partition(0).unwrap();
        fill(&p, &small_cfg(&s), 60, 1000);
        log.checkpoint().unwrap();
        fill(&p, &small_cfg(&s), 10, 2000);
        let active = p.segments().last().unwrap().clone();
        path = super::segment::log_path(&p.dir, active.base_offset);
        // Dropped without shutdown: an unclean stop.
    }
    // Tear the last batch in half.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);
    let log = LogManager::open(s.clone(), 0).unwrap();
    assert!(!log.recovery.clean);
    assert!(
        log.recovery.segments_scanned <= 3,
        "scanned {}",
        log.recovery.segments_scanned
    );
    assert!(log.recovery.bytes_truncated > 0);
    let p = log.topic("crash").unwrap().partition(0).unwrap();
    assert_eq!(p.high_watermark(), 69);
    assert_eq!(read_offsets(&p), (0..69).collect::<Vec<_>>());
    // Appends continue at the right offset.
    fill(&p, &small_cfg(&s), 1, 3000);
    assert_eq!(p.high_watermark(), 70);
    log.shutdown().unwrap();
    drop(log);
    let log = LogManager::open(s, 0).unwrap();
    assert!(log.recovery.clean);
    assert_eq!(log.recovery.segments_scanned, 0);
    assert_eq!(
        log.topic("crash")
            .unwrap()
            .partition(0)
            .unwrap()
            .high_watermark(),
        70
    );
}

#[test]
fn garbage_in_a_middle_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let pdir;
    {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = rt()
            .block_on(log.create_topic("mid", 1, BTreeMap::new(), false, 0))
            .unwrap();
        let p = t.partition(0).unwrap();
        fill(&p, &small_cfg(&s), 60, 1000);
        pdir = p.dir.clone();
    }
    let segs = {
        let mut v: Vec<_> = std::fs::read_dir(&pdir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v
    };
    assert!(segs.len() >= 3);
    // Corrupt one byte in the second segment's first batch payload.
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&segs[1], &bytes).unwrap();
    let log = LogManager::open(s, 0).unwrap();
    let p = log.topic("mid").unwrap().partition(0).unwrap();
    let first_bad = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert_eq!(
        p.high_watermark(),
        first_bad,
        "log ends where the damage starts"
    );
    assert_eq!(read_offsets(&p), (0..first_bad).collect::<Vec<_>>());
}

#[test]
fn topic_lifecycle_persists() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let id = rt().block_on(async {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let mut cfg = BTreeMap::new();
        cfg.insert("retention.ms".to_string(), "1234".to_string());
        let t = log
            .create_topic("life", 2, cfg.clone(), false, 0)
            .await
            .unwrap();
        assert!(log
            .create_topic("life", 2, BTreeMap::new(), false, 0)
            .await
            .is_err());
        assert!(log
            .create_topic("bad name!", 1, BTreeMap::new(), false, 0)
            .await
            .is_err());
        cfg.insert("retention.ms".to_string(), "-7".to_string());
        assert!(log.create_topic("badcfg", 1, cfg, false, 0).await.is_err());
        log.create_partitions("life", 4, false, 0).await.unwrap();
        log.create_topic("gone", 1, BTreeMap::new(), false, 0)
            .await
            .unwrap();
        log.delete_topic("gone").await.unwrap();
        log.shutdown().unwrap();
        t.id
    });
    let log = LogManager::open(s, 0).unwrap();
    let t = log.topic("life").unwrap();
    assert_eq!(t.id, id);
    assert_eq!(t.partitions().len(), 4);
    assert_eq!(t.config().retention_ms, 1234);
    assert!(log.topic("gone").is_none());
    assert!(!dir.path().join("gone-0").exists());
}

#[test]
fn second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let _a = LogManager::open(s.clone(), 0).unwrap();
    assert!(LogManager::open(s, 0).is_err());
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    rt().block_on(async {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let mut cfg = BTreeMap::new();
        cfg.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let t = log.create_topic("lat", 1, cfg, false, 0).await.unwrap();
        let p = t.partition(0).unwrap();
        let a = p
            .append(&build::simple(1000, 2, 10), &t.config(), 987_654)
            .unwrap();
        assert_eq!(a.log_append_time_ms, 987_654);
        let r = p.read(0, 1 << 20).unwrap();
        let span = crate::protocol::batch::check_batch(&r.records).unwrap();
        assert_eq!(span.header.max_timestamp, 987_654);
        assert_ne!(
            span.header.attributes & crate::protocol::batch::ATTR_TIMESTAMP_LOG_APPEND,
            0
        );
    });
}

#[test]
fn compacted_topics_refuse_records_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    rt().block_on(async {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let mut cfg = BTreeMap::new();
        cfg.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        let t = log.create_topic("cmp", 1, cfg, false, 0).await.unwrap();
        let p = t.partition(0).unwrap();
        let keyed = build::Rec {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_delta: 0,
        };
        let bare = build::Rec {
            key: None,
            value: Some(b"v"),
            timestamp_delta: 0,
        };
        let err = p
            .append(&build::batch(1, &[keyed, bare]), &t.config(), 0)
            .unwrap_err();
        match err {
            super::LogError::InvalidRecords { indexes, .. } => assert_eq!(indexes, vec![1]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.high_watermark(),
            0,
            "nothing from the refused batch is written"
        );
        let keyed = build::Rec {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_delta: 0,
        };
        p.append(&build::batch(1, &[keyed]), &t.config(), 0)
            .unwrap();
        assert_eq!(p.high_watermark(), 1);
    });
}

/// Appends `n` one-record batches with keys `k{i % keys}`.
fn fill_keyed(p: &super::Partition, cfg: &LogConfig, n: i64, keys: i64) {
    for i in 0..n {
        let key = format!("k{}", i % keys);
        let value = vec![b'v'; 200];
        let b = build::batch(
            1000 + i,
            &[build::Rec {
                key: Some(key.as_bytes()),
                value: Some(&value),
                timestamp_delta: 0,
            }],
        );
        p.append(&b, cfg, 0).unwrap();
    }
}

#[test]
fn compaction_keeps_latest_per_key_and_survives_crash_states() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string()),
    ]);
    let (pdir, before_clean);
    {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = rt()
            .block_on(log.create_topic("cmp", 1, configs, false, 0))
            .unwrap();
        let p = t.partition(0).unwrap();
        let cfg = t.config();
        fill_keyed(&p, &cfg, 100, 5);
        pdir = p.dir.clone();
        before_clean = read_offsets(&p);
        let stats = log.clean(10_000, 1 << 20);
        assert!(stats.segments > 0 && stats.records_removed > 0, "{stats:?}");
        let after = read_offsets(&p);
        assert!(after.len() < before_clean.len());
        // The last five offsets (the latest of each key) all survive; the
        // active segment is untouched.
        for o in 95..100 {
            assert!(after.contains(&o), "offset {o} kept");
        }
        assert_eq!(p.high_watermark(), 100);
        // A second pass with nothing new to clean does nothing.
        assert_eq!(log.clean(10_000, 1 << 20).segments, 0);
        log.shutdown().unwrap();
    }
    let cleaned = {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let p = log.topic("cmp").unwrap().partition(0).unwrap();
        read_offsets(&p)
    };
    // Crash states: a half-written .cleaned file next to its original, and
    // a swapped segment whose index files were not yet rebuilt.
    let first = super::segment::log_path(&pdir, 0);
    let mut junk = first.clone().into_os_string();
    junk.push(super::cleaner::CLEANED_SUFFIX);
    std::fs::write(&junk, b"partial garbage").unwrap();
    let _ = std::fs::remove_file(super::index::offset_index_path(&pdir, 0));
    let _ = std::fs::remove_file(super::index::time_index_path(&pdir, 0));
    let log = LogManager::open(s, 0).unwrap();
    let p = log.topic("cmp").unwrap().partition(0).unwrap();
    assert_eq!(read_offsets(&p), cleaned);
    assert!(!std::path::Path::new(&junk).exists(), "leftover removed");
    assert_eq!(p.high_watermark(), 100);
}

fn producer_batch(pid: i64, epoch: i16, seq: i32, txn: bool) -> Vec<u8> {
    let v = vec![b'p'; 100];
    build::batch_with(
        5,
        &[build::Rec {
            key: None,
            value: Some(&v),
            timestamp_delta: 0,
        }],
        build::Producer {
            id: pid,
            epoch,
            base_sequence: seq,
            attributes: if txn {
                crate::protocol::batch::ATTR_TRANSACTIONAL
            } else {
                0
            },
        },
    )
}

/// Producer state and aborted transactions survive an unclean stop: from
/// the snapshot at the checkpoint plus the tail after it, and, with the
/// snapshots deleted, from a scan of the whole log.
#[test]
fn producer_state_and_aborted_transactions_survive_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let check = |p: &super::Partition| {
        // The last batches of producer 7 are still known: a retry is a duplicate.
        let dup = p
            .append(&producer_batch(7, 0, 29, false), &small_cfg(&s), 0)
            .unwrap();
        assert_eq!(
            dup.base_offset,
            29 + 2,
            "duplicate answered with its offset"
        );
        assert!(p
            .append(&producer_batch(7, 0, 40, false), &small_cfg(&s), 0)
            .is_err());
        // Producer 9's transaction was aborted; producer 11's is still open.
        let aborted = p.aborted_txns();
        assert_eq!(aborted.len(), 1);
        assert_eq!(aborted[0].producer_id, 9);
        assert!(p.has_open_txn(11));
        assert_eq!(p.last_stable_offset(), 33);
    };
    {
        let log = LogManager::open(s.clone(), 0).unwrap();
        let t = rt()
            .block_on(log.create_topic("ps", 1, BTreeMap::new(), false, 0))
            .unwrap();
        let p = t.partition(0).unwrap();
        let cfg = small_cfg(&s);
        for seq in 0..20 {
            p.append(&producer_batch(7, 0, seq, false), &cfg, 0)
                .unwrap();
        }
        p.append(&producer_batch(9, 0, 0, true), &cfg, 0).unwrap(); // 20
        p.append_marker(9, 0, false, 0, &cfg, 0).unwrap(); // 21
        log.checkpoint().unwrap();
        for seq in 20..30 {
            p.append(&producer_batch(7, 0, seq, false), &cfg, 0)
                .unwrap(); // 22..31
        }
        fill(&p, &cfg, 1, 0); // 32
        p.append(&producer_batch(11, 0, 0, true), &cfg, 0).unwrap(); // 33
        check(&p);
        // Dropped without shutdown: an unclean stop.
    }
    let log = LogManager::open(s.clone(), 0).unwrap();
    assert!(!log.recovery.clean);
    let p = log.topic("ps").unwrap().partition(0).unwrap();
    check(&p);
    log.shutdown().unwrap();
    drop(log);
    // No snapshot at all: rebuilt from the whole log.
    for e in std::fs::read_dir(&p.dir).unwrap() {
        let path = e.unwrap().path();
        if path
            .extension()
            .is_some_and(|x| x == "snapshot" || x == "txnindex")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    drop(p);
    let log = LogManager::open(s.clone(), 0).unwrap();
    let p = log.topic("ps").unwrap().partition(0).unwrap();
    check(&p);
}

fn keyed_txn(pid: i64, key: &str, value: &str) -> Vec<u8> {
    build::batch_with(
        5,
        &[build::Rec {
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            timestamp_delta: 0,
        }],
        build::Producer {
            id: pid,
            epoch: 0,
            base_sequence: 0,
            attributes: crate::protocol::batch::ATTR_TRANSACTIONAL,
        },
    )
}

/// Compaction and transactions: aborted records never shadow or survive,
/// markers go only once their transaction has no records left, and nothing
/// at or past the last stable offset is touched.
#[test]
fn compaction_respects_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string()),
        ("delete.retention.ms".to_string(), "0".to_string()),
    ]);
    let log = LogManager::open(s.clone(), 0).unwrap();
    let t = rt()
        .block_on(log.create_topic("ctx", 1, configs, false, 0))
        .unwrap();
    let p = t.partition(0).unwrap();
    let cfg = t.config();
    p.append(&keyed_txn(1, "k0", "committed"), &cfg, 0).unwrap(); // 0
    p.append_marker(1, 0, true, 0, &cfg, 0).unwrap(); // 1
    p.append(&keyed_txn(2, "k0", "aborted"), &cfg, 0).unwrap(); // 2
    p.append_marker(2, 0, false, 0, &cfg, 0).unwrap(); // 3
    p.append(&keyed_txn(3, "k1", "old"), &cfg, 0).unwrap(); // 4
    p.append_marker(3, 0, true, 0, &cfg, 0).unwrap(); // 5
    p.append(&keyed_txn(5, "solo", "committed"), &cfg, 0)
        .unwrap(); // 6
    p.append_marker(5, 0, true, 0, &cfg, 0).unwrap(); // 7
    p.append(&keyed_txn(6, "solo", "aborted"), &cfg, 0).unwrap(); // 8
    p.append_marker(6, 0, false, 0, &cfg, 0).unwrap(); // 9
    fill_keyed(&p, &cfg, 40, 40); // 10..49, keys k0..k39
    let open_at = p.high_watermark();
    p.append(&keyed_txn(4, "k0", "open"), &cfg, 0).unwrap();
    fill_keyed(&p, &cfg, 20, 1);
    assert_eq!(p.last_stable_offset(), open_at);
    let stats = log.clean(10_000, 1 << 20);
    assert!(stats.segments > 0, "{stats:?}");
    let after = read_offsets(&p);
    assert!(!after.contains(&2), "aborted record dropped");
    assert!(!after.contains(&3), "its marker dropped once empty and old");
    assert!(
        !after.contains(&4) && !after.contains(&5),
        "superseded, marker gone"
    );
    assert!(
        after.contains(&open_at),
        "the open transaction is untouched"
    );
    assert!(
        after.contains(&6),
        "an aborted write does not shadow a committed one"
    );
    assert!(after.contains(&7), "a marker stays while its records do");
    assert!(!after.contains(&8) && !after.contains(&9));
    // k0's committed value is shadowed by fill_keyed's k0 at offset 10; the
    // commit marker of producer 1 goes with it.
    assert!(!after.contains(&0) && !after.contains(&1));
    log.shutdown().unwrap();
}
