//! Partition reassignment (KIP-455), as KRaft's controller does it.
//!
//! Starting a move to `target` makes the replicas `target` followed by the
//! current replicas it drops, with `adding_replicas` = target − current and
//! `removing_replicas` = current − target: the new brokers open the
//! partition empty and fetch from the leader like any follower. When the
//! ISR holds every adding replica, the same change completes the move:
//! replicas = target (its first is the preferred leader), the removing
//! replicas leave the ISR, and if the leader was one of them the first
//! live target replica in the ISR leads (leader epoch +1). Cancelling
//! drops the adding replicas and keeps the rest, as Kafka reverts.
//!
//! Everything here is a function of the image and the command, so it runs
//! inside `apply`; the completion check runs on every `PartitionChange`
//! (AlterPartition) that changes the ISR.

use uuid::Uuid;

use super::{ApplyOutcome, BrokerState, MetadataImage, PartitionState, partition_by_id_mut};
use crate::cluster::code::{KafkaCode, Rejection, rejected};

impl MetadataImage {
    /// Starts moving `topic_id`-`partition` to `target` or, with `None`,
    /// cancels the move in progress.
    pub(super) fn reassign_partition(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        target: Option<&[i32]>,
    ) -> Result<ApplyOutcome, Rejection> {
        if let Some(target) = target {
            self.check_reassignment_target(target)?;
        }
        let brokers = &self.brokers;
        let is_available = |id: &i32| brokers.get(id).is_some_and(BrokerState::is_available);
        let state = partition_by_id_mut(
            &mut self.topics,
            &self.topic_names_by_id,
            topic_id,
            partition,
        );
        let Some(state) = state else {
            return rejected(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unable to find partition {partition} of topic id {topic_id}"),
            );
        };
        let mut changed = state.clone();
        match target {
            Some(target) => {
                start(&mut changed, target);
                complete_if_caught_up(&mut changed, &is_available);
            }
            None => revert(&mut changed, &is_available)?,
        }
        if changed == *state {
            return Ok(ApplyOutcome::Unchanged);
        }
        changed.partition_epoch += 1;
        *state = changed;
        Ok(ApplyOutcome::Applied)
    }

    /// Kafka's checks of a manual assignment: not empty, no broker twice,
    /// every broker registered (fenced ones too, as in Kafka).
    fn check_reassignment_target(&self, target: &[i32]) -> Result<(), Rejection> {
        if target.is_empty() {
            return rejected(
                KafkaCode::INVALID_REPLICA_ASSIGNMENT,
                "The manual partition assignment includes an empty replica list.",
            );
        }
        let mut sorted = target.to_vec();
        sorted.sort_unstable();
        for (i, broker) in sorted.iter().enumerate() {
            if !self.brokers.contains_key(broker) {
                return rejected(
                    KafkaCode::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "The manual partition assignment includes broker {broker}, but no such broker is registered."
                    ),
                );
            }
            if i > 0 && sorted[i - 1] == *broker {
                return rejected(
                    KafkaCode::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "The manual partition assignment includes the broker {broker} more than once."
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Replicas become `target` then the current ones it drops.
fn start(state: &mut PartitionState, target: &[i32]) {
    let current = std::mem::take(&mut state.replicas);
    state.adding_replicas = target
        .iter()
        .copied()
        .filter(|id| !current.contains(id))
        .collect();
    state.removing_replicas = current
        .iter()
        .copied()
        .filter(|id| !target.contains(id))
        .collect();
    state.replicas = target.to_vec();
    state.replicas.extend(&state.removing_replicas);
}

/// Completes the move when every adding replica is in the ISR and some
/// replica of the target is too; otherwise leaves `state` as it is.
pub(super) fn complete_if_caught_up(state: &mut PartitionState, available: &impl Fn(&i32) -> bool) {
    if !state.is_reassigning()
        || !state
            .adding_replicas
            .iter()
            .all(|id| state.isr.contains(id))
    {
        return;
    }
    let removing = std::mem::take(&mut state.removing_replicas);
    let isr: Vec<i32> = state
        .isr
        .iter()
        .copied()
        .filter(|id| !removing.contains(id))
        .collect();
    if isr.is_empty() {
        state.removing_replicas = removing;
        return;
    }
    state.adding_replicas.clear();
    state.replicas.retain(|id| !removing.contains(id));
    state.isr = isr;
    elect_if_leader_left(state, available);
}

/// Cancels the move: the adding replicas go, the others stay (in their
/// current order). INVALID_REPLICA_ASSIGNMENT when only adding replicas
/// are in sync, since reverting would need an unclean election.
fn revert(state: &mut PartitionState, available: &impl Fn(&i32) -> bool) -> Result<(), Rejection> {
    if !state.is_reassigning() {
        return rejected(
            KafkaCode::NO_REASSIGNMENT_IN_PROGRESS,
            "No partition reassignment is in progress for this topic partition.",
        );
    }
    let adding = std::mem::take(&mut state.adding_replicas);
    let isr: Vec<i32> = state
        .isr
        .iter()
        .copied()
        .filter(|id| !adding.contains(id))
        .collect();
    if isr.is_empty() {
        return rejected(
            KafkaCode::INVALID_REPLICA_ASSIGNMENT,
            "Unable to revert partition assignment because it would require an unclean leader election.",
        );
    }
    state.removing_replicas.clear();
    state.replicas.retain(|id| !adding.contains(id));
    state.isr = isr;
    elect_if_leader_left(state, available);
    Ok(())
}

/// A leader no longer in the ISR gives way to the first replica, in
/// replica order, that is in the ISR and live; with none, the partition
/// waits leaderless (-1) for one of them, as after any election.
fn elect_if_leader_left(state: &mut PartitionState, available: &impl Fn(&i32) -> bool) {
    if state.leader != -1 && state.isr.contains(&state.leader) {
        return;
    }
    let leader = state
        .replicas
        .iter()
        .copied()
        .find(|id| state.isr.contains(id) && available(id))
        .unwrap_or(-1);
    if leader != state.leader {
        state.leader = leader;
        state.leader_epoch += 1;
    }
}

#[cfg(test)]
mod tests;
