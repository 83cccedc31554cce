//! The group coordinator driven step by step with explicit times: no
//! sockets, no sleeps.

use bytes::Bytes;

use super::effects::{Effects, JoinResult, Reply, SyncResult};
use super::group::classic::Limits;
use super::group::{GroupState, JoinRequest, SyncRequest, WaitId};
use super::machine::{Commit, Config, GroupCoordinator};
use super::records::OffsetValue;
use crate::protocol::codes;

fn cfg(initial_delay_ms: i64) -> Config {
    Config {
        limits: Limits {
            initial_delay_ms,
            max_size: 100,
        },
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 1_800_000,
        offsets_retention_ms: 60_000,
        offsets_retention_check_interval_ms: 1_000,
        offset_metadata_max_bytes: 4096,
        consumer: super::consumer::ConsumerLimits {
            session_timeout_ms: 45_000,
            max_size: 100,
        },
    }
}

fn req(member: &str, instance: Option<&str>, version: i16) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        instance_id: instance.map(Into::into),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        version,
    }
}

fn join_of(fx: &Effects, w: u64) -> Option<JoinResult> {
    fx.replies.iter().find_map(|(id, r)| match r {
        Reply::Join(j) if *id == WaitId(w) => Some(j.clone()),
        _ => None,
    })
}

fn sync_of(fx: &Effects, w: u64) -> Option<SyncResult> {
    fx.replies.iter().find_map(|(id, r)| match r {
        Reply::Sync(s) if *id == WaitId(w) => Some(s.clone()),
        _ => None,
    })
}

fn sync_req(gen: i32, member: &str, assign: &[(&str, &'static [u8])]) -> SyncRequest {
    SyncRequest {
        generation: gen,
        member_id: member.into(),
        instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assign
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from_static(a)))
            .collect(),
    }
}

/// One member through MEMBER_ID_REQUIRED, join and sync; returns its id.
fn stable_one(c: &mut GroupCoordinator) -> String {
    let fx = c.join("g", req("", None, 5), WaitId(1), "m1", 0);
    let r = join_of(&fx, 1).unwrap();
    assert_eq!(r.error, codes::MEMBER_ID_REQUIRED);
    assert_eq!(r.member_id, "m1");
    let fx = c.join("g", req("m1", None, 5), WaitId(2), "unused", 10);
    let r = join_of(&fx, 2).unwrap();
    assert_eq!(
        (r.error, r.generation, r.leader.as_str()),
        (codes::NONE, 1, "m1")
    );
    assert_eq!(r.members.len(), 1);
    let fx = c.sync("g", sync_req(1, "m1", &[("m1", b"A")]), WaitId(3), 20);
    assert_eq!(
        sync_of(&fx, 3).unwrap().assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(fx.records.len(), 1, "the assignment is stored");
    "m1".into()
}

#[test]
fn join_sync_and_second_member_rebalances() {
    let mut c = GroupCoordinator::new(cfg(0));
    stable_one(&mut c);
    assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
    // A second member (old version: no MEMBER_ID_REQUIRED) starts a rebalance.
    let fx = c.join("g", req("", None, 3), WaitId(4), "m2", 100);
    assert!(fx.replies.is_empty(), "waits for m1 to rejoin");
    assert_eq!(
        c.heartbeat("g", 1, "m1", None, 200),
        codes::REBALANCE_IN_PROGRESS
    );
    let fx = c.join("g", req("m1", None, 5), WaitId(5), "x", 300);
    let (a, b) = (join_of(&fx, 5).unwrap(), join_of(&fx, 4).unwrap());
    assert_eq!((a.generation, b.generation), (2, 2));
    assert_eq!(a.leader, "m1");
    assert_eq!(
        (a.members.len(), b.members.len()),
        (2, 0),
        "only the leader sees members"
    );
    // The follower's sync waits for the leader's.
    let fx = c.sync("g", sync_req(2, "m2", &[]), WaitId(6), 400);
    assert!(fx.replies.is_empty());
    assert_eq!(
        c.heartbeat("g", 1, "m1", None, 400),
        codes::ILLEGAL_GENERATION
    );
    let fx = c.sync(
        "g",
        sync_req(2, "m1", &[("m1", b"A"), ("m2", b"B")]),
        WaitId(7),
        500,
    );
    assert_eq!(
        sync_of(&fx, 6).unwrap().assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(
        sync_of(&fx, 7).unwrap().assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(c.heartbeat("g", 2, "m2", None, 600), codes::NONE);
}

#[test]
fn errors_follow_kafka() {
    let mut c = GroupCoordinator::new(cfg(0));
    assert_eq!(
        c.heartbeat("nope", 1, "m", None, 0),
        codes::UNKNOWN_MEMBER_ID
    );
    let fx = c.join("", req("", None, 5), WaitId(1), "m", 0);
    assert_eq!(join_of(&fx, 1).unwrap().error, codes::INVALID_GROUP_ID);
    let mut bad = req("", None, 5);
    bad.session_timeout_ms = 1;
    let fx = c.join("g", bad, WaitId(2), "m", 0);
    assert_eq!(
        join_of(&fx, 2).unwrap().error,
        codes::INVALID_SESSION_TIMEOUT
    );
    let fx = c.join("g", req("ghost", None, 5), WaitId(3), "m", 0);
    assert_eq!(join_of(&fx, 3).unwrap().error, codes::UNKNOWN_MEMBER_ID);
    stable_one(&mut c);
    let mut other = req("", None, 3);
    other.protocol_type = "connect".into();
    let fx = c.join("g", other, WaitId(4), "m9", 0);
    assert_eq!(
        join_of(&fx, 4).unwrap().error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    let fx = c.sync("g", sync_req(7, "m1", &[]), WaitId(5), 0);
    assert_eq!(sync_of(&fx, 5).unwrap().error, codes::ILLEGAL_GENERATION);
    let mut s = sync_req(1, "m1", &[]);
    s.protocol_name = Some("roundrobin".into());
    let fx = c.sync("g", s, WaitId(6), 0);
    assert_eq!(
        sync_of(&fx, 6).unwrap().error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    // Commits from outside the group are refused while it has members.
    assert_eq!(
        c.check_commit("g", -1, "", None, 8),
        Err(codes::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(c.check_commit("g", 1, "m1", None, 8), Ok(()));
    assert_eq!(
        c.check_commit("g", 0, "m1", None, 8),
        Err(codes::ILLEGAL_GENERATION)
    );
    assert_eq!(
        c.check_commit("new", 3, "m", None, 9),
        Err(codes::GROUP_ID_NOT_FOUND)
    );
    assert_eq!(c.check_commit("new", -1, "", None, 9), Ok(()));
    let (codes_out, _) = c.delete_groups(&["g".into(), "none".into()]);
    assert_eq!(
        codes_out,
        vec![codes::NON_EMPTY_GROUP, codes::GROUP_ID_NOT_FOUND]
    );
}

#[test]
fn session_expiry_removes_member_and_group_empties() {
    let mut c = GroupCoordinator::new(cfg(0));
    stable_one(&mut c);
    let fx = c.tick(5_000);
    assert!(fx.records.iter().all(|r| r.value.is_some()));
    assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
    let fx = c.tick(10_021);
    assert_eq!(c.group("g").unwrap().state, GroupState::Empty);
    assert_eq!(c.group("g").unwrap().generation, 2);
    assert_eq!(fx.records.len(), 1, "the empty group is stored");
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut c = GroupCoordinator::new(cfg(0));
    stable_one(&mut c);
    let fx = c.join("g", req("", None, 3), WaitId(10), "m2", 1_000);
    assert!(fx.replies.is_empty());
    // m1 keeps heartbeating but never rejoins; the deadline is 30 s.
    for t in (2_000..31_000).step_by(1_000) {
        c.heartbeat("g", 1, "m1", None, t);
        assert!(join_of(&c.tick(t), 10).is_none());
    }
    let fx = c.tick(31_000);
    let r = join_of(&fx, 10).unwrap();
    assert_eq!(
        (r.error, r.generation, r.leader.as_str()),
        (codes::NONE, 2, "m2")
    );
    assert!(!c.group("g").unwrap().members.contains_key("m1"));
}

#[test]
fn initial_delay_waits_and_extends_for_new_members() {
    let mut c = GroupCoordinator::new(cfg(3_000));
    let fx = c.join("g", req("", None, 3), WaitId(1), "m1", 0);
    assert!(fx.replies.is_empty());
    let fx = c.join("g", req("", None, 3), WaitId(2), "m2", 2_000);
    assert!(fx.replies.is_empty(), "the initial delay runs its course");
    assert!(join_of(&c.tick(2_999), 1).is_none());
    // m2 arrived during the delay: wait once more.
    assert!(join_of(&c.tick(3_000), 1).is_none());
    let fx = c.tick(6_000);
    assert_eq!(join_of(&fx, 1).unwrap().generation, 1);
    assert_eq!(join_of(&fx, 2).unwrap().generation, 1);
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let mut c = GroupCoordinator::new(cfg(0));
    let fx = c.join("g", req("", Some("i1"), 5), WaitId(1), "s1", 0);
    assert_eq!(
        join_of(&fx, 1).unwrap().generation,
        1,
        "static members skip MEMBER_ID_REQUIRED"
    );
    c.sync("g", sync_req(1, "s1", &[("s1", b"A")]), WaitId(2), 0);
    // Restart: same instance id, no member id.
    let fx = c.join("g", req("", Some("i1"), 5), WaitId(3), "s1b", 1_000);
    let r = join_of(&fx, 3).unwrap();
    assert_eq!(
        (r.error, r.generation, r.member_id.as_str()),
        (codes::NONE, 1, "s1b")
    );
    assert_eq!(fx.records.len(), 1, "the new member id is stored");
    assert_eq!(c.group("g").unwrap().state, GroupState::Stable);
    let fx = c.sync("g", sync_req(1, "s1b", &[]), WaitId(4), 1_000);
    assert_eq!(
        sync_of(&fx, 4).unwrap().assignment,
        Bytes::from_static(b"A")
    );
    // The old incarnation is fenced.
    let mut old = sync_req(1, "s1", &[]);
    old.instance_id = Some("i1".into());
    let fx = c.sync("g", old, WaitId(5), 1_000);
    assert_eq!(sync_of(&fx, 5).unwrap().error, codes::FENCED_INSTANCE_ID);
    assert_eq!(
        c.heartbeat("g", 1, "s1", Some("i1"), 1_000),
        codes::FENCED_INSTANCE_ID
    );
}

#[test]
fn leave_batched_members() {
    let mut c = GroupCoordinator::new(cfg(0));
    stable_one(&mut c);
    let (top, each, fx) = c.leave(
        "g",
        &[
            ("m1".into(), None),
            ("ghost".into(), None),
            ("".into(), Some("nope".into())),
        ],
        100,
    );
    assert_eq!(top, codes::NONE);
    assert_eq!(
        each,
        vec![
            codes::NONE,
            codes::UNKNOWN_MEMBER_ID,
            codes::UNKNOWN_MEMBER_ID
        ]
    );
    assert_eq!(c.group("g").unwrap().state, GroupState::Empty);
    assert_eq!(fx.records.len(), 1);
}

#[test]
fn replay_rebuilds_groups_and_offsets() {
    let mut c = GroupCoordinator::new(cfg(0));
    stable_one(&mut c);
    let commits = vec![Commit {
        topic: "t".into(),
        partition: 0,
        value: OffsetValue {
            offset: 5,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_ms: 30,
        },
    }];
    let mut log = Vec::new();
    // What the runtime would have written so far: the stable group...
    log.push((
        super::records::group_key("g"),
        Some(super::records::group_value(
            &c.group("g").unwrap().to_value(),
        )),
    ));
    // ...and the commit.
    for r in GroupCoordinator::commit_records("g", &commits) {
        log.push((r.key, r.value));
    }
    c.apply_commit("g", "m1", commits, 50);
    let mut d = GroupCoordinator::new(cfg(0));
    for (k, v) in &log {
        assert!(d.replay(k, v.as_deref(), 1_000));
    }
    d.finish_replay(1_000);
    let g = d.group("g").unwrap();
    assert_eq!(
        (g.state, g.generation, g.leader.as_deref()),
        (GroupState::Stable, 1, Some("m1"))
    );
    assert_eq!(d.fetch_offsets("g", None), c.fetch_offsets("g", None));
    // The member can carry on with its generation after the restart.
    assert_eq!(d.heartbeat("g", 1, "m1", None, 1_100), codes::NONE);
}

#[test]
fn offsets_of_empty_groups_expire() {
    let mut c = GroupCoordinator::new(cfg(0));
    c.apply_commit(
        "solo",
        "",
        vec![Commit {
            topic: "t".into(),
            partition: 0,
            value: OffsetValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_ms: 0,
            },
        }],
        0,
    );
    let fx = c.tick(59_000);
    assert!(fx.records.is_empty());
    let fx = c.tick(61_000);
    assert_eq!(fx.records.len(), 2, "offset tombstone and group tombstone");
    assert!(c.group("solo").is_none());
    assert!(c.fetch_offsets("solo", None).is_empty());
}
