//! A fault-injecting object store for tests: wraps a real one and, from a
//! seed, fails a share of requests; can be switched "down" (every request
//! fails, as an unreachable store) and can "crash" after a given number of
//! writes (every request after that fails, as a process killed mid-upload).
//!
//! Writes are puts and deletes; a multipart upload counts once, at its start.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    state: Arc<State>,
}

struct State {
    rng: Mutex<u64>,
    /// Requests that fail, per thousand.
    fail_per_mille: AtomicU64,
    down: AtomicBool,
    /// Writes allowed before the crash; `u64::MAX` for never.
    writes_left: AtomicU64,
    writes: AtomicU64,
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: format!("injected fault: {what}").into(),
    }
}

impl State {
    fn roll(&self) -> u64 {
        let mut x = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % 1000
    }

    fn check(&self, what: &str, write: bool) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(injected(&format!("{what}: store down")));
        }
        if self.writes_left.load(Ordering::SeqCst) == 0 {
            return Err(injected(&format!("{what}: crashed")));
        }
        if self.roll() < self.fail_per_mille.load(Ordering::SeqCst) {
            return Err(injected(what));
        }
        if write {
            let _ = self
                .writes_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n != u64::MAX).then(|| n.saturating_sub(1))
                });
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl Faulty {
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Self {
        Self {
            inner,
            state: Arc::new(State {
                rng: Mutex::new(seed | 1),
                fail_per_mille: AtomicU64::new(0),
                down: AtomicBool::new(false),
                writes_left: AtomicU64::new(u64::MAX),
                writes: AtomicU64::new(0),
            }),
        }
    }

    pub fn set_fail_per_mille(&self, n: u64) {
        self.state
            .fail_per_mille
            .store(n.min(1000), Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// After `n` more writes, every request fails.
    pub fn crash_after_writes(&self, n: u64) {
        self.state.writes_left.store(n, Ordering::SeqCst);
    }

    /// Writes that reached the inner store.
    pub fn writes(&self) -> u64 {
        self.state.writes.load(Ordering::SeqCst)
    }

    fn check(&self, what: &str, write: bool) -> Result<()> {
        self.state.check(what, write)
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check("put", true)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check("multipart", true)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check("get", false)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check("get_ranges", false)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let state = Arc::clone(&self.state);
        let inner = Arc::clone(&self.inner);
        locations
            .then(move |r| {
                let state = Arc::clone(&state);
                let inner = Arc::clone(&inner);
                async move {
                    let p = r?;
                    state.check(&format!("delete {p}"), true)?;
                    inner.delete(&p).await?;
                    Ok(p)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.check("list", false) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check("list", false)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check("copy", true)?;
        self.inner.copy_opts(from, to, options).await
    }
}
