//! Configs as DescribeConfigs shows them: value, where it came from, the
//! synonyms it was chosen among, type and documentation. Built here from the
//! raw sources, so the broker's handler only encodes it.

use super::broker_keys::{BROKER_KEYS, default_value, synonyms};
use super::raw::{RawConfig, is_ignored_key};

/// Kafka's `DescribeConfigsResponse.ConfigSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

impl ConfigSource {
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// Kafka's `DescribeConfigsResponse.ConfigType` (v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Unknown = 0,
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    /// Shown as sensitive: DescribeConfigs never returns the value.
    Password = 9,
}

impl ConfigType {
    pub fn id(self) -> i8 {
        self as i8
    }
}

/// One candidate value of a config, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

impl ConfigSynonym {
    pub fn new(name: &str, value: Option<String>, source: ConfigSource) -> Self {
        ConfigSynonym {
            name: name.to_string(),
            value,
            source,
        }
    }
}

/// One entry of a DescribeConfigs result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    /// `None` when unset, or hidden because the config is sensitive.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub sensitive: bool,
    pub read_only: bool,
    pub config_type: ConfigType,
    /// Highest precedence first, as Kafka orders them.
    pub synonyms: Vec<ConfigSynonym>,
    pub documentation: Option<String>,
}

/// Every broker key gregor knows, plus any other key the operator set, as
/// Kafka's broker DescribeConfigs shows them.
///
/// Each key reports its own value (`None` when unset) and the synonyms
/// Kafka's `configSynonyms` yields: those of its synonym group set in the
/// broker's config (STATIC_BROKER_CONFIG), then those with a default
/// (DEFAULT_CONFIG), from the key itself on. gregor has no dynamic broker
/// configs, so every key is read-only. A key gregor does not know has no
/// type and is treated as sensitive, as Kafka treats keys of unknown type.
pub fn describe_broker_configs(raw: &RawConfig) -> Vec<DescribedConfig> {
    let mut described: Vec<DescribedConfig> = BROKER_KEYS
        .iter()
        .map(|row| {
            let names = synonyms(row.name);
            let explicit = names.iter().filter_map(|name| {
                let value = raw.explicit(name)?.value.clone();
                Some(ConfigSynonym::new(
                    name,
                    Some(value),
                    ConfigSource::StaticBroker,
                ))
            });
            let defaults = names.iter().filter_map(|name| {
                let value = default_value(name)?;
                Some(ConfigSynonym::new(name, Some(value), ConfigSource::Default))
            });
            let sensitive = row.config_type == ConfigType::Password;
            let mut synonyms: Vec<ConfigSynonym> = explicit
                .chain(defaults)
                .skip_while(|s| s.name != row.name)
                .collect();
            let value = raw
                .explicit(row.name)
                .map(|v| v.value.clone())
                .or_else(|| default_value(row.name))
                .filter(|_| !sensitive);
            if sensitive {
                synonyms.iter_mut().for_each(|s| s.value = None);
            }
            DescribedConfig {
                name: row.name.to_string(),
                value,
                source: synonyms.first().map_or(ConfigSource::Default, |s| s.source),
                sensitive,
                read_only: true,
                config_type: row.config_type,
                synonyms,
                documentation: Some(if is_ignored_key(row.name) {
                    format!("{} gregor accepts this key and ignores it.", row.doc)
                } else {
                    row.doc.to_string()
                }),
            }
        })
        .collect();
    for (name, value) in raw.iter() {
        if value.from == super::Source::Default || described.iter().any(|d| d.name == name) {
            continue;
        }
        described.push(DescribedConfig {
            name: name.to_string(),
            value: None,
            source: ConfigSource::StaticBroker,
            sensitive: true,
            read_only: true,
            config_type: ConfigType::Unknown,
            synonyms: vec![ConfigSynonym::new(name, None, ConfigSource::StaticBroker)],
            documentation: None,
        });
    }
    described
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, is_known_key};

    fn find<'a>(rows: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
        rows.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn every_known_broker_key_has_a_type_and_documentation() {
        for row in BROKER_KEYS {
            assert!(
                is_known_key(row.name),
                "{} is described but unknown",
                row.name
            );
        }
        let described = describe_broker_configs(&RawConfig::with_defaults());
        for (name, _) in RawConfig::with_defaults().iter() {
            let entry = find(&described, name);
            assert_ne!(entry.config_type, ConfigType::Unknown, "{name}");
        }
        let sorted = BROKER_KEYS.windows(2).all(|w| w[0].name < w[1].name);
        assert!(sorted, "BROKER_KEYS is sorted and has no duplicates");
    }

    #[test]
    fn broker_configs_show_their_source_and_synonyms_as_kafka_does() {
        let mut raw = RawConfig::new();
        let file = Source::File {
            path: "server.properties".into(),
            line: Some(3),
        };
        raw.set("log.retention.minutes", "30", file.clone());
        raw.set("num.io.threads", "16", file.clone());
        raw.set("ssl.keystore.password", "hunter2", file);
        let rows = describe_broker_configs(&raw);

        // Unset and outranked by nothing: no value, no synonyms, a default.
        let ms = find(&rows, "log.retention.ms");
        assert_eq!(
            (ms.value.as_deref(), ms.source),
            (None, ConfigSource::Default)
        );
        assert!(ms.synonyms.is_empty());
        let minutes = find(&rows, "log.retention.minutes");
        assert_eq!(minutes.value.as_deref(), Some("30"));
        assert_eq!(minutes.source, ConfigSource::StaticBroker);
        assert_eq!(
            minutes.synonyms,
            vec![
                ConfigSynonym::new(
                    "log.retention.minutes",
                    Some("30".into()),
                    ConfigSource::StaticBroker
                ),
                ConfigSynonym::new(
                    "log.retention.hours",
                    Some("168".into()),
                    ConfigSource::Default
                ),
            ]
        );
        let hours = find(&rows, "log.retention.hours");
        assert_eq!(hours.source, ConfigSource::Default);
        assert_eq!(hours.value.as_deref(), Some("168"));
        assert_eq!(hours.config_type, ConfigType::Int);

        let threads = find(&rows, "num.io.threads");
        assert_eq!(threads.value.as_deref(), Some("16"));
        assert!(
            threads
                .documentation
                .as_deref()
                .unwrap()
                .contains("ignores")
        );
        assert!(rows.iter().all(|r| r.read_only));

        // A key gregor does not know has no type, so it is hidden.
        let secret = find(&rows, "ssl.keystore.password");
        assert!(secret.sensitive && secret.value.is_none());
        assert_eq!(secret.synonyms[0].value, None);
    }
}
