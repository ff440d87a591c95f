//! Stage 1: string-valued Kafka keys gathered from every source, each value
//! remembering where it came from so validation errors can say so.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use super::properties::parse_properties;
use super::tls::{TLS_KEYS, is_listener_tls_key};
use super::{ConfigError, ConfigSources, one_line};

/// Where a raw value came from; shown in error messages and warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built-in default.
    Default,
    /// A config file; `line` is known for `.properties` files.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable, by its real name.
    Env(String),
    /// A command-line flag or `--override`.
    Flag,
    /// A per-topic config (CreateTopics / AlterConfigs), validated separately.
    Topic,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File {
                path,
                line: Some(l),
            } => write!(f, "file {} line {l}", path.display()),
            Source::File { path, line: None } => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Flag => f.write_str("command line"),
            Source::Topic => f.write_str("topic config"),
        }
    }
}

/// One raw value and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub value: String,
    pub from: Source,
}

/// Keys with a built-in default. The defaults live here, as raw strings, so
/// that they go through exactly the same validation as user input.
const DEFAULTS: &[(&str, &str)] = &[
    ("broker.id", "0"),
    ("listeners", "PLAINTEXT://0.0.0.0:9092"),
    (
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
    ),
    ("log.dir", "./data"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("min.insync.replicas", "1"),
    ("auto.create.topics.enable", "true"),
    ("delete.topic.enable", "true"),
    ("log.retention.hours", "168"),
    ("log.retention.bytes", "-1"),
    ("log.segment.bytes", "1073741824"),
    ("log.roll.hours", "168"),
    ("log.flush.interval.messages", "9223372036854775807"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.index.interval.bytes", "4096"),
    ("log.message.timestamp.type", "CreateTime"),
    ("log.cleanup.policy", "delete"),
    ("log.cleaner.enable", "true"),
    ("log.cleaner.threads", "1"),
    ("log.cleaner.dedupe.buffer.size", "134217728"),
    (
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
    ),
    ("log.cleaner.backoff.ms", "15000"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleaner.max.compaction.lag.ms", "9223372036854775807"),
    ("socket.request.max.bytes", "104857600"),
    ("message.max.bytes", "1048588"),
    ("gregor.message.max.decompressed.bytes", "67108864"),
    ("fetch.max.bytes", "57671680"),
    ("admin.listener", "127.0.0.1:9644"),
    ("gregor.log.format", "text"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("offsets.retention.minutes", "10080"),
    ("gregor.shutdown.timeout.ms", "5000"),
    ("connections.max.idle.ms", "600000"),
    ("connection.failed.authentication.delay.ms", "100"),
    ("connections.max.reauth.ms", "0"),
    ("gregor.request.receive.timeout.ms", "30000"),
    ("gregor.max.partitions.per.topic", "10000"),
    ("gregor.max.partitions.per.broker", "4000"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.commit.timeout.ms", "5000"),
    ("controlled.shutdown.enable", "true"),
    ("replica.lag.time.max.ms", "30000"),
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("leader.imbalance.per.broker.percentage", "10"),
    ("eligible.leader.replicas.version", "0"),
];

/// Keys that are used but have no default (their absence means something).
const OPTIONAL: &[&str] = &[
    "node.id",
    "inter.broker.listener.name",
    "broker.rack",
    "broker.id.from.pod.name",
    "log.dirs",
    "advertised.listeners",
    "port",
    "host.name",
    "advertised.host.name",
    "advertised.port",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.ms",
    "log.flush.interval.ms",
    "zookeeper.connect",
    "coordinator.connect",
    // KRaft's shape (see kraft.rs).
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "gregor.quorum.snapshot.after.entries",
    "admin.port",
    // Defaults derived at validation (open-file limit, frame size).
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "queued.max.request.bytes",
    // SASL (see sasl.rs); per-listener variants in is_listener_sasl_key.
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "client.users",
    "client.passwords",
    // Authorization: no authorizer unless named.
    "authorizer.class.name",
    "super.users",
    "allow.everyone.if.no.acl.found",
    // The client side of TLS between KRaft nodes (see tls.rs).
    "ssl.endpoint.identification.algorithm",
];

/// Kafka keys that real deployments set but that mean nothing for a single
/// gregor broker; accepted silently so stock config files don't spam warnings.
const IGNORED: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transactional.id.expiration.ms",
    "zookeeper.connection.timeout.ms",
    "zookeeper.session.timeout.ms",
    "inter.broker.protocol.version",
    "security.inter.broker.protocol",
    "sasl.mechanism.inter.broker.protocol",
    "cluster.id",
    "metadata.log.dir",
    "log.message.format.version",
    "log.message.downconversion.enable",
    "log.preallocate",
    "log.segment.delete.delay.ms",
    "log.index.size.max.bytes",
    "log.flush.scheduler.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "compression.type",
    "unclean.leader.election.enable",
    "broker.id.generation.enable",
    "reserved.broker.max.id",
    "queued.max.requests",
    "background.threads",
    "request.timeout.ms",
    "metric.reporters",
    "confluent.support.metrics.enable",
    "confluent.support.customer.id",
    // Broker defaults of topic keys gregor accepts without effect.
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "log.local.retention.bytes",
    "log.local.retention.ms",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.difference.max.ms",
    "log.roll.jitter.hours",
    "log.roll.jitter.ms",
    // TLS keys of the JVM's SSL engine; rustls has no counterpart.
    "ssl.keymanager.algorithm",
    "ssl.protocol",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
];

/// Environment variables the Kafka launcher scripts and images use for the
/// JVM and tooling, after `KAFKA_` is stripped and the name is dotted.
const LAUNCHER_EXACT: &[&str] = &[
    "heap.opts",
    "opts",
    "jvm.performance.opts",
    "gc.log.opts",
    "debug",
    "home",
    "version",
    "gc.log.enabled",
];
const LAUNCHER_PREFIXES: &[&str] = &["jmx.", "log4j.", "java.", "tools."];

/// Whether `key` is one gregor knows about (used, or accepted and ignored).
pub fn is_known_key(key: &str) -> bool {
    DEFAULTS.iter().any(|(k, _)| *k == key)
        || OPTIONAL.contains(&key)
        || IGNORED.contains(&key)
        || TLS_KEYS.contains(&key)
        || is_listener_tls_key(key)
        || super::ZOOKEEPER_TLS_KEYS.contains(&key)
        || is_listener_sasl_key(key)
}

/// `listener.name.NAME.sasl.enabled.mechanisms` and
/// `listener.name.NAME.MECHANISM.sasl.jaas.config`.
fn is_listener_sasl_key(key: &str) -> bool {
    key.strip_prefix("listener.name.").is_some_and(|rest| {
        rest.ends_with(".sasl.enabled.mechanisms") || rest.ends_with(".sasl.jaas.config")
    })
}

/// Whether `key` is accepted only so that Kafka's config files load.
pub fn is_ignored_key(key: &str) -> bool {
    IGNORED.contains(&key)
}

/// Parses one `--override key=value` argument.
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(ConfigError::BadOverride(arg.to_string())),
    }
}

/// Ordered map of Kafka keys to raw values. `Default` is empty; use
/// [`RawConfig::with_defaults`] for the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    entries: BTreeMap<String, RawValue>,
    /// `kafka_host_url` is not a Kafka key, so it is kept apart and only
    /// consulted while resolving advertised listeners.
    host_url: Option<RawValue>,
}

impl RawConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Only the built-in defaults, all tagged [`Source::Default`].
    pub fn with_defaults() -> Self {
        let mut raw = Self::new();
        for (k, v) in DEFAULTS {
            raw.set(*k, *v, Source::Default);
        }
        raw
    }

    /// Sets (replaces) one key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>, from: Source) {
        let value = value.into();
        self.entries.insert(key.into(), RawValue { value, from });
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.entries.get(key)
    }

    /// The value of `key` if it was set by something other than the defaults.
    pub fn explicit(&self, key: &str) -> Option<&RawValue> {
        self.get(key).filter(|v| v.from != Source::Default)
    }

    /// The value of `key`, falling back to its built-in default even when
    /// this config was built without [`RawConfig::with_defaults`].
    pub fn get_or_default(&self, key: &str) -> Option<RawValue> {
        self.get(key).cloned().or_else(|| {
            DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| RawValue {
                    value: (*v).to_string(),
                    from: Source::Default,
                })
        })
    }

    /// Only the values set by something other than the built-in defaults.
    pub fn explicit_only(&self) -> RawConfig {
        RawConfig {
            entries: self
                .entries
                .iter()
                .filter(|(_, v)| v.from != Source::Default)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            host_url: self.host_url.clone(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn host_url(&self) -> Option<&RawValue> {
        self.host_url.as_ref()
    }

    pub fn set_host_url(&mut self, value: impl Into<String>, from: Source) {
        let value = value.into();
        self.host_url = Some(RawValue { value, from });
    }

    /// Layers `higher` on top of `self`: its values win key by key.
    pub fn merge(&mut self, higher: RawConfig) {
        self.entries.extend(higher.entries);
        if higher.host_url.is_some() {
            self.host_url = higher.host_url;
        }
    }

    /// Defaults, then the file, then the environment, then overrides.
    pub fn assemble(sources: &ConfigSources) -> Result<Self, ConfigError> {
        let mut raw = Self::with_defaults();
        if let Some(path) = &sources.file {
            raw.merge(Self::from_file(path)?);
        }
        raw.merge(Self::from_env(sources.env.iter().cloned())?);
        raw.merge(Self::from_overrides(&sources.overrides));
        Ok(raw)
    }

    /// Reads a `.properties` file, or YAML when the name ends in .yml/.yaml.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
        if is_yaml {
            Self::from_yaml(&text, path)
        } else {
            Self::from_properties(&text, path)
        }
    }

    /// Parses `.properties` text; `path` is only used for messages.
    pub fn from_properties(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let props = parse_properties(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: Some(e.line),
            message: e.message,
        })?;
        let mut raw = Self::new();
        for p in props {
            let from = Source::File {
                path: path.to_path_buf(),
                line: Some(p.line),
            };
            raw.set(p.key, p.value, from);
        }
        Ok(raw)
    }

    /// Parses YAML: nested maps flatten to dotted keys, scalars become
    /// strings and lists are joined with commas (Kafka's list syntax).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: None,
            message: one_line(&message),
        };
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let mut flat = Vec::new();
        match &doc {
            serde_yaml::Value::Null => {}
            serde_yaml::Value::Mapping(_) => flatten_yaml("", &doc, &mut flat).map_err(syntax)?,
            _ => return Err(syntax("top level must be a mapping of keys".into())),
        }
        let mut raw = Self::new();
        for (k, v) in flat {
            if raw.entries.contains_key(&k) {
                return Err(syntax(format!("key {k} is given more than once")));
            }
            let from = Source::File {
                path: path.to_path_buf(),
                line: None,
            };
            raw.set(k, v, from);
        }
        Ok(raw)
    }

    /// Maps environment variables, following the official Kafka images:
    /// `KAFKA_LOG_RETENTION_HOURS` => `log.retention.hours` (`__` => `_`,
    /// `___` => `-`). Also `kafka_host_url`/`KAFKA_HOST_URL`,
    /// `GREGOR_DATA_DIR` and `GREGOR_LOG_FORMAT`.
    pub fn from_env<I>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut raw = Self::new();
        let mut kafka_vars = Vec::new();
        let mut upper_host_url = None;
        let mut link = (None, None);
        for (name, value) in vars {
            match name.as_str() {
                "kafka_host_url" => raw.set_host_url(value, Source::Env(name)),
                "KAFKA_HOST_URL" => upper_host_url = Some(value),
                "GREGOR_DATA_DIR" => raw.set("log.dirs", value, Source::Env(name)),
                "GREGOR_LOG_FORMAT" => raw.set("gregor.log.format", value, Source::Env(name)),
                // The conventions of the tutorial's ches/kafka image: an explicit
                // connection string, or the variables `--link zookeeper:zookeeper`
                // defines. KAFKA_ZOOKEEPER_CONNECT (below) wins over both.
                "ZOOKEEPER_CONNECTION_STRING" => {
                    raw.set("zookeeper.connect", value, Source::Env(name))
                }
                "ZOOKEEPER_PORT_2181_TCP_ADDR" => link.0 = Some(value),
                "ZOOKEEPER_PORT_2181_TCP_PORT" => link.1 = Some(value),
                // A StatefulSet pod `name-N` is broker N unless broker.id says otherwise.
                "POD_NAME" => {
                    if let Some(ordinal) = value.rsplit_once('-').map(|(_, n)| n.to_string())
                        && ordinal.parse::<u32>().is_ok()
                    {
                        raw.set("broker.id.from.pod.name", ordinal, Source::Env(name));
                    }
                }
                _ if name.starts_with("KAFKA_") => kafka_vars.push((name, value)),
                _ => {}
            }
        }
        if let (Some(addr), port) = link
            && raw.get("zookeeper.connect").is_none()
        {
            let port = port.unwrap_or_else(|| "2181".to_string());
            raw.set(
                "zookeeper.connect",
                format!("{addr}:{port}"),
                Source::Env("ZOOKEEPER_PORT_2181_TCP_ADDR".into()),
            );
        }
        // The tutorial's lower-case spelling wins if both are present.
        if let (None, Some(v)) = (&raw.host_url, upper_host_url) {
            raw.set_host_url(v, Source::Env("KAFKA_HOST_URL".into()));
        }
        // envy lower-cases names after stripping the prefix; remember the
        // real names so messages can cite the variable the user wrote.
        let real_names: HashMap<String, String> = kafka_vars
            .iter()
            .map(|(n, _)| (n["KAFKA_".len()..].to_lowercase(), n.clone()))
            .collect();
        let map: HashMap<String, String> = envy::prefixed("KAFKA_")
            .from_iter(kafka_vars)
            .map_err(|e| ConfigError::Env(one_line(&e.to_string())))?;
        for (stripped, value) in map {
            let key = env_suffix_to_key(&stripped);
            if is_launcher_var(&key) {
                continue;
            }
            let name = real_names
                .get(&stripped)
                .cloned()
                .unwrap_or_else(|| format!("KAFKA_{}", stripped.to_uppercase()));
            raw.set(key, value, Source::Env(name));
        }
        Ok(raw)
    }

    /// Command-line overrides, already split into key and value.
    pub fn from_overrides(pairs: &[(String, String)]) -> Self {
        let mut raw = Self::new();
        for (k, v) in pairs {
            raw.set(k.trim(), v.clone(), Source::Flag);
        }
        raw
    }

    /// Keys that are neither used nor knowingly ignored.
    pub fn unknown_keys(&self) -> Vec<(&str, &Source)> {
        self.iter()
            .filter(|(k, _)| !is_known_key(k))
            .map(|(k, v)| (k, &v.from))
            .collect()
    }

    /// Logs one warning per unknown key (the map holds each key once).
    pub fn warn_unknown(&self) {
        for (key, from) in self.unknown_keys() {
            tracing::warn!(key, source = %from, "unknown config key {key} (from {from}), ignored");
        }
    }
}

/// `log_retention_hours` => `log.retention.hours`; runs of two and three
/// underscores encode `_` and `-` as in the Confluent images.
fn env_suffix_to_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = 0;
    let flush = |out: &mut String, run: usize| match run {
        0 => {}
        2 => out.push('_'),
        3 => out.push('-'),
        _ => out.push('.'),
    };
    for c in s.chars() {
        if c == '_' {
            run += 1;
        } else {
            flush(&mut out, run);
            run = 0;
            out.push(c);
        }
    }
    flush(&mut out, run);
    out
}

fn is_launcher_var(key: &str) -> bool {
    LAUNCHER_EXACT.contains(&key) || LAUNCHER_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn yaml_scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flatten_yaml(
    prefix: &str,
    v: &serde_yaml::Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    use serde_yaml::Value;
    match v {
        Value::Mapping(map) => {
            for (k, child) in map {
                let k = yaml_scalar(k).ok_or_else(|| format!("non-scalar key under {prefix:?}"))?;
                let full = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_yaml(&full, child, out)?;
            }
        }
        // `key:` with nothing after it means "not set" rather than "".
        Value::Null => {}
        Value::Sequence(items) => {
            let parts = items
                .iter()
                .map(|i| {
                    yaml_scalar(i).ok_or_else(|| format!("{prefix}: list items must be scalars"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push((prefix.to_string(), parts.join(",")));
        }
        Value::Tagged(_) => return Err(format!("{prefix}: tagged values are not supported")),
        scalar => {
            let s = yaml_scalar(scalar).ok_or_else(|| format!("{prefix}: unsupported value"))?;
            out.push((prefix.to_string(), s));
        }
    }
    Ok(())
}
