//! Handlers: one per API key, behind one dispatch table.
//!
//! [`APIS`] is the only list of what Fjord implements: ApiVersions answers
//! from it, and a request outside it is refused before its body is decoded.
//! Handlers are thin: they translate between wire structs and `log` calls.
//!
//! Invariant: nothing in a handler panics on client input; every failure
//! becomes a Kafka error code (see [`errors`]) or, for bytes that are not a
//! valid request at all, a closed connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::clock::Clock;
use crate::config::Settings;
use crate::coordinator::runtime::GroupRuntime;
use crate::coordinator::txn_runtime::TxnRuntime;
use crate::log::sync::Syncer;
use crate::log::LogManager;
use crate::protocol::codes;
use crate::protocol::frame::header_prefix;
use crate::protocol::splice::SpliceBuf;

mod admin;
mod api_versions;
mod configs;
mod consumer_groups;
mod coordinator;
pub mod errors;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod offsets;
mod produce;
mod records;
mod txn;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod group_versions_tests;
#[cfg(test)]
mod txn_versions_tests;

/// One implemented API: the versions we advertise and the versions we decode.
///
/// `decode_min` may exceed `min`: Kafka 4.0 advertises Produce from v0 though
/// it serves v3+, because librdkafka only enables compression when Produce's
/// advertised range reaches back far enough (KAFKA-18659). Requests below
/// `decode_min` get UNSUPPORTED_VERSION.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    pub decode_min: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> Api {
    Api {
        key,
        min,
        max,
        decode_min: min,
    }
}

/// The dispatch table. Versions are Kafka 4.0's where the crate decodes them.
pub const APIS: &[Api] = &[
    Api {
        key: ApiKey::Produce,
        min: 0,
        max: 12,
        decode_min: 3,
    },
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 1, 9),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::WriteTxnMarkers, 1, 1),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 1),
];

pub fn lookup(key: i16) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key as i16 == key)
}

/// Everything a handler may use.
pub struct Broker {
    pub log: Arc<LogManager>,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub syncer: Syncer,
    pub groups: Arc<GroupRuntime>,
    pub txns: Arc<TxnRuntime>,
    /// The schema registry, when it is on (for Produce's validation).
    pub schemas: Option<Arc<fjord_schema_registry::service::Service>>,
    /// The remote tier, when `--tier-url` is set.
    pub tier: Option<Arc<crate::tier::Tier>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
}

impl Broker {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn node_id(&self) -> i32 {
        self.settings.node_id
    }
}

/// Who sent a request: the client's id and address, as group members
/// report them (Kafka's `client.id` and `/host`).
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub client_id: String,
    pub host: String,
}

/// What the connection does with a request.
pub enum Outcome {
    /// Send these chunks, in order: one whole frame, length prefix included.
    Respond(Vec<Bytes>),
    /// Send nothing (Produce with acks=0).
    Silent,
    /// Send these bytes, if any, then close the connection.
    Close(Option<Bytes>),
    /// The answer is not ready yet (produce waiting for fsync). The
    /// connection keeps handling later requests; responses stay in order.
    Deferred(Pin<Box<dyn Future<Output = Outcome> + Send>>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Respond(b) => write!(
                f,
                "Respond({} bytes)",
                b.iter().map(Bytes::len).sum::<usize>()
            ),
            Outcome::Silent => write!(f, "Silent"),
            Outcome::Close(_) => write!(f, "Close"),
            Outcome::Deferred(_) => write!(f, "Deferred"),
        }
    }
}

/// Encodes a response frame: size, response header, body.
fn frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<Vec<Bytes>> {
    frame_spliced(key, version, correlation_id, body, Vec::new())
}

/// As [`frame`]; `splice` lists large byte fields of `body` (fetched
/// records) in encoding order, which are referenced rather than copied (see
/// `protocol::splice`).
fn frame_spliced<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    splice: Vec<Bytes>,
) -> anyhow::Result<Vec<Bytes>> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let hv = key.response_header_version(version);
    let size = header.compute_size(hv)? + body.compute_size(version)?;
    let mut buf = SpliceBuf::new(splice);
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, hv)?;
    body.encode(&mut buf, version)?;
    anyhow::ensure!(
        buf.len() == size + 4,
        "encoded {} bytes, computed {}",
        buf.len(),
        size + 4
    );
    Ok(buf.finish())
}

/// A response frame, or a closed connection if it cannot be encoded.
fn respond<R: Encodable>(key: ApiKey, version: i16, corr: i32, resp: &R) -> Outcome {
    match frame(key, version, corr, resp) {
        Ok(b) => Outcome::Respond(b),
        Err(e) => {
            // Our bug, not the client's: a field set that this version lacks.
            tracing::error!(?key, version, error = %e, "cannot encode response");
            Outcome::Close(None)
        }
    }
}

/// A bare `correlation_id, error_code` frame, for versions we cannot encode.
fn unsupported_version(correlation_id: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(10);
    buf.put_i32(6);
    buf.put_i32(correlation_id);
    buf.put_i16(codes::UNSUPPORTED_VERSION);
    buf.freeze()
}

macro_rules! route {
    ($broker:expr, $key:expr, $version:expr, $corr:expr, $body:expr, $( $variant:ident => $handler:path ),* $(,)?) => {
        match $key {
            $( ApiKey::$variant => {
                let req = Decodable::decode($body, $version)?;
                let resp = $handler($broker, req, $version).await;
                match frame($key, $version, $corr, &resp) {
                    Ok(bytes) => Outcome::Respond(bytes),
                    Err(e) => {
                        // Our bug, not the client's: a field set that this version lacks.
                        tracing::error!(key = ?$key, version = $version, error = %e, "cannot encode response");
                        Outcome::Close(None)
                    }
                }
            } )*
            _ => Outcome::Close(None),
        }
    };
}

/// Handles one request frame (without its length prefix).
pub async fn handle(broker: &Broker, host: &str, mut body: Bytes) -> Outcome {
    let Ok(prefix) = header_prefix(&body) else {
        return Outcome::Close(None);
    };
    let Some(api) = lookup(prefix.api_key) else {
        tracing::debug!(api_key = prefix.api_key, "unknown api key; closing");
        return Outcome::Close(None);
    };
    let (key, version, corr) = (api.key, prefix.api_version, prefix.correlation_id);
    if key == ApiKey::ApiVersions && !(api.min..=api.max).contains(&version) {
        // KIP-511: answer in v0 format, with our versions, so the client can retry.
        return match frame(
            key,
            0,
            corr,
            &api_versions::response(codes::UNSUPPORTED_VERSION),
        ) {
            Ok(b) => Outcome::Respond(b),
            Err(_) => Outcome::Close(None),
        };
    }
    if !(api.decode_min..=api.max).contains(&version) {
        tracing::debug!(?key, version, "unsupported version");
        return Outcome::Close(Some(unsupported_version(corr)));
    }
    match dispatch(broker, host, key, version, corr, &mut body).await {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!(?key, version, error = %e, "malformed request; closing");
            Outcome::Close(None)
        }
    }
}

async fn dispatch(
    broker: &Broker,
    host: &str,
    key: ApiKey,
    version: i16,
    corr: i32,
    body: &mut Bytes,
) -> anyhow::Result<Outcome> {
    let header = RequestHeader::decode(body, key.request_header_version(version))?;
    let peer = || Peer {
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        host: host.to_string(),
    };
    if key == ApiKey::JoinGroup {
        let req = Decodable::decode(body, version)?;
        let resp = groups::join(broker, req, version, &peer()).await;
        return Ok(respond(key, version, corr, &resp));
    }
    if key == ApiKey::ConsumerGroupHeartbeat {
        let req = Decodable::decode(body, version)?;
        let resp = consumer_groups::heartbeat(broker, req, version, &peer()).await;
        return Ok(respond(key, version, corr, &resp));
    }
    if key == ApiKey::Produce {
        let req = Decodable::decode(body, version)?;
        return Ok(match produce::handle(broker, req, version) {
            produce::Produced::Silent => Outcome::Silent,
            produce::Produced::Ready(resp) => Outcome::Respond(frame(key, version, corr, &resp)?),
            produce::Produced::AwaitSync {
                resp,
                wait,
                pending,
            } => Outcome::Deferred(Box::pin(async move {
                let resp = produce::finish(resp, wait, pending).await;
                match frame(key, version, corr, &resp) {
                    Ok(b) => Outcome::Respond(b),
                    Err(_) => Outcome::Close(None),
                }
            })),
        });
    }
    if key == ApiKey::Fetch {
        let req = Decodable::decode(body, version)?;
        let resp = fetch::handle(broker, req, version).await;
        let records = fetch::records_in_order(&resp);
        return Ok(match frame_spliced(key, version, corr, &resp, records) {
            Ok(chunks) => Outcome::Respond(chunks),
            Err(e) => {
                tracing::error!(?key, version, error = %e, "cannot encode response");
                Outcome::Close(None)
            }
        });
    }
    Ok(route!(broker, key, version, corr, body,
        ApiVersions => api_versions::handle,
        Metadata => metadata::handle,
        ListOffsets => list_offsets::handle,
        CreateTopics => admin::create_topics,
        DeleteTopics => admin::delete_topics,
        CreatePartitions => admin::create_partitions,
        DescribeConfigs => configs::describe,
        AlterConfigs => configs::alter,
        IncrementalAlterConfigs => configs::incremental_alter,
        DescribeCluster => metadata::describe_cluster,
        FindCoordinator => coordinator::find_coordinator,
        SyncGroup => groups::sync,
        Heartbeat => groups::heartbeat,
        LeaveGroup => groups::leave,
        DescribeGroups => groups::describe,
        ListGroups => groups::list,
        DeleteGroups => groups::delete,
        OffsetCommit => offsets::commit,
        OffsetFetch => offsets::fetch,
        OffsetDelete => offsets::delete,
        ConsumerGroupDescribe => consumer_groups::describe,
        DescribeTopicPartitions => metadata::describe_topic_partitions,
        DeleteRecords => records::delete_records,
        DescribeLogDirs => records::describe_log_dirs,
        OffsetForLeaderEpoch => records::offset_for_leader_epoch,
        InitProducerId => txn::init_producer_id,
        AddPartitionsToTxn => txn::add_partitions,
        AddOffsetsToTxn => txn::add_offsets,
        EndTxn => txn::end_txn,
        TxnOffsetCommit => txn::txn_offset_commit,
        WriteTxnMarkers => txn::write_txn_markers,
        DescribeProducers => txn::describe_producers,
        DescribeTransactions => txn::describe_transactions,
        ListTransactions => txn::list_transactions,
    ))
}
