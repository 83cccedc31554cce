//! Record-level surgery on one v2 batch, for log compaction: walk its
//! records (decompressing if needed) and rebuild it with only the records a
//! predicate keeps.
//!
//! Kept records' bytes are copied unchanged (their offset and timestamp
//! deltas stay valid because the base offset and base timestamp are
//! kept), so headers with duplicate keys survive byte for byte. The header
//! keeps `lastOffsetDelta`, as Kafka does, so a producer's sequence
//! tracking is not disturbed; the record count, length and CRC are new.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{varint, BatchError, BatchHeader, ATTR_COMPRESSION_MASK, HEADER_LEN};

const CRC_START: usize = 21;
const COUNT_AT: usize = 57;

/// One record as stored: where its bytes are and what compaction needs.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    /// A null value: a tombstone.
    pub tombstone: bool,
    /// The whole record, its length prefix included.
    pub bytes: &'a [u8],
}

/// What became of a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Every record kept: store the batch as it was.
    Unchanged,
    /// No record kept: drop the batch.
    Empty,
    Rewritten(Vec<u8>),
}

fn bad(index: i32, what: &'static str) -> BatchError {
    BatchError::BadRecord { index, what }
}

/// Walks the records of an uncompressed record section.
pub fn walk(body: &[u8]) -> Result<Vec<RawRecord<'_>>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut index = 0i32;
    while pos < body.len() {
        let start = pos;
        let len = varint(body, &mut pos).ok_or(bad(index, "length"))?;
        let len = usize::try_from(len).map_err(|_| bad(index, "negative length"))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= body.len())
            .ok_or(bad(index, "length past the batch"))?;
        let rec = body
            .get(pos..end)
            .ok_or(bad(index, "length past the batch"))?;
        let mut p = 1usize; // attributes
        varint(rec, &mut p).ok_or(bad(index, "timestamp delta"))?;
        let offset_delta = varint(rec, &mut p).ok_or(bad(index, "offset delta"))?;
        let klen = varint(rec, &mut p).ok_or(bad(index, "key"))?;
        let key = if klen < 0 {
            None
        } else {
            let k = usize::try_from(klen).map_err(|_| bad(index, "key"))?;
            let kend = p.checked_add(k).ok_or(bad(index, "key"))?;
            let key = rec.get(p..kend).ok_or(bad(index, "key"))?;
            p = kend;
            Some(key)
        };
        let vlen = varint(rec, &mut p).ok_or(bad(index, "value"))?;
        out.push(RawRecord {
            offset_delta,
            key,
            tombstone: vlen < 0,
            bytes: body.get(start..end).ok_or(bad(index, "record"))?,
        });
        pos = end;
        index = index.saturating_add(1);
    }
    Ok(out)
}

fn codec_error(e: anyhow::Error) -> BatchError {
    tracing::debug!(error = %e, "codec failure");
    BatchError::BadCodec(-1)
}

/// The batch's record section, decompressed.
pub fn records_section(batch: &[u8]) -> Result<Bytes, BatchError> {
    let h = BatchHeader::parse(batch)?;
    let body = batch
        .get(HEADER_LEN..h.total_len()?)
        .ok_or(BatchError::BadLength(h.batch_length))?;
    let mut buf = Bytes::copy_from_slice(body);
    let take = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(b.copy_to_bytes(b.remaining())) };
    match h.attributes & ATTR_COMPRESSION_MASK {
        0 => Ok(buf),
        1 => Gzip::decompress(&mut buf, take).map_err(codec_error),
        2 => Snappy::decompress(&mut buf, take).map_err(codec_error),
        3 => Lz4::decompress(&mut buf, take).map_err(codec_error),
        4 => Zstd::decompress(&mut buf, take).map_err(codec_error),
        c => Err(BatchError::BadCodec(c)),
    }
}

fn compress(codec: i16, records: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = BytesMut::new();
    let put = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.put_slice(records);
        Ok(())
    };
    match codec {
        0 => out.put_slice(records),
        1 => Gzip::compress(&mut out, put).map_err(codec_error)?,
        2 => Snappy::compress(&mut out, put).map_err(codec_error)?,
        3 => Lz4::compress(&mut out, put).map_err(codec_error)?,
        4 => Zstd::compress(&mut out, put).map_err(codec_error)?,
        c => return Err(BatchError::BadCodec(c)),
    }
    Ok(out.to_vec())
}

/// Keeps the records for which `keep(offset, record)` holds. Control
/// batches are never passed here by the cleaner.
pub fn filter(
    batch: &[u8],
    mut keep: impl FnMut(i64, &RawRecord<'_>) -> bool,
) -> Result<Filtered, BatchError> {
    let h = BatchHeader::parse(batch)?;
    let section = records_section(batch)?;
    let records = walk(&section)?;
    let kept: Vec<&RawRecord<'_>> = records
        .iter()
        .filter(|r| keep(h.base_offset.saturating_add(r.offset_delta), r))
        .collect();
    if kept.len() == records.len() {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() {
        return Ok(Filtered::Empty);
    }
    let mut plain = Vec::with_capacity(section.len());
    for r in &kept {
        plain.extend_from_slice(r.bytes);
    }
    let codec = h.attributes & ATTR_COMPRESSION_MASK;
    let body = compress(codec, &plain)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(batch.get(..HEADER_LEN).ok_or(BatchError::BadLength(0))?);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - 12).map_err(|_| BatchError::BadLength(-1))?;
    let count = i32::try_from(kept.len()).map_err(|_| BatchError::BadLength(-1))?;
    put(&mut out, 8, &batch_length.to_be_bytes())?;
    put(&mut out, COUNT_AT, &count.to_be_bytes())?;
    let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
    put(&mut out, 17, &crc.to_be_bytes())?;
    Ok(Filtered::Rewritten(out))
}

/// Writes `v` at `at` in a batch being built (always inside its header).
fn put(out: &mut [u8], at: usize, v: &[u8]) -> Result<(), BatchError> {
    out.get_mut(at..at + v.len())
        .ok_or(BatchError::BadLength(-1))?
        .copy_from_slice(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::{build, check_batch};

    #[test]
    fn keeps_chosen_records_with_valid_crc() {
        let recs = [
            build::Rec {
                key: Some(b"a"),
                value: Some(b"1"),
                timestamp_delta: 0,
            },
            build::Rec {
                key: Some(b"b"),
                value: None,
                timestamp_delta: 1,
            },
            build::Rec {
                key: Some(b"a"),
                value: Some(b"2"),
                timestamp_delta: 2,
            },
        ];
        let mut b = build::batch(1000, &recs);
        b[0..8].copy_from_slice(&100i64.to_be_bytes());
        let section = records_section(&b).unwrap();
        let all = walk(&section).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[1].tombstone);
        assert_eq!(filter(&b, |_, _| true).unwrap(), Filtered::Unchanged);
        assert_eq!(filter(&b, |_, _| false).unwrap(), Filtered::Empty);
        let Filtered::Rewritten(out) = filter(&b, |off, _| off != 100).unwrap() else {
            panic!("expected a rewrite");
        };
        let span = check_batch(&out).expect("valid CRC and framing");
        assert_eq!(span.header.base_offset, 100);
        assert_eq!(span.header.last_offset(), 102, "lastOffsetDelta kept");
        let section = records_section(&out).unwrap();
        let left = walk(&section).unwrap();
        let offsets: Vec<i64> = left.iter().map(|r| 100 + r.offset_delta).collect();
        assert_eq!(offsets, vec![101, 102]);
    }
}
