//! Per-topic config overrides (CreateTopics / AlterConfigs / DescribeConfigs).
//!
//! This is the one validator of topic configs: the broker's handlers and the
//! cluster coordinator (its HTTP API and the `--zookeeper` CLI path) both ask
//! it, so a topic the coordinator accepts is one the broker can honour.
//!
//! Unlike broker keys, an unknown topic key is an error: Kafka answers it
//! with INVALID_CONFIG, and clients rely on that to catch typos. Kafka topic
//! keys that gregor does not implement are refused too, naming the key:
//! accepting them would leave the topic behaving differently from what its
//! configs say.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ConfigError;
use super::raw::Source;
use super::settings::{Field, LogDefaults, TimestampType, to_u64};

/// Topic-level keys gregor understands, sorted as Kafka lists them.
const TOPIC_KEYS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// Kafka topic keys gregor does not implement: refused with a message that
/// says so, rather than as typos.
const UNSUPPORTED_KAFKA_KEYS: &[&str] = &[
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "file.delete.delay.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "preallocate",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

const I32_MAX: i64 = i32::MAX as i64;

pub fn topic_config_keys() -> &'static [&'static str] {
    TOPIC_KEYS
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One topic override, parsed: what it does to the topic's log settings.
enum TopicSetting {
    Retention(Option<Duration>),
    RetentionBytes(Option<u64>),
    SegmentBytes(u64),
    SegmentRoll(Duration),
    CleanupPolicy(String),
    TimestampType(TimestampType),
    MaxMessageBytes(usize),
    MinInsyncReplicas(i32),
    FlushMessages(u64),
    FlushInterval(Option<Duration>),
    IndexIntervalBytes(u64),
    DeleteRetention(Duration),
    MinCleanableDirtyRatio(f64),
    MinCompactionLag(Duration),
    MaxCompactionLag(Duration),
}

impl TopicSetting {
    /// Parses one entry; the error names the key, the value and why.
    fn parse(key: &str, value: &str) -> Result<Self, ConfigError> {
        let f = Field {
            key,
            value,
            from: &Source::Topic,
        };
        Ok(match key {
            "retention.ms" => Self::Retention(f.time_or_unlimited(1, i64::MAX)?),
            "retention.bytes" => {
                let n = f.int_in(-1, i64::MAX)?;
                Self::RetentionBytes((n >= 0).then(|| to_u64(n)))
            }
            "segment.bytes" => Self::SegmentBytes(to_u64(f.int_in(14, I32_MAX)?)),
            "segment.ms" => {
                Self::SegmentRoll(Duration::from_millis(to_u64(f.int_in(1, i64::MAX)?)))
            }
            "cleanup.policy" => Self::CleanupPolicy(f.cleanup_policy()?),
            "message.timestamp.type" => Self::TimestampType(f.timestamp_type()?),
            "max.message.bytes" => {
                Self::MaxMessageBytes(usize::try_from(f.int_in(0, I32_MAX)?).unwrap_or(usize::MAX))
            }
            "min.insync.replicas" => {
                Self::MinInsyncReplicas(i32::try_from(f.int_in(1, I32_MAX)?).unwrap_or(1))
            }
            "flush.messages" => Self::FlushMessages(to_u64(f.int_in(1, i64::MAX)?)),
            "flush.ms" => {
                // Long.MAX is Kafka's spelling of "never", same as unset.
                let n = f.int_in(0, i64::MAX)?;
                Self::FlushInterval((n != i64::MAX).then(|| Duration::from_millis(to_u64(n))))
            }
            "index.interval.bytes" => Self::IndexIntervalBytes(to_u64(f.int_in(0, I32_MAX)?)),
            "delete.retention.ms" => {
                Self::DeleteRetention(Duration::from_millis(to_u64(f.int_in(0, i64::MAX)?)))
            }
            "min.cleanable.dirty.ratio" => Self::MinCleanableDirtyRatio(f.float_in(0.0, 1.0)?),
            "min.compaction.lag.ms" => {
                Self::MinCompactionLag(Duration::from_millis(to_u64(f.int_in(0, i64::MAX)?)))
            }
            "max.compaction.lag.ms" => {
                Self::MaxCompactionLag(Duration::from_millis(to_u64(f.int_in(1, i64::MAX)?)))
            }
            _ if UNSUPPORTED_KAFKA_KEYS.contains(&key) => {
                return Err(f.err(format!(
                    "gregor does not support topic config {key} yet; supported keys: {}",
                    TOPIC_KEYS.join(", ")
                )));
            }
            _ => {
                return Err(ConfigError::UnknownTopicConfig {
                    key: key.to_owned(),
                });
            }
        })
    }

    fn apply(self, log: &mut LogDefaults) {
        match self {
            Self::Retention(v) => log.retention = v,
            Self::RetentionBytes(v) => log.retention_bytes = v,
            Self::SegmentBytes(v) => log.segment_bytes = v,
            Self::SegmentRoll(v) => log.segment_roll = v,
            Self::CleanupPolicy(v) => log.cleanup_policy = v,
            Self::TimestampType(v) => log.message_timestamp_type = v,
            Self::MaxMessageBytes(v) => log.max_message_bytes = v,
            Self::MinInsyncReplicas(v) => log.min_insync_replicas = v,
            Self::FlushMessages(v) => log.flush_interval_messages = v,
            Self::FlushInterval(v) => log.flush_interval = v,
            Self::IndexIntervalBytes(v) => log.index_interval_bytes = v,
            Self::DeleteRetention(v) => log.delete_retention = v,
            Self::MinCleanableDirtyRatio(v) => log.min_cleanable_dirty_ratio = v,
            Self::MinCompactionLag(v) => log.min_compaction_lag = v,
            Self::MaxCompactionLag(v) => log.max_compaction_lag = v,
        }
    }
}

/// Checks one topic config entry, as CreateTopics and AlterConfigs must
/// before anything is stored; the error names the key.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    TopicSetting::parse(key.trim(), value).map(drop)
}

/// Checks that `key` names a topic config gregor supports, e.g. before it is
/// reset to its default.
pub fn validate_topic_config_key(key: &str) -> Result<(), ConfigError> {
    if TOPIC_KEYS.contains(&key.trim()) {
        Ok(())
    } else {
        // The same message an entry with this key would get.
        TopicSetting::parse(key.trim(), "").map(drop)
    }
}

/// Applies validated overrides on top of the broker defaults; any invalid
/// entry is an error.
pub fn resolve_topic_log(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> Result<LogDefaults, ConfigError> {
    let mut log = defaults.clone();
    for (key, value) in overrides {
        TopicSetting::parse(key, value)?.apply(&mut log);
    }
    Ok(log)
}

/// Like [`resolve_topic_log`], but for configs already stored: an entry
/// that no longer validates (stored by an older version that accepted more)
/// keeps its key's default, and every other entry still applies. The
/// entries skipped are returned so the caller can say so.
pub fn resolve_stored_topic_log(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> (LogDefaults, Vec<ConfigError>) {
    let mut log = defaults.clone();
    let mut skipped = Vec::new();
    for (key, value) in overrides {
        match TopicSetting::parse(key, value) {
            Ok(setting) => setting.apply(&mut log),
            Err(error) => skipped.push(error),
        }
    }
    (log, skipped)
}

/// What a produce to one partition of a topic must satisfy; see
/// [`ProduceLimits::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceLimits {
    /// The topic's `max.message.bytes` (else the broker's `message.max.bytes`).
    pub max_message_bytes: usize,
    /// The topic's `min.insync.replicas` (else the broker's).
    pub min_insync_replicas: i32,
}

/// Why a produce is refused by its topic's configs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceRefusal {
    /// Kafka's MESSAGE_TOO_LARGE.
    #[error("{size} bytes of records, more than the topic's max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    /// Kafka's NOT_ENOUGH_REPLICAS: only refused for `acks=all`.
    #[error(
        "{in_sync} in-sync replicas, fewer than the topic's min.insync.replicas {min}, \
         for a produce with acks=all"
    )]
    NotEnoughReplicas { in_sync: usize, min: i32 },
}

impl ProduceLimits {
    /// The limits of a topic with `overrides` on a broker with `defaults`.
    /// A stored override that no longer validates counts as unset, as in
    /// [`resolve_stored_topic_log`].
    pub fn of_topic(defaults: &LogDefaults, overrides: &BTreeMap<String, String>) -> Self {
        let mut log_max = defaults.max_message_bytes;
        let mut min_isr = defaults.min_insync_replicas;
        for key in ["max.message.bytes", "min.insync.replicas"] {
            match overrides.get(key).map(|v| TopicSetting::parse(key, v)) {
                Some(Ok(TopicSetting::MaxMessageBytes(v))) => log_max = v,
                Some(Ok(TopicSetting::MinInsyncReplicas(v))) => min_isr = v,
                _ => {}
            }
        }
        ProduceLimits {
            max_message_bytes: log_max,
            min_insync_replicas: min_isr,
        }
    }

    /// Checks a produce of `size` bytes with `acks` to a partition with
    /// `in_sync` in-sync replicas. As in Kafka, the replica check comes
    /// first, and applies only to `acks=all` (-1): with fewer acks the
    /// producer did not ask for the durability the setting guards.
    pub fn check(&self, size: usize, acks: i16, in_sync: usize) -> Result<(), ProduceRefusal> {
        let min = usize::try_from(self.min_insync_replicas).unwrap_or(1);
        if acks == -1 && in_sync < min {
            return Err(ProduceRefusal::NotEnoughReplicas {
                in_sync,
                min: self.min_insync_replicas,
            });
        }
        if size > self.max_message_bytes {
            return Err(ProduceRefusal::TooLarge {
                size,
                max: self.max_message_bytes,
            });
        }
        Ok(())
    }
}

/// Caps on partitions, so that one request or topic cannot make a broker
/// open more partition logs than it can serve (`gregor.max.partitions.*`).
/// Kafka has no hard cap; each gregor partition holds open files, a writer
/// and a syncer task and a share of the cache, on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLimits {
    /// Most partitions one topic may have (`gregor.max.partitions.per.topic`).
    pub per_topic: usize,
    /// Most partition replicas one broker may host, over all topics
    /// (`gregor.max.partitions.per.broker`).
    pub per_broker: usize,
}

impl PartitionLimits {
    /// The per-request cap the coordinator always had, now per topic.
    pub const DEFAULT_PER_TOPIC: usize = 10_000;
    /// Kafka's long-standing guidance of about 4000 partitions per broker;
    /// with three or more files per partition it also stays inside a
    /// typical `ulimit -n` of 65536.
    pub const DEFAULT_PER_BROKER: usize = 4_000;
}

impl Default for PartitionLimits {
    fn default() -> Self {
        PartitionLimits {
            per_topic: Self::DEFAULT_PER_TOPIC,
            per_broker: Self::DEFAULT_PER_BROKER,
        }
    }
}

/// Kafka's string form of the effective default for one topic key.
fn default_string(d: &LogDefaults, key: &str) -> String {
    match key {
        "retention.ms" => d.retention.map_or(-1, millis).to_string(),
        "retention.bytes" => d
            .retention_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX))
            .to_string(),
        "segment.bytes" => d.segment_bytes.to_string(),
        "segment.ms" => millis(d.segment_roll).to_string(),
        "cleanup.policy" => d.cleanup_policy.clone(),
        "message.timestamp.type" => d.message_timestamp_type.as_str().to_string(),
        "max.message.bytes" => d.max_message_bytes.to_string(),
        "min.insync.replicas" => d.min_insync_replicas.to_string(),
        "flush.messages" => d.flush_interval_messages.to_string(),
        "flush.ms" => d.flush_interval.map_or(i64::MAX, millis).to_string(),
        "index.interval.bytes" => d.index_interval_bytes.to_string(),
        "delete.retention.ms" => millis(d.delete_retention).to_string(),
        "min.cleanable.dirty.ratio" => d.min_cleanable_dirty_ratio.to_string(),
        "min.compaction.lag.ms" => millis(d.min_compaction_lag).to_string(),
        "max.compaction.lag.ms" => millis(d.max_compaction_lag).to_string(),
        _ => String::new(),
    }
}

/// `(key, value, is_default)` for every topic key, for DescribeConfigs.
/// Overridden keys report the value as stored; the rest the broker default.
pub fn describe_topic_configs(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String, bool)> {
    TOPIC_KEYS
        .iter()
        .map(|&key| match overrides.get(key) {
            Some(v) => (key.to_string(), v.trim().to_string(), false),
            None => (key.to_string(), default_string(defaults, key), true),
        })
        .collect()
}

/// A validated set of per-topic overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Validates `pairs` (later duplicates win) against `defaults`.
    pub fn from_pairs<I>(pairs: I, defaults: &LogDefaults) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let overrides: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        resolve_topic_log(defaults, &overrides)?;
        Ok(TopicConfig { overrides })
    }

    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    pub fn is_empty(&self) -> bool {
        self.overrides.is_empty()
    }

    /// The topic's effective log settings.
    pub fn resolve(&self, defaults: &LogDefaults) -> Result<LogDefaults, ConfigError> {
        resolve_topic_log(defaults, &self.overrides)
    }

    pub fn describe(&self, defaults: &LogDefaults) -> Vec<(String, String, bool)> {
        describe_topic_configs(defaults, &self.overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, RawConfig, TimestampType, is_known_key};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn log_defaults() -> LogDefaults {
        RawConfig::new()
            .validate_with(&|| "h".to_string())
            .unwrap()
            .log
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn topic_configs_resolve_and_validate() {
        let d = log_defaults();
        let o = map(&[
            ("retention.ms", "-1"),
            ("retention.bytes", "1000"),
            ("segment.bytes", "2048"),
            ("segment.ms", "60000"),
            ("cleanup.policy", "delete"),
            ("message.timestamp.type", "LogAppendTime"),
            ("max.message.bytes", "500"),
            ("min.insync.replicas", "2"),
            ("flush.messages", "1"),
            ("flush.ms", "100"),
        ]);
        let t = resolve_topic_log(&d, &o).unwrap();
        assert_eq!(t.retention, None);
        assert_eq!(t.retention_bytes, Some(1000));
        assert_eq!(t.segment_bytes, 2048);
        assert_eq!(t.segment_roll, Duration::from_secs(60));
        assert_eq!(t.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!((t.max_message_bytes, t.min_insync_replicas), (500, 2));
        assert_eq!(
            (t.flush_interval_messages, t.flush_interval),
            (1, Some(Duration::from_millis(100)))
        );

        let t = resolve_topic_log(
            &d,
            &map(&[
                ("cleanup.policy", "delete, compact"),
                ("delete.retention.ms", "100"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("min.compaction.lag.ms", "5"),
                ("max.compaction.lag.ms", "6"),
            ]),
        )
        .unwrap();
        assert_eq!(t.cleanup_policy, "compact,delete");
        assert!(t.compacts() && t.deletes());
        assert_eq!(t.delete_retention, Duration::from_millis(100));
        assert_eq!(t.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(t.min_compaction_lag, Duration::from_millis(5));
        assert_eq!(t.max_compaction_lag, Duration::from_millis(6));
        let e = resolve_topic_log(&d, &map(&[("cleanup.policy", "shred")])).unwrap_err();
        assert!(e.to_string().contains("cleanup.policy"), "{e}");
        assert!(resolve_topic_log(&d, &map(&[("min.cleanable.dirty.ratio", "1.5")])).is_err());
        let e = resolve_topic_log(&d, &map(&[("retention.mss", "1")])).unwrap_err();
        assert_eq!(
            e,
            ConfigError::UnknownTopicConfig {
                key: "retention.mss".into()
            }
        );
        let e = resolve_topic_log(&d, &map(&[("segment.bytes", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"x\" for segment.bytes") && e.contains("expected an integer"),
            "{e}"
        );
        assert!(resolve_topic_log(&d, &map(&[("message.timestamp.type", "Now")])).is_err());
        assert!(resolve_topic_log(&d, &map(&[("min.insync.replicas", "0")])).is_err());

        let tc = TopicConfig::from_pairs(env(&[("retention.ms", " 5000 ")]), &d).unwrap();
        assert_eq!(
            tc.resolve(&d).unwrap().retention,
            Some(Duration::from_secs(5))
        );
        assert!(TopicConfig::from_pairs(env(&[("bogus", "1")]), &d).is_err());
        for key in topic_config_keys() {
            assert!(
                !is_known_key(key) || *key == "min.insync.replicas",
                "{key} is a topic key"
            );
        }
    }

    #[test]
    fn one_validator_names_the_key_for_unknown_unsupported_and_bad_values() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("max.message.bytes", "100").is_ok());
        let e = validate_topic_config("preallocate", "true")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("preallocate") && e.contains("does not support"),
            "{e}"
        );
        assert!(validate_topic_config("cleanup.policy", "compact").is_ok());
        let e = validate_topic_config("retention.mss", "1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention.mss"), "{e}");
        assert!(validate_topic_config("segment.bytes", "10").is_err());
        assert!(validate_topic_config("min.insync.replicas", "0").is_err());
        assert!(validate_topic_config_key("retention.ms").is_ok());
        assert!(validate_topic_config_key("preallocate").is_err());
        assert!(validate_topic_config_key("bogus").is_err());
    }

    #[test]
    fn stored_configs_keep_their_valid_entries_when_one_is_unsupported() {
        let d = log_defaults();
        let stored = map(&[("retention.ms", "-1"), ("preallocate", "true")]);
        assert!(resolve_topic_log(&d, &stored).is_err());
        let (log, skipped) = resolve_stored_topic_log(&d, &stored);
        assert_eq!(log.retention, None, "retention.ms=-1 still applies");
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn produce_limits_come_from_the_topic_then_the_broker() {
        let d = log_defaults();
        let broker = ProduceLimits::of_topic(&d, &BTreeMap::new());
        assert_eq!(broker.max_message_bytes, d.max_message_bytes);
        let topic = ProduceLimits::of_topic(
            &d,
            &map(&[("max.message.bytes", "100"), ("min.insync.replicas", "2")]),
        );
        assert_eq!(topic.check(100, 1, 1), Ok(()));
        assert_eq!(
            topic.check(101, 1, 1),
            Err(ProduceRefusal::TooLarge {
                size: 101,
                max: 100
            })
        );
        // Only acks=all asks for the in-sync replicas, and that is checked first.
        assert_eq!(
            topic.check(101, -1, 1),
            Err(ProduceRefusal::NotEnoughReplicas { in_sync: 1, min: 2 })
        );
        assert_eq!(topic.check(10, 0, 1), Ok(()));
        assert_eq!(topic.check(10, -1, 2), Ok(()));
    }

    #[test]
    fn topic_configs_describe() {
        let d = log_defaults();
        let rows = describe_topic_configs(&d, &map(&[("retention.ms", "1000")]));
        let get = |k: &str| rows.iter().find(|r| r.0 == k).cloned().unwrap();
        assert_eq!(
            get("retention.ms"),
            ("retention.ms".into(), "1000".into(), false)
        );
        assert_eq!(
            get("retention.bytes"),
            ("retention.bytes".into(), "-1".into(), true)
        );
        assert_eq!(get("segment.ms").1, "604800000");
        assert_eq!(get("segment.bytes").1, "1073741824");
        assert_eq!(get("flush.ms").1, i64::MAX.to_string());
        assert_eq!(get("flush.messages").1, i64::MAX.to_string());
        assert_eq!(get("cleanup.policy").1, "delete");
        assert_eq!(get("message.timestamp.type").1, "CreateTime");
        assert_eq!(get("max.message.bytes").1, "1048588");
        assert_eq!(rows.len(), topic_config_keys().len());
        let unlimited = LogDefaults {
            retention: None,
            ..d
        };
        let rows = describe_topic_configs(&unlimited, &BTreeMap::new());
        assert!(rows.contains(&("retention.ms".into(), "-1".into(), true)));
    }
}
