//! Topic, partition and config commands of the state machine.
//!
//! Every handler checks all preconditions before changing anything, which is
//! what lets [`MetadataImage::apply`] promise an unchanged image on `Err`.
//! Which topic configs are supported is not checked here but by the
//! proposer ([`crate::cluster::policy`]), so a log holding configs an older
//! version accepted still replays.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::eligible::{ElrRules, clear_elr};
use super::{
    ApplyOutcome, BrokerState, ConfigResource, MetadataImage, PartitionState, TopicState,
    partition_by_id_mut, validate_topic_name,
};
use crate::cluster::code::{KafkaCode, Rejection, rejected};

/// Changing it clears the topic's ELR, as Kafka's `ClearElrRecord` does.
const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

impl MetadataImage {
    pub(super) fn create_topic(
        &mut self,
        name: &str,
        topic_id: Uuid,
        configs: &BTreeMap<String, String>,
        assignments: &[Vec<i32>],
    ) -> Result<ApplyOutcome, Rejection> {
        validate_topic_name(name)
            .or_else(|reason| rejected(KafkaCode::INVALID_TOPIC_EXCEPTION, reason))?;
        if self.topics.contains_key(name) {
            return rejected(
                KafkaCode::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            );
        }
        // '.' and '_' collide in metric names, so Kafka refuses a topic that
        // differs from an existing one only in those characters.
        let collision_key = name.replace('.', "_");
        if let Some(other) = self
            .topics
            .keys()
            .find(|other| other.replace('.', "_") == collision_key)
        {
            return rejected(
                KafkaCode::INVALID_TOPIC_EXCEPTION,
                format!("topic '{name}' collides with existing topic '{other}'"),
            );
        }
        if topic_id.is_nil() || self.topic_names_by_id.contains_key(&topic_id) {
            return rejected(
                KafkaCode::INVALID_REQUEST,
                format!("topic id {topic_id} is reserved or already in use"),
            );
        }
        if assignments.is_empty() {
            return rejected(
                KafkaCode::INVALID_PARTITIONS,
                "number of partitions must be at least 1",
            );
        }
        self.check_assignments(assignments, None)?;
        self.topics.insert(
            name.to_owned(),
            TopicState {
                id: topic_id,
                name: name.to_owned(),
                configs: configs.clone(),
                partitions: assignments.iter().map(|r| new_partition(r)).collect(),
            },
        );
        self.topic_names_by_id.insert(topic_id, name.to_owned());
        Ok(ApplyOutcome::TopicCreated { topic_id })
    }

    pub(super) fn create_partitions(
        &mut self,
        name: &str,
        new_assignments: &[Vec<i32>],
    ) -> Result<ApplyOutcome, Rejection> {
        let Some(topic) = self.topics.get(name) else {
            return rejected(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            );
        };
        if new_assignments.is_empty() {
            return rejected(
                KafkaCode::INVALID_PARTITIONS,
                format!("topic already has {} partitions", topic.partitions.len()),
            );
        }
        if topic.partitions.len() + new_assignments.len() > i32::MAX as usize {
            return rejected(KafkaCode::INVALID_PARTITIONS, "too many partitions");
        }
        let replication_factor = topic.partitions.first().map(|p| p.replicas.len());
        self.check_assignments(new_assignments, replication_factor)?;
        if let Some(topic) = self.topics.get_mut(name) {
            topic
                .partitions
                .extend(new_assignments.iter().map(|r| new_partition(r)));
        }
        Ok(ApplyOutcome::Applied)
    }

    /// Replica lists must be non-empty, of one length (`expected_len` when
    /// given), without duplicates, and name only available brokers.
    pub(super) fn check_assignments(
        &self,
        assignments: &[Vec<i32>],
        expected_len: Option<usize>,
    ) -> Result<(), Rejection> {
        let available = self.available_brokers();
        let expected_len = expected_len.unwrap_or_else(|| assignments.first().map_or(0, Vec::len));
        for (partition, replicas) in assignments.iter().enumerate() {
            check_replication_factor(replicas.len() as i64, available.len())?;
            if replicas.len() != expected_len {
                return rejected(
                    KafkaCode::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "partition {partition} has {} replicas, the topic has {expected_len}",
                        replicas.len()
                    ),
                );
            }
            for (i, broker) in replicas.iter().enumerate() {
                if replicas[..i].contains(broker) {
                    return rejected(
                        KafkaCode::INVALID_REPLICA_ASSIGNMENT,
                        format!("partition {partition} lists broker {broker} twice"),
                    );
                }
                if !available.contains(broker) {
                    return rejected(
                        KafkaCode::INVALID_REPLICA_ASSIGNMENT,
                        format!(
                            "partition {partition} names broker {broker}, which is not available"
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    pub(super) fn alter_configs(
        &mut self,
        resource: &ConfigResource,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<ApplyOutcome, Rejection> {
        if let Some(key) = delete.iter().find(|key| set.contains_key(*key)) {
            return rejected(
                KafkaCode::INVALID_CONFIG,
                format!("config {key} is both set and deleted"),
            );
        }
        let configs = match resource {
            ConfigResource::Topic(name) => {
                let Some(topic) = self.topics.get_mut(name) else {
                    return rejected(
                        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic '{name}' does not exist"),
                    );
                };
                &mut topic.configs
            }
            ConfigResource::Broker(id) => {
                // Like Kafka, configs may be stored for a broker id that has
                // not registered yet; it picks them up when it does.
                if *id < 0 {
                    return rejected(
                        KafkaCode::INVALID_REQUEST,
                        format!("broker id must not be negative, got {id}"),
                    );
                }
                if let Some(key) = set.keys().chain(delete).find(|key| key.is_empty()) {
                    return rejected(
                        KafkaCode::INVALID_CONFIG,
                        format!("bad config name {key:?}"),
                    );
                }
                self.broker_configs.entry(*id).or_default()
            }
        };
        let before = configs.clone();
        configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        for key in delete {
            configs.remove(key);
        }
        let changed = *configs != before;
        let min_isr_changed = configs.get(MIN_INSYNC_REPLICAS) != before.get(MIN_INSYNC_REPLICAS);
        if min_isr_changed
            && let ConfigResource::Topic(name) = resource
            && let Some(topic) = self.topics.get_mut(name)
        {
            clear_elr(topic);
        }
        if let ConfigResource::Broker(id) = resource
            && self.broker_configs.get(id).is_some_and(BTreeMap::is_empty)
        {
            self.broker_configs.remove(id);
        }
        Ok(if changed {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::Unchanged
        })
    }

    pub(super) fn change_partition(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        expected_partition_epoch: i32,
        leader: Option<i32>,
        isr: Option<&[i32]>,
        isr_broker_epochs: &[i64],
    ) -> Result<ApplyOutcome, Rejection> {
        let elr = self
            .topic_by_id(topic_id)
            .map(|topic| self.elr_rules(topic));
        let brokers = &self.brokers;
        let state = partition_by_id_mut(
            &mut self.topics,
            &self.topic_names_by_id,
            topic_id,
            partition,
        );
        let Some(state) = state else {
            return rejected(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no partition {partition} of topic id {topic_id}"),
            );
        };
        if state.partition_epoch != expected_partition_epoch {
            return rejected(
                KafkaCode::INVALID_UPDATE_VERSION,
                format!(
                    "partition epoch is {}, change expected {expected_partition_epoch}",
                    state.partition_epoch
                ),
            );
        }
        let new_isr = isr.map_or_else(|| state.isr.clone(), <[i32]>::to_vec);
        let new_leader = leader.unwrap_or(state.leader);
        let is_available = |id: &i32| brokers.get(id).is_some_and(BrokerState::is_available);
        for (i, replica) in new_isr.iter().enumerate() {
            if new_isr[..i].contains(replica) {
                return rejected(
                    KafkaCode::INVALID_REQUEST,
                    format!("isr lists broker {replica} twice"),
                );
            }
            // Only brokers able to follow may join; existing members stay
            // until the leader shrinks the ISR.
            let joining = !state.isr.contains(replica);
            if !state.replicas.contains(replica) || (joining && !is_available(replica)) {
                return rejected(
                    KafkaCode::INELIGIBLE_REPLICA,
                    format!("broker {replica} cannot join the isr"),
                );
            }
            // Registered anew since the leader heard from it: it may have
            // restarted with less in its log (KIP-903, KAFKA-14139).
            let stated = isr_broker_epochs.get(i).copied().unwrap_or(-1);
            let registered = brokers.get(replica).map_or(-1, |b| b.epoch);
            if stated >= 0 && stated != registered {
                return rejected(
                    KafkaCode::INELIGIBLE_REPLICA,
                    format!(
                        "broker {replica} was named at broker epoch {stated}, \
                         but is registered under {registered}"
                    ),
                );
            }
        }
        if new_leader != -1 && !new_isr.contains(&new_leader) {
            return rejected(
                KafkaCode::INVALID_REQUEST,
                format!("leader {new_leader} is not in the isr {new_isr:?}"),
            );
        }
        let leader_changed = new_leader != state.leader;
        if leader_changed && new_leader != -1 && !is_available(&new_leader) {
            return rejected(
                KafkaCode::INELIGIBLE_REPLICA,
                format!("broker {new_leader} is not available to lead"),
            );
        }
        if !leader_changed && new_isr == state.isr {
            return Ok(ApplyOutcome::Unchanged);
        }
        let old_isr = std::mem::replace(&mut state.isr, new_isr);
        let old_leader = state.leader;
        if leader_changed {
            state.leader = new_leader;
            state.leader_epoch += 1;
            if new_leader != -1 && !old_isr.contains(&new_leader) {
                // From the ELR: a clean election; from outside both: unclean.
                if state.elr.contains(&new_leader) {
                    state.elr.retain(|id| *id != new_leader);
                } else {
                    ElrRules::forget(state);
                }
            }
        }
        if let Some(elr) = elr {
            elr.track(state, &old_isr, old_leader);
            if state.leader != -1 {
                // A partition with a leader has no use for the last one.
                state.last_known_elr.clear();
            }
        }
        state.partition_epoch += 1;
        // The ISR change that brings the last adding replica in sync
        // finishes a reassignment, in the same change (KRaft's
        // PartitionChangeBuilder does it on AlterPartition too).
        super::reassignment::complete_if_caught_up(state, &is_available);
        Ok(ApplyOutcome::Applied)
    }
}

/// Replication factor `requested` must be in `1..=available`.
pub(super) fn check_replication_factor(requested: i64, available: usize) -> Result<(), Rejection> {
    if requested < 1 {
        return rejected(
            KafkaCode::INVALID_REPLICATION_FACTOR,
            format!("replication factor must be at least 1, got {requested}"),
        );
    }
    if requested > available as i64 {
        return rejected(
            KafkaCode::INVALID_REPLICATION_FACTOR,
            format!("replication factor {requested} larger than available brokers {available}"),
        );
    }
    Ok(())
}

fn new_partition(replicas: &[i32]) -> PartitionState {
    PartitionState {
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas.first().copied().unwrap_or(-1),
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        elr: Vec::new(),
        last_known_elr: Vec::new(),
    }
}
