//! What the group state machine speaks: its limits and states, the
//! requests and ticks it takes ([`Event`]), the replies it gives
//! ([`Effect`]), and the members it keeps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::group::records::GroupMetadata;

/// Identifies the request a parked reply belongs to; chosen by the shell.
pub type ReplyId = u64;

/// The limits a group enforces, from `group.*` settings.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub initial_rebalance_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// Kafka's spelling, as DescribeGroups and ListGroups report it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A JoinGroup request, decoded into what the group needs.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (protocol name, member metadata), in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member must first learn its id
    /// (MEMBER_ID_REQUIRED) and rejoin with it.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

/// Identifies a member in Heartbeat, LeaveGroup and OffsetCommit.
#[derive(Debug, Clone)]
pub struct MemberRef {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Event {
    Join(ReplyId, JoinRequest),
    Sync(ReplyId, SyncRequest),
    Heartbeat(ReplyId, MemberRef, i32),
    Leave(ReplyId, Vec<MemberRef>),
    /// Time passed: expire sessions, end rebalances that waited too long.
    Tick,
    /// The group's metadata of `generation_id` (a [`Effect::StoreGroup`])
    /// is on the offsets partition's in-sync replicas, or failed to get
    /// there with `error`.
    Stored {
        generation_id: i32,
        error: Option<ResponseError>,
    },
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncOutcome {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Join(ReplyId, JoinOutcome),
    Sync(ReplyId, SyncOutcome),
    Heartbeat(ReplyId, Option<ResponseError>),
    /// Group-level error, then (member id, instance id, error) per member.
    Leave(
        ReplyId,
        Option<ResponseError>,
        Vec<(String, Option<String>, Option<ResponseError>)>,
    ),
    /// Write the group's metadata to its offsets partition, then feed back
    /// [`Event::Stored`]. Kafka stores it when the leader's assignment
    /// arrives (the SyncGroup answers wait for it) and when a rebalance
    /// leaves the group empty.
    StoreGroup(GroupMetadata),
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub(super) join_reply: Option<ReplyId>,
    pub(super) sync_reply: Option<ReplyId>,
    pub(super) session_deadline: Instant,
    pub(super) joined_seq: u64,
}

impl Member {
    /// This member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    pub(super) fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}
