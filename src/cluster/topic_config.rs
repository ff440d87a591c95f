//! The topic configuration keys the coordinator accepts, and their value rules.
//!
//! Kafka's controller rejects unknown or malformed topic configs at
//! CreateTopics/AlterConfigs time rather than letting a broker trip over them
//! later; this table does the same for the subset gregor understands.

/// What a config value must look like.
#[derive(Clone, Copy)]
enum Kind {
    /// A 64-bit integer at least `min`.
    Long {
        min: i64,
    },
    /// A 32-bit integer at least `min`.
    Int {
        min: i32,
    },
    /// A ratio in `[0, 1]`.
    Ratio,
    Bool,
    /// Exactly one of the listed values.
    OneOf(&'static [&'static str]),
    /// A non-empty comma-separated list drawn from the listed values.
    ListOf(&'static [&'static str]),
    /// Free text (replica throttles, legacy version strings).
    Text,
}

const COMPRESSION: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

const TOPIC_CONFIGS: &[(&str, Kind)] = &[
    ("cleanup.policy", Kind::ListOf(&["delete", "compact"])),
    ("compression.type", Kind::OneOf(COMPRESSION)),
    ("compression.gzip.level", Kind::Int { min: -1 }),
    ("compression.lz4.level", Kind::Int { min: 1 }),
    ("compression.zstd.level", Kind::Int { min: -131072 }),
    ("delete.retention.ms", Kind::Long { min: 0 }),
    ("file.delete.delay.ms", Kind::Long { min: 0 }),
    ("flush.messages", Kind::Long { min: 1 }),
    ("flush.ms", Kind::Long { min: 0 }),
    ("follower.replication.throttled.replicas", Kind::Text),
    ("index.interval.bytes", Kind::Int { min: 0 }),
    ("leader.replication.throttled.replicas", Kind::Text),
    ("local.retention.bytes", Kind::Long { min: -2 }),
    ("local.retention.ms", Kind::Long { min: -2 }),
    ("max.compaction.lag.ms", Kind::Long { min: 1 }),
    ("max.message.bytes", Kind::Int { min: 0 }),
    ("message.downconversion.enable", Kind::Bool),
    ("message.format.version", Kind::Text),
    ("message.timestamp.after.max.ms", Kind::Long { min: 0 }),
    ("message.timestamp.before.max.ms", Kind::Long { min: 0 }),
    ("message.timestamp.difference.max.ms", Kind::Long { min: 0 }),
    (
        "message.timestamp.type",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    ("min.cleanable.dirty.ratio", Kind::Ratio),
    ("min.compaction.lag.ms", Kind::Long { min: 0 }),
    ("min.insync.replicas", Kind::Int { min: 1 }),
    ("preallocate", Kind::Bool),
    ("remote.storage.enable", Kind::Bool),
    ("retention.bytes", Kind::Long { min: -1 }),
    ("retention.ms", Kind::Long { min: -1 }),
    ("segment.bytes", Kind::Int { min: 14 }),
    ("segment.index.bytes", Kind::Int { min: 4 }),
    ("segment.jitter.ms", Kind::Long { min: 0 }),
    ("segment.ms", Kind::Long { min: 1 }),
    ("unclean.leader.election.enable", Kind::Bool),
];

/// Checks one topic config entry; the error names the key and says why.
pub(crate) fn validate_topic_config(key: &str, value: &str) -> Result<(), String> {
    let Some((_, kind)) = TOPIC_CONFIGS.iter().find(|(name, _)| *name == key) else {
        return Err(format!("unknown topic config name: {key}"));
    };
    let ok = match *kind {
        Kind::Long { min } => value.trim().parse::<i64>().is_ok_and(|v| v >= min),
        Kind::Int { min } => value.trim().parse::<i32>().is_ok_and(|v| v >= min),
        Kind::Ratio => value
            .trim()
            .parse::<f64>()
            .is_ok_and(|v| (0.0..=1.0).contains(&v)),
        Kind::Bool => matches!(value.trim(), "true" | "false"),
        Kind::OneOf(allowed) => allowed.contains(&value.trim()),
        Kind::ListOf(allowed) => {
            !value.trim().is_empty() && value.split(',').all(|v| allowed.contains(&v.trim()))
        }
        Kind::Text => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value {value:?} for topic config {key}"))
    }
}

/// Checks that `key` may be deleted (reset to its default): it must be known.
pub(crate) fn validate_topic_config_key(key: &str) -> Result<(), String> {
    if TOPIC_CONFIGS.iter().any(|(name, _)| *name == key) {
        Ok(())
    } else {
        Err(format!("unknown topic config name: {key}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_with_valid_values_pass() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "0.5").is_ok());
    }

    #[test]
    fn unknown_keys_and_malformed_values_are_rejected() {
        assert!(validate_topic_config("retention.mss", "1").is_err());
        assert!(validate_topic_config("segment.bytes", "10").is_err());
        assert!(validate_topic_config("cleanup.policy", "").is_err());
        assert!(validate_topic_config("preallocate", "yes").is_err());
    }
}
