//! Read-only memory maps of segment files: the only `unsafe` in Fjord.
//!
//! A map may be longer than its file: the active segment is mapped once at
//! its full capacity (`segment.bytes`) and the file grows under it through
//! `write(2)`. Reading a page wholly past end-of-file would raise SIGBUS, so
//! callers only ever read below the segment's committed length, which is
//! never larger than the file. Files are truncated only at start-up, before
//! they are mapped.
#![allow(unsafe_code)]

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};

/// A shared read-only map.
#[derive(Clone)]
pub struct Map(Arc<Mmap>);

struct Owner(Arc<Mmap>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0[..]
    }
}

impl Map {
    /// Maps `len` bytes of `file` (which may be longer than the file).
    pub fn new(file: &File, len: usize) -> std::io::Result<Self> {
        if len == 0 {
            // mmap(2) refuses zero-length maps.
            return Ok(Self(Arc::new(
                MmapOptions::new().map_anon()?.make_read_only()?,
            )));
        }
        // SAFETY: the file is only ever appended to while mapped (never
        // truncated or rewritten in place), and readers stay below the
        // committed length, which the file already holds. See module doc.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(Self(Arc::new(map)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Borrows `start..end`; `None` if out of the map.
    pub fn get(&self, start: usize, end: usize) -> Option<&[u8]> {
        self.0.get(start..end)
    }

    /// A zero-copy `Bytes` over `start..end` that keeps the map alive.
    pub fn bytes(&self, start: usize, end: usize) -> Option<Bytes> {
        if start > end || end > self.0.len() {
            return None;
        }
        Some(Bytes::from_owner(Owner(self.0.clone())).slice(start..end))
    }
}
