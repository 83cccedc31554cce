//! The classic group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups and DeleteGroups. Thin: they translate wire
//! structs for `coordinator::runtime`, and leave out of each response the
//! fields its version lacks.

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Broker, Peer};
use crate::coordinator::consumer::ConsumerGroup;
use crate::coordinator::group::{Group, GroupState, JoinRequest, SyncRequest};
use crate::protocol::codes;

/// Kafka's "not requested" value for authorized-operation bitfields.
const OPS_NOT_REQUESTED: i32 = i32::MIN;
/// Every group operation (no ACLs yet): READ, DESCRIBE, DELETE.
const GROUP_OPS_ALL: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|x| x.to_string())
}

pub async fn join(
    b: &Broker,
    req: JoinGroupRequest,
    version: i16,
    peer: &Peer,
) -> JoinGroupResponse {
    let j = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: if version >= 5 {
            opt(&req.group_instance_id)
        } else {
            None
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        client_id: peer.client_id.clone(),
        client_host: peer.host.clone(),
        version,
    };
    let r = b.groups.join(&req.group_id, j, b.now_ms()).await;
    let mut resp = JoinGroupResponse::default();
    resp.error_code = r.error;
    resp.generation_id = r.generation;
    if version >= 7 {
        resp.protocol_type = r.protocol_type.as_deref().map(s);
        resp.protocol_name = r.protocol_name.as_deref().map(s);
    } else {
        // Not nullable before v7.
        resp.protocol_name = Some(s(r.protocol_name.as_deref().unwrap_or("")));
    }
    if version >= 9 {
        resp.skip_assignment = r.skip_assignment;
    }
    resp.leader = s(&r.leader);
    resp.member_id = s(&r.member_id);
    resp.members = r
        .members
        .into_iter()
        .map(|m| {
            let mut x = JoinGroupResponseMember::default();
            x.member_id = s(&m.member_id);
            if version >= 5 {
                x.group_instance_id = m.instance_id.as_deref().map(s);
            }
            x.metadata = m.metadata;
            x
        })
        .collect();
    resp
}

pub async fn sync(b: &Broker, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let r = b
        .groups
        .sync(
            &req.group_id,
            SyncRequest {
                generation: req.generation_id,
                member_id: req.member_id.to_string(),
                instance_id: if version >= 3 {
                    opt(&req.group_instance_id)
                } else {
                    None
                },
                protocol_type: if version >= 5 {
                    opt(&req.protocol_type)
                } else {
                    None
                },
                protocol_name: if version >= 5 {
                    opt(&req.protocol_name)
                } else {
                    None
                },
                assignments: req
                    .assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect(),
            },
            b.now_ms(),
        )
        .await;
    let mut resp = SyncGroupResponse::default();
    resp.error_code = r.error;
    if version >= 5 {
        resp.protocol_type = r.protocol_type.as_deref().map(s);
        resp.protocol_name = r.protocol_name.as_deref().map(s);
    }
    resp.assignment = r.assignment;
    resp
}

pub async fn heartbeat(b: &Broker, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
    let inst = if version >= 3 {
        opt(&req.group_instance_id)
    } else {
        None
    };
    let mut resp = HeartbeatResponse::default();
    resp.error_code = b.groups.heartbeat(
        &req.group_id,
        req.generation_id,
        &req.member_id,
        inst.as_deref(),
        b.now_ms(),
    );
    resp
}

pub async fn leave(b: &Broker, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let who: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let (top, each) = b.groups.leave(&req.group_id, &who, b.now_ms());
    let mut resp = LeaveGroupResponse::default();
    if version >= 3 {
        resp.error_code = top;
        resp.members = who
            .into_iter()
            .zip(each)
            .map(|((member_id, inst), code)| {
                let mut m = MemberResponse::default();
                m.member_id = s(&member_id);
                m.group_instance_id = inst.as_deref().map(s);
                m.error_code = code;
                m
            })
            .collect();
    } else {
        resp.error_code = if top != codes::NONE {
            top
        } else {
            each.first().copied().unwrap_or(codes::NONE)
        };
    }
    resp
}

fn describe_one(g: Option<&Group>, id: &GroupId, version: i16, ops: i32) -> DescribedGroup {
    let mut d = DescribedGroup::default();
    d.group_id = id.clone();
    d.authorized_operations = ops;
    let Some(g) = g.filter(|g| !g.is(GroupState::Dead)) else {
        d.group_state = s("Dead");
        if version >= 6 {
            d.error_code = codes::GROUP_ID_NOT_FOUND;
            d.error_message = Some(s(&format!("Group {} not found.", id.as_str())));
        }
        return d;
    };
    d.group_state = s(g.state.name());
    d.protocol_type = s(g.protocol_type.as_deref().unwrap_or(""));
    d.protocol_data = s(g.protocol_name.as_deref().unwrap_or(""));
    let stable = g.is(GroupState::Stable);
    let protocol = g.protocol_name.clone().unwrap_or_default();
    d.members = g
        .join_order
        .iter()
        .filter_map(|m| g.members.get(m))
        .map(|m| {
            let mut x = DescribedGroupMember::default();
            x.member_id = s(&m.member_id);
            if version >= 4 {
                x.group_instance_id = m.instance_id.as_deref().map(s);
            }
            x.client_id = s(&m.client_id);
            x.client_host = s(&m.client_host);
            // As Kafka: metadata and assignment only once the group is stable.
            if stable {
                x.member_metadata = m.metadata_for(&protocol);
                x.member_assignment = m.assignment.clone();
            } else {
                x.member_metadata = Bytes::new();
                x.member_assignment = Bytes::new();
            }
            x
        })
        .collect();
    d
}

/// A KIP-848 group seen through the classic API: its state and members,
/// without classic subscription metadata or assignments.
fn describe_consumer(g: &ConsumerGroup, version: i16, ops: i32) -> DescribedGroup {
    let mut d = DescribedGroup::default();
    d.group_id = GroupId(s(&g.id));
    d.authorized_operations = ops;
    d.group_state = s(g.state_name());
    d.protocol_type = s("consumer");
    d.protocol_data = s(&g.assignor);
    d.members = g
        .members
        .values()
        .map(|m| {
            let mut x = DescribedGroupMember::default();
            x.member_id = s(&m.member_id);
            if version >= 4 {
                x.group_instance_id = m.instance_id.as_deref().map(s);
            }
            x.client_id = s(&m.client_id);
            x.client_host = s(&m.client_host);
            x
        })
        .collect();
    d
}

pub async fn describe(
    b: &Broker,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let ops = if version >= 3 && req.include_authorized_operations {
        GROUP_OPS_ALL
    } else {
        OPS_NOT_REQUESTED
    };
    let mut resp = DescribeGroupsResponse::default();
    resp.groups = b.groups.read(|m| {
        req.groups
            .iter()
            .map(|id| match m.consumer_group(id) {
                Some(g) => describe_consumer(g, version, ops),
                None => describe_one(m.group(id), id, version, ops),
            })
            .collect()
    });
    resp
}

pub async fn list(b: &Broker, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(|x| x.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if version >= 5 {
        req.types_filter.iter().map(|x| x.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let listed = |id: &str, protocol_type: &str, state: &str, kind: &str| {
        let wanted = (states.is_empty() || states.contains(&state.to_lowercase()))
            && (types.is_empty() || types.iter().any(|t| t == kind));
        wanted.then(|| {
            let mut l = ListedGroup::default();
            l.group_id = GroupId(s(id));
            l.protocol_type = s(protocol_type);
            if version >= 4 {
                l.group_state = s(state);
            }
            if version >= 5 {
                l.group_type = s(kind);
            }
            l
        })
    };
    let mut resp = ListGroupsResponse::default();
    resp.groups = b.groups.read(|m| {
        let classic = m
            .groups()
            .filter(|g| !g.is(GroupState::Dead))
            .filter_map(|g| {
                listed(
                    &g.id,
                    g.protocol_type.as_deref().unwrap_or(""),
                    g.state.name(),
                    "classic",
                )
            });
        let consumer = m
            .consumer_groups()
            .filter_map(|g| listed(&g.id, "consumer", g.state_name(), "consumer"));
        classic.chain(consumer).collect()
    });
    resp
}

pub async fn delete(b: &Broker, req: DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
    let ids: Vec<String> = req.groups_names.iter().map(|g| g.to_string()).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let codes_out = match b
        .groups
        .write(&names, b.now_ms(), |m| m.delete_groups(&ids))
        .await
    {
        Ok(c) => c,
        Err(e) => vec![e; ids.len()],
    };
    let mut resp = DeleteGroupsResponse::default();
    resp.results = req
        .groups_names
        .into_iter()
        .zip(codes_out)
        .map(|(g, code)| {
            let mut r = DeletableGroupResult::default();
            r.group_id = g;
            r.error_code = code;
            r
        })
        .collect();
    resp
}
