//! Partition replication between brokers, Kafka's way: followers fetch
//! from the leader with real Fetch requests and append its batches as they
//! are; the leader tracks each follower's log end offset, derives the high
//! watermark from the ISR, and asks the controller (AlterPartition) to
//! shrink or grow the ISR.
//!
//! - [`state`]: [`PartitionReplicaState`], the leader's pure state machine
//!   (`on_event(event, now) -> Vec<Effect>`);
//! - [`replica`]: [`Replication`], the high watermark and state machine a
//!   hosted partition carries;
//! - [`manager`]: [`ReplicaManager`], which reacts to metadata images
//!   (lead, follow), runs the lag checks and sends ISR changes;
//! - [`fetcher`]: one task per leader broker, fetching for every partition
//!   this broker follows there;
//! - [`inter_broker`]: the leader's listener a fetcher connects to, with
//!   TLS and SASL as `inter.broker.listener.name` is configured;
//! - [`fetch_check`], [`follower`]: the leader's and the follower's
//!   decisions on a fetch, pure, shared with the simulation;
//! - `simulation` (tests): the deterministic simulation of a controller
//!   and three replicas under faults, running the code above;
//! - [`metrics`]: under-replicated partitions, ISR changes, high watermarks.

pub mod fetch_check;
mod fetcher;
pub mod follower;
mod inter_broker;
mod manager;
pub mod metrics;
mod replica;
#[cfg(test)]
mod simulation;
pub mod state;

pub use inter_broker::InterBrokerClient;
pub use manager::{ReplicaManager, ReplicaManagerHandle};
pub use replica::{AlterIsr, AlterSettlement, FetchOutcome, Replication};
pub use state::PartitionReplicaState;
