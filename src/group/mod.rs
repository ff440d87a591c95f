//! The classic consumer-group coordinator (Kafka's `GroupCoordinator`).
//!
//! - `state`: one group as a pure state machine — events in, replies out;
//! - `coordinator`: the async shell that owns every group, the timers
//!   (sessions, rebalance timeouts, the initial rebalance delay) and the
//!   requests parked until a rebalance completes;
//! - `offsets`: the durable committed-offset store;
//! - `ownership`: which broker coordinates a group (the leader of its
//!   `__consumer_offsets` partition); a broker keeps the state and commits
//!   of the groups it owns and answers NOT_COORDINATOR for the others.

mod coordinator;
pub mod offsets;
pub mod ownership;
pub mod state;

pub use coordinator::{GroupCoordinator, GroupDescription, GroupListing, store_error};
pub use offsets::{CommittedOffset, OffsetStore, OffsetStoreError, Record};
pub use state::{
    GroupLimits, GroupState, JoinOutcome, JoinRequest, MemberRef, SyncOutcome, SyncRequest,
};
