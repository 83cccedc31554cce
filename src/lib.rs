//! Fjord: a Kafka-compatible event streaming server.
//!
//! Data flows one way: bytes → `protocol` (framing) → `server` (connections,
//! limits) → `handlers` (one per API key) → `log` (partitions on disk);
//! `tier` moves sealed segments of tiered topics to the remote tier and
//! back; `metrics` counts what passes and serves it on the admin listener.

pub mod admin;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod handlers;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod tier;
