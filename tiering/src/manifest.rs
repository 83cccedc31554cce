//! The per-partition manifest: which segments the remote tier holds, and in
//! what state (KIP-405's remote log metadata, kept apart from the data).
//!
//! Each remote segment goes COPY_STARTED → COPY_FINISHED → DELETE_STARTED →
//! (DELETE_FINISHED: the entry is dropped). The manifest is written before
//! and after every data operation, so whatever a crash interrupts is named
//! in it and can be finished or undone:
//!
//! - COPY_STARTED: objects may be partial; the copy is redone (uploads are
//!   idempotent: object names are fixed by the segment's offsets) or, if the
//!   local segment is gone, its objects are deleted.
//! - COPY_FINISHED: readable; the local copy may be deleted.
//! - DELETE_STARTED: objects may be partly deleted; never read again, the
//!   delete is redone until every object is gone.
//!
//! Transitions are pure functions of the manifest (no I/O, no clock), so
//! every sequence is unit-tested; [`crate::manifest_store`] persists them.

use serde::{Deserialize, Serialize};

/// The encoding written today; readers refuse others.
pub const FORMAT: u32 = 1;

/// The most segments one manifest may list. With the default 1 GiB
/// segments that is 100 TiB per partition; decoding refuses more.
pub const MAX_SEGMENTS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SegmentState {
    CopyStarted,
    CopyFinished,
    DeleteStarted,
}

/// One segment in the remote tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    pub base_offset: i64,
    /// The last offset the segment holds (inclusive).
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub size_bytes: u64,
    /// Whether a transaction index and a producer snapshot travel with it.
    pub has_txn_index: bool,
    pub has_snapshot: bool,
    pub state: SegmentState,
    /// When the current state was entered (for lag reporting).
    pub state_since_ms: i64,
}

/// A segment's description as the broker offers it for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub size_bytes: u64,
    pub has_txn_index: bool,
    pub has_snapshot: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The sequence number of the object this manifest was stored as; each
    /// update writes `version + 1`.
    pub version: u64,
    /// The offset below which nothing is readable (remote retention and
    /// DeleteRecords move it forward, never back).
    pub log_start_offset: i64,
    /// Sorted by base offset, non-overlapping.
    pub segments: Vec<RemoteSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("segment {base} overlaps remote segment {other}")]
    Overlaps { base: i64, other: i64 },
    #[error("no remote segment at base offset {0}")]
    Unknown(i64),
    #[error("remote segment {base} is {state:?}, not {wanted:?}")]
    WrongState {
        base: i64,
        state: SegmentState,
        wanted: SegmentState,
    },
    #[error("segment {0} has no records (last offset below base)")]
    Empty(i64),
    #[error("the manifest already lists {MAX_SEGMENTS} segments")]
    Full,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            format: FORMAT,
            version: 0,
            log_start_offset: 0,
            segments: Vec::new(),
        }
    }
}

impl Manifest {
    fn position(&self, base: i64) -> Result<usize, TransitionError> {
        self.segments
            .binary_search_by_key(&base, |s| s.base_offset)
            .map_err(|_| TransitionError::Unknown(base))
    }

    fn expect_state(&self, base: i64, wanted: SegmentState) -> Result<usize, TransitionError> {
        let i = self.position(base)?;
        let state = self
            .segments
            .get(i)
            .map(|s| s.state)
            .ok_or(TransitionError::Unknown(base))?;
        if state != wanted {
            return Err(TransitionError::WrongState {
                base,
                state,
                wanted,
            });
        }
        Ok(i)
    }

    /// Records that `seg` is being copied. Refuses overlap with any listed
    /// segment (a re-copy of a COPY_STARTED one is allowed and resets it).
    pub fn start_copy(&mut self, seg: &SegmentMeta, now_ms: i64) -> Result<(), TransitionError> {
        if seg.last_offset < seg.base_offset {
            return Err(TransitionError::Empty(seg.base_offset));
        }
        let entry = RemoteSegment {
            base_offset: seg.base_offset,
            last_offset: seg.last_offset,
            max_timestamp_ms: seg.max_timestamp_ms,
            size_bytes: seg.size_bytes,
            has_txn_index: seg.has_txn_index,
            has_snapshot: seg.has_snapshot,
            state: SegmentState::CopyStarted,
            state_since_ms: now_ms,
        };
        if let Ok(i) = self.position(seg.base_offset) {
            let Some(cur) = self.segments.get_mut(i) else {
                return Err(TransitionError::Unknown(seg.base_offset));
            };
            if cur.state != SegmentState::CopyStarted || cur.last_offset != seg.last_offset {
                return Err(TransitionError::Overlaps {
                    base: seg.base_offset,
                    other: cur.base_offset,
                });
            }
            *cur = entry;
            return Ok(());
        }
        if let Some(o) = self
            .segments
            .iter()
            .find(|s| s.base_offset <= seg.last_offset && seg.base_offset <= s.last_offset)
        {
            return Err(TransitionError::Overlaps {
                base: seg.base_offset,
                other: o.base_offset,
            });
        }
        if self.segments.len() >= MAX_SEGMENTS {
            return Err(TransitionError::Full);
        }
        let at = self
            .segments
            .partition_point(|s| s.base_offset < seg.base_offset);
        self.segments.insert(at, entry);
        Ok(())
    }

    pub fn finish_copy(&mut self, base: i64, now_ms: i64) -> Result<(), TransitionError> {
        let i = self.expect_state(base, SegmentState::CopyStarted)?;
        if let Some(s) = self.segments.get_mut(i) {
            s.state = SegmentState::CopyFinished;
            s.state_since_ms = now_ms;
        }
        Ok(())
    }

    /// Marks a segment for deletion; from now on it is never read. A
    /// COPY_STARTED segment may be abandoned this way too.
    pub fn start_delete(&mut self, base: i64, now_ms: i64) -> Result<(), TransitionError> {
        let i = self.position(base)?;
        let Some(s) = self.segments.get_mut(i) else {
            return Err(TransitionError::Unknown(base));
        };
        if s.state == SegmentState::DeleteStarted {
            return Ok(());
        }
        let was_readable = s.state == SegmentState::CopyFinished;
        s.state = SegmentState::DeleteStarted;
        s.state_since_ms = now_ms;
        let next = s.last_offset.saturating_add(1);
        if was_readable && self.readable().next().is_none_or(|f| f.base_offset >= next) {
            self.log_start_offset = self.log_start_offset.max(next);
        }
        Ok(())
    }

    /// DELETE_FINISHED: every object is gone, the entry is dropped.
    pub fn finish_delete(&mut self, base: i64) -> Result<(), TransitionError> {
        let i = self.expect_state(base, SegmentState::DeleteStarted)?;
        self.segments.remove(i);
        Ok(())
    }

    /// Moves the log start forward (DeleteRecords or retention), never back.
    pub fn advance_log_start(&mut self, offset: i64) {
        self.log_start_offset = self.log_start_offset.max(offset);
    }

    /// The segments that may be read, in offset order.
    pub fn readable(&self) -> impl Iterator<Item = &RemoteSegment> {
        self.segments
            .iter()
            .filter(|s| s.state == SegmentState::CopyFinished)
    }

    /// The first readable offset, if the tier holds any data.
    pub fn start_offset(&self) -> Option<i64> {
        let first = self
            .readable()
            .find(|s| s.last_offset >= self.log_start_offset)?;
        Some(first.base_offset.max(self.log_start_offset))
    }

    /// The offset after the last readable one (where uploads continue).
    pub fn end_offset(&self) -> Option<i64> {
        self.readable()
            .last()
            .map(|s| s.last_offset.saturating_add(1))
    }

    /// The readable segment holding `offset`, or failing that the first one
    /// after it (offsets can be missing after compaction or aborts).
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteSegment> {
        if offset < self.log_start_offset {
            return None;
        }
        self.readable().find(|s| s.last_offset >= offset)
    }

    /// Bytes of readable data.
    pub fn size_bytes(&self) -> u64 {
        self.readable().map(|s| s.size_bytes).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and checks a stored manifest: format, order, overlap, count.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!("manifest format {} is not {FORMAT}", m.format));
        }
        if m.segments.len() > MAX_SEGMENTS {
            return Err(format!("manifest lists {} segments", m.segments.len()));
        }
        for pair in m.segments.windows(2) {
            if let [a, b] = pair {
                if a.last_offset >= b.base_offset {
                    return Err(format!(
                        "manifest segments {} and {} overlap or are out of order",
                        a.base_offset, b.base_offset
                    ));
                }
            }
        }
        if let Some(s) = m.segments.iter().find(|s| s.last_offset < s.base_offset) {
            return Err(format!(
                "manifest segment {} ends before it starts",
                s.base_offset
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn meta(base: i64, last: i64) -> SegmentMeta {
        SegmentMeta {
            base_offset: base,
            last_offset: last,
            max_timestamp_ms: last * 10,
            size_bytes: 100,
            has_txn_index: false,
            has_snapshot: true,
        }
    }

    #[test]
    fn a_segment_walks_its_states() {
        let mut m = Manifest::default();
        assert_eq!(m.start_offset(), None);
        m.start_copy(&meta(0, 9), 1).unwrap();
        assert_eq!(m.start_offset(), None, "COPY_STARTED is not readable");
        m.finish_copy(0, 2).unwrap();
        m.start_copy(&meta(10, 19), 3).unwrap();
        m.finish_copy(10, 4).unwrap();
        assert_eq!(m.start_offset(), Some(0));
        assert_eq!(m.end_offset(), Some(20));
        assert_eq!(m.segment_for(15).map(|s| s.base_offset), Some(10));
        m.start_delete(0, 5).unwrap();
        assert_eq!(m.log_start_offset, 10);
        assert_eq!(m.start_offset(), Some(10));
        assert_eq!(m.segment_for(5), None);
        m.finish_delete(0).unwrap();
        assert_eq!(m.segments.len(), 1);
        let back = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn wrong_transitions_are_refused() {
        let mut m = Manifest::default();
        assert_eq!(m.finish_copy(0, 0), Err(TransitionError::Unknown(0)));
        m.start_copy(&meta(0, 9), 0).unwrap();
        // Redoing an interrupted copy is allowed; overlapping it is not.
        m.start_copy(&meta(0, 9), 1).unwrap();
        assert!(matches!(
            m.start_copy(&meta(5, 14), 1),
            Err(TransitionError::Overlaps { .. })
        ));
        assert!(matches!(
            m.finish_delete(0),
            Err(TransitionError::WrongState { .. })
        ));
        m.finish_copy(0, 2).unwrap();
        assert!(matches!(
            m.start_copy(&meta(0, 9), 3),
            Err(TransitionError::Overlaps { .. })
        ));
        assert!(matches!(
            m.finish_copy(0, 3),
            Err(TransitionError::WrongState { .. })
        ));
        assert_eq!(
            m.start_copy(&meta(20, 19), 0),
            Err(TransitionError::Empty(20))
        );
        // An abandoned copy leaves the log start where it was.
        m.start_copy(&meta(10, 19), 4).unwrap();
        m.start_delete(10, 5).unwrap();
        assert_eq!(m.log_start_offset, 0);
        m.start_delete(10, 6).unwrap();
        m.finish_delete(10).unwrap();
    }

    #[test]
    fn damaged_manifests_are_refused() {
        assert!(Manifest::decode(b"").is_err());
        assert!(Manifest::decode(b"{\"format\":1}").is_err());
        let mut m = Manifest::default();
        m.start_copy(&meta(0, 9), 0).unwrap();
        m.start_copy(&meta(10, 19), 0).unwrap();
        let mut bad = m.clone();
        bad.segments.swap(0, 1);
        assert!(Manifest::decode(&bad.encode())
            .unwrap_err()
            .contains("order"));
        let mut bad = m.clone();
        bad.format = 2;
        assert!(Manifest::decode(&bad.encode()).is_err());
        let mut bad = m;
        bad.segments[0].last_offset = -5;
        assert!(Manifest::decode(&bad.encode()).is_err());
    }
}
