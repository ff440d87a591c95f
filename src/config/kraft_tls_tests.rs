//! An SSL controller listener in KRaft's shape: where its keys come from
//! (the listener's own `listener.name.controller.ssl.*`, then `ssl.*`), the
//! client side every node dials the controllers with, and what is refused.

use std::path::{Path, PathBuf};

use crate::config::{BrokerSettings, ClientAuth, ConfigError, Keystore, RawConfig, Truststore};
use crate::security::{KafkaPrincipal, SecurityProtocol};

fn settings(file: &str, envs: &[(&str, &str)]) -> Result<BrokerSettings, ConfigError> {
    let mut raw = RawConfig::with_defaults();
    raw.merge(RawConfig::from_properties(file, Path::new("server.properties")).unwrap());
    let envs = envs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    raw.merge(RawConfig::from_env(envs).unwrap());
    raw.validate_with(&|| "10.1.2.3".to_owned())
}

fn refusal(file: &str) -> String {
    let e = settings(file, &[]).unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

fn file(path: &str) -> Option<Keystore> {
    Some(Keystore::File(PathBuf::from(path)))
}

/// Three combined nodes' node 2, its CONTROLLER listener on SSL.
const COMBINED_SSL: &str = "process.roles=broker,controller\n\
node.id=2\n\
controller.quorum.voters=1@c1:9093,2@c2:9093,3@c3:9093\n\
controller.listener.names=CONTROLLER\n\
listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n\
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL\n\
advertised.listeners=PLAINTEXT://b2:9092\n\
ssl.keystore.type=PEM\n\
ssl.keystore.location=/certs/broker-keystore.pem\n\
ssl.truststore.type=PEM\n\
ssl.truststore.location=/certs/ca.pem\n";

#[test]
fn an_ssl_controller_listener_serves_and_dials_with_the_bare_ssl_keys() {
    let s = settings(COMBINED_SSL, &[]).unwrap();
    let kraft = s.kraft.as_ref().unwrap();
    assert_eq!(kraft.controller_protocol, SecurityProtocol::Ssl);
    let server = kraft.controller.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(
        server.keystore,
        Keystore::File("/certs/broker-keystore.pem".into())
    );
    // Kafka's default for every listener, the controller's included.
    assert_eq!(server.client_auth, ClientAuth::None);
    let client = kraft.controller_client_tls.as_ref().unwrap();
    assert_eq!(client.keystore, file("/certs/broker-keystore.pem"));
    assert_eq!(client.truststore, Truststore::File("/certs/ca.pem".into()));
    assert!(client.verify_hostname, "https is Kafka's default");
    // The broker side reaches the controllers with the same client side.
    assert_eq!(s.coordinator_tls.as_ref(), Some(client));
    assert_eq!(s.coordinator.as_deref(), Some("c1:9093,c2:9093,c3:9093"));
    assert_eq!(s.listeners.len(), 1);
    assert!(s.listeners[0].tls.is_none(), "PLAINTEXT stays plaintext");
}

#[test]
fn the_listeners_own_keys_win_key_by_key() {
    let s = settings(
        &format!(
            "{COMBINED_SSL}\
             listener.name.controller.ssl.keystore.location=/certs/controller-keystore.pem\n\
             listener.name.controller.ssl.client.auth=required\n\
             listener.name.controller.ssl.endpoint.identification.algorithm=\n\
             ssl.endpoint.identification.algorithm=https\n\
             listener.name.controller.ssl.principal.mapping.rules=RULE:^CN=(.*?),O=.*$/$1/\n\
             super.users=User:broker;User:CN=admin\n"
        ),
        &[],
    )
    .unwrap();
    let kraft = s.kraft.unwrap();
    let server = kraft.controller.unwrap().tls.unwrap();
    assert_eq!(
        server.keystore,
        Keystore::File("/certs/controller-keystore.pem".into())
    );
    assert_eq!(server.client_auth, ClientAuth::Required);
    assert_eq!(
        server.truststore,
        Some(Truststore::File("/certs/ca.pem".into())),
        "not overridden: the bare key"
    );
    assert_ne!(server.principal_mapping_rules.to_string(), "DEFAULT");
    let client = kraft.controller_client_tls.unwrap();
    assert_eq!(client.keystore, file("/certs/controller-keystore.pem"));
    // An empty value is a value: it turns the host name check off.
    assert!(!client.verify_hostname);
    assert_eq!(
        kraft.super_users,
        vec![
            KafkaPrincipal::user("broker"),
            KafkaPrincipal::user("CN=admin")
        ]
    );
}

#[test]
fn the_official_images_variables_configure_it() {
    let s = settings(
        "",
        &[
            ("KAFKA_PROCESS_ROLES", "broker,controller"),
            ("KAFKA_NODE_ID", "1"),
            ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka-1:9093"),
            ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
            ("KAFKA_LISTENERS", "PLAINTEXT://:19092,CONTROLLER://:9093"),
            (
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "CONTROLLER:SSL,PLAINTEXT:PLAINTEXT",
            ),
            (
                "KAFKA_LISTENER_NAME_CONTROLLER_SSL_KEYSTORE_LOCATION",
                "/etc/kafka/secrets/kafka-1.pem",
            ),
            ("KAFKA_SSL_TRUSTSTORE_LOCATION", "/etc/kafka/secrets/ca.pem"),
            ("KAFKA_SSL_TRUSTSTORE_TYPE", "PEM"),
            ("KAFKA_SSL_CLIENT_AUTH", "required"),
            ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://kafka-1:19092"),
        ],
    )
    .unwrap();
    let kraft = s.kraft.unwrap();
    let server = kraft.controller.unwrap().tls.unwrap();
    assert_eq!(server.client_auth, ClientAuth::Required);
    assert_eq!(
        kraft.controller_client_tls.unwrap().keystore,
        file("/etc/kafka/secrets/kafka-1.pem")
    );
}

#[test]
fn a_broker_alone_dials_ssl_controllers_with_or_without_a_certificate() {
    let broker = "process.roles=broker\nnode.id=4\n\
                  controller.quorum.bootstrap.servers=c1:9093\n\
                  controller.listener.names=CONTROLLER\n\
                  listeners=PLAINTEXT://:9092\n\
                  listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL\n\
                  listener.name.controller.ssl.truststore.location=/certs/ca.pem\n";
    let s = settings(broker, &[]).unwrap();
    let client = s.coordinator_tls.unwrap();
    assert_eq!(client.keystore, None);
    assert_eq!(client.truststore, Truststore::File("/certs/ca.pem".into()));
    assert!(s.kraft.unwrap().controller.is_none());
    let with_certificate = settings(
        &format!("{broker}ssl.keystore.location=/certs/broker-keystore.pem\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        with_certificate.coordinator_tls.unwrap().keystore,
        file("/certs/broker-keystore.pem")
    );
    // A PLAINTEXT controller listener: no TLS, zookeeper.ssl.* unused.
    let plaintext = settings(
        &format!(
            "{}zookeeper.ssl.client.enable=true\nzookeeper.ssl.truststore.location=/ca.pem\n",
            broker.replace("CONTROLLER:SSL", "CONTROLLER:PLAINTEXT")
        ),
        &[],
    )
    .unwrap();
    assert_eq!(plaintext.coordinator_tls, None);
}

#[test]
fn sasl_and_incomplete_tls_are_refused_naming_the_key() {
    for protocol in ["SASL_SSL", "SASL_PLAINTEXT"] {
        let e = refusal(&COMBINED_SSL.replace("CONTROLLER:SSL", &format!("CONTROLLER:{protocol}")));
        assert!(
            e.contains("listener.security.protocol.map")
                && e.contains(&format!("is {protocol}"))
                && e.contains("not SASL"),
            "{e}"
        );
    }
    let e = refusal(&COMBINED_SSL.replace("ssl.truststore.location=/certs/ca.pem\n", ""));
    assert!(
        e.contains("needs a truststore") && e.contains("ssl.truststore.location"),
        "{e}"
    );
    let e =
        refusal(&COMBINED_SSL.replace("ssl.keystore.location=/certs/broker-keystore.pem\n", ""));
    assert!(
        e.contains("listener CONTROLLER uses TLS but has no certificate"),
        "{e}"
    );
    let e = refusal(&COMBINED_SSL.replace("ssl.keystore.type=PEM", "ssl.keystore.type=JKS"));
    assert!(e.contains("for ssl.keystore.type"), "{e}");
    let e = refusal(&format!("{COMBINED_SSL}ssl.truststore.password=secret\n"));
    assert!(
        e.contains("ssl.truststore.password") && !e.contains("secret"),
        "{e}"
    );
    let e = refusal(&format!(
        "{COMBINED_SSL}listener.name.controller.ssl.endpoint.identification.algorithm=dns\n"
    ));
    assert!(
        e.contains("for listener.name.controller.ssl.endpoint.identification.algorithm"),
        "{e}"
    );
    let e = refusal(&COMBINED_SSL.replace(",CONTROLLER:SSL", ""));
    assert!(
        e.contains("controller listener with name CONTROLLER")
            && e.contains("not found in listener.security.protocol.map"),
        "{e}"
    );
    let e = refusal(&format!("{COMBINED_SSL}super.users=broker\n"));
    assert!(e.contains("super.users") && e.contains("Type:name"), "{e}");
}

#[test]
fn a_default_map_still_makes_controller_listeners_plaintext() {
    let s = settings(
        "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@c1:9093\n\
         controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://:9092,CONTROLLER://:9093\n",
        &[],
    )
    .unwrap();
    let kraft = s.kraft.unwrap();
    assert_eq!(kraft.controller_protocol, SecurityProtocol::Plaintext);
    assert!(kraft.controller.unwrap().tls.is_none());
    assert_eq!(kraft.controller_client_tls, None);
    assert_eq!(s.coordinator_tls, None);
}
