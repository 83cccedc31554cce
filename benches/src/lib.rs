//! Benchmarks of Fjord's hot paths (`cargo bench -p fjord-benches`).
//!
//! Micro benchmarks live in `benches/hot_paths.rs`: batch header parse with
//! CRC-32C, segment append, offset-index lookup, and the fetch read path.
//! They are measurements, never assertions; quote their figures, and compare
//! brokers end to end with librdkafka's `rdkafka_performance` (built by
//! `compat-tests/librdkafka/run.sh --build-only`) as ../shared/BENCH.md says.
