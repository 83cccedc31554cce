//! A minimal Kafka client for the admin subcommands: one connection,
//! one request at a time, every call bounded by a timeout. It speaks the
//! protocol to any broker, not only Fjord.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted.
const MAX_RESPONSE: usize = 256 << 20;

pub struct Conn {
    addr: String,
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("timed out connecting to {addr}"))?
            .with_context(|| format!("cannot connect to {addr}"))?;
        Ok(Conn {
            addr: addr.to_string(),
            stream,
            correlation: 0,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and reads its response.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> anyhow::Result<Resp> {
        tokio::time::timeout(TIMEOUT, self.call_inner(key, version, req))
            .await
            .map_err(|_| anyhow!("{key:?} to {} timed out", self.addr))?
    }

    async fn call_inner<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> anyhow::Result<Resp> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("fjord-admin")));
        let mut body = BytesMut::new();
        header.encode(&mut body, key.request_header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(i32::try_from(body.len())?);
        frame.put_slice(&body);
        self.stream.write_all(&frame).await?;
        let len = self.stream.read_i32().await?;
        let len = usize::try_from(len).map_err(|_| anyhow!("negative response size"))?;
        if len > MAX_RESPONSE {
            bail!("response of {len} bytes is too large");
        }
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await?;
        let mut resp = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut resp, key.response_header_version(version))?;
        if h.correlation_id != self.correlation {
            bail!("response out of order from {}", self.addr);
        }
        let out = Resp::decode(&mut resp, version)?;
        if resp.has_remaining() {
            tracing::debug!(bytes = resp.remaining(), "trailing bytes in response");
        }
        Ok(out)
    }
}
