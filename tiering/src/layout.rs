//! Where a partition's objects live in the store.
//!
//! ```text
//! <prefix>/<topic>-<partition>-<topic id>/manifest/<version, 20 digits>.json
//! <prefix>/<topic>-<partition>-<topic id>/segments/<base, 20 digits>-<last, 20 digits>.<kind>
//! ```
//!
//! The topic id keeps a re-created topic of the same name apart from the
//! old one's leftovers. Segment object names are fixed by the offsets they
//! hold, so an upload retried after a crash overwrites its own partial
//! objects instead of leaving orphans. Manifests are immutable objects with
//! increasing versions (created only if absent), so two writers can never
//! both write the same version.

use object_store::path::Path;

/// The files that travel with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Log,
    OffsetIndex,
    TimeIndex,
    TxnIndex,
    ProducerSnapshot,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Log,
        Kind::OffsetIndex,
        Kind::TimeIndex,
        Kind::TxnIndex,
        Kind::ProducerSnapshot,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Log => "log",
            Kind::OffsetIndex => "index",
            Kind::TimeIndex => "timeindex",
            Kind::TxnIndex => "txnindex",
            Kind::ProducerSnapshot => "snapshot",
        }
    }
}

/// Names the objects of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    root: Path,
}

impl PartitionLayout {
    /// `prefix` is the store URL's path; `topic_id` any stable identifier
    /// of this incarnation of the topic (its UUID).
    pub fn new(prefix: &Path, topic: &str, partition: i32, topic_id: &str) -> Self {
        let dir = format!("{topic}-{partition}-{topic_id}");
        let root = prefix
            .parts()
            .chain(std::iter::once(dir.as_str().into()))
            .collect();
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifests(&self) -> Path {
        self.root.clone().join("manifest")
    }

    pub fn manifest(&self, version: u64) -> Path {
        self.manifests().join(format!("{version:020}.json"))
    }

    /// The version a manifest object name stands for.
    pub fn manifest_version(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(".json")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    pub fn segment(&self, base_offset: i64, last_offset: i64, kind: Kind) -> Path {
        self.root.clone().join("segments").join(format!(
            "{base_offset:020}-{last_offset:020}.{}",
            kind.extension()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_fixed_by_offsets() {
        let l = PartitionLayout::new(&Path::from("fjord/a"), "orders", 3, "abc");
        assert_eq!(l.root().as_ref(), "fjord/a/orders-3-abc");
        assert_eq!(
            l.segment(0, 99, Kind::TimeIndex).as_ref(),
            "fjord/a/orders-3-abc/segments/00000000000000000000-00000000000000000099.timeindex"
        );
        let m = l.manifest(7);
        assert_eq!(
            m.as_ref(),
            "fjord/a/orders-3-abc/manifest/00000000000000000007.json"
        );
        assert_eq!(
            PartitionLayout::manifest_version(m.filename().unwrap_or("")),
            Some(7)
        );
        assert_eq!(PartitionLayout::manifest_version("7.json"), None);
        assert_eq!(
            PartitionLayout::manifest_version("0000000000000000000x.json"),
            None
        );
        let root = PartitionLayout::new(&Path::default(), "t", 0, "id");
        assert_eq!(root.root().as_ref(), "t-0-id");
    }
}
