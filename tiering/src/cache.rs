//! A bounded cache of remote chunks, shared by every partition of a broker.
//!
//! Keys are (object, chunk number); values are the chunk's bytes. The cache
//! holds at most `max_bytes` and evicts the least recently used chunk first.
//! A chunk being downloaded is shared: a reader asking for a chunk that
//! read-ahead already requested waits for that download instead of starting
//! a second one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};

/// A cache key: the object's path and the chunk's number within it
/// ([`WHOLE`] for objects fetched whole, such as indexes).
pub type Key = (String, u64);

/// The chunk number of an object fetched whole.
pub const WHOLE: u64 = u64::MAX;

type Pending = Shared<BoxFuture<'static, Result<Bytes, Arc<String>>>>;

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, (Bytes, u64)>,
    by_use: BTreeMap<u64, Key>,
    pending: HashMap<Key, Pending>,
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

pub struct ChunkCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

/// Counters for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub bytes: usize,
    pub chunks: usize,
    pub hits: u64,
    pub misses: u64,
}

impl ChunkCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain maps; the data is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            bytes: g.bytes,
            chunks: g.entries.len(),
            hits: g.hits,
            misses: g.misses,
        }
    }

    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let (bytes, used) = g.entries.get_mut(key)?;
        let old = std::mem::replace(used, tick);
        let bytes = bytes.clone();
        g.by_use.remove(&old);
        g.by_use.insert(tick, key.clone());
        g.hits += 1;
        Some(bytes)
    }

    pub fn insert(&self, key: Key, bytes: Bytes) {
        if bytes.len() > self.max_bytes {
            return;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, used)) = g.entries.remove(&key) {
            g.bytes -= old.len();
            g.by_use.remove(&used);
        }
        while g.bytes + bytes.len() > self.max_bytes {
            let Some((_, victim)) = g.by_use.pop_first() else {
                break;
            };
            if let Some((old, _)) = g.entries.remove(&victim) {
                g.bytes -= old.len();
            }
        }
        g.bytes += bytes.len();
        g.by_use.insert(tick, key.clone());
        g.entries.insert(key, (bytes, tick));
    }

    /// The download of `key`: one already under way, or a new one running
    /// `fetch` (whose result is cached when it succeeds).
    fn pending(
        self: &Arc<Self>,
        key: Key,
        fetch: impl FnOnce() -> BoxFuture<'static, Result<Bytes, String>>,
    ) -> Pending {
        let mut g = self.lock();
        g.misses += 1;
        if let Some(p) = g.pending.get(&key) {
            return p.clone();
        }
        let me = Arc::clone(self);
        let k = key.clone();
        let fut = fetch();
        let p: Pending = async move {
            let r = fut.await.map_err(Arc::new);
            me.lock().pending.remove(&k);
            if let Ok(b) = &r {
                me.insert(k, b.clone());
            }
            r
        }
        .boxed()
        .shared();
        g.pending.insert(key, p.clone());
        p
    }

    /// The chunk under `key`: from the cache, from a download already under
    /// way, or by running `fetch`.
    pub async fn get_or_fetch(
        self: &Arc<Self>,
        key: Key,
        fetch: impl FnOnce() -> BoxFuture<'static, Result<Bytes, String>>,
    ) -> Result<Bytes, Arc<String>> {
        if let Some(b) = self.get(&key) {
            return Ok(b);
        }
        self.pending(key, fetch).await
    }

    /// Starts downloading `key` in the background unless it is cached or
    /// already coming (read-ahead). Needs a tokio runtime.
    pub fn prefetch(
        self: &Arc<Self>,
        key: Key,
        fetch: impl FnOnce() -> BoxFuture<'static, Result<Bytes, String>>,
    ) {
        {
            let g = self.lock();
            if g.entries.contains_key(&key) || g.pending.contains_key(&key) {
                return;
            }
        }
        let p = self.pending(key, fetch);
        tokio::spawn(async move {
            let _ = p.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u64) -> Key {
        ("o".to_string(), n)
    }

    #[test]
    fn least_recently_used_is_evicted_within_the_bound() {
        let c = ChunkCache::new(10);
        c.insert(k(1), Bytes::from_static(b"1234"));
        c.insert(k(2), Bytes::from_static(b"1234"));
        assert!(c.get(&k(1)).is_some());
        c.insert(k(3), Bytes::from_static(b"1234"));
        assert!(c.get(&k(2)).is_none(), "2 was least recently used");
        assert!(c.get(&k(1)).is_some());
        assert!(c.get(&k(3)).is_some());
        assert_eq!(c.stats().bytes, 8);
        // Larger than the whole cache: not kept.
        c.insert(k(4), Bytes::from(vec![0u8; 11]));
        assert!(c.get(&k(4)).is_none());
        c.insert(k(1), Bytes::from_static(b"12"));
        assert_eq!(c.stats().bytes, 6);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_download() {
        let c = Arc::new(ChunkCache::new(100));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fetch = |calls: Arc<std::sync::atomic::AtomicUsize>| {
            move || {
                async move {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(Bytes::from_static(b"chunk"))
                }
                .boxed()
            }
        };
        c.prefetch(k(1), fetch(calls.clone()));
        let (a, b) = tokio::join!(
            c.get_or_fetch(k(1), fetch(calls.clone())),
            c.get_or_fetch(k(1), fetch(calls.clone()))
        );
        assert_eq!(a.unwrap(), Bytes::from_static(b"chunk"));
        assert_eq!(b.unwrap(), Bytes::from_static(b"chunk"));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(c.get(&k(1)).is_some());
        // Failures are not cached.
        let e = c
            .get_or_fetch(k(2), || async { Err("down".to_string()) }.boxed())
            .await;
        assert!(e.is_err());
        assert!(c.get(&k(2)).is_none());
    }
}
