//! The record-batch header (magic v2), parsed by hand.
//!
//! Layout of the first 61 bytes of every batch (big-endian):
//!
//! ```text
//! 0  base_offset i64        | 12 partition_leader_epoch i32 | 16 magic i8
//! 8  batch_length i32       | 17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16         | 23 last_offset_delta i32      | 27 base_timestamp i64
//! 35 max_timestamp i64      | 43 producer_id i64            | 51 producer_epoch i16
//! 53 base_sequence i32      | 57 records_count i32          | 61 records...
//! ```
//!
//! `batch_length` counts the bytes after itself, so a batch occupies
//! `12 + batch_length` bytes. The broker may rewrite `base_offset` and
//! `partition_leader_epoch` because they lie before the CRC'd range; every
//! other byte is stored exactly as the client sent it.
//!
//! Worked example: a producer sends one batch of 3 records with base_offset 0;
//! the partition's log end is 40, so we write 40 into bytes 0..8 and the
//! records become offsets 40, 41, 42 (last_offset_delta = 2).

/// Size of the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batch_length`'s counted range (base_offset + batch_length).
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the first CRC-covered byte.
const CRC_START: usize = 21;

/// Attribute bits.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_LOG_APPEND: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// A parsed batch header; the batch's bytes stay where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why a batch was refused. Mapped to Kafka codes in `handlers::errors`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("batch length {0} is invalid")]
    BadLength(i32),
    #[error("unsupported magic {0} (only v2 record batches are accepted)")]
    BadMagic(i8),
    #[error("CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("inconsistent record count {count} with last offset delta {delta}")]
    BadCount { count: i32, delta: i32 },
    #[error("control batches may not be produced by clients")]
    ControlBatch,
    #[error("unknown compression codec id {0}")]
    BadCodec(i16),
    #[error("malformed record {index}: {what}")]
    BadRecord { index: i32, what: &'static str },
}

fn i16_at(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl BatchHeader {
    /// Parses the header at the start of `b`. Checks only that 61 bytes exist.
    pub fn parse(b: &[u8]) -> Result<Self, BatchError> {
        let short = BatchError::Truncated {
            need: HEADER_LEN,
            have: b.len(),
        };
        if b.len() < HEADER_LEN {
            return Err(short);
        }
        let get = || -> Option<Self> {
            Some(Self {
                base_offset: i64_at(b, 0)?,
                batch_length: i32_at(b, 8)?,
                partition_leader_epoch: i32_at(b, 12)?,
                magic: i8::from_be_bytes([*b.get(16)?]),
                crc: u32::from_be_bytes(b.get(17..21)?.try_into().ok()?),
                attributes: i16_at(b, 21)?,
                last_offset_delta: i32_at(b, 23)?,
                base_timestamp: i64_at(b, 27)?,
                max_timestamp: i64_at(b, 35)?,
                producer_id: i64_at(b, 43)?,
                producer_epoch: i16_at(b, 51)?,
                base_sequence: i32_at(b, 53)?,
                records_count: i32_at(b, 57)?,
            })
        };
        get().ok_or(short)
    }

    /// Total bytes this batch occupies, prefix included.
    pub fn total_len(&self) -> Result<usize, BatchError> {
        let body = usize::try_from(self.batch_length)
            .map_err(|_| BatchError::BadLength(self.batch_length))?;
        if body < HEADER_LEN - LOG_OVERHEAD {
            return Err(BatchError::BadLength(self.batch_length));
        }
        Ok(body + LOG_OVERHEAD)
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Records in a run of whole batches, from their headers alone (control
/// batches included); counting stops at the first batch that is cut short.
pub fn count_records(mut b: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Ok(h) = BatchHeader::parse(b) {
        let Ok(len) = h.total_len() else { break };
        let Some(rest) = b.get(len..) else { break };
        n += u64::try_from(h.records_count).unwrap_or(0);
        b = rest;
    }
    n
}

/// One batch found in a buffer: its header and where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    pub header: BatchHeader,
    pub start: usize,
    pub len: usize,
}

/// Parses and fully checks the batch at the start of `b`: length, magic, CRC.
pub fn check_batch(b: &[u8]) -> Result<BatchSpan, BatchError> {
    let header = BatchHeader::parse(b)?;
    let len = header.total_len()?;
    let bytes = b.get(..len).ok_or(BatchError::Truncated {
        need: len,
        have: b.len(),
    })?;
    if header.magic != 2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    let covered = bytes.get(CRC_START..).ok_or(BatchError::Truncated {
        need: CRC_START,
        have: len,
    })?;
    let computed = crc32c::crc32c(covered);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    Ok(BatchSpan {
        header,
        start: 0,
        len,
    })
}

/// Validates a producer's record set: one or more whole v2 batches.
///
/// Checks what we can without decoding records: CRC, magic, lengths,
/// `records_count == last_offset_delta + 1`, no control batches. Returns the
/// batches in order. Nothing is allocated beyond the returned spans, whose
/// count is bounded by `records.len() / 61`.
pub fn validate_produce(records: &[u8]) -> Result<Vec<BatchSpan>, BatchError> {
    let mut spans = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let rest = records.get(at..).unwrap_or_default();
        let mut span = check_batch(rest)?;
        let h = &span.header;
        if h.records_count < 1 || h.last_offset_delta != h.records_count - 1 {
            return Err(BatchError::BadCount {
                count: h.records_count,
                delta: h.last_offset_delta,
            });
        }
        if h.is_control() {
            return Err(BatchError::ControlBatch);
        }
        let codec = h.attributes & ATTR_COMPRESSION_MASK;
        if codec > 4 {
            return Err(BatchError::BadCodec(codec));
        }
        if codec == 0 {
            let body = rest.get(HEADER_LEN..span.len).unwrap_or_default();
            check_records(body, h.records_count)?;
        }
        span.start = at;
        at += span.len;
        spans.push(span);
    }
    if spans.is_empty() {
        return Err(BatchError::Truncated {
            need: HEADER_LEN,
            have: 0,
        });
    }
    Ok(spans)
}

/// Reads a zigzag varint (records use them for lengths and deltas).
pub(crate) fn varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            let v = (raw >> 1) as i64 ^ -((raw & 1) as i64);
            return Some(v);
        }
    }
    None
}

/// Skips a varint-length-prefixed field (-1 means null).
fn skip_field(b: &[u8], pos: &mut usize) -> Option<()> {
    let len = varint(b, pos)?;
    if len < -1 {
        return None;
    }
    let len = usize::try_from(len.max(0)).ok()?;
    let end = pos.checked_add(len)?;
    (end <= b.len()).then(|| *pos = end)
}

/// Walks the records of an uncompressed batch without copying them: every
/// length must fit, offset deltas must run 0..count, and the records must
/// fill the batch exactly. Consumers cannot decode a batch that fails this,
/// so storing it would stall every reader of the partition.
pub fn check_records(body: &[u8], count: i32) -> Result<(), BatchError> {
    let mut pos = 0usize;
    for index in 0..count {
        let bad = |what| BatchError::BadRecord { index, what };
        let len = varint(body, &mut pos).ok_or(bad("length"))?;
        let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= body.len())
            .ok_or(bad("length past the batch"))?;
        let rec = body.get(pos..end).ok_or(bad("length past the batch"))?;
        let mut p = 1usize; // attributes
        varint(rec, &mut p).ok_or(bad("timestamp delta"))?;
        if varint(rec, &mut p) != Some(i64::from(index)) {
            return Err(bad("offset delta out of sequence"));
        }
        skip_field(rec, &mut p).ok_or(bad("key"))?;
        skip_field(rec, &mut p).ok_or(bad("value"))?;
        let headers = varint(rec, &mut p).ok_or(bad("header count"))?;
        if headers < 0 {
            return Err(bad("negative header count"));
        }
        for _ in 0..headers {
            skip_field(rec, &mut p).ok_or(bad("header key"))?;
            skip_field(rec, &mut p).ok_or(bad("header value"))?;
        }
        if p != rec.len() {
            return Err(bad("bytes left over"));
        }
        pos = end;
    }
    if pos != body.len() {
        return Err(BatchError::BadRecord {
            index: count,
            what: "bytes after the last record",
        });
    }
    Ok(())
}

/// The type of a control batch's first record: 0 abort, 1 commit (other
/// values are other control records). `None` if it does not parse.
pub fn control_type(batch: &[u8]) -> Option<i16> {
    let body = batch.get(HEADER_LEN..)?;
    let mut pos = 0usize;
    varint(body, &mut pos)?; // record length
    pos += 1; // attributes
    varint(body, &mut pos)?; // timestamp delta
    varint(body, &mut pos)?; // offset delta
    let key_len = usize::try_from(varint(body, &mut pos)?).ok()?;
    let key = body.get(pos..pos.checked_add(key_len)?)?;
    Some(i16::from_be_bytes(key.get(2..4)?.try_into().ok()?))
}

/// Rewrites the fields the broker owns (outside the CRC) in a batch header.
pub fn stamp_header(prefix: &mut [u8; 16], base_offset: i64, leader_epoch: i32) {
    prefix[0..8].copy_from_slice(&base_offset.to_be_bytes());
    prefix[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks a batch as LogAppendTime with the broker's clock: sets attribute
/// bit 3 and `max_timestamp`, then recomputes the CRC (both lie inside it).
/// Readers then take every record's timestamp from `max_timestamp`.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let len = header.total_len()?;
    let b = batch
        .get_mut(..len)
        .ok_or(BatchError::Truncated { need: len, have: 0 })?;
    let attrs = header.attributes | ATTR_TIMESTAMP_LOG_APPEND;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    b[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Test and benchmark helper: builds a valid uncompressed v2 batch.
pub mod build {
    /// A record to encode.
    pub struct Rec<'a> {
        pub key: Option<&'a [u8]>,
        pub value: Option<&'a [u8]>,
        pub timestamp_delta: i64,
    }

    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }

    /// The producer fields of a batch header.
    #[derive(Debug, Clone, Copy)]
    pub struct Producer {
        pub id: i64,
        pub epoch: i16,
        pub base_sequence: i32,
        pub attributes: i16,
    }

    impl Producer {
        pub const NONE: Producer = Producer {
            id: -1,
            epoch: -1,
            base_sequence: -1,
            attributes: 0,
        };
    }

    /// Encodes records into one batch with the given base timestamp.
    pub fn batch(base_timestamp: i64, recs: &[Rec<'_>]) -> Vec<u8> {
        batch_with(base_timestamp, recs, Producer::NONE)
    }

    /// A transaction marker (control batch): key `version 0, type`
    /// (0 abort, 1 commit), value `version 0, coordinator epoch`.
    pub fn control(
        ts: i64,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Vec<u8> {
        let key = [0u8, 0, 0, u8::from(commit)];
        let mut value = vec![0u8, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let rec = Rec {
            key: Some(&key),
            value: Some(&value),
            timestamp_delta: 0,
        };
        batch_with(
            ts,
            &[rec],
            Producer {
                id: producer_id,
                epoch,
                base_sequence: -1,
                attributes: super::ATTR_TRANSACTIONAL | super::ATTR_CONTROL,
            },
        )
    }

    /// Encodes records into one batch with producer fields set.
    pub fn batch_with(base_timestamp: i64, recs: &[Rec<'_>], p: Producer) -> Vec<u8> {
        let mut body = Vec::new();
        let mut max_delta = 0i64;
        for (i, r) in recs.iter().enumerate() {
            let mut rec = vec![0u8];
            varint(&mut rec, r.timestamp_delta);
            varint(&mut rec, i as i64);
            match r.key {
                Some(k) => {
                    varint(&mut rec, k.len() as i64);
                    rec.extend_from_slice(k);
                }
                None => varint(&mut rec, -1),
            }
            match r.value {
                Some(v) => {
                    varint(&mut rec, v.len() as i64);
                    rec.extend_from_slice(v);
                }
                None => varint(&mut rec, -1),
            }
            varint(&mut rec, 0);
            varint(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
            max_delta = max_delta.max(r.timestamp_delta);
        }
        let n = recs.len() as i32;
        let mut tail = Vec::new();
        tail.extend_from_slice(&p.attributes.to_be_bytes());
        tail.extend_from_slice(&(n - 1).to_be_bytes());
        tail.extend_from_slice(&base_timestamp.to_be_bytes());
        tail.extend_from_slice(&(base_timestamp + max_delta).to_be_bytes());
        tail.extend_from_slice(&p.id.to_be_bytes());
        tail.extend_from_slice(&p.epoch.to_be_bytes());
        tail.extend_from_slice(&p.base_sequence.to_be_bytes());
        tail.extend_from_slice(&n.to_be_bytes());
        tail.extend_from_slice(&body);
        let crc = crc32c::crc32c(&tail);
        let mut out = Vec::new();
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((tail.len() + 9) as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&tail);
        out
    }

    /// One batch of `n` records with `value_len`-byte values.
    pub fn simple(base_timestamp: i64, n: usize, value_len: usize) -> Vec<u8> {
        let value = vec![b'x'; value_len];
        let recs: Vec<Rec<'_>> = (0..n)
            .map(|i| Rec {
                key: None,
                value: Some(&value),
                timestamp_delta: i as i64,
            })
            .collect();
        batch(base_timestamp, &recs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_batch_round_trips() {
        let b = build::simple(1000, 3, 10);
        let spans = validate_produce(&b).unwrap();
        assert_eq!(spans.len(), 1);
        let h = spans[0].header;
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(spans[0].len, b.len());
    }

    #[test]
    fn two_batches_back_to_back() {
        let mut b = build::simple(1, 2, 5);
        b.extend(build::simple(2, 1, 5));
        let spans = validate_produce(&b).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].start, spans[0].len);
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let mut b = build::simple(1000, 3, 10);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            validate_produce(&b),
            Err(BatchError::BadCrc { .. })
        ));
    }

    #[test]
    fn stamping_offset_keeps_crc_valid() {
        let b = build::simple(1000, 3, 10);
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&b[..16]);
        stamp_header(&mut prefix, 12345, 7);
        let mut c = prefix.to_vec();
        c.extend_from_slice(&b[16..]);
        let span = check_batch(&c).unwrap();
        assert_eq!(span.header.base_offset, 12345);
        assert_eq!(span.header.partition_leader_epoch, 7);
    }

    #[test]
    fn wrong_magic_and_counts() {
        let mut b = build::simple(1000, 3, 10);
        b[16] = 1;
        assert_eq!(validate_produce(&b), Err(BatchError::BadMagic(1)));
        assert!(matches!(
            validate_produce(&[]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn record_framing_is_checked() {
        let recs = [
            build::Rec {
                key: Some(b"k"),
                value: Some(b"v"),
                timestamp_delta: 0,
            },
            build::Rec {
                key: None,
                value: None,
                timestamp_delta: 1,
            },
        ];
        let good = build::batch(5, &recs);
        assert!(validate_produce(&good).is_ok());
        // Corrupt the first record's length and re-seal the CRC: framing must catch it.
        let mut bad = good.clone();
        bad[HEADER_LEN] = 0x7e;
        let crc = crc32c::crc32c(&bad[CRC_START..]);
        bad[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_produce(&bad),
            Err(BatchError::BadRecord { .. })
        ));
        // An unknown codec id.
        let mut codec = good.clone();
        codec[22] |= 7;
        let crc = crc32c::crc32c(&codec[CRC_START..]);
        codec[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate_produce(&codec), Err(BatchError::BadCodec(7)));
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut b = build::simple(1000, 2, 10);
        set_log_append_time(&mut b, 5555).unwrap();
        let span = check_batch(&b).unwrap();
        assert_eq!(span.header.max_timestamp, 5555);
        assert_ne!(span.header.attributes & ATTR_TIMESTAMP_LOG_APPEND, 0);
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_produce(&bytes);
        }

        #[test]
        fn truncation_is_always_detected(n in 1usize..5, vlen in 0usize..50, cut in 1usize..60) {
            let b = build::simple(5, n, vlen);
            let keep = b.len().saturating_sub(cut);
            prop_assert!(validate_produce(&b[..keep]).is_err());
        }
    }
}
