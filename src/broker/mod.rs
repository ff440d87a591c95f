//! The broker: listeners, connections, request dispatch and handlers, and
//! the partitions it hosts.

mod access;
pub(crate) mod acks;
mod authentication;
mod blocking;
pub(crate) mod clean_shutdown;
mod cleaner;
mod connection;
mod dispatch;
mod handlers;
mod limits;
pub mod metrics;
mod offset_order;
mod offsets_log;
pub(crate) mod partition;
mod partitions;
mod producer_state;
#[cfg(test)]
mod producer_state_recovery_tests;
mod server;

use std::ops::Range;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use partitions::{Partitions, TopicPartition};
pub use server::{StartError, run};

use crate::cluster::ClusterCoordinator;
use crate::config::BrokerSettings;
use metrics::Metrics;

/// What every request handler may reach.
pub struct BrokerContext {
    pub settings: BrokerSettings,
    pub coordinator: Arc<dyn ClusterCoordinator>,
    pub partitions: Arc<Partitions>,
    /// Replication: where leaders send ISR changes and images go once the
    /// partitions match them.
    pub replicas: crate::replication::ReplicaManagerHandle,
    pub metrics: Arc<Metrics>,
    /// The consumer-group coordinator and its committed-offset store.
    pub groups: Arc<crate::group::GroupCoordinator>,
    /// The unused rest of the producer-id block this broker holds.
    pub producer_ids: Mutex<Range<i64>>,
    /// The ACL authorizer, when `authorizer.class.name` is set.
    pub authorizer: Option<Arc<crate::security::acl::Authorizer>>,
}
