//! Bytes in, typed values out; never any I/O.
//!
//! This layer owns what we parse ourselves rather than hand to the
//! `kafka-protocol` crate: the frame prefix and request header
//! ([`frame`]), and the 61-byte record-batch header ([`batch`]), which the
//! produce path validates without decoding records.
//!
//! Invariant: nothing here touches sockets, files or the clock.

pub mod batch;
pub mod codes;
pub mod compact;
pub mod frame;
pub mod splice;
