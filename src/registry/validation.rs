//! Broker-side schema validation (Confluent's topic configs
//! `confluent.key.schema.validation` and `confluent.value.schema.validation`).
//!
//! For a topic that turns it on, every record's key or value must be null
//! or start with the wire format's magic byte 0 and a 4-byte schema id that
//! the registry knows, registered under `<topic>-key` / `<topic>-value`
//! (TopicNameStrategy). One bad record refuses the partition's whole record
//! set with INVALID_RECORD, so nothing of it is written. This is the only
//! place Produce decodes records, and only for such topics: the others
//! never pay for it.

use bytes::Bytes;
use fjord_schema_registry::registry::IdIndex;

use crate::log::config::LogConfig;
use crate::protocol::batch::BatchHeader;

/// Why a record set was refused: a message and the (record-set-relative)
/// indexes of the records at fault.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub record_indexes: Vec<i32>,
}

/// Whether `topic`'s config asks for any validation.
pub fn wanted(cfg: &LogConfig) -> bool {
    cfg.key_schema_validation || cfg.value_schema_validation
}

/// The schema id a serialized key or value carries, if it has the wire
/// format's header.
fn schema_id(b: &[u8]) -> Option<i32> {
    match b {
        [0, a, b, c, d, ..] => Some(i32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Why one key or value is refused, if it is.
fn problem(ids: &IdIndex, subject: &str, what: &str, bytes: Option<&[u8]>) -> Option<String> {
    let b = bytes?;
    let Some(id) = schema_id(b) else {
        return Some(format!(
            "the {what} does not start with magic byte 0 and a schema id"
        ));
    };
    if !ids.knows(id) {
        return Some(format!("the {what}'s schema id {id} is not registered"));
    }
    if !ids.in_subject(subject, id) {
        return Some(format!(
            "the {what}'s schema id {id} is not a version of subject {subject}"
        ));
    }
    None
}

/// Checks every record of `records` for `topic` under `cfg`. `ids` is
/// `None` when the registry is off: validated topics then take nothing.
pub fn check(
    ids: Option<&IdIndex>,
    topic: &str,
    records: &Bytes,
    cfg: &LogConfig,
) -> Result<(), Refusal> {
    let refuse = |message: String, record_indexes: Vec<i32>| Refusal {
        message,
        record_indexes,
    };
    let Some(ids) = ids else {
        return Err(refuse(
            "schema validation is on for this topic but the schema registry is off".into(),
            Vec::new(),
        ));
    };
    let key_subject = format!("{topic}-key");
    let value_subject = format!("{topic}-value");
    let mut rest = records.clone();
    let mut index: i32 = 0;
    let mut bad = Vec::new();
    let mut first = None;
    while !rest.is_empty() {
        let h = BatchHeader::parse(&rest)
            .map_err(|e| refuse(format!("unreadable batch header: {e}"), Vec::new()))?;
        let len = h
            .total_len()
            .ok()
            .filter(|l| *l <= rest.len())
            .ok_or_else(|| refuse("truncated batch".into(), Vec::new()))?;
        let mut one = rest.split_to(len);
        if h.is_control() {
            continue;
        }
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut one)
            .map_err(|e| refuse(format!("undecodable batch: {e}"), Vec::new()))?;
        for r in &set.records {
            let p = cfg
                .key_schema_validation
                .then(|| problem(ids, &key_subject, "key", r.key.as_deref()))
                .flatten()
                .or_else(|| {
                    cfg.value_schema_validation
                        .then(|| problem(ids, &value_subject, "value", r.value.as_deref()))
                        .flatten()
                });
            if let Some(p) = p {
                bad.push(index);
                first.get_or_insert(p);
            }
            index = index.saturating_add(1);
        }
    }
    match first {
        None => Ok(()),
        Some(p) => Err(refuse(
            format!("schema validation failed for {} record(s): {p}", bad.len()),
            bad,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::build::{batch_with, Producer, Rec};

    fn index_with(subject: &str, id: i32) -> IdIndex {
        use fjord_schema_registry::model::{Schema, SchemaType};
        use fjord_schema_registry::registry::{AcceptAll, Registry};
        let mut r = Registry::new();
        for n in 1..id {
            let s = Schema {
                schema_type: SchemaType::Avro,
                text: format!("{{\"type\":\"fixed\",\"name\":\"F{n}\",\"size\":1}}"),
                references: Vec::new(),
            };
            r.register("other", s, &AcceptAll).unwrap();
        }
        let s = Schema {
            schema_type: SchemaType::Avro,
            text: "\"string\"".into(),
            references: Vec::new(),
        };
        let (got, _, _) = r.register(subject, s, &AcceptAll).unwrap();
        assert_eq!(got, id);
        r.id_index()
    }

    fn framed(id: i32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn cfg(key: bool, value: bool) -> LogConfig {
        let mut c = LogConfig::resolve(
            &crate::config::Settings::for_dir("/tmp/x".into()),
            &Default::default(),
        );
        c.key_schema_validation = key;
        c.value_schema_validation = value;
        c
    }

    fn batch(values: &[Option<&[u8]>]) -> Bytes {
        let recs: Vec<Rec<'_>> = values
            .iter()
            .map(|v| Rec {
                key: None,
                value: *v,
                timestamp_delta: 0,
            })
            .collect();
        Bytes::from(batch_with(0, &recs, Producer::NONE))
    }

    #[test]
    fn values_need_a_registered_id_of_the_topics_subject() {
        let ids = index_with("t-value", 3);
        let c = cfg(false, true);
        let good = framed(3, b"x");
        assert_eq!(
            check(Some(&ids), "t", &batch(&[Some(&good), None]), &c),
            Ok(())
        );
        let unknown = framed(9, b"x");
        let other_subject = framed(1, b"x");
        for (bad, why) in [
            (&b"plain text"[..], "magic byte"),
            (&b"\x00\x00"[..], "magic byte"),
            (&unknown[..], "not registered"),
            (&other_subject[..], "not a version of subject t-value"),
        ] {
            let e = check(Some(&ids), "t", &batch(&[Some(&good), Some(bad)]), &c).unwrap_err();
            assert_eq!(e.record_indexes, vec![1], "{why}");
            assert!(e.message.contains(why), "{}", e.message);
        }
        // Keys are not checked unless asked for.
        assert_eq!(
            check(Some(&ids), "u", &batch(&[None]), &cfg(true, false)),
            Ok(())
        );
        let e = check(None, "t", &batch(&[Some(&good)]), &c).unwrap_err();
        assert!(e.message.contains("registry is off"));
        assert!(check(Some(&ids), "t", &Bytes::from_static(b"\x00\x01"), &c).is_err());
    }

    fn compressed_batch(compression: kafka_protocol::records::Compression, value: Bytes) -> Bytes {
        use kafka_protocol::records::{
            Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let r = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(value),
            headers: Default::default(),
        };
        let mut out = bytes::BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut out, [&r], &opts).unwrap();
        out.freeze()
    }

    #[test]
    fn compressed_batches_are_checked_and_bombs_refused() {
        let ids = index_with("t-value", 1);
        let c = cfg(false, true);
        use kafka_protocol::records::Compression;
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let good = compressed_batch(codec, Bytes::from(framed(1, b"x")));
            assert_eq!(check(Some(&ids), "t", &good, &c), Ok(()), "{codec:?}");
            let bad = compressed_batch(codec, Bytes::from(framed(2, b"x")));
            assert!(check(Some(&ids), "t", &bad, &c).is_err(), "{codec:?}");
        }
        // A few kilobytes of zstd that decompress past the bound are refused
        // without being inflated.
        let limit = kafka_protocol::compression::MAX_DECOMPRESSED_BYTES;
        let mut huge = framed(1, b"");
        huge.resize(limit + 1024, 0);
        let bomb = compressed_batch(Compression::Zstd, Bytes::from(huge));
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let e = check(Some(&ids), "t", &bomb, &c).unwrap_err();
        assert!(e.message.contains("more than"), "{}", e.message);
    }
}
