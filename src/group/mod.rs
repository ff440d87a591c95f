//! The classic consumer-group coordinator (Kafka's `GroupCoordinator`).
//!
//! - `state`: one group as a pure state machine — events in, replies out;
//! - `coordinator`: the async shell that owns every group, the timers
//!   (sessions, rebalance timeouts, the initial rebalance delay) and the
//!   requests parked until a rebalance completes;
//! - `offsets`: the durable committed-offset store.
//!
//! This broker is the coordinator of every group: with one node there is
//! no partitioning of groups to decide.

mod coordinator;
pub mod offsets;
pub mod state;

pub use coordinator::{GroupCoordinator, GroupDescription, GroupListing, store_error};
pub use offsets::{CommittedOffset, OffsetStore, OffsetStoreError, Record};
pub use state::{
    GroupLimits, GroupState, JoinOutcome, JoinRequest, MemberRef, SyncOutcome, SyncRequest,
};
