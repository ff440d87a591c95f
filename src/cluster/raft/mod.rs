//! The replicated coordinator quorum, on openraft.
//!
//! Everything that names an openraft type lives in this module:
//! - [`TypeConfig`]: a log entry carries a [`Proposal`] (a metadata
//!   [`Command`], or the cluster id the first leader decides), the state
//!   machine answers with an [`Applied`];
//! - [`log_store`]: the raft log and vote, durable on the CRC-framed
//!   [`RecordLog`](crate::record_log::RecordLog);
//! - [`state_machine`]: today's [`MetadataImage`](super::MetadataImage)
//!   and its deterministic `apply`, with snapshots of the image for log
//!   compaction;
//! - [`network`]: raft RPCs over the coordinator's HTTP stack;
//! - [`runtime`]: tokio, with seeded election timeouts in tests;
//! - `simulation` (tests): the members on turmoil's simulated network and
//!   disk under a seeded nemesis, with a checker of raft's guarantees.
//!
//! The image keeps counting *commands*: `last_applied` is the index of the
//! last applied [`Command`], not a raft log index, so blank and membership
//! entries leave it alone, and brokers keep pulling a contiguous command log
//! by index and deriving broker epochs from it.

pub mod log_store;
pub mod network;
pub mod node;
pub mod runtime;
pub mod state_machine;

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::metadata::{ApplyOutcome, Command, Rejection};

pub use log_store::LogStore;
pub use node::{
    MembershipChange, QuorumError, QuorumStatus, RaftNode, RaftSettings, RaftStartError,
    VoterProgress,
};
pub use state_machine::{StateMachine, StateMachineHandle};

/// A raft member's id: ZooKeeper's `myid`, the `N` of `server.N`.
pub type MemberId = u64;

/// Where a member is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` of the peer listener, which serves raft RPCs.
    pub peer_address: String,
    /// `host:port` of the client listener, which brokers and tools use.
    pub client_address: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer {} client {}",
            self.peer_address, self.client_address
        )
    }
}

/// What a raft log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "proposal", rename_all = "snake_case")]
pub enum Proposal {
    /// The cluster id, decided by the first leader and committed before any
    /// command, so every member agrees on it. Later ones are ignored.
    ClusterId { cluster_id: String },
    /// A metadata command, applied as the next command index.
    Command { command: Command },
    /// The controller `member_id` is being removed from the voters; its id
    /// is never accepted again. Committed before the membership change.
    VoterRemoved { member_id: MemberId },
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClusterId { cluster_id } => write!(f, "cluster id {cluster_id}"),
            Self::Command { command } => write!(f, "{command:?}"),
            Self::VoterRemoved { member_id } => write!(f, "voter {member_id} removed"),
        }
    }
}

/// The state machine's answer to one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// A command applied at `index` (a command index, not a raft index).
    Accepted { index: u64, outcome: ApplyOutcome },
    /// A command refused by `apply`; the image is unchanged, on every member.
    Refused(Rejection),
    /// An entry that is not a command (blank, membership, cluster id).
    NotACommand,
}

openraft::declare_raft_types!(
    /// The coordinator quorum's openraft types.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = MemberId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = runtime::RaftRuntime,
);

/// The raft handle of one member.
pub type Raft = openraft::Raft<TypeConfig>;

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;
