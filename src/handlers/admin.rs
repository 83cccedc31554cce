//! CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::configs::topic_entries;
use super::{errors, Broker};
use crate::log::manager::TopicError;
use crate::protocol::codes;

fn msg(e: &impl ToString) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}

pub async fn create_topics(
    b: &Broker,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    let now = b.now_ms();
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        let name = t.name.0.to_string();
        if !seen.insert(name.clone()) {
            r.error_code = codes::INVALID_REQUEST;
            r.error_message = msg(&"topic named twice in one request");
            resp.topics.push(r);
            continue;
        }
        let partitions = if !t.assignments.is_empty() {
            i32::try_from(t.assignments.len()).unwrap_or(i32::MAX)
        } else if t.num_partitions == -1 {
            b.settings.num_partitions
        } else {
            t.num_partitions
        };
        if t.replication_factor != -1 && t.replication_factor != 1 {
            let e = TopicError::InvalidReplication(t.replication_factor);
            r.error_code = errors::topic_error(&e);
            r.error_message = msg(&e);
            resp.topics.push(r);
            continue;
        }
        let bad_assignment = t.assignments.iter().any(|a| {
            a.broker_ids.len() != 1 || a.broker_ids.first().map(|x| x.0) != Some(b.node_id())
        });
        if bad_assignment {
            r.error_code = 39; // INVALID_REPLICA_ASSIGNMENT
            r.error_message = msg(&format!(
                "every partition must be assigned to node {} only",
                b.node_id()
            ));
            resp.topics.push(r);
            continue;
        }
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        match b
            .log
            .create_topic(&name, partitions, configs, req.validate_only, now)
            .await
        {
            Ok(topic) => {
                r.topic_id = if req.validate_only {
                    uuid::Uuid::nil()
                } else {
                    topic.id
                };
                r.num_partitions = partitions;
                r.replication_factor = 1;
                if version >= 5 {
                    r.configs = Some(
                        topic_entries(b, &topic.meta().configs)
                            .into_iter()
                            .map(|e| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = e.name;
                                c.value = e.value;
                                c.read_only = e.read_only;
                                c.config_source = e.config_source;
                                c.is_sensitive = false;
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                r.error_code = errors::topic_error(&e);
                r.error_message = msg(&e);
            }
        }
        resp.topics.push(r);
    }
    resp
}

pub async fn delete_topics(
    b: &Broker,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.name = name.clone();
        r.topic_id = id;
        let topic = match &name {
            Some(n) => b.log.topic(n),
            None => b.log.topic_by_id(id),
        };
        match topic {
            None => {
                r.error_code = if name.is_none() {
                    codes::UNKNOWN_TOPIC_ID
                } else {
                    codes::UNKNOWN_TOPIC_OR_PARTITION
                };
            }
            Some(t) if crate::coordinator::is_internal(&t.name) => {
                r.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
                r.topic_id = t.id;
                r.error_code = codes::INVALID_TOPIC_EXCEPTION;
                r.error_message = Some(StrBytes::from_static_str(
                    "internal topics cannot be deleted",
                ));
            }
            Some(t) => {
                r.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
                r.topic_id = t.id;
                let tiered = t.config().remote_storage;
                let partitions = t.meta().partitions;
                if let Err(e) = b.log.delete_topic(&t.name).await {
                    r.error_code = errors::topic_error(&e);
                    r.error_message = msg(&e);
                } else if let (Some(tier), true) = (&b.tier, tiered) {
                    tier.forget_topic(t.name.clone(), t.id, partitions);
                }
            }
        }
        resp.responses.push(r);
    }
    resp
}

pub async fn create_partitions(
    b: &Broker,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    let now = b.now_ms();
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        let result = match b.log.topic(&t.name) {
            None => Err(TopicError::Unknown(t.name.0.to_string())),
            Some(topic) if t.count <= topic.meta().partitions => {
                let have = topic.meta().partitions;
                r.error_code = codes::INVALID_PARTITIONS;
                r.error_message = msg(&format!(
                    "topic has {have} partitions; new count {} must be larger",
                    t.count
                ));
                resp.results.push(r);
                continue;
            }
            Some(_) => {
                b.log
                    .create_partitions(&t.name, t.count, req.validate_only, now)
                    .await
            }
        };
        if let Err(e) = result {
            r.error_code = errors::topic_error(&e);
            r.error_message = msg(&e);
        }
        resp.results.push(r);
    }
    resp
}
