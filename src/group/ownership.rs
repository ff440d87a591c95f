//! Which broker coordinates a group: Kafka's rule, the leader of the
//! group's partition of the internal `__consumer_offsets` topic, that
//! partition being `abs(groupId.hashCode()) % offsets.topic.num.partitions`.
//! Ownership thus moves with partition leadership.

use std::collections::BTreeMap;

use crate::cluster::MetadataImage;

/// Kafka's internal topic of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The topic configs Kafka creates `__consumer_offsets` with.
pub fn offsets_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), "104857600".to_owned()),
    ])
}

/// The topics Kafka reports as internal in Metadata.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == "__transaction_state"
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code
/// units, wrapping like Java's `int`.
pub fn java_string_hash(value: &str) -> i32 {
    value.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition of `group` among `partitions`
/// (Kafka's `Utils.abs(groupId.hashCode()) % groupMetadataTopicPartitionCount`,
/// where `Utils.abs(Integer.MIN_VALUE)` is 0).
pub fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// Who coordinates a group, as the image says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOwner {
    /// The offsets topic's partition is led by this broker.
    Broker(i32),
    /// The partition has no leader (its broker is fenced or gone).
    Offline,
    /// The offsets topic does not exist yet (created on the first
    /// FindCoordinator).
    NoOffsetsTopic,
}

/// The owner of `group` in `image`. The partition count is the topic's
/// own, not the setting, once the topic exists (as in Kafka, where the
/// existing topic wins).
pub fn group_owner(image: &MetadataImage, group: &str) -> GroupOwner {
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        return GroupOwner::NoOffsetsTopic;
    };
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    let partition = offsets_partition(group, count);
    match image.partition(OFFSETS_TOPIC, partition) {
        Some(state) if state.leader >= 0 => GroupOwner::Broker(state.leader),
        _ => GroupOwner::Offline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of `"…".hashCode()` computed by Java.
    #[test]
    fn java_string_hash_matches_java() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("abc"), 96354);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("my-group"), -1906497762);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // Beyond the BMP: two UTF-16 code units (0xD83D, 0xDE00).
        assert_eq!(java_string_hash("\u{1F600}"), 1772899);
        assert_eq!(java_string_hash("é"), 233);
    }

    #[test]
    fn offsets_partition_is_kafkas_abs_hash_modulo() {
        assert_eq!(offsets_partition("abc", 50), 96354 % 50);
        // Integer.MIN_VALUE maps to partition 0, not a negative one.
        assert_eq!(offsets_partition("polygenelubricants", 50), 0);
        // A negative hash: abs first, then modulo.
        assert_eq!(offsets_partition("my-group", 50), 1906497762 % 50);
    }
}
