//! Criterion micro benchmarks of the produce and fetch hot paths.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fjord::log::index::{Indexes, OffsetEntry};
use fjord::log::segment::{OpenOpts, Segment};
use fjord::protocol::batch::{build, validate_produce};

/// Runs a log admin call (they create partitions on tokio's blocking pool).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

/// A producer-sized batch: 1 KiB values, ~1 MiB in all (librdkafka's batch.size).
fn big_batch() -> Vec<u8> {
    build::simple(1_700_000_000_000, 1000, 1024)
}

fn batch_validate(c: &mut Criterion) {
    let b = big_batch();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(b.len() as u64));
    g.bench_function("validate_1MiB_header_and_crc32c", |bench| {
        bench.iter(|| validate_produce(black_box(&b)))
    });
    let small = build::simple(1_700_000_000_000, 10, 100);
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("validate_1KiB_header_and_crc32c", |bench| {
        bench.iter(|| validate_produce(black_box(&small)))
    });
    g.finish();
}

fn opts(dir: &std::path::Path) -> OpenOpts {
    OpenOpts {
        dir: dir.to_path_buf(),
        base_offset: 0,
        capacity: 1 << 30,
        index_interval_bytes: 4096,
        now_ms: 0,
    }
}

fn segment_append(c: &mut Criterion) {
    let b = big_batch();
    let spans = validate_produce(&b).unwrap_or_default();
    let Some(span) = spans.first().copied() else {
        return;
    };
    const BATCHES: i64 = 64;
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Bytes(b.len() as u64 * BATCHES as u64));
    // Per iteration: a fresh segment file, then 64 appends of a 1 MiB batch
    // (page cache only; fsync is the syncer's and measured end to end).
    g.bench_function("create_and_append_64x1MiB_page_cache", |bench| {
        bench.iter_batched(
            || {
                let dir = tempfile::tempdir().ok();
                let seg = dir
                    .as_ref()
                    .and_then(|d| Segment::create(opts(d.path())).ok());
                (dir, seg)
            },
            |(_dir, seg)| {
                if let Some(seg) = seg {
                    let mut next = 0;
                    for _ in 0..BATCHES {
                        let _ = seg.append(&b, &span, next, 0);
                        next += 1000;
                    }
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    let mut idx = Indexes::default();
    // A full 1 GiB segment at one entry per 4 KiB: 262,144 entries.
    for i in 0..262_144u32 {
        let _ = idx.push_offset(OffsetEntry {
            relative_offset: i * 4,
            position: i * 4096,
        });
    }
    let mut probe = 0u32;
    c.bench_function("index/lookup_in_262144_entries", |bench| {
        bench.iter(|| {
            probe = probe.wrapping_add(7919) % (262_144 * 4);
            black_box(idx.position_for(black_box(probe)))
        })
    });
}

fn fetch_read(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(seg) = Segment::create(opts(dir.path())) else {
        return;
    };
    let b = build::simple(1_700_000_000_000, 100, 1024);
    let spans = validate_produce(&b).unwrap_or_default();
    let Some(span) = spans.first().copied() else {
        return;
    };
    let mut next = 0i64;
    for _ in 0..1000 {
        let _ = seg.append(&b, &span, next, 0);
        next += 100;
    }
    // No bytes are touched: the read is an index lookup, a header walk and
    // a reference-counted slice of the map, whatever its length.
    let mut g = c.benchmark_group("fetch");
    g.throughput(Throughput::Elements(1));
    let mut probe = 0i64;
    g.bench_function("locate_and_slice_up_to_1MiB_zero_copy", |bench| {
        bench.iter(|| {
            probe = (probe + 9973) % next;
            let l = seg.locate(probe);
            black_box(l.and_then(|l| seg.read(l.position, 1 << 20)))
        })
    });
    g.finish();
}

/// A compacted partition of ~32 MiB in 1 MiB segments: 100-record batches
/// of 1 KiB values over 2,000 keys, so nearly every record is superseded.
fn compacted_log() -> Option<(tempfile::TempDir, fjord::log::LogManager, u64)> {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().ok()?;
    let mut s = fjord::config::Settings::for_dir(dir.path().to_path_buf());
    s.segment_bytes = 1 << 20;
    let s = std::sync::Arc::new(s);
    let log = fjord::log::LogManager::open(s, 0).ok()?;
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string()),
    ]);
    let t = block_on(log.create_topic("bench", 1, configs, false, 0)).ok()?;
    let p = t.partition(0)?;
    let cfg = t.config();
    let value = vec![b'v'; 1024];
    let mut written = 0u64;
    let mut i = 0u64;
    while written < 32 << 20 {
        let keys: Vec<String> = (0..100)
            .map(|j| format!("key-{}", (i * 100 + j) % 2000))
            .collect();
        let recs: Vec<build::Rec<'_>> = keys
            .iter()
            .map(|k| build::Rec {
                key: Some(k.as_bytes()),
                value: Some(&value),
                timestamp_delta: 0,
            })
            .collect();
        let b = build::batch(1_700_000_000_000, &recs);
        written += b.len() as u64;
        p.append(&b, &cfg, 0).ok()?;
        i += 1;
    }
    Some((dir, log, written))
}

fn compaction(c: &mut Criterion) {
    let Some((_d, _l, bytes)) = compacted_log() else {
        return;
    };
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("clean_32MiB_2000_keys", |bench| {
        bench.iter_batched(
            compacted_log,
            |made| {
                if let Some((_dir, log, _)) = made {
                    black_box(log.clean(1_800_000_000_000, 1 << 22));
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Appends of 1 KiB batches (10 × 100 B records) to one partition, plain
/// and from an idempotent producer (sequence check + producer-state update
/// under the partition lock): the broker-side cost of idempotence.
fn idempotent_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("partition_append");
    g.throughput(Throughput::Bytes(1024));
    for idempotent in [false, true] {
        let name = if idempotent {
            "append_1KiB_idempotent"
        } else {
            "append_1KiB_plain"
        };
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let Ok(dir) = tempfile::tempdir() else {
                    return std::time::Duration::ZERO;
                };
                let s =
                    std::sync::Arc::new(fjord::config::Settings::for_dir(dir.path().to_path_buf()));
                let Ok(log) = fjord::log::LogManager::open(s, 0) else {
                    return std::time::Duration::ZERO;
                };
                let made = block_on(log.create_topic("bench", 1, Default::default(), false, 0));
                let Some(p) = made.ok().and_then(|t| t.partition(0).map(|p| (t, p))) else {
                    return std::time::Duration::ZERO;
                };
                let (t, p) = p;
                let cfg = t.config();
                let value = vec![b'x'; 100];
                let recs: Vec<build::Rec<'_>> = (0..10)
                    .map(|i| build::Rec {
                        key: None,
                        value: Some(&value),
                        timestamp_delta: i,
                    })
                    .collect();
                let batches: Vec<Vec<u8>> = (0..iters)
                    .map(|i| {
                        let producer = if idempotent {
                            build::Producer {
                                id: 7,
                                epoch: 0,
                                base_sequence: i32::try_from(i * 10).unwrap_or(0),
                                attributes: 0,
                            }
                        } else {
                            build::Producer::NONE
                        };
                        build::batch_with(1_700_000_000_000, &recs, producer)
                    })
                    .collect();
                let start = std::time::Instant::now();
                for b in &batches {
                    black_box(p.append(b, &cfg, 0).is_ok());
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    idempotent_append,
    batch_validate,
    segment_append,
    index_lookup,
    fetch_read,
    compaction
);
criterion_main!(benches);
