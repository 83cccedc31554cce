//! Metadata, DescribeCluster and DescribeTopicPartitions:
//! what the cluster looks like. One node leads every partition.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_topic_partitions_response::{
    DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Broker;
use crate::log::manager::validate_topic_name;
use crate::log::topic::Topic;
use crate::protocol::codes;

/// Kafka's "not requested" value for authorized-operation bitfields.
const OPS_NOT_REQUESTED: i32 = i32::MIN;
/// Every topic operation (no ACLs yet): READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const TOPIC_OPS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// Every cluster operation: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPS_ALL: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn describe_topic(b: &Broker, t: &Topic, ops: i32) -> MetadataResponseTopic {
    let node = BrokerId(b.node_id());
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(TopicName(str(&t.name)));
    mt.topic_id = t.id;
    mt.topic_authorized_operations = ops;
    mt.is_internal = crate::coordinator::is_internal(&t.name);
    mt.partitions = t
        .partitions()
        .iter()
        .map(|p| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = p.index;
            mp.leader_id = node;
            mp.leader_epoch = p.leader_epoch();
            mp.replica_nodes = vec![node];
            mp.isr_nodes = vec![node];
            mp
        })
        .collect();
    mt
}

fn missing(name: Option<TopicName>, id: Uuid, code: i16) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.name = name;
    mt.topic_id = id;
    mt.error_code = code;
    mt
}

pub async fn handle(b: &Broker, req: MetadataRequest, version: i16) -> MetadataResponse {
    let ops = if req.include_topic_authorized_operations {
        TOPIC_OPS_ALL
    } else {
        OPS_NOT_REQUESTED
    };
    let mut resp = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(b.node_id());
    broker.host = str(&b.advertised_host);
    broker.port = b.advertised_port;
    resp.brokers = vec![broker];
    resp.cluster_id = Some(str(&b.cluster_id));
    resp.controller_id = BrokerId(b.node_id());
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_OPS_ALL
    } else {
        OPS_NOT_REQUESTED
    };
    // v0: an empty list means every topic; v1+: null means every topic.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    if all {
        resp.topics = b
            .log
            .topics()
            .iter()
            .map(|t| describe_topic(b, t, ops))
            .collect();
        return resp;
    }
    let auto = req.allow_auto_topic_creation || version < 4;
    let now = b.now_ms();
    for rt in req.topics.unwrap_or_default() {
        let topic = match &rt.name {
            Some(name) => {
                if validate_topic_name(name).is_err() {
                    resp.topics.push(missing(
                        rt.name.clone(),
                        Uuid::nil(),
                        codes::INVALID_TOPIC_EXCEPTION,
                    ));
                    continue;
                }
                match b.log.topic(name) {
                    Some(t) => Some(t),
                    None if auto => b.log.get_or_create(name, now).await,
                    None => None,
                }
            }
            None => b.log.topic_by_id(rt.topic_id),
        };
        resp.topics.push(match topic {
            Some(t) => describe_topic(b, &t, ops),
            None if rt.name.is_none() => missing(None, rt.topic_id, codes::UNKNOWN_TOPIC_ID),
            None => missing(rt.name, Uuid::nil(), codes::UNKNOWN_TOPIC_OR_PARTITION),
        });
    }
    resp
}

pub async fn describe_cluster(
    b: &Broker,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = str(&b.cluster_id);
    resp.controller_id = BrokerId(b.node_id());
    if version >= 1 {
        resp.endpoint_type = 1;
    }
    let mut broker = DescribeClusterBroker::default();
    broker.broker_id = BrokerId(b.node_id());
    broker.host = str(&b.advertised_host);
    broker.port = b.advertised_port;
    resp.brokers = vec![broker];
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_OPS_ALL
    } else {
        OPS_NOT_REQUESTED
    };
    resp
}

pub async fn describe_topic_partitions(
    b: &Broker,
    req: DescribeTopicPartitionsRequest,
    _version: i16,
) -> DescribeTopicPartitionsResponse {
    let node = BrokerId(b.node_id());
    let limit = usize::try_from(req.response_partition_limit.max(1))
        .unwrap_or(2000)
        .min(10_000);
    let mut names: Vec<String> = if req.topics.is_empty() {
        b.log.topics().iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    let (start_topic, start_part) = req.cursor.as_ref().map_or((String::new(), 0), |c| {
        (c.topic_name.0.to_string(), c.partition_index)
    });
    let mut resp = DescribeTopicPartitionsResponse::default();
    let mut budget = limit;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let mut rt = DescribeTopicPartitionsResponseTopic::default();
        rt.name = Some(TopicName(str(&name)));
        rt.topic_authorized_operations = TOPIC_OPS_ALL;
        let Some(t) = b.log.topic(&name) else {
            rt.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION;
            resp.topics.push(rt);
            continue;
        };
        rt.topic_id = t.id;
        let first = if name == start_topic { start_part } else { 0 };
        for p in t.partitions().iter().filter(|p| p.index >= first) {
            if budget == 0 {
                let mut c =
                    kafka_protocol::messages::describe_topic_partitions_response::Cursor::default();
                c.topic_name = TopicName(str(&name));
                c.partition_index = p.index;
                resp.next_cursor = Some(c);
                break;
            }
            let mut rp = DescribeTopicPartitionsResponsePartition::default();
            rp.partition_index = p.index;
            rp.leader_id = node;
            rp.leader_epoch = p.leader_epoch();
            rp.replica_nodes = vec![node];
            rp.isr_nodes = vec![node];
            rp.eligible_leader_replicas = Some(vec![]);
            rp.last_known_elr = Some(vec![]);
            rt.partitions.push(rp);
            budget -= 1;
        }
        resp.topics.push(rt);
        if resp.next_cursor.is_some() {
            break;
        }
    }
    resp
}
