//! The recovery-point checkpoint, in Kafka's text format.
//!
//! ```text
//! 0                      <- format version
//! 2                      <- entry count
//! orders 0 1523          <- topic partition offset
//! orders 1 977
//! ```
//!
//! Every offset below a partition's recovery point is known to be on disk:
//! the checkpointer fsyncs a partition's segments before recording its end
//! offset. After an unclean stop only segments holding offsets at or past the
//! recovery point are scanned. Written atomically; a damaged or missing file
//! means "scan everything", which is slow but safe.

use std::collections::HashMap;
use std::path::Path;

use super::partition::write_atomic;

pub const FILE: &str = "recovery-point-offset-checkpoint";

pub type Points = HashMap<(String, i32), i64>;

pub fn read(dir: &Path) -> Points {
    let Ok(text) = std::fs::read_to_string(dir.join(FILE)) else {
        return Points::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Points::new();
    }
    let Some(count) = lines.next().and_then(|l| l.trim().parse::<usize>().ok()) else {
        return Points::new();
    };
    let mut out = Points::new();
    for line in lines.take(count) {
        let mut parts = line.rsplitn(3, ' ');
        let (Some(off), Some(part), Some(topic)) = (parts.next(), parts.next(), parts.next())
        else {
            return Points::new();
        };
        let (Ok(off), Ok(part)) = (off.parse(), part.parse()) else {
            return Points::new();
        };
        out.insert((topic.to_string(), part), off);
    }
    out
}

pub fn write(dir: &Path, points: &Points) -> std::io::Result<()> {
    let mut rows: Vec<_> = points.iter().collect();
    rows.sort();
    let mut text = format!("0\n{}\n", rows.len());
    for ((t, p), o) in rows {
        text.push_str(&format!("{t} {p} {o}\n"));
    }
    write_atomic(&dir.join(FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Points::new();
        p.insert(("a.b-c".into(), 3), 42);
        write(dir.path(), &p).unwrap();
        assert_eq!(read(dir.path()), p);
        std::fs::write(dir.path().join(FILE), "0\n5\nx y z\n").unwrap();
        assert!(read(dir.path()).is_empty());
    }
}
