//! Stage 2: validated, typed settings. Every failure names the key, the
//! offending value and where it came from.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::connections::{ConnectionSettings, open_files_limit};
use super::listeners::{ListenerSettings, default_advertised_host, resolve_listeners};
use super::raw::{RawConfig, RawValue, Source};

/// Everything the broker needs, in real types.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSettings {
    pub broker_id: i32,
    /// `broker.rack`: placement puts a partition's replicas on different racks.
    pub rack: Option<String>,
    /// `controlled.shutdown.enable`: tell the coordinator before stopping.
    pub controlled_shutdown: bool,
    /// `replica.lag.time.max.ms`: how long an ISR member may go without
    /// catching up with the leader before the leader drops it.
    pub replica_lag_time_max: Duration,
    /// `inter.broker.listener.name` (or `security.inter.broker.protocol`):
    /// the listener followers fetch from and how they log in there; `None`
    /// when this broker has no PLAINTEXT listener and names none.
    pub inter_broker: Option<super::InterBrokerSettings>,
    pub listeners: Vec<ListenerSettings>,
    pub data_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    pub delete_topic_enable: bool,
    pub log: LogDefaults,
    pub cleaner: CleanerSettings,
    pub socket_request_max_bytes: usize,
    pub message_max_bytes: usize,
    /// `gregor.message.max.decompressed.bytes`: the most a compressed batch
    /// may expand to; checked as a stream at produce, before it is stored.
    pub message_max_decompressed_bytes: usize,
    /// `fetch.max.bytes`: the most record bytes one Fetch response carries,
    /// whatever the request asks (beyond its first batch, as in Kafka).
    pub fetch_max_bytes: usize,
    /// External coordinator address; `None` means the embedded one.
    pub coordinator: Option<String>,
    /// `process.roles` and the keys that go with it (KRaft's shape); `None`
    /// runs the single node or a broker of a `zookeeper.connect` quorum.
    pub kraft: Option<super::KraftSettings>,
    /// `zookeeper.ssl.*`: TLS to the external coordinator; in KRaft's shape,
    /// the SSL controller listener's client side.
    pub coordinator_tls: Option<super::CoordinatorTlsSettings>,
    pub admin_listener: SocketAddr,
    pub log_format: LogFormat,
    pub groups: GroupSettings,
    pub shutdown_timeout: Duration,
    pub connections: ConnectionSettings,
    /// SASL on the SASL_PLAINTEXT and SASL_SSL listeners.
    pub sasl: super::SaslSettings,
    /// `gregor.max.partitions.per.topic` / `.per.broker`, enforced by the
    /// embedded coordinator (a separate coordinator has its own).
    pub partition_limits: super::PartitionLimits,
    /// The controller's preferred-leader rebalance, when this node is a
    /// KRaft controller (a separate coordinator reads its own keys).
    pub leader_rebalance: LeaderRebalance,
    /// `eligible.leader.replicas.version` (KIP-966) with the cluster-wide
    /// `min.insync.replicas`, when this node is a KRaft controller.
    pub eligible_leader_replicas: crate::cluster::metadata::EligibleLeaderReplicas,
    /// `authorizer.class.name` with `super.users` and
    /// `allow.everyone.if.no.acl.found`; `None` authorizes nothing (every
    /// request is allowed, and the ACL APIs answer SECURITY_DISABLED).
    pub authorizer: Option<crate::security::acl::Authorizer>,
    /// The values set explicitly (file, environment, flags) and where each
    /// came from: only for DescribeConfigs, which shows them as Kafka does.
    pub origins: RawConfig,
}

/// The controller's automatic preferred-leader rebalance: Kafka's
/// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds`
/// and `leader.imbalance.per.broker.percentage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderRebalance {
    pub enabled: bool,
    /// How often the controller looks for imbalance.
    pub check_interval: std::time::Duration,
    /// The share (in %) of a broker's preferred partitions others may lead
    /// before it gets them back.
    pub imbalance_percentage: u32,
}

impl Default for LeaderRebalance {
    /// Kafka's defaults: on, every 300 s, above 10 %.
    fn default() -> Self {
        Self {
            enabled: true,
            check_interval: std::time::Duration::from_secs(300),
            imbalance_percentage: 10,
        }
    }
}

/// Broker-wide log defaults; per-topic overrides produce another instance
/// (see `resolve_topic_log`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogDefaults {
    /// `None` = keep forever.
    pub retention: Option<Duration>,
    /// `None` = no size limit.
    pub retention_bytes: Option<u64>,
    pub segment_bytes: u64,
    pub segment_roll: Duration,
    pub flush_interval_messages: u64,
    /// `None` = never flush on a timer (Kafka's Long.MAX).
    pub flush_interval: Option<Duration>,
    pub retention_check_interval: Duration,
    pub index_interval_bytes: u64,
    pub message_timestamp_type: TimestampType,
    pub cleanup_policy: String,
    /// `message.max.bytes` broker-wide, `max.message.bytes` per topic.
    pub max_message_bytes: usize,
    /// `min.insync.replicas`; kept so per-topic overrides round-trip.
    pub min_insync_replicas: i32,
    /// `delete.retention.ms`: how long a tombstone stays after the cleaner
    /// first kept it (`log.cleaner.delete.retention.ms` broker-wide).
    pub delete_retention: Duration,
    /// `min.cleanable.dirty.ratio` (`log.cleaner.min.cleanable.ratio`).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag: Duration,
    /// `max.compaction.lag.ms`: a log with records dirty for longer is
    /// cleaned whatever its dirty ratio.
    pub max_compaction_lag: Duration,
}

impl LogDefaults {
    /// Whether `cleanup.policy` lists `compact`.
    pub fn compacts(&self) -> bool {
        self.cleanup_policy
            .split(',')
            .any(|p| p.trim() == "compact")
    }

    /// Whether `cleanup.policy` lists `delete` (retention by time and size).
    pub fn deletes(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p.trim() == "delete")
    }
}

/// The log cleaner (`log.cleaner.*`), which compacts topics whose
/// `cleanup.policy` includes `compact`.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerSettings {
    pub enable: bool,
    pub threads: usize,
    /// Memory for the key-to-offset maps, shared by all threads.
    pub dedupe_buffer_size: usize,
    /// Read plus write rate of all cleaner threads; `None` is unlimited.
    pub io_max_bytes_per_second: Option<f64>,
    /// Sleep when no log needs cleaning.
    pub backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's spelling, as used in configs and DescribeConfigs.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Consumer-group coordinator limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// `offsets.topic.num.partitions`: a group belongs to the broker
    /// leading its partition of `__consumer_offsets`.
    pub offsets_topic_partitions: i32,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub initial_rebalance_delay: Duration,
    pub offsets_retention: Duration,
    /// `offsets.topic.replication.factor`: the offsets topic's replication
    /// factor when FindCoordinator creates it.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.commit.timeout.ms`: how long a commit (or a group's
    /// metadata) waits for the offsets partition's in-sync replicas.
    pub offsets_commit_timeout: Duration,
}

/// A value under validation: key, text and origin, so that every parse
/// helper can produce the one-line error without extra plumbing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub from: &'a Source,
}

impl<'a> Field<'a> {
    pub fn new(key: &'a str, rv: &'a RawValue) -> Self {
        Field {
            key,
            value: &rv.value,
            from: &rv.from,
        }
    }

    pub fn err(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.key, self.value, self.from, reason)
    }

    /// An integer in `min..=max`. Kafka trims values before parsing, so do we.
    pub fn int_in(&self, min: i64, max: i64) -> Result<i64, ConfigError> {
        let n: i64 = self
            .value
            .trim()
            .parse()
            .map_err(|_| self.err("expected an integer"))?;
        if n < min {
            return Err(self.err(format!("must be at least {min}")));
        }
        if n > max {
            return Err(self.err(format!("must be at most {max}")));
        }
        Ok(n)
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        match self.value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.err("expected true or false")),
        }
    }

    /// A time in `unit_ms` units where -1 means unlimited.
    pub fn time_or_unlimited(
        &self,
        unit_ms: i64,
        max: i64,
    ) -> Result<Option<Duration>, ConfigError> {
        match self.int_in(-1, max)? {
            -1 => Ok(None),
            n => Ok(Some(Duration::from_millis(to_u64(n) * to_u64(unit_ms)))),
        }
    }

    pub fn timestamp_type(&self) -> Result<TimestampType, ConfigError> {
        let v = self.value.trim();
        if v.eq_ignore_ascii_case("CreateTime") {
            Ok(TimestampType::CreateTime)
        } else if v.eq_ignore_ascii_case("LogAppendTime") {
            Ok(TimestampType::LogAppendTime)
        } else {
            Err(self.err("expected CreateTime or LogAppendTime"))
        }
    }

    /// Kafka's `cleanup.policy`: a list of `delete` and `compact`,
    /// returned in Kafka's spelling (`compact,delete` for both).
    pub fn cleanup_policy(&self) -> Result<String, ConfigError> {
        let (mut delete, mut compact) = (false, false);
        for policy in self.value.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            match policy.as_str() {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return Err(self.err("expected a list of \"delete\" and \"compact\"")),
            }
        }
        Ok(match (compact, delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            (false, true) => "delete",
            (false, false) => return Err(self.err("expected \"delete\", \"compact\" or both")),
        }
        .to_string())
    }

    /// A floating-point number in `min..=max`.
    pub fn float_in(&self, min: f64, max: f64) -> Result<f64, ConfigError> {
        let n: f64 = self
            .value
            .trim()
            .parse()
            .map_err(|_| self.err("expected a number"))?;
        if !(min..=max).contains(&n) {
            return Err(self.err(format!("must be between {min} and {max}")));
        }
        Ok(n)
    }
}

/// Callers check the sign first; this just avoids `as` on negative values.
pub(super) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(to_u64(n))
}

const I32_MAX: i64 = i32::MAX as i64;

impl RawConfig {
    /// The value of a key that has a built-in default, or of an optional
    /// key that is known to be present.
    fn field_owned(&self, key: &str) -> Result<RawValue, ConfigError> {
        self.get_or_default(key)
            .ok_or_else(|| ConfigError::Invalid {
                key: key.to_string(),
                value: String::new(),
                from: Source::Default,
                reason: "missing value".into(),
            })
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
        let rv = self.field_owned(key)?;
        Field::new(key, &rv).int_in(min, max)
    }

    fn float(&self, key: &str, min: f64, max: f64) -> Result<f64, ConfigError> {
        let rv = self.field_owned(key)?;
        Field::new(key, &rv).float_in(min, max)
    }

    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        let rv = self.field_owned(key)?;
        Field::new(key, &rv).bool()
    }

    /// The first of `keys` that is present, with Kafka's precedence
    /// (e.g. ms over minutes over hours) regardless of each value's source.
    fn first_of<'k>(&self, keys: &[&'k str]) -> Option<(&'k str, RawValue)> {
        keys.iter()
            .find_map(|k| self.get(k).map(|rv| (*k, rv.clone())))
            .or_else(|| {
                keys.iter()
                    .find_map(|k| self.get_or_default(k).map(|rv| (*k, rv)))
            })
    }

    /// Validates with the real advertised-host lookup.
    pub fn validate(&self) -> Result<BrokerSettings, ConfigError> {
        self.validate_with(&default_advertised_host)
    }

    /// Validates; `default_host` supplies the advertised host for wildcard
    /// listeners (tests pass a fixed one). Connection limits default to a
    /// share of this process's open-file limit.
    pub fn validate_with(
        &self,
        default_host: &dyn Fn() -> String,
    ) -> Result<BrokerSettings, ConfigError> {
        self.validate_for(default_host, open_files_limit())
    }

    /// [`RawConfig::validate_with`] for a process allowed `open_files`
    /// file descriptors.
    pub fn validate_for(
        &self,
        default_host: &dyn Fn() -> String,
        open_files: u64,
    ) -> Result<BrokerSettings, ConfigError> {
        let groups = GroupSettings {
            offsets_topic_partitions: i32::try_from(self.int(
                "offsets.topic.num.partitions",
                1,
                i64::from(crate::cluster::metadata::MAX_NEW_PARTITIONS),
            )?)
            .unwrap_or(50),
            min_session_timeout: ms(self.int("group.min.session.timeout.ms", 0, I32_MAX)?),
            max_session_timeout: ms(self.int("group.max.session.timeout.ms", 0, I32_MAX)?),
            initial_rebalance_delay: ms(self.int(
                "group.initial.rebalance.delay.ms",
                0,
                I32_MAX,
            )?),
            offsets_retention: ms(self.int("offsets.retention.minutes", 1, I32_MAX)? * 60_000),
            offsets_topic_replication_factor: i16::try_from(self.int(
                "offsets.topic.replication.factor",
                1,
                i64::from(i16::MAX),
            )?)
            .unwrap_or(3),
            offsets_commit_timeout: ms(self.int("offsets.commit.timeout.ms", 1, I32_MAX)?),
        };
        if groups.min_session_timeout > groups.max_session_timeout {
            let rv = self.field_owned("group.min.session.timeout.ms")?;
            return Err(Field::new("group.min.session.timeout.ms", &rv)
                .err("must not exceed group.max.session.timeout.ms"));
        }
        let log = self.log_defaults()?;
        let cleaner = self.cleaner_settings()?;
        let socket_request_max_bytes =
            usize::try_from(self.int("socket.request.max.bytes", 1, I32_MAX)?)
                .unwrap_or(usize::MAX);
        let kraft = super::kraft::resolve(self)?;
        let listeners = match &kraft {
            Some(kraft) => self.broker_listeners(kraft, default_host)?,
            None => resolve_listeners(self, default_host)?,
        };
        let sasl = self.sasl_settings(&listeners)?;
        Ok(BrokerSettings {
            broker_id: self.broker_id()?,
            rack: self
                .get("broker.rack")
                .map(|rv| rv.value.trim().to_owned())
                .filter(|rack| !rack.is_empty()),
            controlled_shutdown: self.boolean("controlled.shutdown.enable")?,
            replica_lag_time_max: ms(self.int("replica.lag.time.max.ms", 1, i64::MAX)?),
            inter_broker: super::inter_broker::resolve_inter_broker(self, &listeners, &sasl)?,
            listeners,
            sasl,
            data_dir: self.data_dir()?,
            num_partitions: i32::try_from(self.int("num.partitions", 1, I32_MAX)?).unwrap_or(1),
            default_replication_factor: i16::try_from(self.int(
                "default.replication.factor",
                1,
                i64::from(i16::MAX),
            )?)
            .unwrap_or(1),
            auto_create_topics: self.boolean("auto.create.topics.enable")?,
            delete_topic_enable: self.boolean("delete.topic.enable")?,
            socket_request_max_bytes,
            message_max_bytes: log.max_message_bytes,
            message_max_decompressed_bytes: usize::try_from(self.int(
                "gregor.message.max.decompressed.bytes",
                1024,
                I32_MAX,
            )?)
            .unwrap_or(usize::MAX),
            fetch_max_bytes: usize::try_from(self.int("fetch.max.bytes", 1024, I32_MAX)?)
                .unwrap_or(usize::MAX),
            log,
            cleaner,
            coordinator: match &kraft {
                Some(kraft) => kraft.roles.broker.then(|| kraft.quorum_addresses()),
                None => self.coordinator(),
            },
            coordinator_tls: match &kraft {
                Some(kraft) => kraft.controller_client_tls.clone(),
                None => super::zookeeper_tls::resolve_coordinator_tls(self)?,
            },
            kraft,
            admin_listener: self.admin_listener()?,
            log_format: self.log_format()?,
            groups,
            shutdown_timeout: ms(self.int("gregor.shutdown.timeout.ms", 0, i64::MAX)?),
            connections: self.connection_settings(open_files, socket_request_max_bytes)?,
            partition_limits: super::PartitionLimits {
                per_topic: usize::try_from(self.int(
                    "gregor.max.partitions.per.topic",
                    1,
                    I32_MAX,
                )?)
                .unwrap_or(usize::MAX),
                per_broker: usize::try_from(self.int(
                    "gregor.max.partitions.per.broker",
                    1,
                    I32_MAX,
                )?)
                .unwrap_or(usize::MAX),
            },
            leader_rebalance: LeaderRebalance {
                enabled: self.boolean("auto.leader.rebalance.enable")?,
                check_interval: Duration::from_secs(
                    u64::try_from(self.int(
                        "leader.imbalance.check.interval.seconds",
                        1,
                        i64::from(u32::MAX),
                    )?)
                    .unwrap_or(300),
                ),
                imbalance_percentage: u32::try_from(self.int(
                    "leader.imbalance.per.broker.percentage",
                    0,
                    100,
                )?)
                .unwrap_or(10),
            },
            eligible_leader_replicas: crate::cluster::metadata::EligibleLeaderReplicas {
                version: i16::try_from(self.int(
                    "eligible.leader.replicas.version",
                    0,
                    i64::from(crate::cluster::metadata::MAX_ELIGIBLE_LEADER_REPLICAS_VERSION),
                )?)
                .unwrap_or(0),
                min_insync_replicas: i32::try_from(self.int("min.insync.replicas", 1, I32_MAX)?)
                    .unwrap_or(1),
            },
            authorizer: self.authorizer()?,
            origins: self.explicit_only(),
        })
    }

    /// `broker.id`, or KRaft's `node.id`; both set must agree. With neither,
    /// a Kubernetes StatefulSet pod's ordinal (`POD_NAME=gregor-broker-2` is 2).
    fn broker_id(&self) -> Result<i32, ConfigError> {
        let id = |key: &str, rv: &RawValue| {
            Field::new(key, rv)
                .int_in(0, I32_MAX)
                .map(|n| i32::try_from(n).unwrap_or(0))
        };
        match (self.explicit("broker.id"), self.explicit("node.id")) {
            (Some(b), Some(n)) => {
                let (bid, nid) = (id("broker.id", b)?, id("node.id", n)?);
                if bid != nid {
                    return Err(
                        Field::new("node.id", n).err(format!("must equal broker.id ({bid})"))
                    );
                }
                Ok(bid)
            }
            (None, Some(n)) => id("node.id", n),
            (Some(b), None) => id("broker.id", b),
            (None, None) => match self.explicit("broker.id.from.pod.name") {
                Some(ordinal) => id("broker.id.from.pod.name", ordinal),
                None => id("broker.id", &self.field_owned("broker.id")?),
            },
        }
    }

    /// The first entry of `log.dirs` (or `log.dir`); gregor uses one directory.
    fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        let (key, rv) = match self.get("log.dirs") {
            Some(rv) => ("log.dirs", rv.clone()),
            None => ("log.dir", self.field_owned("log.dir")?),
        };
        rv.value
            .split(',')
            .map(str::trim)
            .find(|d| !d.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| Field::new(key, &rv).err("expected at least one directory"))
    }

    fn log_defaults(&self) -> Result<LogDefaults, ConfigError> {
        let retention = match self.first_of(&[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ]) {
            Some(("log.retention.ms", rv)) => {
                Field::new("log.retention.ms", &rv).time_or_unlimited(1, i64::MAX)?
            }
            Some(("log.retention.minutes", rv)) => {
                Field::new("log.retention.minutes", &rv).time_or_unlimited(60_000, I32_MAX)?
            }
            Some((key, rv)) => Field::new(key, &rv).time_or_unlimited(3_600_000, I32_MAX)?,
            None => Some(Duration::from_secs(168 * 3600)),
        };
        let segment_roll = match self.first_of(&["log.roll.ms", "log.roll.hours"]) {
            Some(("log.roll.ms", rv)) => ms(Field::new("log.roll.ms", &rv).int_in(1, i64::MAX)?),
            Some((key, rv)) => ms(Field::new(key, &rv).int_in(1, I32_MAX)? * 3_600_000),
            None => Duration::from_secs(168 * 3600),
        };
        let retention_bytes = self.int("log.retention.bytes", -1, i64::MAX)?;
        let flush_interval = match self.get("log.flush.interval.ms") {
            Some(rv) => Some(ms(
                Field::new("log.flush.interval.ms", rv).int_in(0, i64::MAX)?
            )),
            None => None,
        };
        let ts = self.field_owned("log.message.timestamp.type")?;
        let policy = self.field_owned("log.cleanup.policy")?;
        Ok(LogDefaults {
            retention,
            retention_bytes: (retention_bytes >= 0).then(|| to_u64(retention_bytes)),
            segment_bytes: to_u64(self.int("log.segment.bytes", 14, I32_MAX)?),
            segment_roll,
            flush_interval_messages: to_u64(self.int(
                "log.flush.interval.messages",
                1,
                i64::MAX,
            )?),
            flush_interval,
            retention_check_interval: ms(self.int(
                "log.retention.check.interval.ms",
                1,
                i64::MAX,
            )?),
            index_interval_bytes: to_u64(self.int("log.index.interval.bytes", 0, I32_MAX)?),
            message_timestamp_type: Field::new("log.message.timestamp.type", &ts)
                .timestamp_type()?,
            cleanup_policy: Field::new("log.cleanup.policy", &policy).cleanup_policy()?,
            max_message_bytes: usize::try_from(self.int("message.max.bytes", 0, I32_MAX)?)
                .unwrap_or(usize::MAX),
            min_insync_replicas: i32::try_from(self.int("min.insync.replicas", 1, I32_MAX)?)
                .unwrap_or(1),
            delete_retention: ms(self.int("log.cleaner.delete.retention.ms", 0, i64::MAX)?),
            min_cleanable_dirty_ratio: self.float("log.cleaner.min.cleanable.ratio", 0.0, 1.0)?,
            min_compaction_lag: ms(self.int("log.cleaner.min.compaction.lag.ms", 0, i64::MAX)?),
            max_compaction_lag: ms(self.int("log.cleaner.max.compaction.lag.ms", 1, i64::MAX)?),
        })
    }

    fn cleaner_settings(&self) -> Result<CleanerSettings, ConfigError> {
        let rate = self.float("log.cleaner.io.max.bytes.per.second", 1.0, f64::MAX)?;
        Ok(CleanerSettings {
            enable: self.boolean("log.cleaner.enable")?,
            threads: usize::try_from(self.int("log.cleaner.threads", 0, 64)?).unwrap_or(1),
            dedupe_buffer_size: usize::try_from(self.int(
                "log.cleaner.dedupe.buffer.size",
                1 << 20,
                i64::MAX,
            )?)
            .unwrap_or(usize::MAX),
            // Kafka's default, Double.MAX_VALUE, means no limit.
            io_max_bytes_per_second: (rate < f64::MAX).then_some(rate),
            backoff: ms(self.int("log.cleaner.backoff.ms", 0, i64::MAX)?),
        })
    }

    /// `coordinator.connect`, else the `zookeeper.connect` servers (a
    /// coordinator quorum's members), comma separated, with any chroot
    /// stripped (the chroot follows the last server: gregor keeps no tree
    /// to root it in).
    /// The Kafka listeners of a KRaft node: `listeners` without the
    /// controller listener, which serves the quorum and is checked here.
    fn broker_listeners(
        &self,
        kraft: &super::KraftSettings,
        default_host: &dyn Fn() -> String,
    ) -> Result<Vec<ListenerSettings>, ConfigError> {
        let mut raw = self.clone();
        super::kraft::default_controller_protocols(&mut raw);
        // The controller listener's protocol and keys are checked by
        // kraft::resolve; it serves the quorum, not Kafka clients.
        let mut listeners = resolve_listeners(&raw, default_host)?;
        listeners.retain(|l| !kraft.controller_listener_names.contains(&l.name));
        Ok(listeners)
    }

    fn coordinator(&self) -> Option<String> {
        if let Some(rv) = self.get("coordinator.connect")
            && !rv.value.trim().is_empty()
        {
            return Some(rv.value.trim().to_string());
        }
        let zk = self.get("zookeeper.connect")?;
        let servers: Vec<String> = zk
            .value
            .split(',')
            .map(|server| server.split('/').next().unwrap_or(server).trim())
            .filter(|host_port| !host_port.is_empty())
            .map(|host_port| {
                if host_port.contains(':') {
                    host_port.to_string()
                } else {
                    // ZooKeeper's client assumes its well-known port.
                    format!("{host_port}:2181")
                }
            })
            .collect();
        (!servers.is_empty()).then(|| servers.join(","))
    }

    fn admin_listener(&self) -> Result<SocketAddr, ConfigError> {
        let rv = self.field_owned("admin.listener")?;
        let field = Field::new("admin.listener", &rv);
        let text = rv.value.trim();
        let mut addr = match text.parse::<SocketAddr>() {
            Ok(a) => a,
            // Host names (e.g. localhost) need resolving; take the first address.
            Err(_) => text
                .to_socket_addrs()
                .ok()
                .and_then(|mut it| it.next())
                .ok_or_else(|| field.err("expected host:port"))?,
        };
        if let Some(port) = self.explicit("admin.port") {
            let p = Field::new("admin.port", port).int_in(0, i64::from(u16::MAX))?;
            addr.set_port(u16::try_from(p).unwrap_or(0));
        }
        Ok(addr)
    }

    fn log_format(&self) -> Result<LogFormat, ConfigError> {
        let rv = self.field_owned("gregor.log.format")?;
        match rv.value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(Field::new("gregor.log.format", &rv).err("expected text or json")),
        }
    }
}
