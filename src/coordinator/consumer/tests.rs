use super::*;

fn limits() -> ConsumerLimits {
    ConsumerLimits {
        session_timeout_ms: 45_000,
        max_size: 100,
    }
}

fn hb(member: &str, epoch: i32, owned: Option<Assignment>) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: 30_000,
        subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
        owned,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        version: 1,
        ..Default::default()
    }
}

fn n(a: &Option<Assignment>) -> usize {
    a.as_ref()
        .map(|a| a.values().map(BTreeSet::len).sum())
        .unwrap_or(0)
}

#[test]
fn second_member_gets_partitions_after_the_first_revokes() {
    let t = Uuid::new_v4();
    let image = Image::from([("t".to_string(), (t, 4))]);
    let mut g = ConsumerGroup::new("g", 0);
    let a = g.heartbeat(hb("a", 0, None), "", &image, &limits(), 0);
    assert_eq!((a.error, n(&a.assignment)), (codes::NONE, 4));
    let ea = a.member_epoch;
    assert!(ea > 0);
    let b = g.heartbeat(hb("b", 0, None), "", &image, &limits(), 10);
    let eb = b.member_epoch;
    assert!(eb > ea);
    assert_eq!(n(&b.assignment), 0, "a still owns everything");
    assert_eq!(g.state_name(), "Reconciling");
    // a is told to keep two partitions; its epoch stays until it revokes.
    let a2 = g.heartbeat(hb("a", ea, None), "", &image, &limits(), 20);
    assert_eq!((a2.member_epoch, n(&a2.assignment)), (ea, 2));
    let owned = a2.assignment.clone();
    let a3 = g.heartbeat(hb("a", ea, owned), "", &image, &limits(), 30);
    assert_eq!(a3.member_epoch, eb);
    let b2 = g.heartbeat(
        hb("b", eb, Some(Assignment::new())),
        "",
        &image,
        &limits(),
        40,
    );
    assert_eq!(n(&b2.assignment), 2);
    assert_eq!(g.state_name(), "Stable");
    // Fencing.
    let stale = g.heartbeat(hb("b", eb + 5, None), "", &image, &limits(), 50);
    assert_eq!(stale.error, codes::FENCED_MEMBER_EPOCH);
    let unknown = g.heartbeat(hb("zz", eb, None), "", &image, &limits(), 50);
    assert_eq!(unknown.error, codes::UNKNOWN_MEMBER_ID);
    // b leaves: a gets everything back.
    let left = g.heartbeat(hb("b", LEAVE_EPOCH, None), "", &image, &limits(), 60);
    assert_eq!(left.member_epoch, LEAVE_EPOCH);
    let a4 = g.heartbeat(hb("a", eb, None), "", &image, &limits(), 70);
    assert_eq!((a4.member_epoch, n(&a4.assignment)), (eb + 1, 4));
}

#[test]
fn sessions_expire_and_bad_requests_are_refused() {
    let image = Image::from([("t".to_string(), (Uuid::new_v4(), 2))]);
    let mut g = ConsumerGroup::new("g", 0);
    let mut r = hb("", 0, None);
    let e = g.heartbeat(r.clone(), "x", &image, &limits(), 0);
    assert_eq!(e.error, codes::INVALID_REQUEST, "v1 needs a member id");
    r.member_id = "a".into();
    r.assignor = Some("sticky".into());
    let e = g.heartbeat(r.clone(), "x", &image, &limits(), 0);
    assert_eq!(e.error, codes::UNSUPPORTED_ASSIGNOR);
    r.assignor = Some("range".into());
    assert_eq!(g.heartbeat(r, "x", &image, &limits(), 0).error, codes::NONE);
    g.tick(&limits(), 44_999);
    assert_eq!(g.members.len(), 1);
    g.tick(&limits(), 45_000);
    assert!(g.members.is_empty());
    assert_eq!(g.state_name(), "Empty");
}

#[test]
fn snapshots_round_trip_and_are_written_only_on_change() {
    let image = Image::from([("t".to_string(), (Uuid::new_v4(), 3))]);
    let mut g = ConsumerGroup::new("g", 0);
    let a = g.heartbeat(hb("a", 0, None), "", &image, &limits(), 0);
    let v = g.snapshot_if_changed().expect("changed");
    assert!(g.snapshot_if_changed().is_none(), "unchanged");
    let h = g.heartbeat(hb("a", a.member_epoch, None), "", &image, &limits(), 10);
    assert_eq!(h.member_epoch, a.member_epoch);
    assert!(
        g.snapshot_if_changed().is_none(),
        "a plain heartbeat writes nothing"
    );
    let r = ConsumerGroup::restore(&v, 99).expect("decodes");
    assert_eq!(r.group_epoch, g.group_epoch);
    let m = &r.members["a"];
    assert_eq!((m.member_epoch, m.last_heartbeat_ms), (a.member_epoch, 99));
    assert_eq!(m.assigned, g.members["a"].assigned);
    assert!(ConsumerGroup::restore(b"{not json", 0).is_none());
}

#[test]
fn regex_subscriptions_match_whole_names_and_follow_new_topics() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut image = Image::from([
        ("top-1".to_string(), (a, 2)),
        ("other".to_string(), (Uuid::new_v4(), 2)),
        ("xtop-1".to_string(), (Uuid::new_v4(), 2)),
    ]);
    let mut g = ConsumerGroup::new("g", 0);
    let mut r = hb("a", 0, None);
    r.subscribed = None;
    r.regex = Some("top-.*".into());
    let first = g.heartbeat(r.clone(), "", &image, &limits(), 0);
    assert_eq!(
        first
            .assignment
            .as_ref()
            .map(|x| x.keys().copied().collect::<Vec<_>>()),
        Some(vec![a])
    );
    image.insert("top-2".to_string(), (b, 1));
    let next = g.heartbeat(hb("a", first.member_epoch, None), "", &image, &limits(), 10);
    assert!(
        next.member_epoch > first.member_epoch,
        "a new matching topic is a new epoch"
    );
    assert_eq!(n(&next.assignment), 3);
    r.member_id = "b".into();
    r.regex = Some("(unclosed".into());
    let bad = g.heartbeat(r, "", &image, &limits(), 20);
    assert_eq!(bad.error, codes::INVALID_REGULAR_EXPRESSION);
}
