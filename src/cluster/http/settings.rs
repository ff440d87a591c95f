//! Configuration of `gregor coordinator`, in ZooKeeper's vocabulary so that
//! Kafka's `config/zookeeper.properties` works unchanged.
//!
//! Keys (aliases in parentheses):
//! - `dataDir` (`data.dir`): where the command log and `meta.json` live;
//!   default `/tmp/gregor-coordinator`;
//! - `clientPort` (`port`): the HTTP port, default 2181;
//! - `clientPortAddress`: the address to bind, default `0.0.0.0`;
//! - `maxClientCnxns`: most concurrent connections, 0 (the default) for no
//!   limit. ZooKeeper counts per client IP; gregor counts them all;
//! - `node.id`: the coordinator's node id, written into `meta.json`;
//!   default 0;
//! - `secureClientPort`: the TLS port (mutual TLS, see [`super::access`]).
//!   Set without an explicit `clientPort`, no plaintext port is opened;
//!   with both, both are (the plaintext one then only answers health checks
//!   and, with authorization on, refuses everything else);
//! - `ssl.keyStore.location` (a PEM file with the key and the certificate
//!   chain), `ssl.keyStore.type=PEM`, `ssl.trustStore.location` (the CAs
//!   client certificates are checked against), `ssl.trustStore.type=PEM`,
//!   `ssl.clientAuth` = `need` (the default) | `want` | `none`, as
//!   ZooKeeper spells them; `ssl.principal.mapping.rules` as the broker's;
//! - `authorizer.class.name`, `super.users` and
//!   `allow.everyone.if.no.acl.found`, as the broker's: with either of the
//!   first two set, or with TLS on, every write needs authorization (see
//!   [`super::access`]);
//! - `gregor.max.partitions.per.topic` (default 10000) and
//!   `gregor.max.partitions.per.broker` (default 4000): CreateTopics and
//!   CreatePartitions that would go past them are refused with
//!   POLICY_VIOLATION (see [`PartitionLimits`]);
//! - `server.N=host:peerPort:electionPort[;clientPort]` with `dataDir/myid`
//!   (or `ZOO_MY_ID`, or a StatefulSet pod's ordinal + 1 from `POD_NAME`,
//!   and `ZOO_SERVERS` for the lines): a coordinator
//!   quorum, see [`super::ensemble`]; `gregor.quorum.snapshot.after.entries`
//!   (default 5000) is how many raft entries go between snapshots;
//! - `auto.leader.rebalance.enable` (default true),
//!   `leader.imbalance.check.interval.seconds` (300) and
//!   `leader.imbalance.per.broker.percentage` (10): the controller's
//!   preferred-leader rebalance, as Kafka's;
//! - `eligible.leader.replicas.version` (default 0, off, as Kafka 4.0) and
//!   `min.insync.replicas` (default 1): KIP-966's eligible leader replicas
//!   and the cluster-wide min ISR they are measured against; the quorum
//!   leader writes them into the log (Kafka's feature level record).
//!
//! Sources, later ones winning: built-in defaults, the properties file,
//! environment variables `GREGOR_COORDINATOR_<KEY>` (the key upper-cased,
//! dots as underscores: `GREGOR_COORDINATOR_DATA_DIR`,
//! `GREGOR_COORDINATOR_PORT`, `GREGOR_COORDINATOR_MAXCLIENTCNXNS`), then
//! `--data-dir`, `--port` and `--override key=value`. ZooKeeper keys that
//! mean nothing here (`tickTime`, `initLimit`, …) are accepted silently;
//! any other key gets a warning.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::ensemble::{self, EnsembleSettings, MYID_FILE, SERVER_PREFIX, zoo_servers};
use crate::cluster::metadata::{EligibleLeaderReplicas, MAX_ELIGIBLE_LEADER_REPLICAS_VERSION};
use crate::config::LeaderRebalance;
use crate::config::{
    AUTHORIZER_CLASS_NAMES, ClientAuth, ConfigError, CoordinatorTlsSettings, Keystore,
    PartitionLimits, RawConfig, RawValue, Source, TlsSettings, TlsVersion, Truststore,
    parse_override,
};
use crate::security::KafkaPrincipal;
use crate::security::acl::Authorizer;
use crate::security::tls::PrincipalMappingRules;

/// Every key the coordinator reads, with its default.
const KEYS: &[(&str, &str)] = &[
    ("dataDir", "/tmp/gregor-coordinator"),
    ("clientPort", "2181"),
    ("clientPortAddress", "0.0.0.0"),
    ("maxClientCnxns", "0"),
    ("node.id", "0"),
    ("gregor.max.partitions.per.topic", "10000"),
    ("gregor.max.partitions.per.broker", "4000"),
    ("secureClientPort", ""),
    ("ssl.keyStore.location", ""),
    ("ssl.keyStore.type", "PEM"),
    ("ssl.keyStore.password", ""),
    ("ssl.trustStore.location", ""),
    ("ssl.trustStore.type", "PEM"),
    ("ssl.trustStore.password", ""),
    ("ssl.clientAuth", "need"),
    ("ssl.principal.mapping.rules", ""),
    ("authorizer.class.name", ""),
    ("super.users", ""),
    ("allow.everyone.if.no.acl.found", "false"),
    ("gregor.quorum.snapshot.after.entries", "5000"),
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("leader.imbalance.per.broker.percentage", "10"),
    ("eligible.leader.replicas.version", "0"),
    ("min.insync.replicas", "1"),
];

/// Other spellings, mapped to the key in [`KEYS`] they mean.
const ALIASES: &[(&str, &str)] = &[
    ("data.dir", "dataDir"),
    ("port", "clientPort"),
    ("max.client.cnxns", "maxClientCnxns"),
    // Kafka's lower-case spelling of the same keys, easily carried over.
    ("ssl.keystore.location", "ssl.keyStore.location"),
    ("ssl.keystore.type", "ssl.keyStore.type"),
    ("ssl.truststore.location", "ssl.trustStore.location"),
    ("ssl.truststore.type", "ssl.trustStore.type"),
    ("ssl.client.auth", "ssl.clientAuth"),
];

/// ZooKeeper settings with no meaning for gregor's coordinator.
const IGNORED: &[&str] = &[
    "tickTime",
    "initLimit",
    "syncLimit",
    "dataLogDir",
    "admin.enableServer",
    "admin.serverPort",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "4lw.commands.whitelist",
    "standaloneEnabled",
    "reconfigEnabled",
    // ZooKeeper needs Netty for TLS; gregor's server always can.
    "serverCnxnFactory",
    // ZooKeeper's X.509 auth provider is what mutual TLS gives here.
    "authProvider.x509",
    "ssl.authProvider",
    // A client certificate is not checked against the client's address,
    // as Kafka's brokers do not check it either.
    "ssl.hostnameVerification",
];

const ENV_PREFIX: &str = "GREGOR_COORDINATOR_";

/// The coordinator's validated settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorSettings {
    pub data_dir: PathBuf,
    /// The plaintext port (`clientPort`); `None` when only
    /// `secureClientPort` is set.
    pub listen: Option<SocketAddr>,
    /// The mutual-TLS port (`secureClientPort`).
    pub secure: Option<SecureListen>,
    pub authorization: AccessSettings,
    /// `None`: no limit.
    pub max_client_connections: Option<usize>,
    pub node_id: i32,
    /// How long a client gets to send a request's headers (idle keep-alive
    /// connections included) and, separately, its body. Not a key: the
    /// coordinator's requests are small and its clients are brokers and
    /// tools on the cluster's network; tests shorten it.
    pub request_timeout: Duration,
    pub partition_limits: PartitionLimits,
    pub leader_rebalance: LeaderRebalance,
    /// `eligible.leader.replicas.version` and the cluster-wide
    /// `min.insync.replicas` the quorum leader finalizes in the log.
    pub eligible_leader_replicas: EligibleLeaderReplicas,
    /// `server.N` lines: this coordinator is one member of a quorum.
    pub ensemble: Option<EnsembleSettings>,
}

/// `secureClientPort` and the `ssl.*` keys it is served with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecureListen {
    pub listen: SocketAddr,
    pub tls: TlsSettings,
    /// How a quorum member dials its peers. `None`: with its own keystore
    /// and truststore, checking the chain but not the host name (the
    /// addresses of `server.N` lines need not be the names in the
    /// certificates). A KRaft controller passes its controller listener's
    /// client side, with `ssl.endpoint.identification.algorithm`.
    pub peer_client: Option<CoordinatorTlsSettings>,
}

/// Who may write through the coordinator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessSettings {
    /// Whether writes are authorized at all: with TLS on, or with
    /// `authorizer.class.name` or `super.users` set.
    pub enabled: bool,
    /// `authorizer.class.name` (one of Kafka's ACL authorizer classes):
    /// the ACLs of the metadata image decide, as on the broker.
    pub acl: Option<Authorizer>,
    /// `super.users`: `User:CN=broker,O=gregor;User:admin`.
    pub super_users: Vec<KafkaPrincipal>,
}

/// [`CoordinatorSettings::request_timeout`], as the broker's
/// `gregor.request.receive.timeout.ms` default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `gregor coordinator [CONFIG] [--data-dir DIR] [--port PORT] [--override k=v]`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CoordinatorArgs {
    /// A coordinator.properties or zookeeper.properties file.
    pub config: Option<PathBuf>,
    /// Data directory (dataDir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// HTTP port (clientPort), default 2181.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Set a config key: --override key=value.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl CoordinatorArgs {
    /// Loads and validates the settings from the file, `env` and the flags;
    /// warns once about each unknown key.
    pub fn load(&self, env: &[(String, String)]) -> Result<CoordinatorSettings, ConfigError> {
        let mut raw = RawConfig::new();
        if let Some(path) = &self.config {
            merge(&mut raw, RawConfig::from_file(path)?);
        }
        let mut from_env = RawConfig::new();
        let mut pod_ordinal = None;
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                from_env.set(env_key(rest), value.clone(), Source::Env(name.clone()));
            }
            // The official zookeeper image's ensemble variables.
            match name.as_str() {
                "ZOO_MY_ID" => from_env.set(MYID_FILE, value.clone(), Source::Env(name.clone())),
                "ZOO_SERVERS" => from_env.merge(zoo_servers(value, name)),
                "POD_NAME" => pod_ordinal = statefulset_ordinal(value),
                _ => {}
            }
        }
        // A StatefulSet pod `name-N` is member N + 1 (myid starts at 1, as
        // ZooKeeper's charts number their pods) unless myid is given: a
        // scratch image has no shell to write ZOO_MY_ID from the ordinal.
        if let Some(ordinal) = pod_ordinal
            && raw.get(MYID_FILE).is_none()
            && from_env.get(MYID_FILE).is_none()
        {
            let my_id = (ordinal + 1).to_string();
            from_env.set(MYID_FILE, my_id, Source::Env("POD_NAME".to_owned()));
        }
        merge(&mut raw, from_env);
        let mut flags = Vec::new();
        for arg in &self.overrides {
            flags.push(parse_override(arg)?);
        }
        if let Some(dir) = &self.data_dir {
            flags.push(("dataDir".to_owned(), dir.clone()));
        }
        if let Some(port) = &self.port {
            flags.push(("clientPort".to_owned(), port.clone()));
        }
        merge(&mut raw, RawConfig::from_overrides(&flags));
        warn_unknown(&raw);
        validate(&raw)
    }
}

/// The ordinal of a StatefulSet pod's name (`gregor-coordinator-2` is 2).
fn statefulset_ordinal(pod_name: &str) -> Option<u64> {
    let (_, ordinal) = pod_name.rsplit_once('-')?;
    ordinal
        .parse::<u64>()
        .ok()
        .filter(|n| *n < u64::from(u32::MAX))
}

/// `DATA_DIR` → `data.dir`; `MAXCLIENTCNXNS` → the key it spells.
fn env_key(rest: &str) -> String {
    let dotted = rest.to_ascii_lowercase().replace('_', ".");
    KEYS.iter()
        .map(|(k, _)| *k)
        .find(|k| k.eq_ignore_ascii_case(&dotted) || k.eq_ignore_ascii_case(rest))
        .map_or(dotted, str::to_owned)
}

fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, k)| k)
}

/// Layers `higher` on `raw` with aliases resolved, so `port` given later
/// overrides `clientPort` given earlier.
fn merge(raw: &mut RawConfig, higher: RawConfig) {
    let mut resolved = RawConfig::new();
    for (key, value) in higher.iter() {
        resolved.set(canonical(key), value.value.clone(), value.from.clone());
    }
    raw.merge(resolved);
}

fn warn_unknown(raw: &RawConfig) {
    for (key, value) in raw.iter() {
        let ensemble = key.starts_with(SERVER_PREFIX) || key == MYID_FILE;
        if !KEYS.iter().any(|(k, _)| *k == key) && !IGNORED.contains(&key) && !ensemble {
            tracing::warn!(key, from = %value.from, "unknown coordinator config key ignored");
        }
    }
}

fn value(raw: &RawConfig, key: &str) -> RawValue {
    raw.get(key).cloned().unwrap_or_else(|| RawValue {
        value: KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v)
            .to_owned(),
        from: Source::Default,
    })
}

fn int(raw: &RawConfig, key: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let rv = value(raw, key);
    let bad = |reason: String| ConfigError::invalid(key, &rv.value, &rv.from, reason);
    let n: i64 = rv
        .value
        .trim()
        .parse()
        .map_err(|_| bad("expected an integer".to_owned()))?;
    if n < min || n > max {
        return Err(bad(format!("must be between {min} and {max}")));
    }
    Ok(n)
}

fn validate(raw: &RawConfig) -> Result<CoordinatorSettings, ConfigError> {
    let dir = value(raw, "dataDir");
    if dir.value.trim().is_empty() {
        return Err(ConfigError::invalid(
            "dataDir",
            &dir.value,
            &dir.from,
            "expected a directory",
        ));
    }
    let port = u16::try_from(int(raw, "clientPort", 0, i64::from(u16::MAX))?).unwrap_or(0);
    let secure_port = match value(raw, "secureClientPort").value.trim() {
        "" => None,
        _ => {
            Some(u16::try_from(int(raw, "secureClientPort", 0, i64::from(u16::MAX))?).unwrap_or(0))
        }
    };
    let address = value(raw, "clientPortAddress");
    let ip: IpAddr = address.value.trim().parse().map_err(|_| {
        ConfigError::invalid(
            "clientPortAddress",
            &address.value,
            &address.from,
            "expected an IP address",
        )
    })?;
    let max = int(raw, "maxClientCnxns", 0, i64::from(i32::MAX))?;
    let limit = |key| -> Result<usize, ConfigError> {
        Ok(usize::try_from(int(raw, key, 1, i64::from(i32::MAX))?).unwrap_or(usize::MAX))
    };
    let partition_limits = PartitionLimits {
        per_topic: limit("gregor.max.partitions.per.topic")?,
        per_broker: limit("gregor.max.partitions.per.broker")?,
    };
    // ZooKeeper opens the plaintext port only when it is configured; with
    // nothing but the defaults, plaintext on 2181 as before.
    let plaintext = secure_port.is_none() || raw.get("clientPort").is_some();
    if plaintext && secure_port == Some(port) && port != 0 {
        let secure = value(raw, "secureClientPort");
        return Err(ConfigError::invalid(
            "secureClientPort",
            &secure.value,
            &secure.from,
            "must differ from clientPort",
        ));
    }
    let secure = match secure_port {
        Some(port) => Some(SecureListen {
            listen: SocketAddr::new(ip, port),
            tls: tls_settings(raw)?,
            peer_client: None,
        }),
        None => None,
    };
    let data_dir = PathBuf::from(dir.value.trim());
    let snapshot_after_entries = u64::try_from(int(
        raw,
        "gregor.quorum.snapshot.after.entries",
        2,
        i64::MAX,
    )?)
    .unwrap_or(2);
    let ensemble = ensemble::validate(raw, &data_dir, snapshot_after_entries)?;
    // A `server.N` line's own client port is where that member listens.
    let port = ensemble
        .as_ref()
        .and_then(|e| e.me().client_port)
        .unwrap_or(port);
    Ok(CoordinatorSettings {
        ensemble,
        data_dir,
        listen: plaintext.then(|| SocketAddr::new(ip, port)),
        authorization: access_settings(raw, secure.is_some())?,
        secure,
        max_client_connections: (max > 0).then(|| usize::try_from(max).unwrap_or(usize::MAX)),
        node_id: i32::try_from(int(raw, "node.id", 0, i64::from(i32::MAX))?).unwrap_or(0),
        request_timeout: REQUEST_TIMEOUT,
        partition_limits,
        leader_rebalance: leader_rebalance(raw)?,
        eligible_leader_replicas: EligibleLeaderReplicas {
            version: i16::try_from(int(
                raw,
                "eligible.leader.replicas.version",
                0,
                i64::from(MAX_ELIGIBLE_LEADER_REPLICAS_VERSION),
            )?)
            .unwrap_or(0),
            min_insync_replicas: i32::try_from(int(
                raw,
                "min.insync.replicas",
                1,
                i64::from(i32::MAX),
            )?)
            .unwrap_or(1),
        },
    })
}

/// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds`
/// (at least 1) and `leader.imbalance.per.broker.percentage` (0-100).
fn leader_rebalance(raw: &RawConfig) -> Result<LeaderRebalance, ConfigError> {
    let enable = value(raw, "auto.leader.rebalance.enable");
    let enabled = match enable.value.trim().to_ascii_lowercase().as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(ConfigError::invalid(
                "auto.leader.rebalance.enable",
                &enable.value,
                &enable.from,
                "expected true or false",
            ));
        }
    };
    let seconds = int(
        raw,
        "leader.imbalance.check.interval.seconds",
        1,
        i64::from(u32::MAX),
    )?;
    let percentage = int(raw, "leader.imbalance.per.broker.percentage", 0, 100)?;
    Ok(LeaderRebalance {
        enabled,
        check_interval: Duration::from_secs(u64::try_from(seconds).unwrap_or(1)),
        imbalance_percentage: u32::try_from(percentage).unwrap_or(10),
    })
}

/// A non-empty value, or `None`.
fn set(raw: &RawConfig, key: &str) -> Option<RawValue> {
    raw.get(key).filter(|v| !v.value.trim().is_empty()).cloned()
}

/// The `ssl.*` keys of `secureClientPort`, in ZooKeeper's spelling, into
/// the broker's [`TlsSettings`] (so the same loading and verification serve
/// both).
fn tls_settings(raw: &RawConfig) -> Result<TlsSettings, ConfigError> {
    for (store, location) in [
        ("ssl.keyStore.type", "ssl.keyStore.location"),
        ("ssl.trustStore.type", "ssl.trustStore.location"),
    ] {
        let kind = value(raw, store);
        if !kind.value.trim().eq_ignore_ascii_case("PEM") {
            return Err(ConfigError::invalid(
                store,
                &kind.value,
                &kind.from,
                format!(
                    "gregor reads PEM stores only; set {store}=PEM with {location} naming a PEM file (gregor security init writes them)"
                ),
            ));
        }
    }
    for key in ["ssl.keyStore.password", "ssl.trustStore.password"] {
        if let Some(found) = set(raw, key) {
            return Err(ConfigError::invalid(
                key,
                "********",
                &found.from,
                "a PEM store has no password here; decrypt the key (openssl pkey -in key.pem -out plain.pem) and remove this key",
            ));
        }
    }
    let Some(keystore) = set(raw, "ssl.keyStore.location") else {
        let port = value(raw, "secureClientPort");
        return Err(ConfigError::invalid(
            "secureClientPort",
            &port.value,
            &port.from,
            "the TLS port needs a certificate: set ssl.keyStore.location to a PEM file with the key and the certificate chain",
        ));
    };
    let auth = value(raw, "ssl.clientAuth");
    let client_auth = match auth.value.trim().to_ascii_lowercase().as_str() {
        "need" | "required" => ClientAuth::Required,
        "want" | "requested" => ClientAuth::Requested,
        "none" => ClientAuth::None,
        _ => {
            return Err(ConfigError::invalid(
                "ssl.clientAuth",
                &auth.value,
                &auth.from,
                "expected need, want or none",
            ));
        }
    };
    let truststore = set(raw, "ssl.trustStore.location");
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(ConfigError::invalid(
            "ssl.clientAuth",
            &auth.value,
            &auth.from,
            "client certificates need a truststore: set ssl.trustStore.location to the PEM file of the CA that signs them",
        ));
    }
    let principal_mapping_rules = match set(raw, "ssl.principal.mapping.rules") {
        Some(rules) => PrincipalMappingRules::parse(rules.value.trim()).map_err(|e| {
            ConfigError::invalid(
                "ssl.principal.mapping.rules",
                &rules.value,
                &rules.from,
                e.to_string(),
            )
        })?,
        None => PrincipalMappingRules::default(),
    };
    Ok(TlsSettings {
        keystore: Keystore::File(PathBuf::from(keystore.value.trim())),
        truststore: truststore.map(|t| Truststore::File(PathBuf::from(t.value.trim()))),
        client_auth,
        principal_mapping_rules,
        enabled_protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
        cipher_suites: Vec::new(),
    })
}

/// `authorizer.class.name`, `super.users` (`;`-separated, as Kafka's) and
/// `allow.everyone.if.no.acl.found`, as the broker reads them.
fn access_settings(raw: &RawConfig, tls: bool) -> Result<AccessSettings, ConfigError> {
    let mut super_users = Vec::new();
    if let Some(users) = set(raw, "super.users") {
        for text in users
            .value
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let principal = KafkaPrincipal::parse(text).ok_or_else(|| {
                ConfigError::invalid(
                    "super.users",
                    &users.value,
                    &users.from,
                    format!("{text:?} is not Type:name (User:CN=broker,O=gregor)"),
                )
            })?;
            super_users.push(principal);
        }
    }
    let acl = match set(raw, "authorizer.class.name") {
        None => None,
        Some(class) if AUTHORIZER_CLASS_NAMES.contains(&class.value.trim()) => {
            let open = value(raw, "allow.everyone.if.no.acl.found");
            let allow_if_no_acl = match open.value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ConfigError::invalid(
                        "allow.everyone.if.no.acl.found",
                        &open.value,
                        &open.from,
                        "expected true or false",
                    ));
                }
            };
            Some(Authorizer {
                super_users: super_users.iter().map(ToString::to_string).collect(),
                allow_if_no_acl,
            })
        }
        Some(class) => {
            return Err(ConfigError::invalid(
                "authorizer.class.name",
                &class.value,
                &class.from,
                format!(
                    "gregor's only authorizer is Kafka's ACL authorizer; use {}",
                    AUTHORIZER_CLASS_NAMES[0]
                ),
            ));
        }
    };
    Ok(AccessSettings {
        enabled: tls || acl.is_some() || !super_users.is_empty(),
        acl,
        super_users,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn load(
        args: CoordinatorArgs,
        env: &[(&str, &str)],
    ) -> Result<CoordinatorSettings, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        args.load(&env)
    }

    #[test]
    fn the_zookeeper_images_variables_configure_a_quorum_member() {
        let dir = tempfile::tempdir().unwrap();
        let args = CoordinatorArgs {
            data_dir: Some(dir.path().display().to_string()),
            ..CoordinatorArgs::default()
        };
        let settings = load(
            args.clone(),
            &[
                ("ZOO_MY_ID", "2"),
                (
                    "ZOO_SERVERS",
                    "server.1=zk1:2888:3888;2181 server.2=zk2:2888:3888;2182 server.3=zk3:2888:3888;2181",
                ),
            ],
        )
        .unwrap();
        let ensemble = settings.ensemble.expect("a quorum member");
        assert_eq!(ensemble.my_id, 2);
        assert_eq!(ensemble.servers.len(), 3);
        // The member's own line says where its clients connect.
        assert_eq!(settings.listen.map(|a| a.port()), Some(2182));
        assert!(load(args.clone(), &[]).unwrap().ensemble.is_none());
        let err = load(
            args,
            &[("ZOO_MY_ID", "4"), ("ZOO_SERVERS", "server.1=zk1:1:2")],
        );
        assert!(err.unwrap_err().to_string().contains("server.4"));
    }

    #[test]
    fn a_statefulset_pod_is_member_ordinal_plus_one_unless_zoo_my_id_says() {
        let dir = tempfile::tempdir().unwrap();
        let args = CoordinatorArgs {
            data_dir: Some(dir.path().display().to_string()),
            ..CoordinatorArgs::default()
        };
        let servers = (
            "ZOO_SERVERS",
            "server.1=c-0:2888:3888;2181 server.2=c-1:2888:3888;2181",
        );
        let my_id = |env: &[(&str, &str)]| load(args.clone(), env).unwrap().ensemble.unwrap().my_id;
        assert_eq!(
            my_id(&[("POD_NAME", "demo-gregor-coordinator-1"), servers]),
            2
        );
        assert_eq!(
            my_id(&[("POD_NAME", "demo-gregor-coordinator-0"), servers]),
            1
        );
        let explicit = [
            ("POD_NAME", "demo-gregor-coordinator-0"),
            ("ZOO_MY_ID", "2"),
            servers,
        ];
        assert_eq!(my_id(&explicit), 2);
        // Without server lines a pod is today's single coordinator.
        let single = load(args, &[("POD_NAME", "demo-gregor-coordinator-0")]).unwrap();
        assert!(single.ensemble.is_none());
    }

    #[test]
    fn defaults_match_zookeeper_properties() {
        let settings = load(CoordinatorArgs::default(), &[]).expect("defaults");
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/gregor-coordinator"));
        assert_eq!(settings.listen, Some("0.0.0.0:2181".parse().expect("addr")));
        assert_eq!(settings.secure, None);
        assert!(!settings.authorization.enabled);
        assert_eq!(settings.max_client_connections, None);
        assert_eq!(settings.leader_rebalance, LeaderRebalance::default());
    }

    #[test]
    fn the_leader_rebalance_keys_are_kafkas_and_checked() {
        let args = |overrides: &[&str]| CoordinatorArgs {
            overrides: overrides.iter().map(|o| (*o).to_owned()).collect(),
            ..CoordinatorArgs::default()
        };
        let settings = load(
            args(&[
                "auto.leader.rebalance.enable=false",
                "leader.imbalance.check.interval.seconds=2",
                "leader.imbalance.per.broker.percentage=25",
            ]),
            &[],
        )
        .expect("valid");
        assert_eq!(
            settings.leader_rebalance,
            LeaderRebalance {
                enabled: false,
                check_interval: Duration::from_secs(2),
                imbalance_percentage: 25,
            }
        );
        for bad in [
            "auto.leader.rebalance.enable=yes",
            "leader.imbalance.check.interval.seconds=0",
            "leader.imbalance.per.broker.percentage=101",
        ] {
            let error = load(args(&[bad]), &[]).expect_err(bad).to_string();
            let key = bad.split('=').next().unwrap_or_default();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn file_then_env_then_flags_with_aliases() {
        let mut file = tempfile::NamedTempFile::new().expect("tmp");
        writeln!(
            file,
            "dataDir=/from/file\nclientPort=2000\nmaxClientCnxns=5\ntickTime=2000"
        )
        .expect("write");
        let args = CoordinatorArgs {
            config: Some(file.path().to_owned()),
            port: Some("3000".to_owned()),
            ..CoordinatorArgs::default()
        };
        let settings = load(args, &[("GREGOR_COORDINATOR_DATA_DIR", "/from/env")]).expect("load");
        assert_eq!(settings.data_dir, PathBuf::from("/from/env"));
        assert_eq!(settings.listen.map(|a| a.port()), Some(3000));
        assert_eq!(settings.max_client_connections, Some(5));
    }

    #[test]
    fn a_bad_port_names_the_key_value_and_source() {
        let args = CoordinatorArgs {
            overrides: vec!["port=70000".to_owned()],
            ..CoordinatorArgs::default()
        };
        let error = load(args, &[]).expect_err("bad port").to_string();
        assert!(error.contains("clientPort"), "{error}");
        assert!(error.contains("70000"), "{error}");
        assert!(error.contains("command line"), "{error}");
        assert!(!error.contains('\n'));
    }

    fn with(overrides: &[&str]) -> Result<CoordinatorSettings, ConfigError> {
        let args = CoordinatorArgs {
            overrides: overrides.iter().map(|o| (*o).to_owned()).collect(),
            ..CoordinatorArgs::default()
        };
        load(args, &[])
    }

    #[test]
    fn secure_client_port_alone_opens_no_plaintext_port_and_needs_client_certificates() {
        let settings = with(&[
            "secureClientPort=2182",
            "ssl.keyStore.location=/certs/coordinator-keystore.pem",
            "ssl.trustStore.location=/certs/ca.pem",
        ])
        .expect("tls");
        assert_eq!(settings.listen, None);
        let secure = settings.secure.expect("secure port");
        assert_eq!(secure.listen.port(), 2182);
        assert_eq!(secure.tls.client_auth, ClientAuth::Required);
        assert_eq!(
            secure.tls.keystore,
            Keystore::File(PathBuf::from("/certs/coordinator-keystore.pem"))
        );
        assert!(settings.authorization.enabled, "TLS turns authorization on");
    }

    #[test]
    fn both_ports_when_client_port_is_set_too() {
        let settings = with(&[
            "clientPort=2181",
            "secureClientPort=2182",
            "ssl.keyStore.location=/k.pem",
            "ssl.trustStore.location=/ca.pem",
            "ssl.clientAuth=want",
        ])
        .expect("both");
        assert_eq!(settings.listen.map(|a| a.port()), Some(2181));
        let secure = settings.secure.expect("secure");
        assert_eq!(secure.tls.client_auth, ClientAuth::Requested);
        let lower_case = with(&[
            "secureClientPort=2182",
            "ssl.keystore.location=/k.pem",
            "ssl.truststore.location=/ca.pem",
            "ssl.client.auth=none",
        ])
        .expect("Kafka's spelling");
        let tls = lower_case.secure.expect("secure").tls;
        assert_eq!(tls.client_auth, ClientAuth::None);
        assert_eq!(tls.keystore, Keystore::File(PathBuf::from("/k.pem")));
    }

    #[test]
    fn tls_settings_errors_name_the_key() {
        let cases: &[(&[&str], &str)] = &[
            (&["secureClientPort=2182"], "ssl.keyStore.location"),
            (
                &["secureClientPort=2182", "ssl.keyStore.location=/k.pem"],
                "ssl.trustStore.location",
            ),
            (
                &[
                    "secureClientPort=2182",
                    "ssl.keyStore.location=/k.jks",
                    "ssl.keyStore.type=JKS",
                ],
                "ssl.keyStore.type",
            ),
            (
                &[
                    "secureClientPort=2182",
                    "ssl.keyStore.location=/k.pem",
                    "ssl.trustStore.location=/ca.pem",
                    "ssl.clientAuth=maybe",
                ],
                "ssl.clientAuth",
            ),
            (&["super.users=alice"], "super.users"),
            (
                &["authorizer.class.name=com.example.Mine"],
                "authorizer.class.name",
            ),
            (
                &[
                    "clientPort=2181",
                    "secureClientPort=2181",
                    "ssl.keyStore.location=/k.pem",
                    "ssl.trustStore.location=/ca.pem",
                ],
                "secureClientPort",
            ),
        ];
        for (overrides, key) in cases {
            let error = with(overrides).expect_err("invalid").to_string();
            assert!(error.contains(key), "{overrides:?}: {error}");
        }
    }

    #[test]
    fn kafkas_authorizer_class_turns_acls_on() {
        let settings = with(&[
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:CN=broker,O=gregor",
            "allow.everyone.if.no.acl.found=true",
        ])
        .expect("acl");
        let acl = settings.authorization.acl.expect("authorizer");
        assert!(acl.allow_if_no_acl);
        assert!(acl.super_users.contains("User:CN=broker,O=gregor"));
        assert!(settings.authorization.enabled);
    }

    #[test]
    fn super_users_turn_authorization_on_without_tls() {
        let settings = with(&["super.users=User:CN=broker,O=gregor;User:admin"]).expect("ok");
        assert!(settings.authorization.enabled);
        assert_eq!(
            settings.authorization.super_users,
            vec![
                KafkaPrincipal::user("CN=broker,O=gregor"),
                KafkaPrincipal::user("admin")
            ]
        );
    }
}
