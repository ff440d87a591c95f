//! Per-topic config overrides (CreateTopics / AlterConfigs / DescribeConfigs).
//!
//! This is the one validator of topic configs: the broker's handlers and the
//! cluster coordinator (its HTTP API and the `--zookeeper` CLI path) both ask
//! it, so a topic the coordinator accepts is one the broker can honour.
//!
//! Every key Kafka 3.9 documents is accepted with Kafka's checks on its value
//! (the table in `topic_keys.rs`); keys gregor does not act on are stored
//! and described but change nothing (README: "accepted without effect").
//! An unknown key is an error: Kafka answers it with INVALID_CONFIG, and
//! clients rely on that to catch typos. Two values are refused although
//! Kafka accepts them, because gregor cannot honour them: `compact` in
//! `cleanup.policy` and `remote.storage.enable=true` (Kafka refuses the
//! latter too on a broker without tiered storage).

use std::collections::BTreeMap;
use std::time::Duration;

use super::ConfigError;
use super::describe::{ConfigSource, ConfigSynonym, DescribedConfig};
use super::raw::{RawConfig, Source};
use super::settings::{Field, LogDefaults, TimestampType, to_u64};
use super::topic_keys::{Check, Effect, TOPIC_KEYS, TopicKey, is_metadata_version, topic_key};

/// The names of every topic key, sorted.
pub fn topic_config_keys() -> impl Iterator<Item = &'static str> {
    TOPIC_KEYS.iter().map(|k| k.name)
}

/// The topic keys gregor validates and stores but does not act on.
pub fn topic_keys_without_effect() -> impl Iterator<Item = &'static str> {
    TOPIC_KEYS
        .iter()
        .filter(|k| k.effect == Effect::AcceptedWithoutEffect)
        .map(|k| k.name)
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
    /// A valid value of a key gregor does not act on.
    WithoutEffect,
}

/// Checks `f.value` against `check`; returns the integer for numeric checks.
fn check_value(f: &Field<'_>, check: Check) -> Result<Option<i64>, ConfigError> {
    match check {
        Check::Long { min, max } | Check::Int { min, max } => f.int_in(min, max).map(Some),
        Check::Double { min, max } => {
            let n: f64 = f
                .value
                .trim()
                .parse()
                .map_err(|_| f.err("expected a number"))?;
            if n.is_nan() || n < min || n > max {
                return Err(f.err(format!("must be between {min} and {max}")));
            }
            Ok(None)
        }
        Check::Bool => f.bool().map(|_| None),
        Check::OneOf(allowed) => {
            if allowed.contains(&f.value.trim()) {
                Ok(None)
            } else {
                Err(f.err(format!("expected one of {}", allowed.join(", "))))
            }
        }
        Check::CleanupPolicy => f.cleanup_policy().map(|_| None),
        Check::TimestampType => f.timestamp_type().map(|_| None),
        Check::GzipLevel => match f.int_in(-1, 9)? {
            0 => Err(f.err("must be between 1 and 9, or -1")),
            n => Ok(Some(n)),
        },
        Check::ThrottledReplicas => {
            let value = f.value.trim();
            let pair = |p: &str| {
                let p = p.trim();
                p.is_empty()
                    || p.split_once(':').is_some_and(|(partition, broker)| {
                        [partition, broker]
                            .iter()
                            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    })
            };
            if value == "*" || value.split(',').all(pair) {
                Ok(None)
            } else {
                Err(f.err(
                    "must be the literal '*' or a list of replicas in the following format: \
                     [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                ))
            }
        }
        Check::MessageFormatVersion => {
            if is_metadata_version(f.value.trim()) {
                Ok(None)
            } else {
                Err(f.err(format!("Version {} is not a valid version", f.value.trim())))
            }
        }
        Check::RemoteStorage => {
            if f.bool()? {
                Err(f.err(
                    "Tiered Storage functionality is disabled in the broker. \
                     Topic cannot be configured with remote log storage.",
                ))
            } else {
                Ok(None)
            }
        }
    }
}

impl TopicSetting {
    /// Parses one entry; the error names the key, the value and why.
    fn parse(key: &str, value: &str) -> Result<Self, ConfigError> {
        let Some(row) = topic_key(key) else {
            return Err(ConfigError::UnknownTopicConfig {
                key: key.to_owned(),
            });
        };
        let f = Field {
            key,
            value,
            from: &Source::Topic,
        };
        let n = check_value(&f, row.check)?.unwrap_or(0);
        let ms = |n: i64| Duration::from_millis(to_u64(n));
        Ok(match key {
            "retention.ms" => Self::Retention((n != -1).then(|| ms(n))),
            // Kafka treats every negative size as unlimited.
            "retention.bytes" => Self::RetentionBytes((n >= 0).then(|| to_u64(n))),
            "segment.bytes" => Self::SegmentBytes(to_u64(n)),
            "segment.ms" => Self::SegmentRoll(ms(n)),
            "cleanup.policy" => Self::CleanupPolicy(f.cleanup_policy()?),
            "message.timestamp.type" => Self::TimestampType(f.timestamp_type()?),
            "max.message.bytes" => Self::MaxMessageBytes(usize::try_from(n).unwrap_or(usize::MAX)),
            "min.insync.replicas" => Self::MinInsyncReplicas(i32::try_from(n).unwrap_or(1)),
            "flush.messages" => Self::FlushMessages(to_u64(n)),
            // Long.MAX is Kafka's spelling of "never", same as unset.
            "flush.ms" => Self::FlushInterval((n != i64::MAX).then(|| ms(n))),
            "index.interval.bytes" => Self::IndexIntervalBytes(to_u64(n)),
            "delete.retention.ms" => Self::DeleteRetention(ms(n)),
            "min.cleanable.dirty.ratio" => Self::MinCleanableDirtyRatio(f.float_in(0.0, 1.0)?),
            "min.compaction.lag.ms" => Self::MinCompactionLag(ms(n)),
            "max.compaction.lag.ms" => Self::MaxCompactionLag(ms(n)),
            _ => Self::WithoutEffect,
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
            Self::WithoutEffect => {}
        }
    }
}

/// Checks one topic config entry, as CreateTopics and AlterConfigs must
/// before anything is stored; the error names the key.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    TopicSetting::parse(key.trim(), value).map(drop)
}

/// Checks a whole set of overrides: every entry, then the rules between
/// keys that Kafka's `LogConfig.validateValues` applies.
pub fn validate_topic_configs(overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in overrides {
        validate_topic_config(key, value)?;
    }
    let long = |key: &str, unset: i64| {
        overrides
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(unset)
    };
    let min = long("min.compaction.lag.ms", 0);
    let max = long("max.compaction.lag.ms", i64::MAX);
    if min > max {
        return Err(ConfigError::invalid(
            "min.compaction.lag.ms",
            &min.to_string(),
            &Source::Topic,
            format!(
                "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
            ),
        ));
    }
    Ok(())
}

/// Checks that `key` names a topic config gregor supports, e.g. before it is
/// reset to its default.
pub fn validate_topic_config_key(key: &str) -> Result<(), ConfigError> {
    match topic_key(key.trim()) {
        Some(_) => Ok(()),
        None => Err(ConfigError::UnknownTopicConfig {
            key: key.trim().to_owned(),
        }),
    }
}

/// Applies validated overrides on top of the broker defaults; any invalid
/// entry is an error.
pub fn resolve_topic_log(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> Result<LogDefaults, ConfigError> {
    validate_topic_configs(overrides)?;
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

/// The effective broker-wide value of a topic key gregor acts on, in the
/// topic key's unit; `None` for the keys it does not act on.
fn applied_default(d: &LogDefaults, key: &str) -> Option<String> {
    Some(match key {
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
        _ => return None,
    })
}

/// One topic key as DescribeConfigs shows it, the way Kafka does: an
/// override is a DYNAMIC_TOPIC_CONFIG; otherwise the value comes from the
/// first broker synonym set in the broker's config (STATIC_BROKER_CONFIG),
/// else from the default (DEFAULT_CONFIG). The synonyms list the override,
/// then every broker synonym set explicitly, then those with a default.
fn describe_topic_key(
    row: &TopicKey,
    broker: &RawConfig,
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> DescribedConfig {
    let mut synonyms = Vec::new();
    let overridden = overrides.get(row.name).map(|v| v.trim().to_string());
    if let Some(value) = &overridden {
        synonyms.push(ConfigSynonym::new(
            row.name,
            Some(value.clone()),
            ConfigSource::DynamicTopic,
        ));
    }
    let explicit: Vec<(&str, String)> = row
        .synonyms
        .iter()
        .filter_map(|name| Some((*name, broker.explicit(name)?.value.trim().to_string())))
        .collect();
    for (name, value) in &explicit {
        synonyms.push(ConfigSynonym::new(
            name,
            Some(value.clone()),
            ConfigSource::StaticBroker,
        ));
    }
    for name in row.synonyms {
        if let Some(value) = super::broker_keys::default_value(name) {
            synonyms.push(ConfigSynonym::new(name, Some(value), ConfigSource::Default));
        }
    }
    // The broker's own resolved value for the keys gregor acts on; for the
    // rest, a broker key in the topic key's unit, else Kafka's default.
    let inherited = applied_default(defaults, row.name).unwrap_or_else(|| {
        explicit
            .iter()
            .find(|(name, _)| Some(name) == row.synonyms.first())
            .map_or_else(|| row.default.to_string(), |(_, value)| value.clone())
    });
    let source = match (&overridden, explicit.is_empty()) {
        (Some(_), _) => ConfigSource::DynamicTopic,
        (None, false) => ConfigSource::StaticBroker,
        (None, true) => ConfigSource::Default,
    };
    DescribedConfig {
        name: row.name.to_string(),
        value: Some(overridden.unwrap_or(inherited)),
        source,
        sensitive: false,
        read_only: false,
        config_type: row.config_type(),
        synonyms,
        documentation: Some(row.doc.to_string()),
    }
}

/// Every topic key of a topic with `overrides` on a broker configured by
/// `broker` (resolved into `defaults`), for DescribeConfigs.
pub fn describe_topic_configs(
    broker: &RawConfig,
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    TOPIC_KEYS
        .iter()
        .map(|row| describe_topic_key(row, broker, defaults, overrides))
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
}

#[cfg(test)]
mod tests;
