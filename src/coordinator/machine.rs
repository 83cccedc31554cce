//! The group coordinator as one deterministic state machine: every group
//! and every committed offset, changed only by operations that take the
//! time (and any new member id) as parameters and return [`Effects`].
//!
//! Invariant: the in-memory state equals the replay of the records the
//! runtime appended to `__consumer_offsets`, except for what Kafka also
//! keeps only in memory (join/sync waiters, heartbeats, pending ids).

use std::collections::BTreeMap;

use super::consumer::{ConsumerGroup, ConsumerLimits, HeartbeatRequest, HeartbeatResponse, Image};
use super::effects::{Effects, JoinResult, SyncResult};
use super::group::classic::Limits;
use super::group::{Group, GroupState, JoinRequest, SyncRequest, WaitId};
use super::records::{self, Key, OffsetValue, Record};
use crate::protocol::codes::{self, ErrorCode};

/// Broker settings the coordinator enforces.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub limits: Limits,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
    pub consumer: ConsumerLimits,
}

/// (topic, partition)
pub type TopicPartition = (String, i32);

/// (topic, partition, error) of one partition in a response.
pub type PartitionError = (String, i32, ErrorCode);

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct Commit {
    pub topic: String,
    pub partition: i32,
    pub value: OffsetValue,
}

pub struct GroupCoordinator {
    cfg: Config,
    groups: BTreeMap<String, Group>,
    /// KIP-848 groups; an id names a classic or a consumer group, not both.
    consumer: BTreeMap<String, ConsumerGroup>,
    offsets: BTreeMap<String, BTreeMap<TopicPartition, OffsetValue>>,
    next_expiry_check_ms: i64,
}

impl GroupCoordinator {
    pub fn new(cfg: Config) -> Self {
        GroupCoordinator {
            cfg,
            groups: BTreeMap::new(),
            consumer: BTreeMap::new(),
            offsets: BTreeMap::new(),
            next_expiry_check_ms: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn consumer_group(&self, id: &str) -> Option<&ConsumerGroup> {
        self.consumer.get(id)
    }

    pub fn consumer_groups(&self) -> impl Iterator<Item = &ConsumerGroup> {
        self.consumer.values()
    }

    /// ConsumerGroupHeartbeat (KIP-848). An empty classic group of the
    /// same id (one that only holds offsets) becomes a consumer group; a
    /// classic group with members keeps its id.
    pub fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        req: HeartbeatRequest,
        new_id: &str,
        image: &Image,
        now_ms: i64,
    ) -> (HeartbeatResponse, Effects) {
        let mut fx = Effects::default();
        let r = self.consumer_heartbeat_inner(group_id, req, new_id, image, now_ms);
        if let Some(g) = self.consumer.get_mut(group_id) {
            if let Some(v) = g.snapshot_if_changed() {
                fx.records.push(Record {
                    key: records::consumer_group_key(group_id),
                    value: Some(v.into()),
                });
            }
        }
        (r, fx)
    }

    fn consumer_heartbeat_inner(
        &mut self,
        group_id: &str,
        req: HeartbeatRequest,
        new_id: &str,
        image: &Image,
        now_ms: i64,
    ) -> HeartbeatResponse {
        if group_id.is_empty() {
            return HeartbeatResponse::error(codes::INVALID_REQUEST, "GroupId can't be empty");
        }
        if let Some(g) = self.groups.get(group_id) {
            if !g.members.is_empty() {
                return HeartbeatResponse::error(
                    codes::GROUP_ID_NOT_FOUND,
                    &format!("Group {group_id} is not a consumer group"),
                );
            }
            self.groups.remove(group_id);
        }
        let limits = self.cfg.consumer;
        let leaving = req.member_epoch < 0;
        let g = match self.consumer.get_mut(group_id) {
            Some(g) => g,
            None if leaving => {
                return HeartbeatResponse::error(codes::UNKNOWN_MEMBER_ID, "unknown member id")
            }
            None => self
                .consumer
                .entry(group_id.to_string())
                .or_insert_with(|| ConsumerGroup::new(group_id, now_ms)),
        };
        g.heartbeat(req, new_id, image, &limits, now_ms)
    }

    pub fn join(
        &mut self,
        group_id: &str,
        req: JoinRequest,
        wait: WaitId,
        new_id: &str,
        now_ms: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        let fail = |fx: &mut Effects, e| fx.join(wait, JoinResult::error(e, &req.member_id));
        if group_id.is_empty() {
            fail(&mut fx, codes::INVALID_GROUP_ID);
            return fx;
        }
        if !(self.cfg.min_session_timeout_ms..=self.cfg.max_session_timeout_ms)
            .contains(&req.session_timeout_ms)
        {
            fail(&mut fx, codes::INVALID_SESSION_TIMEOUT);
            return fx;
        }
        if self.consumer.contains_key(group_id) {
            fail(&mut fx, codes::INCONSISTENT_GROUP_PROTOCOL);
            return fx;
        }
        if !self.groups.contains_key(group_id) {
            if !req.member_id.is_empty() {
                fail(&mut fx, codes::UNKNOWN_MEMBER_ID);
                return fx;
            }
            self.groups
                .insert(group_id.to_string(), Group::new(group_id, now_ms));
        }
        let limits = self.cfg.limits;
        if let Some(g) = self.groups.get_mut(group_id) {
            g.join(req, wait, new_id, &limits, now_ms, &mut fx);
        }
        fx
    }

    pub fn sync(&mut self, group_id: &str, req: SyncRequest, wait: WaitId, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        match self.groups.get_mut(group_id) {
            _ if group_id.is_empty() => fx.sync(wait, SyncResult::error(codes::INVALID_GROUP_ID)),
            None => fx.sync(wait, SyncResult::error(codes::UNKNOWN_MEMBER_ID)),
            Some(g) => g.sync(req, wait, now_ms, &mut fx),
        }
        fx
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> ErrorCode {
        match self.groups.get_mut(group_id) {
            _ if group_id.is_empty() => codes::INVALID_GROUP_ID,
            None => codes::UNKNOWN_MEMBER_ID,
            Some(g) => g.heartbeat(generation, member_id, instance_id, now_ms),
        }
    }

    /// LeaveGroup: the top-level error, then one per member.
    pub fn leave(
        &mut self,
        group_id: &str,
        who: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (ErrorCode, Vec<ErrorCode>, Effects) {
        let mut fx = Effects::default();
        let limits = self.cfg.limits;
        match self.groups.get_mut(group_id) {
            _ if group_id.is_empty() => (codes::INVALID_GROUP_ID, Vec::new(), fx),
            None => (codes::UNKNOWN_MEMBER_ID, Vec::new(), fx),
            Some(g) => {
                let errs = g.leave(who, &limits, now_ms, &mut fx);
                (codes::NONE, errs, fx)
            }
        }
    }

    /// Timers of every group, and offset expiry when it is due.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let limits = self.cfg.limits;
        for g in self.groups.values_mut() {
            g.tick(&limits, now_ms, &mut fx);
        }
        let climits = self.cfg.consumer;
        for g in self.consumer.values_mut() {
            if g.tick(&climits, now_ms) {
                push_snapshot(g, &mut fx);
            }
        }
        if now_ms >= self.next_expiry_check_ms {
            self.next_expiry_check_ms =
                now_ms.saturating_add(self.cfg.offsets_retention_check_interval_ms);
            self.expire_offsets(now_ms, &mut fx);
        }
        fx
    }

    /// The timers of the named groups only (before an operation that
    /// depends on who is still a member).
    pub fn tick_groups(&mut self, ids: &[&str], now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let (limits, climits) = (self.cfg.limits, self.cfg.consumer);
        for id in ids {
            if let Some(g) = self.groups.get_mut(*id) {
                g.tick(&limits, now_ms, &mut fx);
            }
            if let Some(g) = self.consumer.get_mut(*id) {
                if g.tick(&climits, now_ms) {
                    push_snapshot(g, &mut fx);
                }
            }
        }
        fx
    }

    /// Checks an OffsetCommit against the group, as Kafka's
    /// `validateOffsetCommit`: generation -1 with no member id is a commit
    /// from outside the group (an admin tool or a manually assigned
    /// consumer) and is accepted only while the group has no members.
    pub fn check_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        version: i16,
    ) -> Result<(), ErrorCode> {
        if group_id.is_empty() {
            return Err(codes::INVALID_GROUP_ID);
        }
        if let Some(cg) = self.consumer.get(group_id) {
            return check_consumer_commit(cg, generation, member_id, version);
        }
        let Some(g) = self.groups.get(group_id) else {
            return if generation < 0 {
                Ok(())
            } else if version >= 9 {
                Err(codes::GROUP_ID_NOT_FOUND)
            } else {
                Err(codes::ILLEGAL_GENERATION)
            };
        };
        if g.is(GroupState::Dead) {
            return Err(codes::COORDINATOR_NOT_AVAILABLE);
        }
        if generation < 0 && g.is(GroupState::Empty) {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Some(inst) = instance_id {
                if g.statics.get(inst).is_some_and(|m| m != member_id) {
                    return Err(codes::FENCED_INSTANCE_ID);
                }
            }
            if !g.members.contains_key(member_id) {
                return Err(codes::UNKNOWN_MEMBER_ID);
            }
            if generation != g.generation {
                return Err(codes::ILLEGAL_GENERATION);
            }
        } else if !g.is(GroupState::Empty) {
            return Err(codes::UNKNOWN_MEMBER_ID);
        }
        if g.is(GroupState::CompletingRebalance) {
            return Err(codes::REBALANCE_IN_PROGRESS);
        }
        Ok(())
    }

    pub fn commit_records(group_id: &str, commits: &[Commit]) -> Vec<Record> {
        commits
            .iter()
            .map(|c| Record {
                key: records::offset_key(group_id, &c.topic, c.partition),
                value: Some(records::offset_value(&c.value)),
            })
            .collect()
    }

    /// Applies commits whose records are written. A commit from a member
    /// counts as its heartbeat, as in Kafka.
    pub fn apply_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        commits: Vec<Commit>,
        now_ms: i64,
    ) {
        if let Some(g) = self.consumer.get_mut(group_id) {
            if let Some(m) = g.members.get_mut(member_id) {
                m.last_heartbeat_ms = now_ms;
            }
        } else {
            let g = self
                .groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, now_ms));
            if let Some(m) = g.members.get_mut(member_id) {
                m.last_heartbeat_ms = now_ms;
            }
        }
        let offsets = self.offsets.entry(group_id.to_string()).or_default();
        for c in commits {
            offsets.insert((c.topic, c.partition), c.value);
        }
    }

    /// Every committed offset, as (group, topic, partition, offset), for
    /// the lag metrics.
    pub fn committed_offsets(&self) -> impl Iterator<Item = (&str, &str, i32, i64)> {
        self.offsets.iter().flat_map(|(g, m)| {
            m.iter()
                .map(move |((t, p), v)| (g.as_str(), t.as_str(), *p, v.offset))
        })
    }

    /// Committed offsets of a group: the listed partitions (absent ones as
    /// `None`), or every committed one when `topics` is `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let committed = self.offsets.get(group_id);
        match topics {
            None => committed
                .map(|m| {
                    m.iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
            Some(list) => list
                .iter()
                .flat_map(|(t, parts)| {
                    parts.iter().map(move |p| {
                        let v = committed.and_then(|m| m.get(&(t.clone(), *p))).cloned();
                        (t.clone(), *p, v)
                    })
                })
                .collect(),
        }
    }

    /// DeleteGroups: only groups without members; offsets go with them.
    pub fn delete_groups(&mut self, ids: &[String]) -> (Vec<ErrorCode>, Effects) {
        let mut fx = Effects::default();
        let mut out = Vec::with_capacity(ids.len().min(1024));
        for id in ids {
            if let Some(cg) = self.consumer.get(id) {
                let code = if cg.members.is_empty() {
                    self.consumer.remove(id);
                    fx.records.push(Record {
                        key: records::consumer_group_key(id),
                        value: None,
                    });
                    self.remove_group(id, &mut fx);
                    codes::NONE
                } else {
                    codes::NON_EMPTY_GROUP
                };
                out.push(code);
                continue;
            }
            let code = match self.groups.get(id) {
                _ if id.is_empty() => codes::INVALID_GROUP_ID,
                None => codes::GROUP_ID_NOT_FOUND,
                Some(g) if g.is(GroupState::Dead) => codes::GROUP_ID_NOT_FOUND,
                Some(g) if !g.is(GroupState::Empty) => codes::NON_EMPTY_GROUP,
                Some(_) => {
                    self.remove_group(id, &mut fx);
                    codes::NONE
                }
            };
            out.push(code);
        }
        (out, fx)
    }

    fn remove_group(&mut self, id: &str, fx: &mut Effects) {
        if let Some(offsets) = self.offsets.remove(id) {
            for (t, p) in offsets.keys() {
                fx.records.push(Record {
                    key: records::offset_key(id, t, *p),
                    value: None,
                });
            }
        }
        self.groups.remove(id);
        fx.records.push(Record {
            key: records::group_key(id),
            value: None,
        });
    }

    /// OffsetDelete (KIP-496): refused for topics an active consumer group
    /// subscribes to; a non-consumer group must be empty.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<(Vec<PartitionError>, Effects), ErrorCode> {
        let subscribed = if let Some(cg) = self.consumer.get(group_id) {
            cg.subscribed_topics().into_iter().collect()
        } else if let Some(g) = self.groups.get(group_id) {
            if g.is(GroupState::Empty) {
                Vec::new()
            } else {
                match g.subscribed_topics() {
                    Some(t) => t,
                    None => return Err(codes::NON_EMPTY_GROUP),
                }
            }
        } else {
            return Err(codes::GROUP_ID_NOT_FOUND);
        };
        let mut fx = Effects::default();
        let mut out = Vec::new();
        let offsets = self.offsets.entry(group_id.to_string()).or_default();
        for (t, parts) in topics {
            for p in parts {
                if subscribed.contains(t) {
                    out.push((t.clone(), *p, codes::GROUP_SUBSCRIBED_TO_TOPIC));
                    continue;
                }
                if offsets.remove(&(t.clone(), *p)).is_some() {
                    fx.records.push(Record {
                        key: records::offset_key(group_id, t, *p),
                        value: None,
                    });
                }
                out.push((t.clone(), *p, codes::NONE));
            }
        }
        Ok((out, fx))
    }

    /// Offsets of groups without members expire `offsets.retention.ms`
    /// after the group became empty (after the commit, for groups that
    /// never had members); an empty group left with no offsets is removed.
    fn expire_offsets(&mut self, now_ms: i64, fx: &mut Effects) {
        let retention = self.cfg.offsets_retention_ms;
        let mut drop_groups = Vec::new();
        for (gid, offsets) in self.offsets.iter_mut() {
            if self
                .consumer
                .get(gid)
                .is_some_and(|g| !g.members.is_empty())
            {
                continue;
            }
            let group = self.groups.get(gid);
            if group.is_some_and(|g| !g.is(GroupState::Empty)) {
                continue;
            }
            let since = group
                .filter(|g| g.protocol_type.is_some())
                .map(|g| g.state_since_ms)
                .or_else(|| self.consumer.get(gid).map(|g| g.state_since_ms));
            offsets.retain(|(t, p), v| {
                let base = since.unwrap_or(v.commit_ms);
                let keep = base.saturating_add(retention) > now_ms;
                if !keep {
                    fx.records.push(Record {
                        key: records::offset_key(gid, t, *p),
                        value: None,
                    });
                }
                keep
            });
            if offsets.is_empty() {
                drop_groups.push(gid.clone());
            }
        }
        for gid in drop_groups {
            self.offsets.remove(&gid);
            if self
                .consumer
                .get(&gid)
                .is_some_and(|g| g.members.is_empty())
            {
                self.consumer.remove(&gid);
                fx.records.push(Record {
                    key: records::consumer_group_key(&gid),
                    value: None,
                });
            }
            if self
                .groups
                .get(&gid)
                .is_some_and(|g| g.is(GroupState::Empty))
            {
                self.remove_group(&gid, fx);
            }
        }
    }

    /// Applies one stored record at start-up.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>, now_ms: i64) -> bool {
        let Some(k) = records::decode_key(key) else {
            return false;
        };
        match (k, value) {
            (
                Key::Offset {
                    group,
                    topic,
                    partition,
                },
                Some(v),
            ) => {
                let Some(v) = records::decode_offset(v) else {
                    return false;
                };
                self.offsets
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), v);
            }
            (
                Key::Offset {
                    group,
                    topic,
                    partition,
                },
                None,
            ) => {
                if let Some(m) = self.offsets.get_mut(&group) {
                    m.remove(&(topic, partition));
                }
            }
            (Key::Group(id), Some(v)) => {
                let Some(v) = records::decode_group(v) else {
                    return false;
                };
                self.groups
                    .insert(id.clone(), Group::from_value(&id, v, now_ms));
            }
            (Key::Group(id), None) => {
                self.groups.remove(&id);
            }
            (Key::ConsumerGroup(id), Some(v)) => {
                let Some(g) = ConsumerGroup::restore(v, now_ms) else {
                    return false;
                };
                self.consumer.insert(id, g);
            }
            (Key::ConsumerGroup(id), None) => {
                self.consumer.remove(&id);
            }
        }
        true
    }

    /// After replay: groups known only by their offsets exist, empty.
    pub fn finish_replay(&mut self, now_ms: i64) {
        self.offsets.retain(|_, m| !m.is_empty());
        for gid in self.offsets.keys() {
            if !self.groups.contains_key(gid) && !self.consumer.contains_key(gid) {
                self.groups.insert(gid.clone(), Group::new(gid, now_ms));
            }
        }
    }
}

fn push_snapshot(g: &mut ConsumerGroup, fx: &mut Effects) {
    if let Some(v) = g.snapshot_if_changed() {
        fx.records.push(Record {
            key: records::consumer_group_key(&g.id),
            value: Some(v.into()),
        });
    }
}

/// OffsetCommit against a KIP-848 group: from outside the group only while
/// it is empty; from a member only with its current epoch (v9+).
fn check_consumer_commit(
    g: &ConsumerGroup,
    epoch: i32,
    member_id: &str,
    version: i16,
) -> Result<(), ErrorCode> {
    if epoch < 0 && member_id.is_empty() {
        return if g.members.is_empty() {
            Ok(())
        } else {
            Err(codes::UNKNOWN_MEMBER_ID)
        };
    }
    let m = g.members.get(member_id).ok_or(codes::UNKNOWN_MEMBER_ID)?;
    if version < 9 {
        return Err(codes::UNSUPPORTED_VERSION);
    }
    if epoch != m.member_epoch {
        return Err(codes::STALE_MEMBER_EPOCH);
    }
    Ok(())
}
