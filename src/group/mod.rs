//! The classic consumer-group coordinator (Kafka's `GroupCoordinator`).
//!
//! - `state`: one group as a pure state machine — events in, replies out;
//! - `coordinator`: the async shell that owns every group, the timers
//!   (sessions, rebalance timeouts, the initial rebalance delay), the
//!   requests parked until a rebalance completes, and the loading and
//!   unloading of `__consumer_offsets` partitions as their leadership moves;
//! - `records`: the offsets topic's records, in Kafka's schemas;
//! - `log`: the offsets topic as the coordinator reaches it ([`OffsetsLog`])
//!   and reads one partition of it;
//! - `offsets`: the committed offsets of the groups this broker coordinates,
//!   written to and loaded from their partition;
//! - `loader`: loading a partition when this broker becomes its leader;
//! - `legacy`: the per-broker offsets file of earlier versions, migrated
//!   into the topic;
//! - `ownership`: which broker coordinates a group (the leader of its
//!   `__consumer_offsets` partition); a broker keeps the state and commits
//!   of the groups it owns and answers NOT_COORDINATOR for the others.

mod coordinator;
pub mod legacy;
mod loader;
pub mod log;
pub mod offsets;
pub mod ownership;
pub mod records;
pub mod state;

pub use coordinator::{GroupCoordinator, GroupDescription, GroupListing};
pub use legacy::{LegacyOffsets, LegacyOffsetsError};
pub use log::OffsetsLog;
pub use offsets::{OffsetStore, commit_error};
pub use records::{CommittedOffset, GroupMetadata, GroupRecord};
pub use state::{
    GroupLimits, GroupState, JoinOutcome, JoinRequest, MemberRef, SyncOutcome, SyncRequest,
};
