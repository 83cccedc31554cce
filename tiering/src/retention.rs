//! Which segments may go, locally and remotely (pure functions of the
//! manifest, the local segments and the time given).
//!
//! Kafka's rules (KIP-405): `local.retention.ms` / `local.retention.bytes`
//! bound the local copy, `retention.ms` / `retention.bytes` the whole log,
//! remote and local together. A local segment is deleted only when the
//! remote tier holds it (COPY_FINISHED) and it falls outside local
//! retention; a remote segment only when it falls outside total retention.
//! A negative bound is "unbounded". The broker resolves Kafka's -2 ("as
//! the total") before calling.

use crate::manifest::Manifest;

/// A sealed local segment as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSegment {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub ms: i64,
    pub bytes: i64,
}

fn expired(max_timestamp_ms: i64, bounds: Bounds, now_ms: i64) -> bool {
    bounds.ms >= 0 && max_timestamp_ms >= 0 && now_ms.saturating_sub(max_timestamp_ms) > bounds.ms
}

fn bytes_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Whether the tier holds every offset of `seg`, readable.
pub fn is_remote(m: &Manifest, seg: &LocalSegment) -> bool {
    m.readable()
        .any(|r| r.base_offset <= seg.base_offset && r.last_offset >= seg.last_offset)
}

/// How many of the oldest `sealed` local segments may be deleted: a prefix
/// of segments the tier holds, each outside local retention. `active_bytes`
/// is the size of the active segment, which always stays.
pub fn local_cut(
    m: &Manifest,
    sealed: &[LocalSegment],
    active_bytes: u64,
    local: Bounds,
    now_ms: i64,
) -> usize {
    let mut total: i64 = sealed
        .iter()
        .map(|s| bytes_i64(s.size_bytes))
        .fold(bytes_i64(active_bytes), i64::saturating_add);
    let mut cut = 0;
    for s in sealed {
        let size = bytes_i64(s.size_bytes);
        let too_big = local.bytes >= 0 && total.saturating_sub(size) >= local.bytes;
        if !(expired(s.max_timestamp_ms, local, now_ms) || too_big) || !is_remote(m, s) {
            break;
        }
        total = total.saturating_sub(size);
        cut += 1;
    }
    cut
}

/// The base offsets of the remote segments total retention removes, oldest
/// first. `local_only_bytes` counts local data the tier does not hold yet
/// (it belongs to the total too).
pub fn remote_expired(m: &Manifest, local_only_bytes: u64, total: Bounds, now_ms: i64) -> Vec<i64> {
    let mut size: i64 = bytes_i64(m.size_bytes()).saturating_add(bytes_i64(local_only_bytes));
    let mut out = Vec::new();
    for s in m.readable() {
        let seg = bytes_i64(s.size_bytes);
        let below_start = s.last_offset < m.log_start_offset;
        let too_big = total.bytes >= 0 && size.saturating_sub(seg) >= total.bytes;
        if !(below_start || expired(s.max_timestamp_ms, total, now_ms) || too_big) {
            break;
        }
        size = size.saturating_sub(seg);
        out.push(s.base_offset);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SegmentMeta;

    fn manifest(ranges: &[(i64, i64)]) -> Manifest {
        let mut m = Manifest::default();
        for &(b, l) in ranges {
            let meta = SegmentMeta {
                base_offset: b,
                last_offset: l,
                max_timestamp_ms: l,
                size_bytes: 100,
                has_txn_index: false,
                has_snapshot: false,
            };
            m.start_copy(&meta, 0).unwrap();
            m.finish_copy(b, 0).unwrap();
        }
        m
    }

    fn local(b: i64, l: i64) -> LocalSegment {
        LocalSegment {
            base_offset: b,
            last_offset: l,
            max_timestamp_ms: l,
            size_bytes: 100,
        }
    }

    #[test]
    fn local_segments_go_only_once_remote_and_outside_local_retention() {
        let m = manifest(&[(0, 9), (10, 19)]);
        let sealed = [local(0, 9), local(10, 19), local(20, 29)];
        let by_bytes = Bounds { ms: -1, bytes: 150 };
        // 300 sealed + 50 active; keep ≤150: the first two could go, and
        // both are remote.
        assert_eq!(local_cut(&m, &sealed, 50, by_bytes, 0), 2);
        // With only the first remote, only it goes.
        let m1 = manifest(&[(0, 9)]);
        assert_eq!(local_cut(&m1, &sealed, 50, by_bytes, 0), 1);
        // Nothing remote: nothing goes, whatever the bounds.
        assert_eq!(local_cut(&Manifest::default(), &sealed, 50, by_bytes, 0), 0);
        // By time: segments whose newest record is older than 100 ms.
        let by_time = Bounds { ms: 100, bytes: -1 };
        assert_eq!(local_cut(&m, &sealed, 0, by_time, 115), 1);
        assert_eq!(local_cut(&m, &sealed, 0, by_time, 1_000), 2);
        let unbounded = Bounds { ms: -1, bytes: -1 };
        assert_eq!(local_cut(&m, &sealed, 0, unbounded, 1_000), 0);
    }

    #[test]
    fn remote_segments_go_by_total_retention() {
        let m = manifest(&[(0, 9), (10, 19), (20, 29)]);
        let by_bytes = Bounds { ms: -1, bytes: 250 };
        // As Kafka: a segment goes while what remains without it is still
        // at least the bound. 300 remote + 100 only local = 400: without
        // the first, 300 ≥ 250; without the second too, 200 < 250.
        assert_eq!(remote_expired(&m, 100, by_bytes, 0), vec![0]);
        assert_eq!(remote_expired(&m, 0, by_bytes, 0), Vec::<i64>::new());
        let tight = Bounds { ms: -1, bytes: 150 };
        assert_eq!(remote_expired(&m, 100, tight, 0), vec![0, 10]);
        let by_time = Bounds { ms: 5, bytes: -1 };
        assert_eq!(remote_expired(&m, 0, by_time, 20), vec![0]);
        let mut m2 = m.clone();
        m2.advance_log_start(20);
        let unbounded = Bounds { ms: -1, bytes: -1 };
        assert_eq!(remote_expired(&m2, 0, unbounded, 0), vec![0, 10]);
    }
}
