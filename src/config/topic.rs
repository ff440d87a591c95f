//! Per-topic config overrides (CreateTopics / AlterConfigs / DescribeConfigs).
//!
//! Unlike broker keys, an unknown topic key is an error: Kafka answers it
//! with INVALID_CONFIG, and clients rely on that to catch typos.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ConfigError;
use super::raw::Source;
use super::settings::{Field, LogDefaults, to_u64};

/// Topic-level keys gregor understands, sorted as Kafka lists them.
const TOPIC_KEYS: &[&str] = &[
    "cleanup.policy",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

const I32_MAX: i64 = i32::MAX as i64;

pub fn topic_config_keys() -> &'static [&'static str] {
    TOPIC_KEYS
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Applies validated overrides on top of the broker defaults.
pub fn resolve_topic_log(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
) -> Result<LogDefaults, ConfigError> {
    let mut log = defaults.clone();
    let from = Source::Topic;
    for (key, value) in overrides {
        let f = Field {
            key,
            value,
            from: &from,
        };
        match key.as_str() {
            "retention.ms" => log.retention = f.time_or_unlimited(1, i64::MAX)?,
            "retention.bytes" => {
                let n = f.int_in(-1, i64::MAX)?;
                log.retention_bytes = (n >= 0).then(|| to_u64(n));
            }
            "segment.bytes" => log.segment_bytes = to_u64(f.int_in(14, I32_MAX)?),
            "segment.ms" => {
                log.segment_roll = Duration::from_millis(to_u64(f.int_in(1, i64::MAX)?))
            }
            "cleanup.policy" => log.cleanup_policy = f.cleanup_policy()?,
            "message.timestamp.type" => log.message_timestamp_type = f.timestamp_type()?,
            "max.message.bytes" => {
                log.max_message_bytes =
                    usize::try_from(f.int_in(0, I32_MAX)?).unwrap_or(usize::MAX);
            }
            "min.insync.replicas" => {
                log.min_insync_replicas = i32::try_from(f.int_in(1, I32_MAX)?).unwrap_or(1);
            }
            "flush.messages" => log.flush_interval_messages = to_u64(f.int_in(1, i64::MAX)?),
            "flush.ms" => {
                // Long.MAX is Kafka's spelling of "never", same as unset.
                let n = f.int_in(0, i64::MAX)?;
                log.flush_interval = (n != i64::MAX).then(|| Duration::from_millis(to_u64(n)));
            }
            "index.interval.bytes" => log.index_interval_bytes = to_u64(f.int_in(0, I32_MAX)?),
            _ => return Err(ConfigError::UnknownTopicConfig { key: key.clone() }),
        }
    }
    Ok(log)
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

        let e = resolve_topic_log(&d, &map(&[("cleanup.policy", "compact")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value \"compact\" for cleanup.policy (from topic config): \
         only \"delete\" is supported; log compaction is not implemented"
        );
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
