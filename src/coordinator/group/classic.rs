//! The classic group protocol's transitions, as Kafka's coordinator runs
//! them: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and the timers
//! (session, rebalance, initial delay). Each takes `now_ms`, mutates the
//! group and pushes answers into [`Effects`]; none blocks or reads a clock.
//!
//! The order of checks (member, then generation, then state) follows
//! Kafka's, because clients act on the first error they see.

use bytes::Bytes;

use super::{
    metadata_of, Group, GroupState, InitialDelay, Member, WaitId, NEW_MEMBER_JOIN_TIMEOUT_MS,
};
use crate::coordinator::effects::{Effects, JoinMember, JoinResult, SyncResult};
use crate::coordinator::records::{self, Record};
use crate::protocol::codes::{self, ErrorCode};

/// A JoinGroup, as the group sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    pub version: i16,
}

/// A SyncGroup, as the group sees it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// Group limits from the broker's settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub initial_delay_ms: i64,
    pub max_size: usize,
}

impl Group {
    fn record(&self) -> Record {
        Record {
            key: records::group_key(&self.id),
            value: Some(records::group_value(&self.to_value())),
        }
    }

    /// Checks a request's member against the group: a static member's
    /// instance id must map to its member id (else it was replaced:
    /// FENCED_INSTANCE_ID), and the member must exist.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), ErrorCode> {
        if let Some(inst) = instance_id {
            match self.statics.get(inst) {
                Some(m) if m != member_id => return Err(codes::FENCED_INSTANCE_ID),
                None if self.members.contains_key(member_id) => {
                    return Err(codes::FENCED_INSTANCE_ID)
                }
                _ => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(codes::UNKNOWN_MEMBER_ID)
        }
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        wait: WaitId,
        new_id: &str,
        limits: &Limits,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        if self.is(GroupState::Dead) {
            return fx.join(
                wait,
                JoinResult::error(codes::COORDINATOR_NOT_AVAILABLE, &req.member_id),
            );
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return fx.join(
                wait,
                JoinResult::error(codes::INCONSISTENT_GROUP_PROTOCOL, &req.member_id),
            );
        }
        if req.member_id.is_empty() {
            self.join_new(req, wait, new_id, limits, now_ms, fx);
        } else {
            self.join_known(req, wait, limits, now_ms, fx);
        }
    }

    fn join_new(
        &mut self,
        req: JoinRequest,
        wait: WaitId,
        new_id: &str,
        limits: &Limits,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        if let Some(inst) = req.instance_id.clone() {
            if let Some(old_id) = self.statics.get(&inst).cloned() {
                if self.members.contains_key(&old_id) {
                    return self.replace_static(&old_id, req, wait, new_id, limits, now_ms, fx);
                }
                self.statics.remove(&inst);
            }
            if self.members.len() >= limits.max_size {
                return fx.join(wait, JoinResult::error(codes::GROUP_MAX_SIZE_REACHED, ""));
            }
            self.statics.insert(inst, new_id.to_string());
            self.add_member(new_id, req, wait, now_ms);
            return self.rebalance_or_complete(limits, now_ms, fx);
        }
        if self.members.len() + self.pending.len() >= limits.max_size {
            return fx.join(wait, JoinResult::error(codes::GROUP_MAX_SIZE_REACHED, ""));
        }
        if req.version >= 4 {
            // KIP-394: hand out an id and have the member come back with it,
            // so a client that times out does not leave a ghost member.
            self.pending.insert(
                new_id.to_string(),
                now_ms.saturating_add(i64::from(req.session_timeout_ms)),
            );
            return fx.join(wait, JoinResult::error(codes::MEMBER_ID_REQUIRED, new_id));
        }
        self.add_member(new_id, req, wait, now_ms);
        self.rebalance_or_complete(limits, now_ms, fx);
    }

    fn join_known(
        &mut self,
        req: JoinRequest,
        wait: WaitId,
        limits: &Limits,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        let id = req.member_id.clone();
        if self.pending.remove(&id).is_some() {
            self.add_member(&id, req, wait, now_ms);
            return self.rebalance_or_complete(limits, now_ms, fx);
        }
        if let Err(e) = self.check_member(&id, req.instance_id.as_deref()) {
            return fx.join(wait, JoinResult::error(e, &id));
        }
        let same = self
            .members
            .get(&id)
            .is_some_and(|m| m.same_protocols(&req.protocols));
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&id, req, wait, now_ms, fx);
                self.maybe_complete_join(now_ms, fx);
            }
            GroupState::CompletingRebalance if same => {
                // The member lost our JoinGroup answer: send it again.
                let r = self.current_join(&id, req.version, is_leader);
                fx.join(wait, r);
            }
            GroupState::Stable if same && !is_leader => {
                let r = self.current_join(&id, req.version, false);
                fx.join(wait, r);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&id, req, wait, now_ms, fx);
                self.prepare_rebalance(limits, now_ms, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                fx.join(wait, JoinResult::error(codes::UNKNOWN_MEMBER_ID, &id));
            }
        }
    }

    /// KIP-345: a static member restarting with a new member id takes over
    /// the old one's place. With the same protocols in a stable group there
    /// is no rebalance: it gets the current generation and its old
    /// assignment on SyncGroup.
    #[allow(clippy::too_many_arguments)]
    fn replace_static(
        &mut self,
        old_id: &str,
        req: JoinRequest,
        wait: WaitId,
        new_id: &str,
        limits: &Limits,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        let Some(mut m) = self.take_member(old_id, codes::FENCED_INSTANCE_ID, fx) else {
            return;
        };
        let same = m.same_protocols(&req.protocols)
            || self
                .protocol_name
                .as_deref()
                .is_some_and(|p| m.metadata_for(p) == metadata_of(&req.protocols, p));
        m.member_id = new_id.to_string();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.join_version = req.version;
        m.last_heartbeat_ms = now_ms;
        for id in self.join_order.iter_mut() {
            if id == old_id {
                *id = new_id.to_string();
            }
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_string());
        }
        if let Some(inst) = &req.instance_id {
            self.statics.insert(inst.clone(), new_id.to_string());
        }
        let is_leader = self.leader.as_deref() == Some(new_id);
        match self.state {
            GroupState::Stable if same => {
                self.members.insert(new_id.to_string(), m);
                fx.records.push(self.record());
                let mut r = self.current_join(new_id, req.version, is_leader && req.version >= 9);
                r.skip_assignment = is_leader && req.version >= 9;
                fx.join(wait, r);
            }
            _ => {
                m.protocols = req.protocols;
                m.awaiting_join = Some(wait);
                self.members.insert(new_id.to_string(), m);
                self.rebalance_or_complete(limits, now_ms, fx);
            }
        }
    }

    fn add_member(&mut self, id: &str, req: JoinRequest, wait: WaitId, now_ms: i64) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(d) = self.initial_delay.as_mut() {
            d.member_added = true;
        }
        self.join_order.push(id.to_string());
        self.members.insert(
            id.to_string(),
            Member {
                member_id: id.to_string(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                session_timeout_ms: req.session_timeout_ms,
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(wait),
                awaiting_sync: None,
                join_version: req.version,
                last_heartbeat_ms: now_ms,
                is_new: true,
            },
        );
    }

    fn update_member(
        &mut self,
        id: &str,
        req: JoinRequest,
        wait: WaitId,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if let Some(old) = m.awaiting_join.replace(wait) {
            fx.join(old, JoinResult::error(codes::REBALANCE_IN_PROGRESS, id));
        }
        m.protocols = req.protocols;
        m.protocol_type = req.protocol_type;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.join_version = req.version;
        m.last_heartbeat_ms = now_ms;
    }

    /// The JoinGroup answer of the current generation for one member.
    fn current_join(&self, id: &str, _version: i16, with_members: bool) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResult {
            error: codes::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: id.to_string(),
            members: if with_members {
                self.join_order
                    .iter()
                    .filter_map(|m| self.members.get(m))
                    .map(|m| JoinMember {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    fn rebalance_or_complete(&mut self, limits: &Limits, now_ms: i64, fx: &mut Effects) {
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, fx),
            GroupState::Dead => {}
            _ => self.prepare_rebalance(limits, now_ms, fx),
        }
    }

    /// Starts a rebalance: every member must rejoin before the deadline.
    pub fn prepare_rebalance(&mut self, limits: &Limits, now_ms: i64, fx: &mut Effects) {
        if self.is(GroupState::CompletingRebalance) {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.awaiting_sync.take() {
                    fx.sync(w, SyncResult::error(codes::REBALANCE_IN_PROGRESS));
                }
            }
        }
        let timeout = self.max_rebalance_timeout_ms();
        let initial = self.is(GroupState::Empty) && limits.initial_delay_ms > 0;
        self.transition(GroupState::PreparingRebalance, now_ms);
        if initial {
            let delay = limits.initial_delay_ms.min(timeout.max(0));
            self.initial_delay = Some(InitialDelay {
                delay_ms: limits.initial_delay_ms,
                remaining_ms: (timeout - limits.initial_delay_ms).max(0),
                member_added: false,
            });
            self.join_deadline_ms = Some(now_ms.saturating_add(delay));
        } else {
            self.initial_delay = None;
            self.join_deadline_ms = Some(now_ms.saturating_add(timeout));
            self.maybe_complete_join(now_ms, fx);
        }
    }

    /// Completes the join phase once every member has rejoined (never
    /// during the initial delay, which always runs its course).
    fn maybe_complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        if !self.is(GroupState::PreparingRebalance) || self.initial_delay.is_some() {
            return;
        }
        if self.pending.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some()) {
            self.complete_join(now_ms, fx);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the
    /// generation advances, and every waiting member gets its answer, the
    /// leader with the members' subscriptions.
    fn complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, fx);
        }
        self.join_deadline_ms = None;
        self.initial_delay = None;
        self.generation = self.generation.saturating_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.transition(GroupState::Empty, now_ms);
            fx.records.push(self.record());
            return;
        }
        self.protocol_name = self.select_protocol();
        let leader_present = self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l));
        if !leader_present {
            self.leader = self
                .join_order
                .iter()
                .find(|id| self.members.contains_key(*id))
                .cloned();
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        let order = self.join_order.clone();
        for id in &order {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let Some(m) = self.members.get_mut(id) else {
                continue;
            };
            m.is_new = false;
            m.last_heartbeat_ms = now_ms;
            let version = m.join_version;
            let Some(w) = m.awaiting_join.take() else {
                continue;
            };
            let r = self.current_join(id, version, is_leader);
            fx.join(w, r);
        }
    }

    /// Removes a member, answering its waiting requests with
    /// UNKNOWN_MEMBER_ID. The caller decides whether to rebalance.
    fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        let Some(m) = self.take_member(id, codes::UNKNOWN_MEMBER_ID, fx) else {
            return;
        };
        if let Some(inst) = &m.instance_id {
            if self.statics.get(inst).map(String::as_str) == Some(id) {
                self.statics.remove(inst);
            }
        }
        self.join_order.retain(|x| x != id);
    }

    /// Takes a member out of `members`, answering its waiting JoinGroup and
    /// SyncGroup with `code`.
    fn take_member(&mut self, id: &str, code: ErrorCode, fx: &mut Effects) -> Option<Member> {
        let mut m = self.members.remove(id)?;
        if let Some(w) = m.awaiting_join.take() {
            fx.join(w, JoinResult::error(code, id));
        }
        if let Some(w) = m.awaiting_sync.take() {
            fx.sync(w, SyncResult::error(code));
        }
        Some(m)
    }

    /// After members left or expired: rebalance, or finish the join.
    fn after_removal(&mut self, limits: &Limits, now_ms: i64, fx: &mut Effects) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(limits, now_ms, fx)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub fn sync(&mut self, req: SyncRequest, wait: WaitId, now_ms: i64, fx: &mut Effects) {
        let err = |fx: &mut Effects, e| fx.sync(wait, SyncResult::error(e));
        if self.is(GroupState::Dead) {
            return err(fx, codes::COORDINATOR_NOT_AVAILABLE);
        }
        if let Err(e) = self.check_member(&req.member_id, req.instance_id.as_deref()) {
            return err(fx, e);
        }
        if req.generation != self.generation {
            return err(fx, codes::ILLEGAL_GENERATION);
        }
        let type_ok = req
            .protocol_type
            .as_ref()
            .is_none_or(|t| self.protocol_type.as_ref() == Some(t));
        let name_ok = req
            .protocol_name
            .as_ref()
            .is_none_or(|n| self.protocol_name.as_ref() == Some(n));
        if !type_ok || !name_ok {
            return err(fx, codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => err(fx, codes::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => err(fx, codes::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let r = self.sync_result(&req.member_id);
                fx.sync(wait, r);
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.last_heartbeat_ms = now_ms;
                    if let Some(old) = m.awaiting_sync.replace(wait) {
                        fx.sync(old, SyncResult::error(codes::REBALANCE_IN_PROGRESS));
                    }
                }
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    for m in self.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    for (id, a) in req.assignments {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.assignment = a;
                        }
                    }
                    self.transition(GroupState::Stable, now_ms);
                    fx.records.push(self.record());
                    let waiting: Vec<(String, WaitId)> = self
                        .members
                        .values_mut()
                        .filter_map(|m| m.awaiting_sync.take().map(|w| (m.member_id.clone(), w)))
                        .collect();
                    for (id, w) in waiting {
                        let r = self.sync_result(&id);
                        fx.sync(w, r);
                    }
                }
            }
        }
    }

    fn sync_result(&self, id: &str) -> SyncResult {
        SyncResult {
            error: codes::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub fn heartbeat(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> ErrorCode {
        if self.is(GroupState::Dead) {
            return codes::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(e) = self.check_member(member_id, instance_id) {
            return e;
        }
        if generation != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        let state = self.state;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat_ms = now_ms;
        }
        match state {
            GroupState::Empty | GroupState::Dead => codes::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => codes::NONE,
        }
    }

    /// LeaveGroup for each (member id, instance id); one error per member.
    pub fn leave(
        &mut self,
        who: &[(String, Option<String>)],
        limits: &Limits,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Vec<ErrorCode> {
        let mut out = Vec::with_capacity(who.len().min(1024));
        let mut removed = false;
        for (member_id, instance_id) in who {
            let target = match instance_id {
                Some(inst) => match self.statics.get(inst) {
                    None => Err(codes::UNKNOWN_MEMBER_ID),
                    Some(m) if !member_id.is_empty() && m != member_id => {
                        Err(codes::FENCED_INSTANCE_ID)
                    }
                    Some(m) => Ok(m.clone()),
                },
                None if self.pending.remove(member_id).is_some() => {
                    out.push(codes::NONE);
                    continue;
                }
                None if self.members.contains_key(member_id) => Ok(member_id.clone()),
                None => Err(codes::UNKNOWN_MEMBER_ID),
            };
            match target {
                Ok(id) => {
                    self.remove_member(&id, fx);
                    removed = true;
                    out.push(codes::NONE);
                }
                Err(e) => out.push(e),
            }
        }
        if removed {
            self.after_removal(limits, now_ms, fx);
        }
        out
    }

    /// Timers: expired pending ids and sessions, and the join deadline.
    pub fn tick(&mut self, limits: &Limits, now_ms: i64, fx: &mut Effects) {
        let before = self.pending.len();
        self.pending.retain(|_, expiry| *expiry > now_ms);
        let mut changed = self.pending.len() != before;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !keep_alive(m, now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(id, fx);
            changed = true;
        }
        if changed {
            self.after_removal(limits, now_ms, fx);
        }
        if !self.is(GroupState::PreparingRebalance) {
            return;
        }
        let Some(deadline) = self.join_deadline_ms else {
            return;
        };
        if now_ms < deadline {
            return;
        }
        if let Some(d) = self.initial_delay.as_mut() {
            if d.member_added && d.remaining_ms > 0 {
                let step = d.delay_ms.min(d.remaining_ms);
                d.remaining_ms = (d.remaining_ms - d.delay_ms).max(0);
                d.member_added = false;
                self.join_deadline_ms = Some(now_ms.saturating_add(step));
                return;
            }
        }
        self.complete_join(now_ms, fx);
    }
}

/// Kafka's `shouldKeepAlive`: a member waiting in a join lives until the
/// join ends (a new one at most five minutes), one waiting for its
/// assignment lives until it comes, and the rest live by heartbeats.
fn keep_alive(m: &Member, now_ms: i64) -> bool {
    if m.awaiting_join.is_some() {
        return !m.is_new
            || m.last_heartbeat_ms
                .saturating_add(NEW_MEMBER_JOIN_TIMEOUT_MS)
                > now_ms;
    }
    if m.awaiting_sync.is_some() {
        return true;
    }
    m.last_heartbeat_ms
        .saturating_add(i64::from(m.session_timeout_ms))
        > now_ms
}
