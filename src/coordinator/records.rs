//! The records coordinators write to `__consumer_offsets`, in Kafka's own
//! key and value schemas, so the partition reads like Kafka's.
//!
//! Keys: `OffsetCommitKey` v1 (group, topic, partition) and
//! `GroupMetadataKey` v2 (group). Values: `OffsetCommitValue` v3 and
//! `GroupMetadataValue` v3. A null value is a tombstone. Decoding never
//! trusts a length: every read is bounds-checked, and a record that does
//! not parse is reported, not applied.

use bytes::{BufMut, Bytes, BytesMut};

/// One committed offset, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

/// One member of a group, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's state after a completed rebalance (or when it became empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_ms: i64,
    pub members: Vec<StoredMember>,
}

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group(String),
    /// A KIP-848 consumer group (Fjord's own key version, JSON value).
    ConsumerGroup(String),
}

/// Key version of Fjord's consumer group snapshot; Kafka's own key
/// versions stay below 100.
const CONSUMER_GROUP_KEY_VERSION: i16 = 1000;

pub fn consumer_group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(CONSUMER_GROUP_KEY_VERSION);
    put_str(&mut b, group);
    b.freeze()
}

/// A key and value to append (value `None` is a tombstone).
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    let n = i16::try_from(bytes.len()).unwrap_or(i16::MAX);
    b.put_i16(n);
    b.put_slice(bytes.get(..usize::from(n.unsigned_abs())).unwrap_or(bytes));
}

fn put_nullable(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
    b.put_slice(v);
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(2);
    put_str(&mut b, group);
    b.freeze()
}

pub fn offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_ms);
    b.freeze()
}

pub fn group_value(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable(&mut b, v.protocol.as_deref());
    put_nullable(&mut b, v.leader.as_deref());
    b.put_i64(v.state_ms);
    b.put_i32(i32::try_from(v.members.len()).unwrap_or(i32::MAX));
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// A bounds-checked reader over one key or value.
pub(crate) struct Reader<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub(crate) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(crate) fn nullable(&mut self) -> Option<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Some(None);
        }
        let s = self.take(usize::try_from(n).ok()?)?;
        Some(Some(String::from_utf8_lossy(s).into_owned()))
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        self.nullable()?
    }
    pub(crate) fn bytes(&mut self) -> Option<Bytes> {
        let n = self.i32()?;
        if n < 0 {
            return Some(Bytes::new());
        }
        Some(Bytes::copy_from_slice(self.take(usize::try_from(n).ok()?)?))
    }
}

pub fn decode_key(b: &[u8]) -> Option<Key> {
    let mut r = Reader { b, pos: 0 };
    match r.i16()? {
        0 | 1 => Some(Key::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Some(Key::Group(r.string()?)),
        CONSUMER_GROUP_KEY_VERSION => Some(Key::ConsumerGroup(r.string()?)),
        _ => None,
    }
}

pub fn decode_offset(b: &[u8]) -> Option<OffsetValue> {
    let mut r = Reader { b, pos: 0 };
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_ms = r.i64()?;
    Some(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

pub fn decode_group(b: &[u8]) -> Option<GroupValue> {
    let mut r = Reader { b, pos: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable()?;
    let leader = r.nullable()?;
    let state_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = r.string()?;
        let instance_id = if version >= 3 { r.nullable()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { 0 };
        let session_timeout_ms = r.i32()?;
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Some(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let k = offset_key("g", "t", 3);
        assert_eq!(
            decode_key(&k),
            Some(Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            })
        );
        assert_eq!(decode_key(&group_key("g")), Some(Key::Group("g".into())));
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_ms: 9,
        };
        assert_eq!(decode_offset(&offset_value(&v)), Some(v));
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            state_ms: 5,
            members: vec![StoredMember {
                member_id: "a".into(),
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::from_static(b"x"),
            }],
        };
        assert_eq!(decode_group(&group_value(&g)), Some(g));
    }

    #[test]
    fn truncated_values_do_not_decode() {
        let v = offset_value(&OffsetValue {
            offset: 1,
            leader_epoch: 1,
            metadata: "meta".into(),
            commit_ms: 1,
        });
        for n in 0..v.len() {
            assert_eq!(decode_offset(&v[..n]), None, "{n}");
        }
        assert_eq!(decode_key(&[0, 9]), None);
    }
}
