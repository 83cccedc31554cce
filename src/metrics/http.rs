//! The admin listener: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! It is bound before the log is opened, so a supervisor sees the process
//! alive (`/healthz` 200) while recovery runs, and not ready (`/readyz`
//! 503) until the log is recovered and the Kafka listener is accepting.
//! Only GET is served; requests carry no body worth reading, and open
//! connections are capped.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Metrics, State};

/// Open connections the admin listener accepts at once.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Prometheus' text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the admin listener serves from.
pub struct Admin {
    metrics: Arc<Metrics>,
    state: OnceLock<State>,
}

impl Admin {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            state: OnceLock::new(),
        })
    }

    /// Recovery is done and the Kafka listener is up: `/readyz` turns 200
    /// and `/metrics` adds the state gauges.
    pub fn set_ready(&self, state: State) {
        let _ = self.state.set(state);
    }

    pub fn is_ready(&self) -> bool {
        self.state.get().is_some()
    }

    /// The whole `/metrics` page.
    pub fn render(&self) -> String {
        let mut out = self.metrics.render_events();
        if let Some(s) = self.state.get() {
            s.render(&mut out);
        }
        out
    }
}

fn router(admin: Arc<Admin>) -> Router {
    let metrics = {
        let admin = admin.clone();
        move || async move { ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], admin.render()) }
    };
    let ready = move || async move {
        if admin.is_ready() {
            (StatusCode::OK, "ready\n").into_response()
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
        }
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
}

/// Binds `addr` and serves until `stop` turns true. Returns the bound
/// address (for port 0) and the serving task.
pub async fn serve(
    admin: Arc<Admin>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let shutdown = async move { crate::server::stopped(&mut stop).await };
        if let Err(e) = fjord_schema_registry::http::serve_router(
            listener,
            router(admin),
            MAX_ADMIN_CONNECTIONS,
            shutdown,
        )
        .await
        {
            tracing::error!(error = %e, "admin listener stopped");
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The server may answer and close before a long request is written.
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    fn req(method: &str, path: &str) -> Vec<u8> {
        format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").into_bytes()
    }

    #[tokio::test]
    async fn health_readiness_and_bad_requests() {
        let admin = Admin::new(Arc::new(Metrics::new()));
        let (_stop_tx, stop) = watch::channel(false);
        let (addr, _task) = serve(admin.clone(), "127.0.0.1:0".parse().unwrap(), stop)
            .await
            .unwrap();
        assert!(get(addr, &req("GET", "/healthz"))
            .await
            .starts_with("HTTP/1.1 200"));
        // Not ready until recovery is done and the Kafka listener is up.
        assert!(get(addr, &req("GET", "/readyz"))
            .await
            .starts_with("HTTP/1.1 503"));
        let page = get(addr, &req("GET", "/metrics")).await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("text/plain; version=0.0.4"), "{page}");
        assert!(get(addr, &req("POST", "/metrics"))
            .await
            .starts_with("HTTP/1.1 405"));
        assert!(get(addr, &req("GET", "/nope"))
            .await
            .starts_with("HTTP/1.1 404"));
        // Not HTTP at all: an error answer or a closed connection, and the
        // listener keeps serving.
        let garbage = get(addr, b"\x00\x01\x02 garbage\r\n\r\n").await;
        assert!(
            garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
            "{garbage}"
        );
        let huge = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(1 << 20));
        let answer = get(addr, huge.as_bytes()).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{}",
            answer.len()
        );
        assert!(get(addr, &req("GET", "/healthz"))
            .await
            .starts_with("HTTP/1.1 200"));
    }
}
