//! What the coordinator refuses before it proposes a command.
//!
//! [`MetadataImage::apply`] must replay a log written by any earlier
//! version, so it checks only what keeps the image consistent. Rules that
//! may tighten between versions — which topic configs are supported, caps on
//! partitions, the producer-id block size — are checked here, by the
//! proposer, the way Kafka's controller validates a request before it
//! generates records. A log holding what an older version accepted still
//! replays; only new requests meet the new rules.

use std::collections::BTreeMap;

use super::ReplicaAssignment;
use super::code::{KafkaCode, Rejection, rejected};
use super::metadata::MetadataImage;
use crate::config::{
    PartitionLimits, validate_topic_config, validate_topic_config_key, validate_topic_configs,
};

/// Producer ids per block: Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
/// Kafka's AllocateProducerIds carries no count; the controller always hands
/// out this many, so a caller cannot exhaust the id space.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Every entry must be a supported topic config with a valid value, and the
/// entries must agree with each other.
pub fn check_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), Rejection> {
    validate_topic_configs(configs)
        .or_else(|error| rejected(KafkaCode::INVALID_CONFIG, error.to_string()))
}

/// An alteration of a topic's `current` configs: the entries set must
/// validate; a key deleted must be supported or already stored (so an entry
/// an older version accepted can still be removed).
pub fn check_config_change(
    current: &BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<(), Rejection> {
    check_topic_configs(set)?;
    // The rules between keys hold for the configs the change leaves; an
    // entry stored by an older version that no longer validates is left
    // out, so it does not block unrelated changes.
    let mut after: BTreeMap<String, String> = current
        .iter()
        .filter(|(k, v)| validate_topic_config(k, v).is_ok())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    after.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    for key in delete {
        after.remove(key);
    }
    check_topic_configs(&after)?;
    for key in delete.iter().filter(|key| !current.contains_key(*key)) {
        validate_topic_config_key(key)
            .or_else(|error| rejected(KafkaCode::INVALID_CONFIG, error.to_string()))?;
    }
    Ok(())
}

/// Adding `new_assignments` to `topic` (new or existing) must keep the topic
/// and every broker within `limits`.
///
/// Refused with POLICY_VIOLATION: the count is a legal one (which
/// INVALID_PARTITIONS would deny) that an operator's rule forbids, which is
/// what Kafka's controller answers for its own per-request partition cap and
/// what `create.topic.policy.class.name` plug-ins answer for theirs.
pub fn check_partition_limits(
    image: &MetadataImage,
    topic: &str,
    new_assignments: &[Vec<i32>],
    limits: PartitionLimits,
) -> Result<(), Rejection> {
    let existing = image.topic(topic).map_or(0, |t| t.partitions.len());
    let total = existing.saturating_add(new_assignments.len());
    if total > limits.per_topic {
        return rejected(
            KafkaCode::POLICY_VIOLATION,
            format!(
                "topic '{topic}' would have {total} partitions, more than \
                 gregor.max.partitions.per.topic={}",
                limits.per_topic
            ),
        );
    }
    let mut added: BTreeMap<i32, usize> = BTreeMap::new();
    for broker in new_assignments.iter().flatten() {
        *added.entry(*broker).or_default() += 1;
    }
    for (broker, adding) in added {
        let hosted = image
            .topics()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.replicas.contains(&broker))
            .count();
        if hosted.saturating_add(adding) > limits.per_broker {
            return rejected(
                KafkaCode::POLICY_VIOLATION,
                format!(
                    "broker {broker} hosts {hosted} partitions; {adding} more would exceed \
                     gregor.max.partitions.per.broker={}",
                    limits.per_broker
                ),
            );
        }
    }
    Ok(())
}

/// The replicas of each partition of a CreateTopics manual assignment, in
/// partition order, checked as Kafka's `ReplicationControlManager` checks
/// them and refused with its codes and messages: no partition twice, every
/// replica list non-empty, of registered brokers, without repeats and as
/// long as the previous ones, and partition ids 0..n-1.
pub fn manual_assignments(
    image: &MetadataImage,
    assignments: &[ReplicaAssignment],
) -> Result<Vec<Vec<i32>>, Rejection> {
    let mut by_partition: BTreeMap<i32, &[i32]> = BTreeMap::new();
    let mut replication_factor = None;
    for assignment in assignments {
        let partition = assignment.partition_index;
        if by_partition.contains_key(&partition) {
            return invalid(format!(
                "Found multiple manual partition assignments for partition {partition}"
            ));
        }
        let replicas = assignment.broker_ids.as_slice();
        check_manual_replicas(image, replicas, replication_factor)?;
        replication_factor = Some(replicas.len());
        by_partition.insert(partition, replicas);
    }
    let consecutive = by_partition
        .keys()
        .enumerate()
        .all(|(i, partition)| i32::try_from(i).is_ok_and(|i| i == *partition));
    if !consecutive {
        return invalid("partitions should be a consecutive 0-based integer sequence".to_string());
    }
    Ok(by_partition.into_values().map(<[i32]>::to_vec).collect())
}

fn invalid<T>(message: String) -> Result<T, Rejection> {
    rejected(KafkaCode::INVALID_REPLICA_ASSIGNMENT, message)
}

/// Kafka's `validateManualPartitionAssignment`: one partition's replicas
/// are non-empty, registered brokers, none twice, and as many as
/// `replication_factor` when that is known.
fn check_manual_replicas(
    image: &MetadataImage,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), Rejection> {
    if replicas.is_empty() {
        return invalid(
            "The manual partition assignment includes an empty replica list.".to_string(),
        );
    }
    // Kafka walks the brokers in id order, so the lowest offender is named.
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    for (i, broker) in sorted.iter().enumerate() {
        if image.broker(*broker).is_none() {
            return invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such \
                 broker is registered."
            ));
        }
        if i > 0 && sorted[i - 1] == *broker {
            return invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            ));
        }
    }
    if let Some(expected) = replication_factor
        && replicas.len() != expected
    {
        return invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but \
             this is not consistent with previous partitions, which have {expected} \
             replica(s).",
            replicas.len()
        ));
    }
    Ok(())
}

/// The replicas of the `additional` partitions a CreatePartitions adds,
/// given by the caller: as many lists as new partitions, each checked as
/// CreateTopics checks one, against the topic's `replication_factor`.
pub fn manual_partition_assignments(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
    additional: i32,
    replication_factor: usize,
) -> Result<Vec<Vec<i32>>, Rejection> {
    if usize::try_from(additional).ok() != Some(assignments.len()) {
        return rejected(
            KafkaCode::INVALID_REPLICA_ASSIGNMENT,
            format!(
                "Attempted to add {additional} additional partition(s), but only {} \
                 assignment(s) were specified.",
                assignments.len()
            ),
        );
    }
    for replicas in assignments {
        check_manual_replicas(image, replicas, Some(replication_factor))?;
    }
    Ok(assignments.to_vec())
}

/// A caller may only ask for a block of Kafka's size (older brokers send
/// the count explicitly; it is always this one).
pub fn check_producer_id_count(count: i64) -> Result<(), Rejection> {
    if count == PRODUCER_ID_BLOCK_SIZE {
        Ok(())
    } else {
        rejected(
            KafkaCode::INVALID_REQUEST,
            format!(
                "producer ids are allocated in blocks of {PRODUCER_ID_BLOCK_SIZE}, \
                 as in Kafka; count {count} refused"
            ),
        )
    }
}

pub mod placement;

#[cfg(test)]
mod tests;
