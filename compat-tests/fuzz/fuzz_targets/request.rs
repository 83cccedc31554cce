//! Arbitrary bytes as one request frame body, handed to the broker's entry
//! point. The property is the absence of panics, aborts and hangs; a request
//! that waits (a long-poll fetch) is cut off after 50 ms.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

struct State {
    rt: tokio::runtime::Runtime,
    running: fjord::runtime::Running,
    _dir: tempfile::TempDir,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = fjord::config::Settings::for_dir(dir.path().to_path_buf());
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        settings.durability = fjord::config::Durability::PageCache;
        settings.group_initial_rebalance_delay_ms = 0;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let running = rt
            .block_on(fjord::runtime::start(settings))
            .expect("broker");
        State {
            rt,
            running,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = state();
    let body = bytes::Bytes::copy_from_slice(data);
    s.rt.block_on(async {
        let out = tokio::time::timeout(
            Duration::from_millis(50),
            fjord::handlers::handle(&s.running.broker, "/127.0.0.1", body),
        )
        .await;
        if let Ok(fjord::handlers::Outcome::Deferred(f)) = out {
            let _ = tokio::time::timeout(Duration::from_millis(50), f).await;
        }
    });
});
