use super::*;
use crate::config::{ConfigError, ConfigType, RawConfig, TimestampType, is_known_key};

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
            ("cleanup.policy", "delete,compact"),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("min.compaction.lag.ms", "5"),
            ("max.compaction.lag.ms", "60000"),
        ]),
    )
    .unwrap();
    assert_eq!(t.cleanup_policy, "compact,delete");
    assert_eq!(t.delete_retention, Duration::from_secs(1));
    assert_eq!(t.min_cleanable_dirty_ratio, 0.1);
    assert_eq!(t.min_compaction_lag, Duration::from_millis(5));
    assert_eq!(t.max_compaction_lag, Duration::from_secs(60));
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
    // A topic key is a broker key only where Kafka spells both the same.
    for key in topic_config_keys() {
        let same_at_both_levels = topic_key(key).is_some_and(|k| k.synonyms.contains(&key));
        assert!(
            !is_known_key(key) || same_at_both_levels,
            "{key} is a topic key"
        );
    }
}

#[test]
fn one_validator_names_the_key_for_unknown_refused_and_bad_values() {
    assert!(validate_topic_config("retention.ms", "-1").is_ok());
    assert!(validate_topic_config("max.message.bytes", "100").is_ok());
    assert!(validate_topic_config("preallocate", "true").is_ok());
    let e = validate_topic_config("preallocate", "yes")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("preallocate") && e.contains("true or false"),
        "{e}"
    );
    assert!(validate_topic_config("cleanup.policy", "compact").is_ok());
    assert!(validate_topic_config("cleanup.policy", "delete,compact").is_ok());
    assert!(validate_topic_config("cleanup.policy", " delete , delete").is_ok());
    assert!(validate_topic_config("cleanup.policy", "").is_err());
    assert!(validate_topic_config("cleanup.policy", "shred").is_err());
    let e = validate_topic_config("retention.mss", "1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("retention.mss"), "{e}");
    assert!(validate_topic_config("segment.bytes", "10").is_err());
    assert!(validate_topic_config("min.insync.replicas", "0").is_err());
    assert!(validate_topic_config_key("retention.ms").is_ok());
    assert!(validate_topic_config_key("preallocate").is_ok());
    assert!(validate_topic_config_key("bogus").is_err());
}

/// A valid value of every Kafka 3.9 topic key.
const VALID: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.gzip.level", "9"),
    ("compression.lz4.level", "17"),
    ("compression.type", "zstd"),
    ("compression.zstd.level", "-5"),
    ("delete.retention.ms", "1000"),
    ("file.delete.delay.ms", "0"),
    ("flush.messages", "10"),
    ("flush.ms", "1000"),
    ("follower.replication.throttled.replicas", "0:0,1:0"),
    ("index.interval.bytes", "8192"),
    ("leader.replication.throttled.replicas", "*"),
    ("local.retention.bytes", "-2"),
    ("local.retention.ms", "-2"),
    ("max.compaction.lag.ms", "600000"),
    ("max.message.bytes", "2000000"),
    ("message.downconversion.enable", "false"),
    ("message.format.version", "0.10.0"),
    ("message.timestamp.after.max.ms", "3600000"),
    ("message.timestamp.before.max.ms", "3600000"),
    ("message.timestamp.difference.max.ms", "3600000"),
    ("message.timestamp.type", "LogAppendTime"),
    ("min.cleanable.dirty.ratio", "0.25"),
    ("min.compaction.lag.ms", "1000"),
    ("min.insync.replicas", "1"),
    ("preallocate", "true"),
    ("remote.log.copy.disable", "true"),
    ("remote.log.delete.on.disable", "true"),
    ("remote.storage.enable", "false"),
    ("retention.bytes", "-5"),
    ("retention.ms", "86400000"),
    ("segment.bytes", "1048576"),
    ("segment.index.bytes", "4096"),
    ("segment.jitter.ms", "100"),
    ("segment.ms", "3600000"),
    ("unclean.leader.election.enable", "true"),
];

#[test]
fn every_kafka_topic_key_is_accepted_at_a_valid_value() {
    let keys: Vec<&str> = topic_config_keys().collect();
    let valid: Vec<&str> = VALID.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, valid, "one valid value per key, in the table's order");
    let d = log_defaults();
    let log = resolve_topic_log(&d, &map(VALID)).unwrap();
    assert_eq!(log.retention_bytes, None, "any negative size is unlimited");
    assert_eq!(log.message_timestamp_type, TimestampType::LogAppendTime);
    assert!(TopicConfig::from_pairs(env(VALID), &d).is_ok());
}

#[test]
fn out_of_range_values_are_refused_naming_the_key() {
    for (key, value) in [
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
        ("compression.type", "brotli"),
        ("compression.type", "ZSTD"),
        ("delete.retention.ms", "-1"),
        ("file.delete.delay.ms", "-1"),
        ("flush.messages", "0"),
        ("follower.replication.throttled.replicas", "0:x"),
        ("index.interval.bytes", "-1"),
        ("local.retention.ms", "-3"),
        ("local.retention.bytes", "-3"),
        ("max.compaction.lag.ms", "0"),
        ("max.message.bytes", "2147483648"),
        ("message.downconversion.enable", "maybe"),
        ("message.format.version", "0.7"),
        ("message.format.version", "3.0-IV9"),
        ("message.timestamp.after.max.ms", "-1"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "NaN"),
        ("min.compaction.lag.ms", "-1"),
        ("remote.storage.enable", "true"),
        ("retention.ms", "-2"),
        ("segment.bytes", "13"),
        ("segment.index.bytes", "3"),
        ("segment.jitter.ms", "-1"),
        ("segment.ms", "0"),
        ("unclean.leader.election.enable", "1"),
    ] {
        let e = validate_topic_config(key, value).expect_err(&format!("{key}={value}"));
        assert!(e.to_string().contains(key), "{e}");
    }
    let e = validate_topic_configs(&map(&[
        ("min.compaction.lag.ms", "10"),
        ("max.compaction.lag.ms", "5"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
        "{e}"
    );
}

#[test]
fn message_format_versions_read_as_kafka_reads_them() {
    for version in [
        "0.8.0",
        "0.9.0",
        "0.10.0",
        "0.10.0-IV1",
        "0.10.0.1",
        "0.11.0",
        "1.0",
        "2.8",
        "2.8.1",
        "3.0-IV1",
        "3.9",
    ] {
        let checked = validate_topic_config("message.format.version", version);
        assert!(checked.is_ok(), "{version}: {checked:?}");
    }
    for version in ["0.10", "3", "3.0-IV2", "3.0-IV01", "4.0", "", "latest"] {
        let checked = validate_topic_config("message.format.version", version);
        assert!(checked.is_err(), "{version}");
    }
}

#[test]
fn stored_configs_keep_their_valid_entries_when_one_is_refused() {
    let d = log_defaults();
    let stored = map(&[("retention.ms", "-1"), ("remote.storage.enable", "true")]);
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

fn described<'a>(rows: &'a [DescribedConfig], key: &str) -> &'a DescribedConfig {
    rows.iter().find(|r| r.name == key).unwrap()
}

#[test]
fn topic_configs_describe() {
    let d = log_defaults();
    let broker = RawConfig::new();
    let rows = describe_topic_configs(&broker, &d, &map(&[("retention.ms", "1000")]));
    let value = |k: &str| described(&rows, k).value.clone().unwrap();
    let retention = described(&rows, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert_eq!(
        retention.synonyms,
        vec![
            ConfigSynonym::new(
                "retention.ms",
                Some("1000".into()),
                ConfigSource::DynamicTopic
            ),
            ConfigSynonym::new(
                "log.retention.hours",
                Some("168".into()),
                ConfigSource::Default
            ),
        ]
    );
    let bytes = described(&rows, "retention.bytes");
    assert_eq!(
        (bytes.value.as_deref(), bytes.source),
        (Some("-1"), ConfigSource::Default)
    );
    assert_eq!(value("segment.ms"), "604800000");
    assert_eq!(value("segment.bytes"), "1073741824");
    assert_eq!(value("flush.ms"), i64::MAX.to_string());
    assert_eq!(value("flush.messages"), i64::MAX.to_string());
    assert_eq!(value("cleanup.policy"), "delete");
    assert_eq!(value("message.timestamp.type"), "CreateTime");
    assert_eq!(value("max.message.bytes"), "1048588");
    assert_eq!(value("message.format.version"), "3.0-IV1");
    assert_eq!(value("min.cleanable.dirty.ratio"), "0.5");
    let ratio = described(&rows, "min.cleanable.dirty.ratio");
    assert_eq!(ratio.config_type, ConfigType::Double);
    assert_eq!(rows.len(), topic_config_keys().count());
    let unlimited = LogDefaults {
        retention: None,
        ..d
    };
    let rows = describe_topic_configs(&broker, &unlimited, &BTreeMap::new());
    let retention = described(&rows, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("-1"));
}

#[test]
fn topic_configs_inherit_from_the_broker_config_as_static_broker_config() {
    let mut broker = RawConfig::new();
    let file = Source::File {
        path: "server.properties".into(),
        line: Some(1),
    };
    broker.set("log.retention.ms", "5000", file.clone());
    broker.set("log.cleaner.min.cleanable.ratio", "0.75", file);
    let d = broker.validate_with(&|| "h".to_string()).unwrap().log;
    let rows = describe_topic_configs(&broker, &d, &BTreeMap::new());
    let retention = described(&rows, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("5000"));
    assert_eq!(retention.source, ConfigSource::StaticBroker);
    assert_eq!(
        retention.synonyms,
        vec![
            ConfigSynonym::new(
                "log.retention.ms",
                Some("5000".into()),
                ConfigSource::StaticBroker
            ),
            ConfigSynonym::new(
                "log.retention.hours",
                Some("168".into()),
                ConfigSource::Default
            ),
        ]
    );
    let ratio = described(&rows, "min.cleanable.dirty.ratio");
    assert_eq!(
        (ratio.value.as_deref(), ratio.source),
        (Some("0.75"), ConfigSource::StaticBroker)
    );
}

#[test]
fn the_readme_lists_every_key_accepted_without_effect() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("Accepted without effect")
        .expect("README has the list");
    let list = &readme[start..start + readme[start..].find("\n\n").unwrap_or(0)];
    for key in topic_keys_without_effect() {
        assert!(
            list.contains(&format!("`{key}`")),
            "README does not list {key}"
        );
    }
    for key in topic_config_keys().filter(|k| !topic_keys_without_effect().any(|w| w == *k)) {
        assert!(
            !list.contains(&format!("`{key}`")),
            "README lists {key}, which applies"
        );
    }
}
