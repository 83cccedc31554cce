//! Every advertised version of every group API, end to end through
//! `handle`: requests encoded as a client encodes them, responses decoded
//! as a client decodes them. Guards the version-gated fields of responses
//! (a field set in a version that lacks it fails to encode and would close
//! the client's connection).

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{handle, lookup, Outcome};
use crate::config::Settings;
use crate::protocol::codes;

pub(super) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub(super) async fn call<Req: Encodable, Resp: Decodable>(
    b: &super::Broker,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(s("versions")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let Outcome::Respond(chunks) = handle(b, "/127.0.0.1", buf.freeze()).await else {
        panic!("{key:?} v{version}: no response");
    };
    let mut all = BytesMut::new();
    for c in chunks {
        all.extend_from_slice(&c);
    }
    let mut body: Bytes = all.freeze();
    body.advance(4);
    ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    let r = Resp::decode(&mut body, version).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
    assert!(!body.has_remaining(), "{key:?} v{version}: trailing bytes");
    r
}

pub(super) fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let a = lookup(key as i16).unwrap();
    a.min..=a.max
}

/// Joins `group` at JoinGroup `v` (through MEMBER_ID_REQUIRED from v4) and
/// syncs; returns (member id, generation).
async fn join_and_sync(b: &super::Broker, group: &str, v: i16) -> (String, i32) {
    let mut member = String::new();
    for _ in 0..2 {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(&member))
            .with_protocol_type(s("sr"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(s("v0"))
            .with_metadata(Bytes::from_static(b"opaque-metadata"))]);
        let r: JoinGroupResponse = call(b, ApiKey::JoinGroup, v, &req).await;
        member = r.member_id.to_string();
        if r.error_code == codes::MEMBER_ID_REQUIRED {
            assert!(v >= 4);
            continue;
        }
        assert_eq!(r.error_code, codes::NONE, "JoinGroup v{v}");
        assert_eq!(r.members.len(), 1, "the leader sees itself");
        assert_eq!(
            r.members[0].metadata,
            Bytes::from_static(b"opaque-metadata")
        );
        let sv = v.min(5);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(r.generation_id)
            .with_member_id(s(&member))
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from_static(b"opaque-assignment")),
            ]);
        if sv >= 5 {
            sync = sync
                .with_protocol_type(Some(s("sr")))
                .with_protocol_name(Some(s("v0")));
        }
        let sr: SyncGroupResponse = call(b, ApiKey::SyncGroup, sv, &sync).await;
        assert_eq!(sr.error_code, codes::NONE, "SyncGroup v{sv}");
        assert_eq!(
            sr.assignment,
            Bytes::from_static(b"opaque-assignment"),
            "passed through"
        );
        return (member, r.generation_id);
    }
    panic!("JoinGroup v{v} never completed");
}

#[tokio::test]
async fn every_group_api_version_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_dir(dir.path().to_path_buf());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.group_initial_rebalance_delay_ms = 0;
    let running = crate::runtime::start(settings).await.unwrap();
    let b = &running.broker;
    b.log
        .create_topic("gv", 2, Default::default(), false, 0)
        .await
        .unwrap();
    for v in versions(ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req.coordinator_keys = vec![s("g")];
        } else {
            req.key = s("g");
        }
        let r: FindCoordinatorResponse = call(b, ApiKey::FindCoordinator, v, &req).await;
        let code = if v >= 4 {
            r.coordinators[0].error_code
        } else {
            r.error_code
        };
        assert_eq!(code, codes::NONE, "FindCoordinator v{v}");
    }
    for v in versions(ApiKey::JoinGroup) {
        let group = format!("g{v}");
        let (member, generation) = join_and_sync(b, &group, v).await;
        let hv = v.min(4);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(generation)
            .with_member_id(s(&member));
        let r: HeartbeatResponse = call(b, ApiKey::Heartbeat, hv, &hb).await;
        assert_eq!(r.error_code, codes::NONE, "Heartbeat v{hv}");
        let lv = v.min(5);
        let mut leave = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
        if lv >= 3 {
            leave.members =
                vec![leave_group_request::MemberIdentity::default().with_member_id(s(&member))];
        } else {
            leave.member_id = s(&member);
        }
        let r: LeaveGroupResponse = call(b, ApiKey::LeaveGroup, lv, &leave).await;
        assert_eq!(r.error_code, codes::NONE, "LeaveGroup v{lv}");
    }
    // Offsets: commit at every version from outside the (now empty) group.
    for v in versions(ApiKey::OffsetCommit) {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g0")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("gv")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(i64::from(v))
                            .with_committed_metadata(Some(s("meta"))),
                    ]),
            ]);
        let r: OffsetCommitResponse = call(b, ApiKey::OffsetCommit, v, &req).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            codes::NONE,
            "OffsetCommit v{v}"
        );
    }
    for v in versions(ApiKey::OffsetFetch) {
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            req.groups = vec![offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g0")))
                .with_topics(None)];
        } else {
            req.group_id = GroupId(s("g0"));
            req.topics = Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("gv")))
                    .with_partition_indexes(vec![1]),
            ]);
        }
        let r: OffsetFetchResponse = call(b, ApiKey::OffsetFetch, v, &req).await;
        let (offset, meta) = if v >= 8 {
            let p = &r.groups[0].topics[0].partitions[0];
            (p.committed_offset, p.metadata.clone())
        } else {
            let p = &r.topics[0].partitions[0];
            (p.committed_offset, p.metadata.clone())
        };
        assert_eq!(offset, 9, "OffsetFetch v{v} reads the last commit");
        assert_eq!(meta.as_deref(), Some("meta"));
    }
    for v in versions(ApiKey::DescribeGroups) {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("g1")), GroupId(s("nope"))]);
        let r: DescribeGroupsResponse = call(b, ApiKey::DescribeGroups, v, &req).await;
        assert_eq!(
            r.groups[0].group_state.as_str(),
            "Empty",
            "DescribeGroups v{v}"
        );
        assert_eq!(r.groups[0].protocol_type.as_str(), "sr");
    }
    for v in versions(ApiKey::ListGroups) {
        let r: ListGroupsResponse =
            call(b, ApiKey::ListGroups, v, &ListGroupsRequest::default()).await;
        assert!(r.groups.len() >= 10, "ListGroups v{v}: {}", r.groups.len());
    }
    let r: OffsetDeleteResponse = call(
        b,
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g0")))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("gv")))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(1),
                    ]),
            ]),
    )
    .await;
    assert_eq!(r.error_code, codes::NONE);
    assert_eq!(r.topics[0].partitions[0].error_code, codes::NONE);
    for v in versions(ApiKey::DeleteGroups) {
        let req =
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&format!("g{v}")))]);
        let r: DeleteGroupsResponse = call(b, ApiKey::DeleteGroups, v, &req).await;
        assert_eq!(r.results[0].error_code, codes::NONE, "DeleteGroups v{v}");
    }
    for v in versions(ApiKey::ConsumerGroupHeartbeat) {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&format!("cg{v}"))))
            .with_member_id(s(&format!("m{v}")))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("gv"))]))
            .with_topic_partitions(Some(vec![]));
        let r: ConsumerGroupHeartbeatResponse =
            call(b, ApiKey::ConsumerGroupHeartbeat, v, &req).await;
        assert_eq!(
            r.error_code,
            codes::NONE,
            "ConsumerGroupHeartbeat v{v}: {:?}",
            r.error_message
        );
        assert!(r.member_epoch > 0);
        let parts: usize = r
            .assignment
            .map(|a| a.topic_partitions.iter().map(|t| t.partitions.len()).sum())
            .unwrap_or(0);
        assert_eq!(parts, 2, "the only member gets both partitions");
    }
    for v in versions(ApiKey::ConsumerGroupDescribe) {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(s("cg0")), GroupId(s("nope"))]);
        let r: ConsumerGroupDescribeResponse =
            call(b, ApiKey::ConsumerGroupDescribe, v, &req).await;
        assert_eq!(r.groups[0].error_code, codes::NONE);
        assert_eq!(r.groups[0].members.len(), 1);
        assert_eq!(
            r.groups[0].members[0].assignment.topic_partitions[0]
                .topic_name
                .as_str(),
            "gv"
        );
        assert_eq!(r.groups[1].error_code, codes::GROUP_ID_NOT_FOUND);
    }
    running.shutdown().await.unwrap();
}
