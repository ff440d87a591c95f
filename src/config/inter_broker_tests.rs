//! The inter-broker listener and the broker's own login there.

use super::settings;
use crate::security::SecurityProtocol;
use crate::security::sasl::{Mechanism, ScramMechanism};

const SCRAM_LOGIN: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required \
                           username=\"broker\" password=\"broker-secret\";";

#[test]
fn without_keys_the_plaintext_listener_serves_and_none_is_no_error() {
    let s = settings("listeners=PLAINTEXT://:9092,SASL_SSL://:9093\n", &[], &[]);
    // SASL_SSL needs a keystore; a PLAINTEXT and a SASL_PLAINTEXT listener do not.
    assert!(s.is_err());
    let s = settings(
        "listeners=SASL_PLAINTEXT://:9093,PLAINTEXT://:9092\n",
        &[],
        &[],
    )
    .unwrap();
    let inter = s.inter_broker.unwrap();
    assert_eq!(inter.listener, "PLAINTEXT");
    assert!(inter.tls.is_none() && inter.sasl.is_none());
    let s = settings("listeners=SASL_PLAINTEXT://:9093\n", &[], &[]).unwrap();
    assert_eq!(s.inter_broker, None);
}

#[test]
fn a_sasl_listener_logs_in_with_the_listener_mechanism_jaas_line() {
    let file = format!(
        "listeners=SASL_PLAINTEXT://:9093\n\
         inter.broker.listener.name=sasl_plaintext\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n\
         listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={SCRAM_LOGIN}\n"
    );
    let s = settings(&file, &[], &[]).unwrap();
    let inter = s.inter_broker.unwrap();
    assert_eq!(inter.listener, "SASL_PLAINTEXT");
    assert_eq!(inter.security_protocol, SecurityProtocol::SaslPlaintext);
    let login = inter.sasl.unwrap();
    assert_eq!(login.mechanism, Mechanism::Scram(ScramMechanism::Sha512));
    assert_eq!(
        (login.username.as_str(), login.password.0.as_str()),
        ("broker", "broker-secret")
    );
    assert!(!format!("{login:?}").contains("broker-secret"));
}

#[test]
fn security_inter_broker_protocol_names_the_listener_of_that_name() {
    let file = format!(
        "listeners=SASL_PLAINTEXT://:9093,PLAINTEXT://:9092\n\
         security.inter.broker.protocol=SASL_PLAINTEXT\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256\n\
         sasl.jaas.config={}\n",
        SCRAM_LOGIN
    );
    let s = settings(&file, &[], &[]).unwrap();
    assert_eq!(s.inter_broker.unwrap().listener, "SASL_PLAINTEXT");
}

#[test]
fn misconfigurations_fail_in_one_line_naming_the_key() {
    let fails = |file: &str| {
        let error = settings(file, &[], &[]).unwrap_err().to_string();
        assert!(!error.contains('\n'), "{error}");
        error
    };
    let both = fails(
        "listeners=PLAINTEXT://:9092\ninter.broker.listener.name=PLAINTEXT\n\
         security.inter.broker.protocol=PLAINTEXT\n",
    );
    assert!(both.contains("only one of"), "{both}");
    let unknown = fails("listeners=PLAINTEXT://:9092\ninter.broker.listener.name=INTERNAL\n");
    assert!(unknown.contains("valid options are PLAINTEXT"), "{unknown}");
    let gssapi =
        fails("listeners=SASL_PLAINTEXT://:9093\ninter.broker.listener.name=SASL_PLAINTEXT\n");
    assert!(
        gssapi.contains("sasl.mechanism.inter.broker.protocol"),
        "{gssapi}"
    );
    let disabled = fails(
        "listeners=SASL_PLAINTEXT://:9093\ninter.broker.listener.name=SASL_PLAINTEXT\n\
         sasl.enabled.mechanisms=SCRAM-SHA-256\nsasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n",
    );
    assert!(disabled.contains("must be enabled"), "{disabled}");
    let wrong_module = fails(&format!(
        "listeners=SASL_PLAINTEXT://:9093\ninter.broker.listener.name=SASL_PLAINTEXT\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256\n\
         listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={}\n",
        SCRAM_LOGIN.replace("scram.ScramLoginModule", "plain.PlainLoginModule")
    ));
    assert!(wrong_module.contains("ScramLoginModule"), "{wrong_module}");
    assert!(!wrong_module.contains("broker-secret"), "{wrong_module}");
    let no_password = fails(
        "listeners=SASL_PLAINTEXT://:9093\ninter.broker.listener.name=SASL_PLAINTEXT\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256\n\
         listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=\
         org.apache.kafka.common.security.scram.ScramLoginModule required username=\"b\";\n",
    );
    assert!(no_password.contains("password is missing"), "{no_password}");
}
