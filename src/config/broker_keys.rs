//! The type, Kafka default and documentation of every broker key gregor
//! knows (`raw.rs` says which are used and which ignored), for the broker's
//! DescribeConfigs.

use super::describe::ConfigType;
use super::raw::RawConfig;

/// One broker key.
#[derive(Debug, Clone, Copy)]
pub struct BrokerKey {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// Kafka's default, for keys gregor has no built-in default for (those
    /// it ignores, mostly); `None` when Kafka has none either.
    pub kafka_default: Option<&'static str>,
    pub doc: &'static str,
}

const fn key(
    name: &'static str,
    config_type: ConfigType,
    kafka_default: Option<&'static str>,
    doc: &'static str,
) -> BrokerKey {
    BrokerKey {
        name,
        config_type,
        kafka_default,
        doc,
    }
}

use ConfigType::{
    Boolean as B, Double as D, Int as I, List as L, Long as Lg, Password as P, Short as S,
    String as Str,
};

const LONG_MAX: Option<&str> = Some("9223372036854775807");

/// Every broker key gregor knows, sorted by name.
#[rustfmt::skip]
pub const BROKER_KEYS: &[BrokerKey] = &[
    key("admin.listener", Str, None, "gregor: host:port of the HTTP admin listener (health, readiness, metrics)."),
    key("admin.port", I, None, "gregor: overrides the port of admin.listener."),
    key("advertised.host.name", Str, None, "Deprecated: the host advertised to clients when advertised.listeners is unset."),
    key("advertised.listeners", Str, None, "The listeners advertised to clients, when they differ from listeners."),
    key("advertised.port", I, None, "Deprecated: the port advertised to clients when advertised.listeners is unset."),
    key("allow.everyone.if.no.acl.found", B, Some("false"), "Whether a resource without any ACL is open to everyone (with an authorizer)."),
    key("authorizer.class.name", Str, Some(""), "Enables ACL authorization: Kafka's StandardAuthorizer or AclAuthorizer class name."),
    key("auto.create.topics.enable", B, None, "Whether a Metadata or Produce for an unknown topic creates it."),
    key("auto.leader.rebalance.enable", B, Some("true"), "Moves leadership back to preferred replicas (a KRaft controller; a separate coordinator reads its own)."),
    key("background.threads", I, Some("10"), "Threads for background tasks."),
    key("broker.id", I, None, "The broker's id."),
    key("broker.id.from.pod.name", I, None, "gregor: the broker id taken from a StatefulSet pod's ordinal (POD_NAME)."),
    key("broker.id.generation.enable", B, Some("true"), "Generates broker ids automatically."),
    key("broker.rack", Str, None, "The broker's rack."),
    key("client.passwords", P, None, "gregor: passwords of client.users (Bitnami's KAFKA_CLIENT_PASSWORDS)."),
    key("client.users", L, None, "gregor: SCRAM users created at start when absent (Bitnami's KAFKA_CLIENT_USERS)."),
    key("cluster.id", Str, None, "The cluster id."),
    key("compression.gzip.level", I, Some("-1"), "The default gzip level of topics with compression.type gzip."),
    key("compression.lz4.level", I, Some("9"), "The default lz4 level of topics with compression.type lz4."),
    key("compression.type", Str, Some("producer"), "The default final compression of topics."),
    key("compression.zstd.level", I, Some("3"), "The default zstd level of topics with compression.type zstd."),
    key("confluent.support.customer.id", Str, None, "Confluent's support metrics customer id."),
    key("confluent.support.metrics.enable", B, None, "Confluent's support metrics."),
    key("connection.failed.authentication.delay.ms", I, None, "How long the answer to a failed authentication is delayed before the connection is closed."),
    key("connections.max.idle.ms", Lg, None, "Idle connections are closed after this long."),
    key("connections.max.reauth.ms", Lg, None, "The longest a SASL session lasts before the client must re-authenticate (0: no limit)."),
    key("controlled.shutdown.enable", B, None, "Whether a stopping broker first tells the coordinator, which then gives it no leadership or new replicas."),
    key("controller.listener.names", Str, None, "KRaft: the listeners (in listeners) that serve the controller quorum."),
    key("controller.quorum.bootstrap.servers", L, Some(""), "KRaft: host:port of controllers to find the quorum through (a dynamic quorum)."),
    key("controller.quorum.voters", L, Some(""), "KRaft: the static voters, id@host:port of each controller listener."),
    key("coordinator.connect", Str, None, "gregor: host:port of a separate cluster coordinator."),
    key("default.replication.factor", I, None, "The replication factor of topics created without one."),
    key("delete.topic.enable", B, None, "Whether DeleteTopics may delete topics."),
    key("eligible.leader.replicas.version", I, Some("0"), "KIP-966 eligible leader replicas, 0 (off, Kafka 4.0's default) or 1 (a KRaft controller; a separate coordinator reads its own)."),
    key("fetch.max.bytes", I, None, "The most record bytes one Fetch response carries."),
    key("gregor.log.format", Str, None, "gregor: text or json log lines."),
    key("gregor.max.partitions.per.broker", I, None, "gregor: the most partition replicas one broker may host."),
    key("gregor.max.partitions.per.topic", I, None, "gregor: the most partitions one topic may have."),
    key("gregor.message.max.decompressed.bytes", I, None, "gregor: the most a compressed batch may expand to."),
    key("gregor.quorum.snapshot.after.entries", Lg, Some("5000"), "gregor: KRaft controllers snapshot the metadata after this many quorum log entries."),
    key("gregor.request.receive.timeout.ms", Lg, None, "gregor: how long a started request may take to arrive."),
    key("gregor.shutdown.timeout.ms", Lg, None, "gregor: how long shutdown waits for connections to drain."),
    key("group.initial.rebalance.delay.ms", I, None, "How long a new group waits for more members before its first rebalance."),
    key("group.max.session.timeout.ms", I, None, "The longest session timeout a group member may ask for."),
    key("group.min.session.timeout.ms", I, None, "The shortest session timeout a group member may ask for."),
    key("host.name", Str, None, "Deprecated: the host to bind when listeners is unset."),
    key("inter.broker.listener.name", Str, None, "The listener brokers use between themselves."),
    key("inter.broker.protocol.version", Str, Some("3.9-IV0"), "The protocol version brokers use between themselves."),
    key("leader.imbalance.check.interval.seconds", Lg, Some("300"), "How often the controller checks for leader imbalance."),
    key("leader.imbalance.per.broker.percentage", I, Some("10"), "The share of a broker's preferred partitions others may lead before they move back."),
    key("listener.security.protocol.map", Str, None, "Listener names to security protocols."),
    key("listeners", Str, None, "The listeners the broker binds, as NAME://host:port."),
    key("log.cleaner.backoff.ms", Lg, Some("15000"), "How long the cleaner sleeps when no log needs cleaning."),
    key("log.cleaner.dedupe.buffer.size", Lg, Some("134217728"), "Memory for the cleaner's key map, shared by its threads."),
    key("log.cleaner.delete.retention.ms", Lg, Some("86400000"), "The default delete.retention.ms of topics."),
    key("log.cleaner.enable", B, Some("true"), "Runs the log cleaner (compaction)."),
    key("log.cleaner.io.max.bytes.per.second", D, Some("1.7976931348623157E308"), "The cleaner's read and write rate limit, all threads together."),
    key("log.cleaner.max.compaction.lag.ms", Lg, LONG_MAX, "The default max.compaction.lag.ms of topics."),
    key("log.cleaner.min.cleanable.ratio", D, Some("0.5"), "The default min.cleanable.dirty.ratio of topics."),
    key("log.cleaner.min.compaction.lag.ms", Lg, Some("0"), "The default min.compaction.lag.ms of topics."),
    key("log.cleaner.threads", I, Some("1"), "Threads of the log cleaner."),
    key("log.cleanup.policy", L, None, "The default cleanup.policy of topics."),
    key("log.dir", Str, None, "The data directory, when log.dirs is unset."),
    key("log.dirs", Str, None, "The data directories; gregor uses the first."),
    key("log.flush.interval.messages", Lg, None, "The default flush.messages of topics."),
    key("log.flush.interval.ms", Lg, None, "The default flush.ms of topics; unset means log.flush.scheduler.interval.ms."),
    key("log.flush.offset.checkpoint.interval.ms", I, Some("60000"), "How often the recovery point is checkpointed."),
    key("log.flush.scheduler.interval.ms", Lg, LONG_MAX, "How often the flusher checks logs to fsync."),
    key("log.index.interval.bytes", I, None, "The default index.interval.bytes of topics."),
    key("log.index.size.max.bytes", I, Some("10485760"), "The default segment.index.bytes of topics."),
    key("log.local.retention.bytes", Lg, Some("-2"), "Tiered storage: the default local.retention.bytes of topics."),
    key("log.local.retention.ms", Lg, Some("-2"), "Tiered storage: the default local.retention.ms of topics."),
    key("log.message.downconversion.enable", B, Some("true"), "The default message.downconversion.enable of topics."),
    key("log.message.format.version", Str, Some("3.0-IV1"), "Deprecated: the default message.format.version of topics."),
    key("log.message.timestamp.after.max.ms", Lg, LONG_MAX, "The default message.timestamp.after.max.ms of topics."),
    key("log.message.timestamp.before.max.ms", Lg, LONG_MAX, "The default message.timestamp.before.max.ms of topics."),
    key("log.message.timestamp.difference.max.ms", Lg, LONG_MAX, "Deprecated: the default message.timestamp.difference.max.ms of topics."),
    key("log.message.timestamp.type", Str, None, "The default message.timestamp.type of topics."),
    key("log.preallocate", B, Some("false"), "The default preallocate of topics."),
    key("log.retention.bytes", Lg, None, "The default retention.bytes of topics."),
    key("log.retention.check.interval.ms", Lg, None, "How often segments are checked for deletion."),
    key("log.retention.hours", I, None, "The default retention of topics, in hours; log.retention.ms and log.retention.minutes win."),
    key("log.retention.minutes", I, None, "The default retention of topics, in minutes; log.retention.ms wins."),
    key("log.retention.ms", Lg, None, "The default retention.ms of topics."),
    key("log.roll.hours", I, None, "The default segment.ms of topics, in hours; log.roll.ms wins."),
    key("log.roll.jitter.hours", I, Some("0"), "The default segment.jitter.ms of topics, in hours."),
    key("log.roll.jitter.ms", Lg, None, "The default segment.jitter.ms of topics."),
    key("log.roll.ms", Lg, None, "The default segment.ms of topics."),
    key("log.segment.bytes", I, None, "The default segment.bytes of topics."),
    key("log.segment.delete.delay.ms", Lg, Some("60000"), "The default file.delete.delay.ms of topics."),
    key("max.connections", I, None, "The most client connections the broker accepts."),
    key("max.connections.per.ip", I, None, "The most client connections from one address."),
    key("max.connections.per.ip.overrides", Str, None, "Per-address exceptions to max.connections.per.ip, as host:count."),
    key("message.max.bytes", I, None, "The default max.message.bytes of topics."),
    key("metadata.log.dir", Str, None, "KRaft: the metadata log's directory."),
    key("metric.reporters", L, Some(""), "Metrics reporter classes."),
    key("min.insync.replicas", I, None, "The default min.insync.replicas of topics."),
    key("node.id", I, None, "KRaft's name for broker.id."),
    key("num.io.threads", I, Some("8"), "Request handler threads."),
    key("num.network.threads", I, Some("3"), "Network threads."),
    key("num.partitions", I, None, "The partition count of topics created without one."),
    key("num.recovery.threads.per.data.dir", I, Some("1"), "Threads recovering logs at start."),
    key("num.replica.fetchers", I, Some("1"), "Replica fetcher threads."),
    key("offsets.commit.timeout.ms", I, Some("5000"), "How long an offset commit waits for the offsets topic."),
    key("offsets.retention.minutes", I, None, "How long committed offsets of an empty group are kept."),
    key("offsets.topic.num.partitions", I, None, "Partitions of the offsets topic, over which groups are spread among brokers."),
    key("offsets.topic.replication.factor", S, Some("3"), "Replication factor of the offsets topic."),
    key("port", I, None, "Deprecated: the port to bind when listeners is unset."),
    key("process.roles", L, Some(""), "KRaft: broker, controller or both; empty runs the single node or a zookeeper.connect broker."),
    key("queued.max.request.bytes", Lg, None, "The most bytes of requests read but not yet answered."),
    key("queued.max.requests", I, Some("500"), "Requests queued before the network threads block."),
    key("replica.lag.time.max.ms", Lg, Some("30000"), "How long a follower may lag before it leaves the ISR."),
    key("request.timeout.ms", I, None, "A client setting some broker configs carry."),
    key("reserved.broker.max.id", I, Some("1000"), "The highest id reserved for configured brokers."),
    key("sasl.enabled.mechanisms", L, None, "The SASL mechanisms SASL listeners offer (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."),
    key("sasl.jaas.config", P, None, "The JAAS login module line; PlainLoginModule's user_NAME options are PLAIN's users."),
    key("sasl.mechanism.inter.broker.protocol", Str, Some("GSSAPI"), "The SASL mechanism between brokers."),
    key("security.inter.broker.protocol", Str, Some("PLAINTEXT"), "The security protocol between brokers."),
    key("socket.receive.buffer.bytes", I, Some("102400"), "SO_RCVBUF of the broker's sockets."),
    key("socket.request.max.bytes", I, None, "The largest request the broker reads."),
    key("socket.send.buffer.bytes", I, Some("102400"), "SO_SNDBUF of the broker's sockets."),
    key("ssl.cipher.suites", L, None, "The TLS cipher suites a TLS listener offers, by IANA name; empty means all of the enabled protocols'."),
    key("ssl.client.auth", Str, Some("none"), "Whether a TLS listener asks clients for a certificate: required, requested or none."),
    key("ssl.enabled.protocols", L, Some("TLSv1.2,TLSv1.3"), "The TLS versions a TLS listener speaks."),
    key("ssl.endpoint.identification.algorithm", Str, Some("https"), "Host name verification of the peer; for inter-broker TLS."),
    key("ssl.key.password", P, None, "The password of an encrypted private key; gregor refuses encrypted keys."),
    key("ssl.keymanager.algorithm", Str, Some("SunX509"), "The JVM's key manager algorithm."),
    key("ssl.keystore.certificate.chain", P, None, "The broker's certificate chain, as PEM text (with ssl.keystore.key)."),
    key("ssl.keystore.key", P, None, "The broker's private key, as unencrypted PEM text (with ssl.keystore.certificate.chain)."),
    key("ssl.keystore.location", Str, None, "A PEM file holding the broker's private key and certificate chain; re-read when it changes or on SIGHUP."),
    key("ssl.keystore.password", P, None, "The password of a JKS or PKCS12 keystore; refused, as PEM stores have none."),
    key("ssl.keystore.type", Str, None, "The keystore format; gregor reads PEM only (unset means PEM; Kafka's default is JKS)."),
    key("ssl.principal.mapping.rules", Str, Some("DEFAULT"), "Rules mapping a client certificate's subject to a principal name: DEFAULT or RULE:pattern/replacement/[LU], in order."),
    key("ssl.protocol", Str, Some("TLSv1.3"), "The JVM's SSLContext protocol; see ssl.enabled.protocols."),
    key("ssl.secure.random.implementation", Str, None, "The JVM's SecureRandom implementation."),
    key("ssl.trustmanager.algorithm", Str, Some("PKIX"), "The JVM's trust manager algorithm."),
    key("ssl.truststore.certificates", P, None, "The CA certificates client certificates are checked against, as PEM text."),
    key("ssl.truststore.location", Str, None, "A PEM file of the CA certificates client certificates are checked against; re-read when it changes or on SIGHUP."),
    key("ssl.truststore.password", P, None, "The password of a JKS or PKCS12 truststore; refused, as PEM stores have none."),
    key("ssl.truststore.type", Str, None, "The truststore format; gregor reads PEM only (unset means PEM; Kafka's default is JKS)."),
    key("super.users", Str, Some(""), "Principals (User:name, ';'-separated) allowed everything by the authorizer."),
    key("transaction.state.log.min.isr", I, Some("2"), "min.insync.replicas of the transaction state topic."),
    key("transaction.state.log.replication.factor", S, Some("3"), "Replication factor of the transaction state topic."),
    key("transactional.id.expiration.ms", I, Some("604800000"), "How long an idle transactional id is kept."),
    key("unclean.leader.election.enable", B, Some("false"), "The default unclean.leader.election.enable of topics."),
    key("zookeeper.clientCnxnSocket", Str, None, "ZooKeeper's client socket class (Netty for TLS); accepted and ignored, gregor's client always can."),
    key("zookeeper.connect", Str, None, "ZooKeeper's address; gregor reaches its coordinator there."),
    key("zookeeper.connection.timeout.ms", I, None, "How long to wait for ZooKeeper's connection."),
    key("zookeeper.session.timeout.ms", I, Some("18000"), "ZooKeeper's session timeout."),
    key("zookeeper.ssl.client.enable", B, Some("false"), "Reach the coordinator over TLS (its secureClientPort)."),
    key("zookeeper.ssl.endpoint.identification.algorithm", Str, Some("HTTPS"), "HTTPS: the coordinator's certificate must name the host dialled; empty skips that check."),
    key("zookeeper.ssl.keystore.location", Str, None, "A PEM file with the key and certificate chain presented to the coordinator."),
    key("zookeeper.ssl.keystore.password", P, None, "The password of a JKS or PKCS12 keystore; refused, as PEM stores have none."),
    key("zookeeper.ssl.keystore.type", Str, None, "The keystore format; gregor reads PEM only."),
    key("zookeeper.ssl.truststore.location", Str, None, "A PEM file of the CAs the coordinator's certificate must chain to."),
    key("zookeeper.ssl.truststore.password", P, None, "The password of a JKS or PKCS12 truststore; refused, as PEM stores have none."),
    key("zookeeper.ssl.truststore.type", Str, None, "The truststore format; gregor reads PEM only."),
];

/// Kafka's `brokerConfigSynonyms`: the keys that decide one value, highest
/// precedence first. Most keys are their own only synonym.
pub fn synonyms(name: &str) -> &'static [&'static str] {
    const RETENTION: &[&str] = &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];
    const JITTER: &[&str] = &["log.roll.jitter.ms", "log.roll.jitter.hours"];
    const FLUSH: &[&str] = &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"];
    for group in [RETENTION, ROLL, JITTER] {
        if group.contains(&name) {
            return group;
        }
    }
    if name == FLUSH[0] {
        return FLUSH;
    }
    BROKER_KEYS
        .iter()
        .find(|k| k.name == name)
        .map_or(&[], |k| std::slice::from_ref(&k.name))
}

/// The value `name` has when nobody sets it: gregor's built-in default, else
/// Kafka's.
pub fn default_value(name: &str) -> Option<String> {
    RawConfig::new()
        .get_or_default(name)
        .map(|v| v.value)
        .or_else(|| {
            BROKER_KEYS
                .iter()
                .find(|k| k.name == name)
                .and_then(|k| k.kafka_default)
                .map(str::to_string)
        })
}
