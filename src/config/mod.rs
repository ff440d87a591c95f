//! Broker configuration, in two stages.
//!
//! Stage 1 ([`RawConfig`]) gathers Kafka-style string keys from defaults, a
//! `server.properties`/YAML file, the environment and command-line overrides,
//! remembering where each value came from so that errors can point at it.
//! Stage 2 ([`RawConfig::validate`]) turns the strings into typed
//! [`BrokerSettings`]; nothing downstream ever parses a config string again.

mod authorizer;
mod broker_keys;
mod connections;
mod describe;
mod inter_broker;
mod kraft;
mod listeners;
mod properties;
mod raw;
mod sasl;
mod settings;
mod tls;
mod topic;
mod topic_keys;
mod zookeeper_tls;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use authorizer::AUTHORIZER_CLASS_NAMES;
pub use connections::{ConnectionSettings, default_connection_limits, open_files_limit};
pub use describe::{
    ConfigSource, ConfigSynonym, ConfigType, DescribedConfig, describe_broker_configs,
};
pub use inter_broker::{InterBrokerLogin, InterBrokerSettings};
pub use kraft::{ControllerListener, KraftSettings, ProcessRoles, parse_voters};
pub use listeners::{ListenerSettings, default_advertised_host};
pub use properties::{PropertiesError, Property, parse_properties};
pub use raw::{RawConfig, RawValue, Source, is_known_key, parse_override};
pub use sasl::{ListenerSasl, SaslSettings, Secret};
pub use settings::{
    BrokerSettings, CleanerSettings, GroupSettings, LeaderRebalance, LogDefaults, LogFormat,
    TimestampType,
};
pub use tls::{ClientAuth, Keystore, TLS_KEYS, TlsSettings, TlsVersion, Truststore};
pub use topic::{
    PartitionLimits, ProduceLimits, ProduceRefusal, TopicConfig, describe_topic_configs,
    resolve_stored_topic_log, resolve_topic_log, topic_config_keys, topic_keys_without_effect,
    validate_topic_config, validate_topic_config_key, validate_topic_configs,
};
pub use zookeeper_tls::{CoordinatorTlsSettings, ZOOKEEPER_TLS_KEYS, resolve_coordinator_tls};

/// Every configuration problem. Each variant renders as a single line so the
/// binary can print it verbatim before exiting with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The config file named on the command line could not be read.
    #[error("cannot read config file {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// The config file is not valid `.properties` or YAML.
    #[error("cannot parse config file {}{}: {message}", path.display(), line_suffix(*line))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A key has a value that does not validate.
    #[error("invalid value {value:?} for {key} (from {from}): {reason}")]
    Invalid {
        key: String,
        value: String,
        from: Source,
        reason: String,
    },
    /// A per-topic config key that Kafka would answer with INVALID_CONFIG.
    #[error("unknown topic config {key:?}")]
    UnknownTopicConfig { key: String },
    /// A command-line override that is not of the form `key=value`.
    #[error("invalid override {0:?}: expected key=value")]
    BadOverride(String),
    /// The environment could not be read as a map of strings.
    #[error("cannot read environment: {0}")]
    Env(String),
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`]; newlines in the reason are folded
    /// so the message stays on one line.
    pub fn invalid(key: &str, value: &str, from: &Source, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            from: from.clone(),
            reason: one_line(&reason.into()),
        }
    }
}

/// Folds a possibly multi-line message (e.g. from serde_yaml) onto one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the binary found its configuration. `Default` is empty: it never
/// looks at the process environment (see [`ConfigSources::process_env`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// `server.properties` or `.yml`/`.yaml` file, if one was given.
    pub file: Option<PathBuf>,
    /// Environment variables to consider; the binary passes the real ones.
    pub env: Vec<(String, String)>,
    /// `--override key=value` pairs and named flags, already mapped to keys.
    pub overrides: Vec<(String, String)>,
}

impl ConfigSources {
    /// The process environment as UTF-8 pairs; non-UTF-8 variables cannot be
    /// config values anyway, so they are skipped instead of panicking.
    pub fn process_env() -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

/// Reads the file, merges all sources (flags > environment > file >
/// defaults), warns once about each unknown key and validates.
pub fn load(sources: &ConfigSources) -> Result<BrokerSettings, ConfigError> {
    let raw = RawConfig::assemble(sources)?;
    raw.warn_unknown();
    raw.validate()
}
