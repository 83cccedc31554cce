//! KIP-848 consumer groups (`group.protocol=consumer`): the broker computes
//! the target assignment with a server-side assignor and walks each member
//! towards it with ConsumerGroupHeartbeat, as Kafka's
//! `CurrentAssignmentBuilder` does: a member first gives up (revokes) what
//! the target takes from it, and only then gets partitions that others
//! have released. Epochs fence stale members.
//!
//! Deterministic: the time, new member ids and the topic image are
//! parameters.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::protocol::codes::{self, ErrorCode};

pub mod assignor;

pub use assignor::{Assignment, Image};

/// Member epochs with a meaning of their own.
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberState {
    Stable,
    /// Must revoke `pending_revocation` before moving to the new epoch.
    UnrevokedPartitions,
    /// At the target epoch, but some target partitions are still owned by
    /// others.
    UnreleasedPartitions,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    pub regex: Option<String>,
    /// `subscribed` plus the existing topics `regex` matches.
    #[serde(default)]
    pub resolved: Vec<String>,
    pub assignor: Option<String>,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// Session and revocation timers restart at load; not stored.
    #[serde(skip)]
    pub last_heartbeat_ms: i64,
    #[serde(skip)]
    pub revoke_deadline_ms: Option<i64>,
    /// The assignment last sent to the client.
    #[serde(skip)]
    pub sent: Option<Assignment>,
}

/// A consumer group as stored in `__consumer_offsets` (JSON, under a
/// Fjord-specific key version), rewritten whenever it changes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    pub statics: BTreeMap<String, String>,
    pub image: Image,
    pub assignor: String,
    pub state_since_ms: i64,
    /// The last stored snapshot, to write only changes.
    #[serde(skip)]
    pub stored: Option<Vec<u8>>,
}

/// A ConsumerGroupHeartbeat, as the group sees it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Option<Vec<String>>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    pub version: i16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub error: ErrorCode,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<Assignment>,
}

impl HeartbeatResponse {
    pub fn error(error: ErrorCode, message: &str) -> Self {
        HeartbeatResponse {
            error,
            message: Some(message.to_string()),
            ..Default::default()
        }
    }
}

/// Consumer-group settings.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerLimits {
    pub session_timeout_ms: i64,
    pub max_size: usize,
}

/// A subscription regex (RE2 syntax, as Kafka's RE2J): it must match the
/// whole topic name. Linear-time matching and a size limit bound what a
/// client's pattern can cost.
fn compile(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
}

fn contains(a: &Assignment, t: &Uuid, p: i32) -> bool {
    a.get(t).is_some_and(|s| s.contains(&p))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = ps
            .iter()
            .filter(|p| !contains(b, t, **p))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let both: BTreeSet<i32> = ps.iter().filter(|p| contains(b, t, **p)).copied().collect();
        if !both.is_empty() {
            out.insert(*t, both);
        }
    }
    out
}

impl ConsumerGroup {
    pub fn new(id: &str, now_ms: i64) -> Self {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            statics: BTreeMap::new(),
            image: Image::new(),
            assignor: "uniform".into(),
            state_since_ms: now_ms,
            stored: None,
        }
    }

    /// The group's record value if it changed since it was last stored.
    pub fn snapshot_if_changed(&mut self) -> Option<Vec<u8>> {
        let now = serde_json::to_vec(&*self).ok()?;
        if self.stored.as_ref() == Some(&now) {
            return None;
        }
        self.stored = Some(now.clone());
        Some(now)
    }

    /// Rebuilds a stored group; timers restart at `now_ms`.
    pub fn restore(value: &[u8], now_ms: i64) -> Option<Self> {
        let mut g: ConsumerGroup = serde_json::from_slice(value).ok()?;
        for m in g.members.values_mut() {
            m.last_heartbeat_ms = now_ms;
            if m.state == MemberState::UnrevokedPartitions {
                m.revoke_deadline_ms =
                    Some(now_ms.saturating_add(i64::from(m.rebalance_timeout_ms)));
            }
        }
        g.stored = Some(value.to_vec());
        Some(g)
    }

    /// Kafka's consumer group states (lower case on this API).
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch != self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn bump(&mut self, now_ms: i64) {
        self.group_epoch = self.group_epoch.saturating_add(1);
        self.state_since_ms = now_ms;
    }

    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.resolved.iter().cloned())
            .collect()
    }

    /// Whether another member still holds `(t, p)`.
    fn owned_by_other(&self, me: &str, t: &Uuid, p: i32) -> bool {
        self.members.values().any(|m| {
            m.member_id != me
                && (contains(&m.assigned, t, p) || contains(&m.pending_revocation, t, p))
        })
    }

    fn remove(&mut self, id: &str, now_ms: i64) {
        if let Some(m) = self.members.remove(id) {
            if let Some(i) = &m.instance_id {
                if self.statics.get(i).map(String::as_str) == Some(id) {
                    self.statics.remove(i);
                }
            }
            self.target.remove(id);
            self.bump(now_ms);
        }
    }

    /// One ConsumerGroupHeartbeat. `full_image` maps every existing topic
    /// to its id and partition count.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        new_id: &str,
        full_image: &Image,
        limits: &ConsumerLimits,
        now_ms: i64,
    ) -> HeartbeatResponse {
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&req, now_ms);
        }
        if let Some(re) = &req.regex {
            if let Err(e) = compile(re) {
                return HeartbeatResponse::error(
                    codes::INVALID_REGULAR_EXPRESSION,
                    &format!("invalid regular expression {re}: {e}"),
                );
            }
        }
        if let Some(a) = &req.assignor {
            if !assignor::ASSIGNORS.contains(&a.as_str()) {
                return HeartbeatResponse::error(
                    codes::UNSUPPORTED_ASSIGNOR,
                    &format!("assignor {a} is not supported; use uniform or range"),
                );
            }
        }
        let id = if req.member_epoch == JOIN_EPOCH {
            match self.join(&req, new_id, limits, now_ms) {
                Ok(id) => id,
                Err(r) => return r,
            }
        } else {
            let Some(m) = self.members.get(&req.member_id) else {
                return HeartbeatResponse::error(codes::UNKNOWN_MEMBER_ID, "unknown member id");
            };
            let retry = req.member_epoch == m.previous_epoch
                && req
                    .owned
                    .as_ref()
                    .is_some_and(|o| minus(o, &m.assigned).is_empty());
            if req.member_epoch != m.member_epoch && !retry {
                return HeartbeatResponse::error(
                    codes::FENCED_MEMBER_EPOCH,
                    &format!(
                        "member epoch {} does not match {}",
                        req.member_epoch, m.member_epoch
                    ),
                );
            }
            req.member_id.clone()
        };
        let mut changed = false;
        if let Some(m) = self.members.get_mut(&id) {
            m.last_heartbeat_ms = now_ms;
            if req.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            }
            if req.rack_id.is_some() {
                m.rack_id = req.rack_id.clone();
            }
            if let Some(a) = &req.assignor {
                m.assignor = Some(a.clone());
            }
            if let Some(mut s) = req.subscribed.clone() {
                s.sort();
                s.dedup();
                if s != m.subscribed {
                    m.subscribed = s;
                    changed = true;
                }
            }
            if req.regex.is_some() && req.regex != m.regex {
                m.regex = req.regex.clone();
                changed = true;
            }
        }
        if changed {
            self.bump(now_ms);
        }
        self.refresh_image(full_image, now_ms);
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
        self.reconcile(&id, req.owned.as_ref(), now_ms);
        let full = req.member_epoch == JOIN_EPOCH || req.owned.is_some();
        let Some(m) = self.members.get_mut(&id) else {
            return HeartbeatResponse::error(codes::UNKNOWN_MEMBER_ID, "unknown member id");
        };
        let send = full || m.sent.as_ref() != Some(&m.assigned);
        if send {
            m.sent = Some(m.assigned.clone());
        }
        HeartbeatResponse {
            error: codes::NONE,
            message: None,
            member_id: id,
            member_epoch: m.member_epoch,
            assignment: send.then(|| m.assigned.clone()),
        }
    }

    fn join(
        &mut self,
        req: &HeartbeatRequest,
        new_id: &str,
        limits: &ConsumerLimits,
        now_ms: i64,
    ) -> Result<String, HeartbeatResponse> {
        if req.subscribed.is_none() && req.regex.is_none() {
            return Err(HeartbeatResponse::error(
                codes::INVALID_REQUEST,
                "SubscribedTopicNames must be set in the first request",
            ));
        }
        let id = if req.member_id.is_empty() {
            if req.version >= 1 {
                return Err(HeartbeatResponse::error(
                    codes::INVALID_REQUEST,
                    "MemberId can't be empty",
                ));
            }
            new_id.to_string()
        } else {
            req.member_id.clone()
        };
        let fresh = |assigned: Assignment, epoch: i32| ConsumerMember {
            member_id: id.clone(),
            instance_id: req.instance_id.clone(),
            rack_id: req.rack_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            member_epoch: epoch,
            previous_epoch: epoch,
            state: MemberState::Stable,
            rebalance_timeout_ms: req.rebalance_timeout_ms.max(0),
            subscribed: Vec::new(),
            regex: None,
            resolved: Vec::new(),
            assignor: None,
            assigned,
            pending_revocation: Assignment::new(),
            last_heartbeat_ms: now_ms,
            revoke_deadline_ms: None,
            sent: None,
        };
        if let Some(inst) = &req.instance_id {
            if let Some(old_id) = self.statics.get(inst).cloned() {
                let leaving = self
                    .members
                    .get(&old_id)
                    .is_some_and(|m| m.member_epoch == STATIC_LEAVE_EPOCH);
                if old_id != id && !leaving && self.members.contains_key(&old_id) {
                    return Err(HeartbeatResponse::error(
                        codes::UNRELEASED_INSTANCE_ID,
                        &format!("instance {inst} is still in use by another member"),
                    ));
                }
                // KIP-345 for KIP-848: the restarted static member takes
                // over the old one's assignment and epoch, no rebalance.
                if let Some(old) = self.members.remove(&old_id) {
                    let mut m = fresh(old.assigned, old.previous_epoch.max(0));
                    m.subscribed = old.subscribed;
                    m.assignor = old.assignor;
                    if let Some(t) = self.target.remove(&old_id) {
                        self.target.insert(id.clone(), t);
                    }
                    self.members.insert(id.clone(), m);
                    self.statics.insert(inst.clone(), id.clone());
                    return Ok(id);
                }
            }
        }
        if !self.members.contains_key(&id) && self.members.len() >= limits.max_size {
            return Err(HeartbeatResponse::error(
                codes::GROUP_MAX_SIZE_REACHED,
                "the group is full",
            ));
        }
        // A member (re)joining with epoch 0 starts from nothing.
        self.members.insert(id.clone(), fresh(Assignment::new(), 0));
        if let Some(inst) = &req.instance_id {
            self.statics.insert(inst.clone(), id.clone());
        }
        self.bump(now_ms);
        Ok(id)
    }

    fn leave(&mut self, req: &HeartbeatRequest, now_ms: i64) -> HeartbeatResponse {
        let id = match (&req.instance_id, self.members.contains_key(&req.member_id)) {
            (_, true) => req.member_id.clone(),
            (Some(inst), false) => match self.statics.get(inst) {
                Some(m) => m.clone(),
                None => {
                    return HeartbeatResponse::error(codes::UNKNOWN_MEMBER_ID, "unknown member id")
                }
            },
            (None, false) => {
                return HeartbeatResponse::error(codes::UNKNOWN_MEMBER_ID, "unknown member id")
            }
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_some() {
            // Kept, with its assignment, until its session expires or the
            // instance comes back.
            if let Some(m) = self.members.get_mut(&id) {
                m.previous_epoch = m.member_epoch;
                m.member_epoch = STATIC_LEAVE_EPOCH;
            }
        } else {
            self.remove(&id, now_ms);
        }
        HeartbeatResponse {
            error: codes::NONE,
            message: None,
            member_id: id,
            member_epoch: req.member_epoch,
            assignment: None,
        }
    }

    /// Resolves each member's subscription against the existing topics; a
    /// change in the subscribed topics or their partitions is a new group
    /// epoch.
    fn refresh_image(&mut self, full: &Image, now_ms: i64) {
        for m in self.members.values_mut() {
            let mut topics: BTreeSet<String> = m.subscribed.iter().cloned().collect();
            if let Some(re) = m.regex.as_deref().and_then(|r| compile(r).ok()) {
                topics.extend(full.keys().filter(|t| re.is_match(t)).cloned());
            }
            let topics: Vec<String> = topics.into_iter().collect();
            if topics != m.resolved {
                m.resolved = topics;
            }
        }
        let subscribed = self.subscribed_topics();
        let image: Image = full
            .iter()
            .filter(|(t, _)| subscribed.contains(*t))
            .map(|(t, v)| (t.clone(), *v))
            .collect();
        if image != self.image {
            self.image = image;
            self.bump(now_ms);
        }
    }

    fn compute_target(&mut self) {
        // The assignor most members ask for; ties to the first name.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        if let Some((a, _)) = votes
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
        {
            self.assignor = (*a).to_string();
        }
        let subs: assignor::Subscriptions = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), m.resolved.clone()))
            .collect();
        self.target = assignor::assign(&self.assignor, &subs, &self.image, &self.target);
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member towards its target (see the module doc).
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let target_epoch = self.assignment_epoch;
        let target = self.target.get(id).cloned().unwrap_or_default();
        let Some(m) = self.members.get(id) else {
            return;
        };
        let mut state = m.state;
        if state == MemberState::UnrevokedPartitions {
            let revoked = owned.is_some_and(|o| intersect(o, &m.pending_revocation).is_empty());
            if !revoked {
                return;
            }
            state = MemberState::Stable;
        }
        if m.member_epoch == target_epoch
            && state == MemberState::Stable
            && m.pending_revocation.is_empty()
        {
            if let Some(m) = self.members.get_mut(id) {
                m.state = MemberState::Stable;
            }
            return;
        }
        let kept = intersect(&m.assigned, &target);
        let revoke = minus(&m.assigned, &target);
        if !revoke.is_empty() {
            let deadline = now_ms.saturating_add(i64::from(m.rebalance_timeout_ms));
            if let Some(m) = self.members.get_mut(id) {
                m.assigned = kept;
                m.pending_revocation = revoke;
                m.state = MemberState::UnrevokedPartitions;
                m.revoke_deadline_ms = Some(deadline);
            }
            return;
        }
        let mut assigned = kept;
        for (t, ps) in minus(&target, &assigned) {
            for p in ps {
                if !self.owned_by_other(id, &t, p) {
                    assigned.entry(t).or_default().insert(p);
                }
            }
        }
        let complete = assigned == target;
        if let Some(m) = self.members.get_mut(id) {
            if m.member_epoch != target_epoch {
                m.previous_epoch = m.member_epoch;
                m.member_epoch = target_epoch;
            }
            m.assigned = assigned;
            m.pending_revocation.clear();
            m.revoke_deadline_ms = None;
            m.state = if complete {
                MemberState::Stable
            } else {
                MemberState::UnreleasedPartitions
            };
        }
    }

    /// Expires members whose session lapsed or who did not revoke in time;
    /// true if any was removed.
    pub fn tick(&mut self, limits: &ConsumerLimits, now_ms: i64) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.last_heartbeat_ms
                    .saturating_add(limits.session_timeout_ms)
                    <= now_ms
                    || m.revoke_deadline_ms.is_some_and(|d| d <= now_ms)
            })
            .map(|m| m.member_id.clone())
            .collect();
        let any = !expired.is_empty();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "consumer group member expired");
            self.remove(&id, now_ms);
        }
        any
    }
}

#[cfg(test)]
mod tests;
