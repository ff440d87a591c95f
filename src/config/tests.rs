//! Cross-cutting tests of the whole pipeline: sources, merging, validation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const FIXTURE: &str = include_str!("testdata/server.properties");

fn host() -> String {
    "10.1.2.3".to_string()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Defaults plus the given layers, validated with a fixed default host.
fn settings(
    file: &str,
    envs: &[(&str, &str)],
    flags: &[(&str, &str)],
) -> Result<BrokerSettings, ConfigError> {
    raw_of(file, envs, flags).validate_with(&host)
}

fn raw_of(file: &str, envs: &[(&str, &str)], flags: &[(&str, &str)]) -> RawConfig {
    let mut raw = RawConfig::with_defaults();
    raw.merge(RawConfig::from_properties(file, Path::new("server.properties")).unwrap());
    raw.merge(RawConfig::from_env(env(envs)).unwrap());
    raw.merge(RawConfig::from_overrides(&env(flags)));
    raw
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

#[test]
fn defaults_match_kafka() {
    let s = settings("", &[], &[]).unwrap();
    assert_eq!(s.broker_id, 0);
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    assert_eq!(s.num_partitions, 1);
    assert_eq!(s.default_replication_factor, 1);
    assert!(s.auto_create_topics && s.delete_topic_enable);
    assert_eq!(s.socket_request_max_bytes, 104_857_600);
    assert_eq!(s.message_max_bytes, 1_048_588);
    assert_eq!(s.coordinator, None);
    assert_eq!(s.admin_listener, "127.0.0.1:9644".parse().unwrap());
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.shutdown_timeout, Duration::from_millis(5000));
    assert_eq!(s.groups.min_session_timeout, Duration::from_millis(6000));
    assert_eq!(
        s.groups.max_session_timeout,
        Duration::from_millis(1_800_000)
    );
    assert_eq!(
        s.groups.initial_rebalance_delay,
        Duration::from_millis(3000)
    );
    assert_eq!(s.groups.offsets_retention, Duration::from_secs(10080 * 60));
    assert_eq!(s.groups.offsets_topic_replication_factor, 3);
    assert_eq!(s.groups.offsets_commit_timeout, Duration::from_millis(5000));
    let log = &s.log;
    assert_eq!(log.retention, Some(hours(168)));
    assert_eq!(log.retention_bytes, None);
    assert_eq!(log.segment_bytes, 1_073_741_824);
    assert_eq!(log.segment_roll, hours(168));
    assert_eq!(log.flush_interval_messages, i64::MAX as u64);
    assert_eq!(log.flush_interval, None);
    assert_eq!(log.retention_check_interval, Duration::from_millis(300_000));
    assert_eq!(log.index_interval_bytes, 4096);
    assert_eq!(log.message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(log.cleanup_policy, "delete");
    let l = &s.listeners[..];
    assert_eq!(l.len(), 1);
    assert_eq!(
        (l[0].name.as_str(), l[0].bind.as_str()),
        ("PLAINTEXT", "0.0.0.0:9092")
    );
    assert_eq!(
        (l[0].advertised_host.as_str(), l[0].advertised_port),
        ("10.1.2.3", 9092)
    );
    assert_eq!(
        l[0].security_protocol,
        crate::security::SecurityProtocol::Plaintext
    );
    // An empty RawConfig falls back to the same defaults.
    assert_eq!(RawConfig::new().validate_with(&host).unwrap(), s);
}

#[test]
fn precedence_flag_env_file_default() {
    let file = "num.partitions=2\nlog.retention.hours=10\nbroker.id=5\n";
    let envs = [
        ("KAFKA_NUM_PARTITIONS", "3"),
        ("KAFKA_LOG_RETENTION_HOURS", "20"),
    ];
    let flags = [("num.partitions", "4")];
    let raw = raw_of(file, &envs, &flags);
    assert_eq!(raw.get("num.partitions").unwrap().from, Source::Flag);
    assert_eq!(
        raw.get("log.retention.hours").unwrap().from,
        Source::Env("KAFKA_LOG_RETENTION_HOURS".into())
    );
    assert!(matches!(
        raw.get("broker.id").unwrap().from,
        Source::File { line: Some(3), .. }
    ));
    assert_eq!(raw.get("num.partitions").unwrap().value, "4");
    let s = raw.validate_with(&host).unwrap();
    assert_eq!(s.num_partitions, 4);
    assert_eq!(s.log.retention, Some(hours(20)));
    assert_eq!(s.broker_id, 5);
    assert_eq!(s.default_replication_factor, 1);
}

#[test]
fn assemble_and_load_read_the_file() {
    let mut f = tempfile::Builder::new()
        .suffix(".properties")
        .tempfile()
        .unwrap();
    writeln!(f, "num.partitions=7\nlog.dirs=/var/lib/a,/var/lib/b").unwrap();
    let sources = ConfigSources {
        file: Some(f.path().to_path_buf()),
        env: env(&[("KAFKA_NUM_PARTITIONS", "8")]),
        overrides: vec![parse_override("broker.id=3").unwrap()],
    };
    let s = load(&sources).unwrap();
    assert_eq!((s.num_partitions, s.broker_id), (8, 3));
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/a"));
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let sources = ConfigSources {
        file: Some(PathBuf::from("/nonexistent/gregor/server.properties")),
        ..ConfigSources::default()
    };
    let e = load(&sources).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .contains("/nonexistent/gregor/server.properties"),
        "{e}"
    );
}

#[test]
fn yaml_flattening() {
    let text = "log.retention.hours: 12\nlog:\n  segment:\n    bytes: 1000\n  cleanup.policy: delete\n\
                auto.create.topics.enable: false\nlisteners:\n  - INTERNAL://0.0.0.0:29092\n  - EXTERNAL://0.0.0.0:9092\n\
                advertised.listeners:\n";
    let raw = RawConfig::from_yaml(text, Path::new("c.yaml")).unwrap();
    let v = |k: &str| raw.get(k).map(|r| r.value.clone());
    assert_eq!(v("log.retention.hours").as_deref(), Some("12"));
    assert_eq!(v("log.segment.bytes").as_deref(), Some("1000"));
    assert_eq!(v("log.cleanup.policy").as_deref(), Some("delete"));
    assert_eq!(v("auto.create.topics.enable").as_deref(), Some("false"));
    assert_eq!(
        v("listeners").as_deref(),
        Some("INTERNAL://0.0.0.0:29092,EXTERNAL://0.0.0.0:9092")
    );
    assert_eq!(v("advertised.listeners"), None, "null means unset");

    let dup = RawConfig::from_yaml(
        "log.retention.hours: 1\nlog:\n  retention:\n    hours: 2\n",
        Path::new("c.yaml"),
    );
    assert!(matches!(dup, Err(ConfigError::Syntax { .. })));
    let bad = RawConfig::from_yaml("- a\n- b\n", Path::new("c.yaml")).unwrap_err();
    assert!(bad.to_string().contains("c.yaml"), "{bad}");
    assert!(
        RawConfig::from_yaml("", Path::new("c.yml"))
            .unwrap()
            .iter()
            .next()
            .is_none()
    );
}

#[test]
fn yaml_file_is_chosen_by_extension() {
    let mut f = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    writeln!(f, "num:\n  partitions: 6").unwrap();
    let raw = RawConfig::from_file(f.path()).unwrap();
    assert_eq!(raw.get("num.partitions").unwrap().value, "6");
}

#[test]
fn env_mapping() {
    let raw = RawConfig::from_env(env(&[
        ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://broker:9092"),
        ("KAFKA_LOG_RETENTION_HOURS", "1"),
        ("KAFKA_BROKER_ID", "2"),
        ("KAFKA_ZOOKEEPER_CONNECT", "zk:2181"),
        ("KAFKA_CONFLUENT_SUPPORT__CUSTOMER___ID", "x"),
        ("KAFKA_HEAP_OPTS", "-Xmx1G"),
        ("KAFKA_OPTS", "-Dfoo"),
        ("KAFKA_JMX_PORT", "9999"),
        ("KAFKA_LOG4J_ROOT_LOGLEVEL", "WARN"),
        ("GREGOR_DATA_DIR", "/data"),
        ("GREGOR_LOG_FORMAT", "json"),
        ("PATH", "/bin"),
        ("kafka_broker_id", "9"),
    ]))
    .unwrap();
    let keys: Vec<&str> = raw.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            "advertised.listeners",
            "broker.id",
            "confluent.support_customer-id",
            "gregor.log.format",
            "log.dirs",
            "log.retention.hours",
            "zookeeper.connect",
        ]
    );
    assert_eq!(
        raw.get("broker.id").unwrap().from,
        Source::Env("KAFKA_BROKER_ID".into())
    );
    let mut full = RawConfig::with_defaults();
    full.merge(raw);
    let s = full.validate_with(&host).unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/data"));
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.coordinator.as_deref(), Some("zk:2181"));
    assert_eq!(s.listeners[0].advertised_host, "broker");
}

#[test]
fn kafka_host_url_advertises_first_listener() {
    let s = settings("", &[("kafka_host_url", "myhost:29092")], &[]).unwrap();
    let l = &s.listeners[0];
    assert_eq!(
        (
            l.bind.as_str(),
            l.advertised_host.as_str(),
            l.advertised_port
        ),
        ("0.0.0.0:9092", "myhost", 29092)
    );
    // The upper-case spelling works too; the lower-case one wins over it.
    let s = settings(
        "",
        &[("KAFKA_HOST_URL", "up:1"), ("kafka_host_url", "low:2")],
        &[],
    )
    .unwrap();
    assert_eq!(s.listeners[0].advertised_host, "low");
    let s = settings("", &[("KAFKA_HOST_URL", "up:1")], &[]).unwrap();
    assert_eq!(s.listeners[0].advertised_host, "up");
    // Explicit advertised.listeners beats it.
    let s = settings(
        "advertised.listeners=PLAINTEXT://adv:9092",
        &[("kafka_host_url", "myhost:1")],
        &[],
    )
    .unwrap();
    assert_eq!(s.listeners[0].advertised_host, "adv");
    // Only the first listener takes it; other wildcards use the machine address.
    let file = "listeners=A://:9092,B://0.0.0.0:9093\nlistener.security.protocol.map=A:PLAINTEXT,B:PLAINTEXT";
    let s = settings(file, &[("kafka_host_url", "myhost:9092")], &[]).unwrap();
    assert_eq!(s.listeners[0].advertised_host, "myhost");
    assert_eq!(
        (
            s.listeners[1].advertised_host.as_str(),
            s.listeners[1].advertised_port
        ),
        ("10.1.2.3", 9093)
    );
    let e = settings("", &[("kafka_host_url", "nonsense")], &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("kafka_host_url (from environment kafka_host_url)"),
        "{e}"
    );
}

#[test]
fn named_listeners_advertise_their_own_address() {
    let file = "listeners=INTERNAL://0.0.0.0:29092,EXTERNAL://0.0.0.0:9092\n\
                advertised.listeners=INTERNAL://broker:29092,EXTERNAL://localhost:9092\n\
                listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT\n\
                inter.broker.listener.name=INTERNAL\n";
    let s = settings(file, &[], &[]).unwrap();
    let got: Vec<_> = s
        .listeners
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.bind.as_str(),
                l.advertised_host.as_str(),
                l.advertised_port,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("INTERNAL", "0.0.0.0:29092", "broker", 29092),
            ("EXTERNAL", "0.0.0.0:9092", "localhost", 9092)
        ]
    );
    assert!(raw_of(file, &[], &[]).unknown_keys().is_empty());
}

#[test]
fn listener_binding_forms() {
    let file = "listeners=PLAINTEXT://127.0.0.1:9092,V6://[::]:9093,LOOP://[::1]:9094\n\
                listener.security.protocol.map=PLAINTEXT:PLAINTEXT,V6:PLAINTEXT,LOOP:PLAINTEXT";
    let s = settings(file, &[], &[]).unwrap();
    let got: Vec<_> = s
        .listeners
        .iter()
        .map(|l| (l.bind.as_str(), l.advertised_host.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("127.0.0.1:9092", "127.0.0.1"),
            ("[::]:9093", "10.1.2.3"),
            ("[::1]:9094", "::1")
        ]
    );
    // Legacy host.name/port.
    let s = settings("port=9999\nhost.name=10.0.0.5", &[], &[]).unwrap();
    assert_eq!(s.listeners[0].bind, "10.0.0.5:9999");
}

#[test]
fn listener_errors() {
    let msg = |file: &str| settings(file, &[], &[]).unwrap_err().to_string();
    assert!(
        msg("listeners=PLAINTEXT://:1,PLAINTEXT://:2")
            .contains("duplicate listener name PLAINTEXT")
    );
    let m = msg("listeners=A://:1,B://:1\nlistener.security.protocol.map=A:PLAINTEXT,B:PLAINTEXT");
    assert!(m.contains("duplicate listener port 1"), "{m}");
    let m = msg("advertised.listeners=OTHER://h:1");
    assert!(
        m.contains("advertised listener OTHER matches no entry in listeners"),
        "{m}"
    );
    assert!(msg("listeners=").contains("at least one listener"));
    assert!(msg("listeners=localhost:9092").contains("NAME://host:port"));
    assert!(msg("listeners=PLAINTEXT://:99999").contains("invalid port"));
    assert!(msg("advertised.listeners=PLAINTEXT://0.0.0.0:9092").contains("non-routable"));
    assert!(msg("listeners=CUSTOM://:9092").contains("listener CUSTOM has no security protocol"));
}

#[test]
fn a_tls_listener_needs_a_certificate() {
    let e = settings("listeners=SSL://:9093", &[], &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("listener SSL uses TLS but has no certificate: set ssl.keystore.location"),
        "{e}"
    );
    let file = "listeners=SSL://:9093\nssl.keystore.location=/etc/gregor/broker.pem";
    let tls = settings(file, &[], &[]).unwrap().listeners[0].tls.clone();
    assert_eq!(
        tls.map(|t| t.keystore),
        Some(Keystore::File("/etc/gregor/broker.pem".into()))
    );
}

#[path = "sasl_tests.rs"]
mod sasl_tests;

#[path = "inter_broker_tests.rs"]
mod inter_broker_tests;

#[test]
fn retention_precedence_and_unlimited() {
    let r = |file: &str| settings(file, &[], &[]).unwrap().log.retention;
    assert_eq!(r("log.retention.hours=2"), Some(hours(2)));
    assert_eq!(
        r("log.retention.hours=2\nlog.retention.minutes=3"),
        Some(Duration::from_secs(180))
    );
    assert_eq!(
        r("log.retention.minutes=3\nlog.retention.ms=1500\nlog.retention.hours=2"),
        Some(Duration::from_millis(1500))
    );
    // ms beats hours even when hours comes from a higher-precedence source.
    let s = settings(
        "log.retention.ms=1000",
        &[],
        &[("log.retention.hours", "5")],
    )
    .unwrap();
    assert_eq!(s.log.retention, Some(Duration::from_secs(1)));
    assert_eq!(r("log.retention.hours=-1"), None);
    assert_eq!(r("log.retention.ms=-1\nlog.retention.hours=5"), None);
    let s = settings(
        "log.retention.bytes=-1\nlog.roll.ms=60000\nlog.flush.interval.ms=10",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(s.log.retention_bytes, None);
    assert_eq!(s.log.segment_roll, Duration::from_secs(60));
    assert_eq!(s.log.flush_interval, Some(Duration::from_millis(10)));
    let s = settings("log.retention.bytes=5000", &[], &[]).unwrap();
    assert_eq!(s.log.retention_bytes, Some(5000));
    let e = settings("log.retention.ms=-2", &[], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be at least -1"), "{e}");
}

#[test]
fn bad_value_messages_name_key_value_and_source() {
    let e = settings("", &[("KAFKA_LOG_RETENTION_HOURS", "abc")], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value \"abc\" for log.retention.hours (from environment KAFKA_LOG_RETENTION_HOURS): expected an integer"
    );
    let e = settings("", &[], &[("num.partitions", "0")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value \"0\" for num.partitions (from command line): must be at least 1"
    );
    let e = settings("\n\nauto.create.topics.enable=yes", &[], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value \"yes\" for auto.create.topics.enable (from file server.properties line 3): expected true or false"
    );
    let e = settings("log.segment.bytes=10", &[], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be at least 14"), "{e}");
    let s = settings("log.cleanup.policy=compact", &[], &[]).unwrap();
    assert!(s.log.compacts() && !s.log.deletes());
    let e = settings("log.cleaner.min.cleanable.ratio=2", &[], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("log.cleaner.min.cleanable.ratio"), "{e}");
    let e = settings("gregor.log.format=xml", &[], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected text or json"), "{e}");
    // Multi-line values stay on one line in the message.
    let e = settings("", &[], &[("broker.id", "1\n2")])
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n') && e.contains("\"1\\n2\""), "{e}");
    let e = settings("broker.id=1\nnode.id=2", &[], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("must equal broker.id (1)"), "{e}");
    assert_eq!(settings("node.id=4", &[], &[]).unwrap().broker_id, 4);
}

#[test]
fn coordinator_admin_and_misc() {
    let s = settings("zookeeper.connect=zk1:2181,zk2/kafka", &[], &[]).unwrap();
    assert_eq!(s.coordinator.as_deref(), Some("zk1:2181,zk2:2181"));
    let s = settings("zookeeper.connect=zk1/chroot", &[], &[]).unwrap();
    assert_eq!(s.coordinator.as_deref(), Some("zk1:2181"));
    let s = settings(
        "zookeeper.connect=zk:1\ncoordinator.connect=coord:7000",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(s.coordinator.as_deref(), Some("coord:7000"));
    let s = settings("admin.listener=127.0.0.1:1000\nadmin.port=2000", &[], &[]).unwrap();
    assert_eq!(s.admin_listener, "127.0.0.1:2000".parse().unwrap());
    assert!(parse_override("novalue").is_err());
    assert_eq!(
        parse_override("a.b=c=d").unwrap(),
        ("a.b".to_string(), "c=d".to_string())
    );
}

#[test]
fn unknown_keys_are_reported_with_source() {
    let raw = raw_of(
        "log.retension.hours=1\nnum.io.threads=8",
        &[("KAFKA_FOO_BAR", "1")],
        &[],
    );
    let unknown: Vec<String> = raw
        .unknown_keys()
        .iter()
        .map(|(k, f)| format!("{k} ({f})"))
        .collect();
    assert_eq!(
        unknown,
        vec![
            "foo.bar (environment KAFKA_FOO_BAR)",
            "log.retension.hours (file server.properties line 1)"
        ]
    );
    raw.warn_unknown();
}

#[test]
fn kafka_default_file_parses_cleanly() {
    let raw = raw_of(FIXTURE, &[], &[]);
    assert!(raw.unknown_keys().is_empty(), "{:?}", raw.unknown_keys());
    let s = raw.validate_with(&host).unwrap();
    assert_eq!(s.broker_id, 0);
    assert_eq!(s.data_dir, PathBuf::from("/tmp/gregor-logs"));
    assert_eq!(s.log.retention, Some(hours(168)));
    assert_eq!(s.log.segment_bytes, 1_073_741_824);
    assert_eq!(s.coordinator.as_deref(), Some("localhost:2181"));
    assert_eq!(s.groups.initial_rebalance_delay, Duration::ZERO);
    assert_eq!(s.listeners[0].bind, "0.0.0.0:9092");
}

#[test]
fn default_advertised_host_is_an_ipv4_address() {
    let h = default_advertised_host();
    assert!(h.parse::<std::net::Ipv4Addr>().is_ok(), "{h}");
}

#[test]
fn tutorial_link_variables_name_the_coordinator() {
    let env = |pairs: &[(&str, &str)]| {
        RawConfig::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap()
            .validate_with(&|| "10.0.0.1".to_string())
            .unwrap()
            .coordinator
    };
    assert_eq!(
        env(&[
            ("ZOOKEEPER_PORT_2181_TCP_ADDR", "172.17.0.2"),
            ("ZOOKEEPER_PORT_2181_TCP_PORT", "2181")
        ]),
        Some("172.17.0.2:2181".to_string())
    );
    assert_eq!(
        env(&[
            ("ZOOKEEPER_CONNECTION_STRING", "zk:2181"),
            ("ZOOKEEPER_PORT_2181_TCP_ADDR", "172.17.0.2")
        ]),
        Some("zk:2181".to_string())
    );
    assert_eq!(
        env(&[
            ("ZOOKEEPER_PORT_2181_TCP_ADDR", "172.17.0.2"),
            ("KAFKA_ZOOKEEPER_CONNECT", "coord:2181")
        ]),
        Some("coord:2181".to_string())
    );
}

#[test]
fn statefulset_pod_ordinal_is_the_default_broker_id() {
    let id = |pairs: &[(&str, &str)]| {
        RawConfig::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap()
            .validate_with(&|| "10.0.0.1".to_string())
            .unwrap()
            .broker_id
    };
    assert_eq!(id(&[("POD_NAME", "kafka-gregor-broker-2")]), 2);
    assert_eq!(
        id(&[
            ("POD_NAME", "kafka-gregor-broker-2"),
            ("KAFKA_BROKER_ID", "7")
        ]),
        7
    );
    assert_eq!(id(&[("POD_NAME", "standalone")]), 0);
}

#[test]
fn connection_defaults_follow_the_open_file_limit() {
    let s = raw_of("", &[], &[])
        .validate_for(&host, 1024)
        .unwrap()
        .connections;
    assert_eq!((s.max_connections, s.max_connections_per_ip), (768, 384));
    assert!(s.per_ip_overrides.is_empty());
    assert_eq!(s.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(s.request_receive_timeout, Duration::from_secs(30));
    assert_eq!(s.queued_max_request_bytes, Some(100 * 1024 * 1024));
    // An unlimited descriptor table does not overflow.
    let unlimited = raw_of("", &[], &[]).validate_for(&host, u64::MAX).unwrap();
    assert!(unlimited.connections.max_connections > 1 << 30);
}

#[test]
fn connection_limits_from_file_env_and_flags() {
    let file =
        "max.connections=50\nmax.connections.per.ip.overrides=10.0.0.1:7, [::1]:9 ,localhost:11\n";
    let envs = [
        ("KAFKA_MAX_CONNECTIONS_PER_IP", "5"),
        ("KAFKA_CONNECTIONS_MAX_IDLE_MS", "-1"),
        ("KAFKA_GREGOR_REQUEST_RECEIVE_TIMEOUT_MS", "2500"),
    ];
    let flags = [("queued.max.request.bytes", "-1")];
    let s = settings(file, &envs, &flags).unwrap().connections;
    assert_eq!((s.max_connections, s.max_connections_per_ip), (50, 5));
    assert_eq!(s.limit_for("10.0.0.1".parse().unwrap()), 7);
    assert_eq!(s.limit_for("10.0.0.2".parse().unwrap()), 5);
    assert_eq!(s.limit_for("127.0.0.1".parse().unwrap()), 11);
    assert_eq!(s.idle_timeout, None);
    assert_eq!(s.request_receive_timeout, Duration::from_millis(2500));
    assert_eq!(s.queued_max_request_bytes, None);
}

#[test]
fn connection_limit_errors_name_the_key() {
    let bad = |flags: &[(&str, &str)]| settings("", &[], flags).unwrap_err().to_string();
    let e = bad(&[("max.connections.per.ip", "0")]);
    assert!(
        e.contains("max.connections.per.ip") && e.contains("overrides"),
        "{e}"
    );
    assert!(
        settings(
            "",
            &[],
            &[
                ("max.connections.per.ip", "0"),
                ("max.connections.per.ip.overrides", "10.0.0.1:3")
            ]
        )
        .is_ok()
    );
    let e = bad(&[("max.connections.per.ip.overrides", "10.0.0.1")]);
    assert!(e.contains("not host:count"), "{e}");
    let e = bad(&[("max.connections.per.ip.overrides", "10.0.0.1:many")]);
    assert!(e.contains("\"10.0.0.1:many\""), "{e}");
    let e = bad(&[("max.connections", "0")]);
    assert!(
        e.contains("max.connections") && e.contains("at least 1"),
        "{e}"
    );
    let e = bad(&[("queued.max.request.bytes", "1024")]);
    assert!(e.contains("socket.request.max.bytes (104857600)"), "{e}");
    let e = bad(&[("gregor.request.receive.timeout.ms", "0")]);
    assert!(e.contains("gregor.request.receive.timeout.ms"), "{e}");
}

#[test]
fn queued_request_bytes_default_covers_the_largest_frame() {
    let s = settings("", &[], &[("socket.request.max.bytes", "209715200")]).unwrap();
    assert_eq!(s.connections.queued_max_request_bytes, Some(209_715_200));
}

#[test]
fn authorizer_keys_resolve_with_kafka_class_names() {
    let s = settings("", &[], &[]).unwrap();
    assert_eq!(s.authorizer, None);
    for class in crate::config::AUTHORIZER_CLASS_NAMES {
        let text = format!(
            "authorizer.class.name={class}\nsuper.users=User:admin; User:ops\nallow.everyone.if.no.acl.found=true\n"
        );
        let authorizer = settings(&text, &[], &[]).unwrap().authorizer.unwrap();
        assert!(authorizer.allow_if_no_acl);
        assert!(authorizer.super_users.contains("User:admin"));
        assert!(authorizer.super_users.contains("User:ops"));
    }
    let err = settings("authorizer.class.name=com.example.Mine\n", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("authorizer.class.name"), "{err}");
    let err = settings(
        "authorizer.class.name=kafka.security.authorizer.AclAuthorizer\nsuper.users=admin\n",
        &[],
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("super.users"), "{err}");
}
