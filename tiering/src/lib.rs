//! Tiered storage: sealed segments offloaded to blob storage and read back.
//!
//! The broker keeps the hot tail of each partition on local disk; this
//! crate keeps the rest in an object store (a local directory, Azure Blob
//! Storage, S3) through `object_store`, and serves reads below the local
//! log start from it. It knows nothing of the broker: segments cross the
//! seam as values ([`partition::SegmentUpload`]: bytes and offsets), and the
//! remote data is read with Kafka's own file formats ([`format`]).
//!
//! - [`location`]: the store a `--tier-url` names.
//! - [`layout`]: object names (data objects apart from manifests).
//! - [`manifest`]: a partition's remote segments and their states, pure.
//! - [`manifest_store`]: manifests as immutable versioned objects, created
//!   conditionally so two writers never both win.
//! - [`partition`]: copy and delete through the manifest's states; crash
//!   recovery.
//! - [`retention`]: which local and remote segments may go, pure.
//! - [`read`] and [`cache`]: remote reads in cached chunks with read-ahead.
//! - [`backoff`]: retry delays for uploads that fail.
//! - [`faulty`]: a seeded fault-injecting store for tests.
//!
//! Invariant: this crate never imports the broker; a local segment is
//! deleted by the broker only after [`retention::is_remote`] says the tier
//! holds it (COPY_FINISHED committed in the manifest).

pub mod backoff;
pub mod cache;
pub mod error;
pub mod faulty;
pub mod format;
pub mod layout;
pub mod location;
pub mod manifest;
pub mod manifest_store;
pub mod partition;
pub mod read;
pub mod retention;

#[cfg(test)]
mod tests;

pub use error::{TierError, TierResult};
