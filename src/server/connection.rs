//! One client connection: frames in, responses out, in request order.
//!
//! The reader handles requests one at a time, in order, as Kafka does, so a
//! client's pipelined produce requests are appended in the order sent. A
//! response that must wait (produce waiting for fsync) is handed to the
//! writer as a future; the reader moves on to the next request, and the
//! writer sends responses strictly in request order. This is what lets one
//! connection's in-flight produce requests share a single group commit.
//!
//! Limits: a frame longer than `max_frame_bytes` closes the connection
//! before any body byte is read; the body buffer grows only as bytes
//! actually arrive; at most `max_inflight_requests` responses are queued and
//! at most `max_connection_buffer_bytes` of request bytes are held; a
//! connection silent for `idle_timeout_ms` is closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::handlers::{self, Broker, Outcome};
use crate::metrics::Metrics;
use crate::protocol::frame::check_frame_len;

/// Largest read into a frame buffer at once: the buffer grows with the data
/// that has arrived, never with what the length prefix claims.
const READ_CHUNK: usize = 1 << 20;

pub async fn run(broker: Arc<Broker>, stream: TcpStream, shutdown: watch::Receiver<bool>) {
    // Kafka reports a member's host as "/address".
    let host = stream
        .peer_addr()
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(broker.settings.max_inflight_requests);
    let writer = tokio::spawn(write_loop(wr, rx, broker.metrics.clone()));
    read_loop(&broker, &host, rd, tx, shutdown).await;
    let _ = writer.await;
}

enum Next {
    Frame(Bytes, OwnedSemaphorePermit),
    Stop,
}

/// A request on its way to the writer: its outcome, its share of the
/// connection's buffer budget, and what its metrics need (API key, when it
/// was read).
struct Queued {
    outcome: Outcome,
    permit: OwnedSemaphorePermit,
    api_key: i16,
    read_at: Instant,
}

async fn read_loop(
    broker: &Broker,
    host: &str,
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<Queued>,
    mut shutdown: watch::Receiver<bool>,
) {
    let s = &broker.settings;
    let budget = Arc::new(Semaphore::new(
        usize::try_from(s.max_connection_buffer_bytes).unwrap_or(usize::MAX >> 4),
    ));
    let idle = Duration::from_millis(s.idle_timeout_ms);
    loop {
        let next = tokio::select! {
            _ = crate::server::stopped(&mut shutdown) => Next::Stop,
            _ = tx.closed() => Next::Stop,
            n = read_frame(&mut rd, s.max_frame_bytes, idle, &budget) => n,
        };
        let Next::Frame(body, permit) = next else {
            break;
        };
        let read_at = Instant::now();
        let api_key = body
            .get(..2)
            .and_then(|k| <[u8; 2]>::try_from(k).ok())
            .map_or(-1, i16::from_be_bytes);
        let outcome = handlers::handle(broker, host, body).await;
        let close = matches!(outcome, Outcome::Close(_));
        let queued = Queued {
            outcome,
            permit,
            api_key,
            read_at,
        };
        if tx.send(queued).await.is_err() || close {
            break;
        }
    }
}

async fn read_frame(
    rd: &mut OwnedReadHalf,
    max_frame: u64,
    idle: Duration,
    budget: &Arc<Semaphore>,
) -> Next {
    let mut len_buf = [0u8; 4];
    match tokio::time::timeout(idle, rd.read_exact(&mut len_buf)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Next::Stop,
        Err(_) => {
            tracing::debug!("idle connection closed");
            return Next::Stop;
        }
    }
    let len = match check_frame_len(i32::from_be_bytes(len_buf), max_frame) {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "bad frame; closing");
            return Next::Stop;
        }
    };
    let Ok(permits) = u32::try_from(len.max(1)) else {
        return Next::Stop;
    };
    let Ok(permit) = budget.clone().acquire_many_owned(permits).await else {
        return Next::Stop;
    };
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let want = (len - buf.len()).min(READ_CHUNK);
        buf.reserve(want);
        let mut limited = (&mut *rd).take(want as u64);
        match tokio::time::timeout(idle, limited.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Next::Stop,
            Ok(Ok(_)) => {}
        }
    }
    Next::Frame(buf.freeze(), permit)
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Queued>, metrics: Arc<Metrics>) {
    while let Some(Queued {
        mut outcome,
        permit,
        api_key,
        read_at,
    }) = rx.recv().await
    {
        loop {
            match outcome {
                Outcome::Deferred(fut) => outcome = fut.await,
                Outcome::Respond(mut chunks) => {
                    if write_chunks(&mut wr, &mut chunks).await.is_err() {
                        return;
                    }
                    break;
                }
                Outcome::Silent => break,
                Outcome::Close(last) => {
                    metrics.request_done(api_key, read_at);
                    if let Some(bytes) = last {
                        let _ = wr.write_all(&bytes).await;
                    }
                    let _ = wr.shutdown().await;
                    return;
                }
            }
        }
        metrics.request_done(api_key, read_at);
        drop(permit);
    }
    let _ = wr.shutdown().await;
}

/// Writes every chunk with vectored writes (a fetch response is a few small
/// header chunks around large record slices of the segment maps).
async fn write_chunks(wr: &mut OwnedWriteHalf, chunks: &mut [Bytes]) -> std::io::Result<()> {
    /// Slices handed to one writev call (well under IOV_MAX).
    const MAX_IOV: usize = 64;
    let mut first = 0;
    while first < chunks.len() {
        let rest = chunks.get(first..).unwrap_or_default();
        let slices: Vec<IoSlice<'_>> = rest.iter().take(MAX_IOV).map(|c| IoSlice::new(c)).collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let Some(c) = chunks.get_mut(first) else {
                break;
            };
            if n >= c.len() {
                n -= c.len();
                first += 1;
            } else {
                c.advance(n);
                n = 0;
            }
        }
        while chunks.get(first).is_some_and(Bytes::is_empty) {
            first += 1;
        }
    }
    Ok(())
}
