//! A response buffer that splices record bytes in by reference.
//!
//! Fetch responses are mostly record batches read from memory-mapped
//! segments. kafka-protocol encodes a `records` field with
//! `BufMut::put_slice`; this buffer recognises those slices by address and
//! length, and instead of copying them it ends the current chunk and keeps a
//! clone of the original `Bytes` (a reference count on the map). The result
//! is a list of chunks written with one vectored write: the record bytes go
//! from the page cache to the socket without passing through a user buffer.
#![allow(unsafe_code)]

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};

/// Slices shorter than this are copied: a reference costs more than a copy.
pub const SPLICE_MIN: usize = 4096;

pub struct SpliceBuf {
    chunks: Vec<Bytes>,
    cur: BytesMut,
    /// Bytes that may be spliced, in the order the encoder writes them.
    candidates: Vec<Bytes>,
    next: usize,
    written: usize,
}

impl SpliceBuf {
    pub fn new(candidates: Vec<Bytes>) -> Self {
        Self {
            chunks: Vec::new(),
            cur: BytesMut::with_capacity(256),
            candidates,
            next: 0,
            written: 0,
        }
    }

    /// Bytes written so far, spliced ones included.
    pub fn len(&self) -> usize {
        self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// The chunks, in order.
    pub fn finish(mut self) -> Vec<Bytes> {
        if !self.cur.is_empty() {
            self.chunks.push(self.cur.freeze());
        }
        self.chunks
    }
}

// SAFETY: every method delegates to `BytesMut`, whose implementation upholds
// BufMut's contract; `put_slice` only adds a fast path that writes no bytes
// through `chunk_mut`.
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        self.written += cnt;
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is `cur`'s.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SPLICE_MIN {
            if let Some(c) = self.candidates.get(self.next) {
                if c.as_ptr() == src.as_ptr() && c.len() == src.len() {
                    let done = std::mem::replace(&mut self.cur, BytesMut::with_capacity(256));
                    if !done.is_empty() {
                        self.chunks.push(done.freeze());
                    }
                    self.chunks.push(c.clone());
                    self.next += 1;
                    self.written += src.len();
                    return;
                }
            }
        }
        self.written += src.len();
        self.cur.extend_from_slice(src);
    }
}

impl kafka_protocol::protocol::buf::ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.written
    }

    // Response encoders never seek back (they size everything up front);
    // gaps are used only when encoding record batches, which we never do
    // into this buffer. Seeking is therefore unsupported: a no-op at the
    // current end, and nothing else is ever asked for.
    fn seek(&mut self, _offset: usize) {}

    fn range(&mut self, _r: std::ops::Range<usize>) -> &mut [u8] {
        &mut []
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_known_slices_and_copies_the_rest() {
        let big = Bytes::from(vec![7u8; 10_000]);
        let mut b = SpliceBuf::new(vec![big.clone()]);
        b.put_slice(b"head");
        b.put_slice(&big);
        b.put_slice(b"tail");
        let other = vec![1u8; 5000];
        b.put_slice(&other);
        assert_eq!(b.len(), 4 + 10_000 + 4 + 5000);
        let chunks = b.finish();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr(), "spliced, not copied");
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(&all[..4], b"head");
        assert_eq!(all.len(), 15_008);
    }
}
