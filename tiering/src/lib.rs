//! Tiered storage: offloading sealed segments to blob storage.
//!
//! Not implemented yet: issue 6 fills this crate (object_store over a local
//! directory, Azure Blob and S3; a manifest kept apart from data objects).
//! Invariant for when it is: this crate never imports the broker.
