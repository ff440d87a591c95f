//! One module per Kafka API (or family of APIs). Handlers turn a decoded
//! request into a response body; per-partition failures are error codes in
//! that body, never Rust errors.

pub mod acls;
pub mod configs;
pub mod delete_records;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod producer_id;
pub mod reassignments;
pub mod scram_credentials;
pub mod topics;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub(crate) fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// `value` when the response version has the field (from `min` on), else
/// the field's default: the codec refuses to encode a non-default value in
/// a version that lacks the field.
pub(crate) fn since<T>(version: i16, min: i16, value: T, default: T) -> T {
    if version >= min { value } else { default }
}
