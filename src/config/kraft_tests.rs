//! KRaft's keys through the whole pipeline (environment as the official
//! image spells it, properties, validation errors).

use std::path::Path;

use crate::config::{BrokerSettings, ConfigError, RawConfig};

fn settings(file: &str, envs: &[(&str, &str)]) -> Result<BrokerSettings, ConfigError> {
    let mut raw = RawConfig::with_defaults();
    raw.merge(RawConfig::from_properties(file, Path::new("server.properties")).unwrap());
    let envs = envs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    raw.merge(RawConfig::from_env(envs).unwrap());
    raw.validate_with(&|| "10.1.2.3".to_owned())
}

const COMBINED: &str = "process.roles=broker,controller\n\
node.id=2\n\
controller.quorum.voters=1@c1:9093,2@c2:9093,3@c3:9093\n\
controller.listener.names=CONTROLLER\n\
listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n\
advertised.listeners=PLAINTEXT://b2:9092\n";

#[test]
fn combined_node_from_properties() {
    let s = settings(COMBINED, &[]).unwrap();
    let kraft = s.kraft.as_ref().unwrap();
    assert!(kraft.roles.broker && kraft.roles.controller);
    assert_eq!(s.broker_id, 2);
    assert_eq!(kraft.voters.len(), 3);
    let controller = kraft.controller.as_ref().unwrap();
    assert_eq!(controller.bind, "0.0.0.0:9093");
    assert_eq!(controller.address, "c2:9093");
    // The controller listener is not a Kafka listener.
    assert_eq!(s.listeners.len(), 1);
    assert_eq!(s.listeners[0].name, "PLAINTEXT");
    assert_eq!(s.coordinator.as_deref(), Some("c1:9093,c2:9093,c3:9093"));
}

#[test]
fn combined_node_from_the_official_images_environment() {
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
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
            ("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT"),
            ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://kafka-1:19092"),
        ],
    )
    .unwrap();
    let kraft = s.kraft.unwrap();
    assert_eq!(kraft.node_id, 1);
    assert_eq!(kraft.controller.unwrap().address, "kafka-1:9093");
    assert_eq!(s.listeners[0].advertised_host, "kafka-1");
}

#[test]
fn broker_only_and_controller_only() {
    let broker = settings(
        "process.roles=broker\nnode.id=4\ncontroller.quorum.bootstrap.servers=c1:9093,c2:9093\n\
         controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://:9092\n",
        &[],
    )
    .unwrap();
    assert_eq!(broker.coordinator.as_deref(), Some("c1:9093,c2:9093"));
    assert!(broker.kraft.unwrap().controller.is_none());
    let controller = settings(
        "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@c1:9093\n\
         controller.listener.names=CONTROLLER\nlisteners=CONTROLLER://c1:9093\n",
        &[],
    )
    .unwrap();
    assert!(controller.listeners.is_empty());
    let joining = settings(
        "process.roles=controller\nnode.id=4\ncontroller.quorum.bootstrap.servers=c1:9093\n\
         controller.listener.names=CONTROLLER\nlisteners=CONTROLLER://:9093\n\
         advertised.listeners=CONTROLLER://c4:9093\n",
        &[],
    )
    .unwrap();
    let joining = joining.kraft.unwrap();
    assert!(joining.voters.is_empty());
    assert_eq!(joining.controller.unwrap().address, "c4:9093");
    assert_eq!(controller.coordinator, None);
    assert_eq!(
        controller.kraft.unwrap().controller.unwrap().bind,
        "c1:9093"
    );
}

fn refusal(file: &str) -> String {
    settings(file, &[]).unwrap_err().to_string()
}

#[test]
fn errors_name_the_key_and_value() {
    let e = refusal(&COMBINED.replace("node.id=2\n", ""));
    assert!(
        e.contains("node.id") && e.contains("missing required"),
        "{e}"
    );
    let e = refusal(&COMBINED.replace("node.id=2", "node.id=5"));
    assert!(
        e.contains("controller.quorum.voters")
            && e.contains("1@c1:9093")
            && e.contains("node id 5 must be included"),
        "{e}"
    );
    let e = refusal(&COMBINED.replace(",CONTROLLER://:9093", ""));
    assert!(
        e.contains("for listeners") && e.contains("controller.listener.names"),
        "{e}"
    );
    let e = refusal(&COMBINED.replace(
        "PLAINTEXT://b2:9092",
        "PLAINTEXT://b2:9092,CONTROLLER://b2:9093",
    ));
    assert!(
        e.contains("advertised.listeners") && e.contains("must not contain KRaft controller"),
        "{e}"
    );
    let e = refusal(&COMBINED.replace("broker,controller", "broker,zookeeper"));
    assert!(
        e.contains("process.roles") && e.contains("unknown process role 'zookeeper'"),
        "{e}"
    );
    let e = refusal(&COMBINED.replace("1@c1:9093,", "1c1:9093,"));
    assert!(e.contains("expected id@host:port"), "{e}");
    let e = refusal(&COMBINED.replace("controller.listener.names=CONTROLLER\n", ""));
    assert!(e.contains("controller.listener.names"), "{e}");
    let e = refusal(&format!("{COMBINED}zookeeper.connect=zk:2181\n"));
    assert!(
        e.contains("zookeeper.connect") && e.contains("process.roles"),
        "{e}"
    );
    let e = refusal(&format!(
        "{COMBINED}inter.broker.listener.name=CONTROLLER\n"
    ));
    assert!(e.contains("inter.broker.listener.name"), "{e}");
    let e = refusal(&COMBINED.replace("broker,controller", "broker"));
    assert!(
        e.contains("must not be included in the set of voters"),
        "{e}"
    );
    let e = refusal(
        "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@c1:9093\n\
         controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://:9092,CONTROLLER://:9093\n",
    );
    assert!(
        e.contains("must only contain KRaft controller listeners"),
        "{e}"
    );
    let e = refusal(
        "process.roles=broker\nnode.id=4\ncontroller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://:9092\n",
    );
    assert!(e.contains("controller.quorum.bootstrap.servers"), "{e}");
}

#[test]
fn without_process_roles_nothing_changes() {
    let s = settings("", &[]).unwrap();
    assert_eq!(s.kraft, None);
    assert_eq!(s.coordinator, None);
}
