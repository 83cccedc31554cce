//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.
//!
//! Topic configs come from the one table in `log::config`; every entry is
//! described with its value and source, as clients expect. Broker configs
//! are static (flags, environment, file) and described read-only.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Broker};
use crate::config::Durability;
use crate::log::config::{self as tc, Kind};
use crate::protocol::codes;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn kind_type(k: Kind) -> i8 {
    match k {
        Kind::Long { .. } => TYPE_LONG,
        Kind::Int { .. } => TYPE_INT,
        Kind::Bool => TYPE_BOOLEAN,
        Kind::Choice(_) | Kind::Text => TYPE_STRING,
        Kind::List(_) => TYPE_LIST,
        Kind::Double => TYPE_DOUBLE,
    }
}

fn entry(
    name: &str,
    value: &str,
    source: i8,
    read_only: bool,
    ty: i8,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = s(name);
    e.value = Some(s(value));
    e.config_source = source;
    e.read_only = read_only;
    e.config_type = ty;
    e
}

/// Every topic config with its effective value and source.
pub fn topic_entries(
    b: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribeConfigsResourceResult> {
    tc::TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let broker = tc::broker_default(&b.settings, d.name).filter(|v| v != d.default);
            let (value, source) = match (overrides.get(d.name), &broker) {
                (Some(v), _) => (v.clone(), SOURCE_TOPIC),
                (None, Some(v)) => (v.clone(), SOURCE_STATIC_BROKER),
                (None, None) => (d.default.to_string(), SOURCE_DEFAULT),
            };
            let mut e = entry(d.name, &value, source, false, kind_type(d.kind));
            let mut syn = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                syn.push((d.name, v.clone(), SOURCE_TOPIC));
            }
            if let (Some(key), Some(v)) = (d.broker_key, &broker) {
                syn.push((key, v.clone(), SOURCE_STATIC_BROKER));
            }
            if let Some(key) = d.broker_key {
                syn.push((key, d.default.to_string(), SOURCE_DEFAULT));
            }
            e.synonyms = syn
                .into_iter()
                .map(|(n, v, src)| {
                    let mut y = DescribeConfigsSynonym::default();
                    y.name = s(n);
                    y.value = Some(s(&v));
                    y.source = src;
                    y
                })
                .collect();
            e
        })
        .collect()
}

fn broker_entries(b: &Broker) -> Vec<DescribeConfigsResourceResult> {
    let st = &b.settings;
    let rows: Vec<(&str, String, i8)> = vec![
        ("broker.id", st.node_id.to_string(), TYPE_INT),
        ("node.id", st.node_id.to_string(), TYPE_INT),
        ("listeners", format!("PLAINTEXT://{}", st.listen), TYPE_LIST),
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}", st.advertise),
            TYPE_LIST,
        ),
        ("log.dirs", st.data_dir.display().to_string(), TYPE_LIST),
        ("num.partitions", st.num_partitions.to_string(), TYPE_INT),
        (
            "auto.create.topics.enable",
            st.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
        ),
        ("default.replication.factor", "1".into(), TYPE_INT),
        ("offsets.topic.replication.factor", "1".into(), TYPE_INT),
        (
            "transaction.state.log.replication.factor",
            "1".into(),
            TYPE_INT,
        ),
        ("min.insync.replicas", "1".into(), TYPE_INT),
        ("log.retention.ms", st.retention_ms.to_string(), TYPE_LONG),
        (
            "log.retention.bytes",
            st.retention_bytes.to_string(),
            TYPE_LONG,
        ),
        ("log.segment.bytes", st.segment_bytes.to_string(), TYPE_INT),
        ("log.roll.ms", st.segment_ms.to_string(), TYPE_LONG),
        (
            "message.max.bytes",
            st.max_message_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "log.retention.check.interval.ms",
            st.retention_check_interval_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "socket.request.max.bytes",
            st.max_frame_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "connections.max.idle.ms",
            st.idle_timeout_ms.to_string(),
            TYPE_LONG,
        ),
        ("max.connections", st.max_connections.to_string(), TYPE_INT),
        ("delete.topic.enable", "true".into(), TYPE_BOOLEAN),
        (
            "log.flush.interval.messages",
            if st.durability == Durability::Fsync {
                "1"
            } else {
                "9223372036854775807"
            }
            .into(),
            TYPE_LONG,
        ),
    ];
    rows.into_iter()
        .map(|(n, v, t)| entry(n, &v, SOURCE_STATIC_BROKER, true, t))
        .collect()
}

pub async fn describe(
    b: &Broker,
    req: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let entries = match res.resource_type {
            RESOURCE_TOPIC => match b.log.topic(&res.resource_name) {
                Some(t) => Ok(topic_entries(b, &t.meta().configs)),
                None => Err((
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic `{}`", &*res.resource_name),
                )),
            },
            RESOURCE_BROKER
                if res.resource_name.is_empty()
                    || *res.resource_name == *b.node_id().to_string() =>
            {
                Ok(broker_entries(b))
            }
            RESOURCE_BROKER => Err((
                codes::INVALID_REQUEST,
                format!("this broker is node {}", b.node_id()),
            )),
            other => Err((
                codes::INVALID_REQUEST,
                format!("resource type {other} is not supported"),
            )),
        };
        match entries {
            Ok(mut e) => {
                if let Some(keys) = &res.configuration_keys {
                    e.retain(|c| keys.contains(&c.name));
                }
                if !req.include_synonyms {
                    e.iter_mut().for_each(|c| c.synonyms.clear());
                }
                r.configs = e;
            }
            Err((code, m)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(m));
            }
        }
        resp.results.push(r);
    }
    resp
}

/// Applies a new set of overrides to a topic; `(code, message)` on failure.
async fn apply(
    b: &Broker,
    rtype: i8,
    name: &str,
    new: Result<BTreeMap<String, String>, (i16, String)>,
    validate_only: bool,
) -> (i16, Option<String>) {
    if rtype == RESOURCE_BROKER {
        return (
            codes::INVALID_REQUEST,
            Some("broker configs are static in Fjord: restart with new flags".into()),
        );
    }
    if rtype != RESOURCE_TOPIC {
        return (
            codes::INVALID_REQUEST,
            Some(format!("resource type {rtype} is not supported")),
        );
    }
    match new {
        Err((c, m)) => (c, Some(m)),
        Ok(configs) => match b.log.set_topic_configs(name, configs, validate_only).await {
            Ok(()) => (codes::NONE, None),
            Err(e) => (errors::topic_error(&e), Some(e.to_string())),
        },
    }
}

pub async fn alter(b: &Broker, req: AlterConfigsRequest, _version: i16) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for res in req.resources {
        let new = Ok(res
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect());
        let (code, m) = apply(
            b,
            res.resource_type,
            &res.resource_name,
            new,
            req.validate_only,
        )
        .await;
        let mut r =
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            );
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name;
        r.error_code = code;
        r.error_message = m.map(StrBytes::from_string);
        resp.responses.push(r);
    }
    resp
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn incremental(
    b: &Broker,
    name: &str,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, (i16, String)> {
    let topic = b.log.topic(name).ok_or((
        codes::UNKNOWN_TOPIC_OR_PARTITION,
        format!("unknown topic `{name}`"),
    ))?;
    let mut configs = topic.meta().configs;
    for (key, op, value) in ops {
        let def = tc::lookup(key).ok_or((
            codes::INVALID_CONFIG,
            format!("unknown topic config `{key}`"),
        ))?;
        match (*op, value) {
            (OP_SET, Some(v)) => {
                configs.insert(key.clone(), v.clone());
            }
            (OP_DELETE, _) => {
                configs.remove(key);
            }
            (OP_APPEND | OP_SUBTRACT, Some(v)) => {
                if !matches!(def.kind, Kind::List(_)) {
                    return Err((
                        codes::INVALID_CONFIG,
                        format!("`{key}` is not a list; APPEND and SUBTRACT need one"),
                    ));
                }
                let current = configs
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| def.default.to_string());
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect();
                for item in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                    if *op == OP_APPEND && !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                    if *op == OP_SUBTRACT {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(key.clone(), items.join(","));
            }
            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                return Err((codes::INVALID_CONFIG, format!("`{key}` needs a value")));
            }
            (other, _) => {
                return Err((
                    codes::INVALID_REQUEST,
                    format!("unknown config operation {other}"),
                ))
            }
        }
    }
    Ok(configs)
}

pub async fn incremental_alter(
    b: &Broker,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let ops: Vec<(String, i8, Option<String>)> = res
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let new = if res.resource_type == RESOURCE_TOPIC {
            incremental(b, &res.resource_name, &ops)
        } else {
            Ok(BTreeMap::new())
        };
        let (code, m) = apply(
            b,
            res.resource_type,
            &res.resource_name,
            new,
            req.validate_only,
        )
        .await;
        let mut r = kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name;
        r.error_code = code;
        r.error_message = m.map(StrBytes::from_string);
        resp.responses.push(r);
    }
    resp
}
