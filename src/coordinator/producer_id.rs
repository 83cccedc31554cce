//! Producer ids, handed out from durable blocks so that none is ever reused,
//! even after a crash.
//!
//! `producer-id-block` in the data directory holds the first id not yet
//! reserved. Taking a new block of `BLOCK` ids first writes (and syncs) the
//! block's end there; ids of a block in use when the broker stops are
//! skipped, as Kafka skips the rest of a block.
//!
//! Worked example: the file says 2000. The broker writes 3000, then hands
//! out 2000, 2001, …; after a SIGKILL at 2005 it reads 3000 and starts there.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::log::partition::write_atomic;

const FILE: &str = "producer-id-block";
/// Ids per block (Kafka's `PRODUCER_ID_BLOCK_SIZE`).
pub const BLOCK: i64 = 1000;

pub struct ProducerIdAllocator {
    path: PathBuf,
    /// (next id, end of the reserved block).
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let start = match std::fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            state: Mutex::new((start, start)),
        })
    }

    /// The next unused producer id.
    pub fn next(&self) -> std::io::Result<i64> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 >= g.1 {
            let end =
                g.0.checked_add(BLOCK)
                    .ok_or_else(|| std::io::Error::other("producer ids exhausted"))?;
            write_atomic(&self.path, end.to_string().as_bytes())?;
            g.1 = end;
        }
        let id = g.0;
        g.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_reused_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(a.next().unwrap(), 0);
        assert_eq!(a.next().unwrap(), 1);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(b.next().unwrap(), BLOCK);
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(ProducerIdAllocator::open(dir.path()).is_err());
    }
}
