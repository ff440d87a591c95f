//! Every topic config key Kafka 3.9 documents, with the check its value must
//! pass (type and range as Kafka's `LogConfig` defines them), the broker keys
//! it falls back to (Kafka's synonyms, for DescribeConfigs) and whether gregor
//! acts on it.
//!
//! One row per key, so that a feature that starts acting on a key (log
//! compaction, say) changes its row's [`Effect`] and the setting it parses
//! into in `topic.rs`, and nothing else.

use super::describe::ConfigType;
use Effect::{AcceptedWithoutEffect as Inert, Applied};

/// What a topic key's value must be. Kafka trims values before checking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Check {
    /// A Java `long` in `min..=max`.
    Long {
        min: i64,
        max: i64,
    },
    /// A Java `int` in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A `double` in `min..=max`.
    Double {
        min: f64,
        max: f64,
    },
    Bool,
    /// One of these strings, exactly (Kafka's `ValidString.in`).
    OneOf(&'static [&'static str]),
    /// `cleanup.policy`: a list of `compact` and `delete`.
    CleanupPolicy,
    /// `message.timestamp.type`: CreateTime or LogAppendTime.
    TimestampType,
    /// gzip's level: 1 to 9, or -1 for zlib's default.
    GzipLevel,
    /// `*`, or `partition:broker` pairs separated by commas.
    ThrottledReplicas,
    /// A Kafka version string, as `MetadataVersion.fromVersionString` reads it.
    MessageFormatVersion,
    /// Tiered storage: only `false` is possible on a broker without it.
    RemoteStorage,
}

/// What gregor does with a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The topic's log honours it.
    Applied,
    /// Validated and stored (DescribeConfigs shows it), but the log does not
    /// change with it; the README lists these as "accepted without effect".
    AcceptedWithoutEffect,
}

/// One topic key.
#[derive(Debug, Clone, Copy)]
pub struct TopicKey {
    pub name: &'static str,
    pub(super) check: Check,
    /// Broker keys whose value is this key's default, in Kafka's order of
    /// precedence; the first is in the same unit as the topic key.
    pub synonyms: &'static [&'static str],
    /// Kafka's default when no broker key sets one.
    pub default: &'static str,
    pub effect: Effect,
    pub doc: &'static str,
}

impl TopicKey {
    /// The type DescribeConfigs v3+ reports.
    pub fn config_type(&self) -> ConfigType {
        match self.check {
            Check::Long { .. } => ConfigType::Long,
            Check::Int { .. } | Check::GzipLevel => ConfigType::Int,
            Check::Double { .. } => ConfigType::Double,
            Check::Bool | Check::RemoteStorage => ConfigType::Boolean,
            Check::CleanupPolicy | Check::ThrottledReplicas => ConfigType::List,
            Check::OneOf(_) | Check::TimestampType | Check::MessageFormatVersion => {
                ConfigType::String
            }
        }
    }
}

const I32_MAX: i64 = i32::MAX as i64;
const LONG_MAX: &str = "9223372036854775807";

const fn long(min: i64) -> Check {
    Check::Long { min, max: i64::MAX }
}

const fn int(min: i64) -> Check {
    Check::Int { min, max: I32_MAX }
}

const fn key(
    name: &'static str,
    check: Check,
    synonyms: &'static [&'static str],
    default: &'static str,
    effect: Effect,
    doc: &'static str,
) -> TopicKey {
    TopicKey {
        name,
        check,
        synonyms,
        default,
        effect,
        doc,
    }
}

/// Kafka 3.9's topic configs, sorted by name as its documentation lists them.
#[rustfmt::skip]
pub const TOPIC_KEYS: &[TopicKey] = &[
    key("cleanup.policy", Check::CleanupPolicy, &["log.cleanup.policy"], "delete", Applied,
        "The retention policy of the log's old segments: delete, compact, or both."),
    key("compression.gzip.level", Check::GzipLevel, &["compression.gzip.level"], "-1", Inert,
        "The compression level when compression.type is gzip."),
    key("compression.lz4.level", Check::Int { min: 1, max: 17 }, &["compression.lz4.level"], "9", Inert,
        "The compression level when compression.type is lz4."),
    key("compression.type",
        Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        &["compression.type"], "producer", Inert,
        "The final compression of the topic's batches; producer keeps the producer's."),
    key("compression.zstd.level", Check::Int { min: -131_072, max: 22 }, &["compression.zstd.level"], "3", Inert,
        "The compression level when compression.type is zstd."),
    key("delete.retention.ms", long(0), &["log.cleaner.delete.retention.ms"], "86400000", Applied,
        "How long tombstones are kept in a compacted topic."),
    key("file.delete.delay.ms", long(0), &["log.segment.delete.delay.ms"], "60000", Inert,
        "How long a deleted segment's files wait before they are removed."),
    key("flush.messages", long(1), &["log.flush.interval.messages"], LONG_MAX, Applied,
        "The number of messages written before the log is fsynced."),
    key("flush.ms", long(0), &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"], LONG_MAX, Applied,
        "The longest time written messages wait before the log is fsynced."),
    key("follower.replication.throttled.replicas", Check::ThrottledReplicas, &[], "", Inert,
        "Replicas whose follower-side replication is throttled: partition:broker pairs, or *."),
    key("index.interval.bytes", int(0), &["log.index.interval.bytes"], "4096", Applied,
        "How many bytes of batches lie between two offset index entries."),
    key("leader.replication.throttled.replicas", Check::ThrottledReplicas, &[], "", Inert,
        "Replicas whose leader-side replication is throttled: partition:broker pairs, or *."),
    key("local.retention.bytes", long(-2), &["log.local.retention.bytes"], "-2", Inert,
        "Tiered storage: the bytes kept locally; -2 means retention.bytes."),
    key("local.retention.ms", long(-2), &["log.local.retention.ms"], "-2", Inert,
        "Tiered storage: the time kept locally; -2 means retention.ms."),
    key("max.compaction.lag.ms", long(1), &["log.cleaner.max.compaction.lag.ms"], LONG_MAX, Applied,
        "The longest a message stays ineligible for compaction."),
    key("max.message.bytes", int(0), &["message.max.bytes"], "1048588", Applied,
        "The largest record batch the topic accepts."),
    key("message.downconversion.enable", Check::Bool, &["log.message.downconversion.enable"], "true", Inert,
        "Whether fetches older than v3 are down-converted (gregor always does)."),
    key("message.format.version", Check::MessageFormatVersion, &["log.message.format.version"], "3.0-IV1", Inert,
        "Deprecated; ignored since inter.broker.protocol.version 3.0, as in Kafka 3.x."),
    key("message.timestamp.after.max.ms", long(0), &["log.message.timestamp.after.max.ms"], LONG_MAX, Inert,
        "How far ahead of the broker's clock a CreateTime timestamp may be."),
    key("message.timestamp.before.max.ms", long(0), &["log.message.timestamp.before.max.ms"], LONG_MAX, Inert,
        "How far behind the broker's clock a CreateTime timestamp may be."),
    key("message.timestamp.difference.max.ms", long(0), &["log.message.timestamp.difference.max.ms"], LONG_MAX, Inert,
        "Deprecated: the largest difference between a CreateTime timestamp and the broker's clock."),
    key("message.timestamp.type", Check::TimestampType, &["log.message.timestamp.type"], "CreateTime", Applied,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's."),
    key("min.cleanable.dirty.ratio", Check::Double { min: 0.0, max: 1.0 }, &["log.cleaner.min.cleanable.ratio"], "0.5", Applied,
        "The share of the log not yet compacted above which it is compacted."),
    key("min.compaction.lag.ms", long(0), &["log.cleaner.min.compaction.lag.ms"], "0", Applied,
        "The shortest a message stays uncompacted."),
    key("min.insync.replicas", int(1), &["min.insync.replicas"], "1", Applied,
        "The in-sync replicas a produce with acks=all needs."),
    key("preallocate", Check::Bool, &["log.preallocate"], "false", Inert,
        "Whether segment files are preallocated."),
    key("remote.log.copy.disable", Check::Bool, &[], "false", Inert,
        "Tiered storage: stop copying segments to remote storage."),
    key("remote.log.delete.on.disable", Check::Bool, &[], "false", Inert,
        "Tiered storage: delete remote segments when it is turned off."),
    key("remote.storage.enable", Check::RemoteStorage, &[], "false", Inert,
        "Tiered storage for the topic; gregor has none, so only false."),
    key("retention.bytes", long(i64::MIN), &["log.retention.bytes"], "-1", Applied,
        "The most bytes a partition keeps before old segments are deleted; negative is unlimited."),
    key("retention.ms", long(-1),
        &["log.retention.ms", "log.retention.minutes", "log.retention.hours"], "604800000", Applied,
        "How long a segment is kept before it is deleted; -1 is forever."),
    key("segment.bytes", int(14), &["log.segment.bytes"], "1073741824", Applied,
        "The size at which a new segment is rolled."),
    key("segment.index.bytes", int(4), &["log.index.size.max.bytes"], "10485760", Inert,
        "The size of a segment's offset index."),
    key("segment.jitter.ms", long(0), &["log.roll.jitter.ms", "log.roll.jitter.hours"], "0", Inert,
        "The most random jitter subtracted from segment.ms."),
    key("segment.ms", long(1), &["log.roll.ms", "log.roll.hours"], "604800000", Applied,
        "The age at which a new segment is rolled."),
    key("unclean.leader.election.enable", Check::Bool, &["unclean.leader.election.enable"], "false", Applied,
        "Whether a replica out of the ISR may become leader."),
];

/// The row of `name`, if it is a Kafka topic key.
pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// `MetadataVersion` ids with their latest IV suffix (0 = no IV form):
/// `fromVersionString` accepts the short id (`2.8`), any `-IVn` up to the
/// latest (`3.0-IV1`), and longer dotted forms it truncates (`0.10.0.1`).
const METADATA_VERSIONS: &[(&str, Option<u8>)] = &[
    ("0.8.0", None),
    ("0.8.1", None),
    ("0.8.2", None),
    ("0.9.0", None),
    ("0.10.0", Some(1)),
    ("0.10.1", Some(2)),
    ("0.10.2", Some(0)),
    ("0.11.0", Some(2)),
    ("1.0", Some(0)),
    ("1.1", Some(0)),
    ("2.0", Some(1)),
    ("2.1", Some(2)),
    ("2.2", Some(1)),
    ("2.3", Some(1)),
    ("2.4", Some(1)),
    ("2.5", Some(0)),
    ("2.6", Some(0)),
    ("2.7", Some(2)),
    ("2.8", Some(1)),
    ("3.0", Some(1)),
    ("3.1", Some(0)),
    ("3.2", Some(0)),
    ("3.3", Some(3)),
    ("3.4", Some(0)),
    ("3.5", Some(2)),
    ("3.6", Some(2)),
    ("3.7", Some(4)),
    ("3.8", Some(0)),
    ("3.9", Some(0)),
];

/// Whether Kafka 3.9's `MetadataVersion.fromVersionString` knows `text`.
pub(super) fn is_metadata_version(text: &str) -> bool {
    let segments = if text.starts_with("0.") { 3 } else { 2 };
    let parts: Vec<&str> = text.split('.').collect();
    let key = if parts.len() > segments {
        parts[..segments].join(".")
    } else {
        text.to_string()
    };
    let (id, iv) = match key.split_once("-IV") {
        Some((id, iv)) => (id, Some(iv)),
        None => (key.as_str(), None),
    };
    METADATA_VERSIONS.iter().any(|(known, latest)| {
        *known == id
            && match (iv, latest) {
                (None, _) => true,
                (Some(iv), Some(latest)) => iv
                    .parse::<u8>()
                    .is_ok_and(|n| n <= *latest && iv == n.to_string()),
                (Some(_), None) => false,
            }
    })
}
