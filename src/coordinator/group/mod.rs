//! A classic consumer group: its members, its generation and its state.
//!
//! The data lives here; the transitions (join, sync, heartbeat, leave,
//! timeouts) are in `classic.rs`. Nothing here reads a clock or makes an id:
//! both come in as parameters.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::records::{GroupValue, StoredMember};

pub mod classic;

pub use classic::{JoinRequest, SyncRequest};

/// Identifies a request waiting for a deferred answer (JoinGroup, SyncGroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitId(pub u64);

/// Kafka's classic group states, with their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<WaitId>,
    pub awaiting_sync: Option<WaitId>,
    /// The JoinGroup version the member last used (v9 adds skip_assignment).
    pub join_version: i16,
    pub last_heartbeat_ms: i64,
    /// Joined but has not yet completed a join: such a member expires after
    /// [`NEW_MEMBER_JOIN_TIMEOUT_MS`] even while it waits.
    pub is_new: bool,
}

/// The metadata a (name, metadata) list carries for `protocol` (empty if none).
pub fn metadata_of(protocols: &[(String, Bytes)], protocol: &str) -> Bytes {
    protocols
        .iter()
        .find(|(n, _)| n == protocol)
        .map(|(_, m)| m.clone())
        .unwrap_or_default()
}

/// Kafka's limit on how long a new member may wait in a join.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        metadata_of(&self.protocols, protocol)
    }

    fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols == other
    }
}

/// The initial-rebalance delay of a group that starts from empty
/// (`group.initial.rebalance.delay.ms`): the join waits out the delay, and
/// each time a new member arrived during it, waits once more, up to the
/// rebalance timeout.
#[derive(Debug, Clone, Copy)]
pub struct InitialDelay {
    pub delay_ms: i64,
    pub remaining_ms: i64,
    pub member_added: bool,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub state_since_ms: i64,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    /// Members by id; `join_order` remembers arrival order for leader choice.
    pub members: BTreeMap<String, Member>,
    pub join_order: Vec<String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pub pending: BTreeMap<String, i64>,
    /// group.instance.id → member id.
    pub statics: BTreeMap<String, String>,
    /// When the current join phase ends regardless of who has rejoined.
    pub join_deadline_ms: Option<i64>,
    pub initial_delay: Option<InitialDelay>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            join_order: Vec::new(),
            pending: BTreeMap::new(),
            statics: BTreeMap::new(),
            join_deadline_ms: None,
            initial_delay: None,
        }
    }

    fn transition(&mut self, to: GroupState, now_ms: i64) {
        self.state = to;
        self.state_since_ms = now_ms;
    }

    pub fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    /// Protocols every member supports (all of the first member's when alone).
    pub fn candidate_protocols(&self) -> Vec<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else {
            return Vec::new();
        };
        let mut c: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            c.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        c
    }

    /// Whether a joining member's protocols fit the group's.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(p, _)| p == c))
    }

    /// Each member votes for its first choice among the candidates; the
    /// most votes wins, ties going to the earlier candidate.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(p, _)| candidates.iter().position(|c| c == p))
            {
                if let Some(v) = votes.get_mut(i) {
                    *v += 1;
                }
            }
        }
        let best = votes.iter().max().copied()?;
        candidates
            .into_iter()
            .zip(votes)
            .find(|(_, v)| *v == best)
            .map(|(c, _)| c)
    }

    pub fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Topics the members subscribe to, when the protocol type is
    /// `consumer` and the subscriptions decode; `None` if unknown.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(protocol);
            let version = i16::from_be_bytes(meta.get(..2)?.try_into().ok()?);
            bytes::Buf::advance(&mut meta, 2);
            let sub = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }

    /// The record that stores this group (after a rebalance or on empty).
    pub fn to_value(&self) -> GroupValue {
        let protocol = self.protocol_name.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            state_ms: self.state_since_ms,
            members: self
                .join_order
                .iter()
                .filter_map(|id| self.members.get(id))
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its stored record, as Kafka loads it: with
    /// members it is Stable and their session timers start now.
    pub fn from_value(id: &str, v: GroupValue, now_ms: i64) -> Self {
        let mut g = Group::new(id, v.state_ms);
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        g.generation = v.generation;
        g.protocol_name = v.protocol;
        g.leader = v.leader;
        for m in v.members {
            if let Some(i) = &m.instance_id {
                g.statics.insert(i.clone(), m.member_id.clone());
            }
            g.join_order.push(m.member_id.clone());
            let protocols = match &g.protocol_name {
                Some(p) => vec![(p.clone(), m.subscription)],
                None => Vec::new(),
            };
            g.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    join_version: 0,
                    last_heartbeat_ms: now_ms,
                    is_new: false,
                },
            );
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g
    }
}
