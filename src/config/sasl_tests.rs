//! SASL settings: mechanisms per listener, PLAIN users, the environment's
//! SCRAM users, and that passwords never show.

use std::time::Duration;

use super::{env, settings};
use crate::config::{ConfigType, RawConfig, describe_broker_configs};
use crate::security::sasl::{Mechanism, ScramMechanism};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
                    user_alice=\"alice-secret\";";

#[test]
fn sasl_listener_defaults_to_scram_and_adds_plain_with_users() {
    let file = "listeners=SASL_PLAINTEXT://:9092";
    let s = settings(file, &[], &[]).unwrap();
    let l = &s.sasl.listeners["SASL_PLAINTEXT"];
    assert_eq!(
        l.mechanisms,
        vec![
            Mechanism::Scram(ScramMechanism::Sha256),
            Mechanism::Scram(ScramMechanism::Sha512)
        ]
    );
    assert_eq!(
        s.sasl.failed_authentication_delay,
        Duration::from_millis(100)
    );
    assert_eq!(s.sasl.max_reauth, None);

    let file = format!(
        "listeners=SASL_PLAINTEXT://:9092\nlistener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}\nconnections.max.reauth.ms=5000"
    );
    let s = settings(&file, &[], &[]).unwrap();
    let l = &s.sasl.listeners["SASL_PLAINTEXT"];
    assert_eq!(l.mechanisms.len(), 3);
    assert_eq!(l.plain_users["alice"].0, "alice-secret");
    assert_eq!(s.sasl.max_reauth, Some(Duration::from_secs(5)));
    assert!(!format!("{:?}", s.sasl).contains("alice-secret"));
}

#[test]
fn per_listener_mechanisms_win_and_unknown_ones_are_refused() {
    let file = "listeners=A://:9092,B://:9093\n\
                listener.security.protocol.map=A:SASL_PLAINTEXT,B:SASL_PLAINTEXT\n\
                sasl.enabled.mechanisms=SCRAM-SHA-512\n\
                listener.name.b.sasl.enabled.mechanisms=SCRAM-SHA-256";
    let s = settings(file, &[], &[]).unwrap();
    assert_eq!(
        s.sasl.listeners["A"].mechanisms,
        vec![Mechanism::Scram(ScramMechanism::Sha512)]
    );
    assert_eq!(
        s.sasl.listeners["B"].mechanisms,
        vec![Mechanism::Scram(ScramMechanism::Sha256)]
    );
    let e = settings(
        "listeners=SASL_PLAINTEXT://:9092\nsasl.enabled.mechanisms=GSSAPI",
        &[],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("SASL mechanism GSSAPI is not supported"), "{e}");
    let e = settings(
        "listeners=SASL_PLAINTEXT://:9092\nsasl.enabled.mechanisms=PLAIN",
        &[],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no PlainLoginModule users"), "{e}");
}

#[test]
fn a_bad_jaas_line_is_refused_without_echoing_it() {
    let file = "listeners=SASL_PLAINTEXT://:9092\n\
                sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"secret";
    let e = settings(file, &[], &[]).unwrap_err().to_string();
    assert!(e.contains("unterminated quoted value"), "{e}");
    assert!(!e.contains("secret"), "{e}");
}

#[test]
fn bitnami_client_users_come_from_the_environment() {
    let envs = [
        ("KAFKA_CLIENT_USERS", "admin,alice"),
        ("KAFKA_CLIENT_PASSWORDS", "admin-secret,alice-secret"),
    ];
    let s = settings("", &envs, &[]).unwrap();
    let users: Vec<&str> = s
        .sasl
        .client_users
        .iter()
        .map(|(u, _)| u.as_str())
        .collect();
    assert_eq!(users, ["admin", "alice"]);
    assert_eq!(s.sasl.client_users[1].1.0, "alice-secret");
    let e = settings("", &envs[..1], &[]).unwrap_err().to_string();
    assert!(e.contains("KAFKA_CLIENT_PASSWORDS"), "{e}");
}

#[test]
fn passwords_are_sensitive_in_describe_configs() {
    let mut raw = RawConfig::with_defaults();
    raw.merge(RawConfig::from_env(env(&[("KAFKA_CLIENT_PASSWORDS", "pw")])).unwrap());
    raw.merge(RawConfig::from_overrides(&env(&[(
        "sasl.jaas.config",
        JAAS,
    )])));
    let described = describe_broker_configs(&raw);
    for name in ["client.passwords", "sasl.jaas.config"] {
        let entry = described.iter().find(|d| d.name == name).unwrap();
        assert!(entry.sensitive, "{name}");
        assert_eq!(entry.config_type, ConfigType::Password);
        assert_eq!(entry.value, None);
        assert!(entry.synonyms.iter().all(|s| s.value.is_none()));
    }
}
