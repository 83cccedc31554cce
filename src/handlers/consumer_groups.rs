//! KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe: the new
//! consumer protocol, where the broker assigns partitions.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTp,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HbAssignment, TopicPartitions as HbTp,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Broker, Peer};
use crate::coordinator::consumer::{Assignment, ConsumerGroup, HeartbeatRequest};
use crate::protocol::codes;

/// Kafka's "not requested" value for authorized-operation bitfields.
const OPS_NOT_REQUESTED: i32 = i32::MIN;
/// READ, DESCRIBE, DELETE.
const GROUP_OPS_ALL: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub async fn heartbeat(
    b: &Broker,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    peer: &Peer,
) -> ConsumerGroupHeartbeatResponse {
    let owned: Option<Assignment> = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
            .collect()
    });
    let r = b
        .groups
        .consumer_heartbeat(
            &req.group_id,
            HeartbeatRequest {
                member_id: req.member_id.to_string(),
                member_epoch: req.member_epoch,
                instance_id: req.instance_id.as_ref().map(|x| x.to_string()),
                rack_id: req.rack_id.as_ref().map(|x| x.to_string()),
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                subscribed: req
                    .subscribed_topic_names
                    .as_ref()
                    .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
                regex: if version >= 1 {
                    req.subscribed_topic_regex.as_ref().map(|x| x.to_string())
                } else {
                    None
                },
                assignor: req.server_assignor.as_ref().map(|x| x.to_string()),
                owned,
                client_id: peer.client_id.clone(),
                client_host: peer.host.clone(),
                version,
            },
            b.now_ms(),
        )
        .await;
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    resp.error_code = r.error;
    resp.error_message = r.message.as_deref().map(s);
    if r.error == codes::NONE {
        resp.member_id = Some(s(&r.member_id));
        resp.member_epoch = r.member_epoch;
        resp.heartbeat_interval_ms = b.settings.group_consumer_heartbeat_interval_ms;
        resp.assignment = r.assignment.map(|a| {
            let mut x = HbAssignment::default();
            x.topic_partitions = a
                .into_iter()
                .map(|(id, ps)| {
                    let mut tp = HbTp::default();
                    tp.topic_id = id;
                    tp.partitions = ps.into_iter().collect();
                    tp
                })
                .collect();
            x
        });
    }
    resp
}

fn described_assignment(b: &Broker, a: &Assignment) -> DescribedAssignment {
    let mut x = DescribedAssignment::default();
    x.topic_partitions = a
        .iter()
        .map(|(id, ps)| {
            let mut tp = DescribedTp::default();
            tp.topic_id = *id;
            tp.topic_name = TopicName(s(&b
                .log
                .topic_by_id(*id)
                .map(|t| t.name.clone())
                .unwrap_or_default()));
            tp.partitions = ps.iter().copied().collect();
            tp
        })
        .collect();
    x
}

fn describe_one(b: &Broker, g: &ConsumerGroup, version: i16, ops: i32) -> DescribedGroup {
    let mut d = DescribedGroup::default();
    d.group_id = kafka_protocol::messages::GroupId(s(&g.id));
    d.group_state = s(&g.state_name().to_lowercase());
    d.group_epoch = g.group_epoch;
    d.assignment_epoch = g.assignment_epoch;
    d.assignor_name = s(&g.assignor);
    d.authorized_operations = ops;
    d.members = g
        .members
        .values()
        .map(|m| {
            let mut x = Member::default();
            x.member_id = s(&m.member_id);
            x.instance_id = m.instance_id.as_deref().map(s);
            x.rack_id = m.rack_id.as_deref().map(s);
            x.member_epoch = m.member_epoch;
            x.client_id = s(&m.client_id);
            x.client_host = s(&m.client_host);
            x.subscribed_topic_names = m.subscribed.iter().map(|t| TopicName(s(t))).collect();
            x.subscribed_topic_regex = m.regex.as_deref().map(s);
            x.assignment = described_assignment(b, &m.assigned);
            x.target_assignment =
                described_assignment(b, &g.target.get(&m.member_id).cloned().unwrap_or_default());
            if version >= 1 {
                x.member_type = -1;
            }
            x
        })
        .collect();
    d
}

pub async fn describe(
    b: &Broker,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let ops = if req.include_authorized_operations {
        GROUP_OPS_ALL
    } else {
        OPS_NOT_REQUESTED
    };
    let mut resp = ConsumerGroupDescribeResponse::default();
    resp.groups = b.groups.read(|m| {
        req.group_ids
            .iter()
            .map(|id| match m.consumer_group(id) {
                Some(g) => describe_one(b, g, version, ops),
                None => {
                    let mut d = DescribedGroup::default();
                    d.group_id = id.clone();
                    d.authorized_operations = ops;
                    let classic = m.group(id).is_some();
                    d.error_code = codes::GROUP_ID_NOT_FOUND;
                    d.error_message = Some(s(&if classic {
                        format!("Group {} is not a consumer group.", id.as_str())
                    } else {
                        format!("Group {} not found.", id.as_str())
                    }));
                    d
                }
            })
            .collect()
    });
    resp
}
