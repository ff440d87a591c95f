//! The controller's automatic preferred-leader rebalance
//! (`auto.leader.rebalance.enable`): every
//! `leader.imbalance.check.interval.seconds` the quorum leader moves
//! leadership back to the preferred replicas of each broker that others
//! lead more than `leader.imbalance.per.broker.percentage` of, as Kafka's
//! controller does after a rolling restart.

use std::sync::Arc;

use super::{Service, quorum};
use crate::config::LeaderRebalance;

pub(super) async fn rebalance_leaders(service: Arc<Service>, settings: LeaderRebalance) {
    if !settings.enabled {
        return;
    }
    let mut tick = tokio::time::interval(settings.check_interval);
    // The first tick is immediate; a cluster just started is still settling.
    tick.tick().await;
    loop {
        tick.tick().await;
        // Elections are the quorum leader's alone.
        if quorum::require_leader(&service).is_err() {
            continue;
        }
        match service
            .metadata
            .rebalance_leaders(settings.imbalance_percentage)
            .await
        {
            Ok(0) => {}
            Ok(moved) => tracing::info!(
                moved,
                "automatic rebalance: leadership moved back to preferred replicas"
            ),
            Err(error) => tracing::debug!(%error, "automatic leader rebalance not run"),
        }
    }
}
