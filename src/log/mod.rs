//! The log: topics, partitions, segments, indexes, recovery and retention.
//!
//! Invariants: only this module (and later `tiering`) touches storage; only
//! `mmap` has `unsafe`; an append is visible to readers only after it is
//! fully written; nothing acknowledged under `acks=all` is lost in a crash
//! (see `sync` and `checkpoint`).

pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod index;
pub mod manager;
pub mod mmap;
pub mod partition;
pub mod producer_state;
pub mod recovery;
pub mod segment;
pub mod sync;
pub mod topic;
pub mod txn_index;

#[cfg(test)]
mod tests;

pub use manager::LogManager;
pub use partition::{LogError, Partition};
