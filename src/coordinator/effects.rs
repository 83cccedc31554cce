//! What a coordinator operation asks the runtime to do: records to append
//! to `__consumer_offsets`, and answers for waiting requests, which are sent
//! once those records are durable.

use bytes::Bytes;

use super::group::WaitId;
use super::records::Record;
use crate::protocol::codes::ErrorCode;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinMember>,
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(error: ErrorCode, member_id: &str) -> Self {
        JoinResult {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ErrorCode) -> Self {
        SyncResult {
            error,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResult),
    Sync(SyncResult),
}

#[derive(Debug, Default)]
pub struct Effects {
    pub replies: Vec<(WaitId, Reply)>,
    pub records: Vec<Record>,
}

impl Effects {
    pub fn join(&mut self, to: WaitId, r: JoinResult) {
        self.replies.push((to, Reply::Join(r)));
    }
    pub fn sync(&mut self, to: WaitId, r: SyncResult) {
        self.replies.push((to, Reply::Sync(r)));
    }
}
