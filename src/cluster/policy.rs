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

use super::code::{KafkaCode, Rejection, rejected};
use super::metadata::MetadataImage;
use crate::config::{PartitionLimits, validate_topic_config, validate_topic_config_key};

/// Producer ids per block: Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
/// Kafka's AllocateProducerIds carries no count; the controller always hands
/// out this many, so a caller cannot exhaust the id space.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Every entry must be a supported topic config with a valid value.
pub fn check_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), Rejection> {
    for (key, value) in configs {
        validate_topic_config(key, value)
            .or_else(|error| rejected(KafkaCode::INVALID_CONFIG, error.to_string()))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests;
