//! The coordinator on mutual TLS with [`RemoteCoordinator`] as its client,
//! in-process: certificates from `gregor security init`, the broker's
//! certificate a super user, the client's trusted but not authorized.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use uuid::Uuid;

use super::settings::{AccessSettings, CoordinatorSettings, SecureListen};
use super::{CoordinatorTls, Listeners, RemoteCoordinator, run_on_listeners};
use crate::cli::{SecurityInitArgs, security_init};
use crate::cluster::{
    BrokerRegistration, ClusterCoordinator, ClusterError, CreateTopicRequest, KafkaCode, Listener,
    SecurityProtocol,
};
use crate::config::{
    ClientAuth, CoordinatorTlsSettings, Keystore, PartitionLimits, TlsSettings, TlsVersion,
    Truststore,
};
use crate::security::KafkaPrincipal;

fn client_tls(certs: &Path, keystore: &str) -> CoordinatorTls {
    CoordinatorTls::new(&CoordinatorTlsSettings {
        keystore: Some(Keystore::File(certs.join(keystore))),
        truststore: Truststore::File(certs.join("ca.pem")),
        verify_hostname: true,
    })
    .expect("client TLS")
}

/// A coordinator serving only mutual TLS; its `host:port` and the stop.
async fn start(dir: &Path, certs: &Path) -> (String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let settings = CoordinatorSettings {
        data_dir: dir.join("data"),
        listen: None,
        secure: Some(SecureListen {
            listen: address,
            tls: TlsSettings {
                keystore: Keystore::File(certs.join("coordinator-keystore.pem")),
                truststore: Some(Truststore::File(certs.join("ca.pem"))),
                client_auth: ClientAuth::Required,
                principal_mapping_rules: Default::default(),
                enabled_protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
                cipher_suites: Vec::new(),
            },
            peer_client: None,
        }),
        authorization: AccessSettings {
            enabled: true,
            acl: None,
            super_users: vec![KafkaPrincipal::user("CN=broker,O=gregor")],
        },
        max_client_connections: None,
        node_id: 0,
        request_timeout: Duration::from_secs(30),
        partition_limits: PartitionLimits::default(),
        leader_rebalance: Default::default(),
        eligible_leader_replicas: Default::default(),
        ensemble: None,
    };
    let (stop, shutdown) = watch::channel(false);
    let listeners = Listeners {
        plaintext: None,
        secure: Some(listener),
        peer: None,
    };
    tokio::spawn(async move {
        run_on_listeners(listeners, settings, shutdown)
            .await
            .expect("coordinator");
    });
    (address.to_string(), stop)
}

fn topic(name: &str) -> CreateTopicRequest {
    CreateTopicRequest {
        assignments: Vec::new(),
        name: name.to_owned(),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
        validate_only: false,
    }
}

#[tokio::test]
async fn a_super_user_broker_writes_over_mutual_tls_and_a_mere_client_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    security_init(&SecurityInitArgs::new(&certs, &["localhost", "127.0.0.1"]))
        .expect("security init");
    let (address, _stop) = start(dir.path(), &certs).await;
    let (_stop_clients, shutdown) = watch::channel(false);

    let broker = RemoteCoordinator::start_with_tls(
        &address,
        Some(client_tls(&certs, "broker-keystore.pem")),
        shutdown.clone(),
    );
    let registration = BrokerRegistration {
        broker_id: 0,
        incarnation_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
        }],
        rack: None,
        directory_id: Uuid::nil(),
        previous_broker_epoch: None,
    };
    tokio::time::timeout(
        Duration::from_secs(20),
        broker.register_broker(registration),
    )
    .await
    .expect("in time")
    .expect("registers");
    broker.create_topic(topic("orders")).await.expect("create");

    let client = RemoteCoordinator::start_with_tls(
        &address,
        Some(client_tls(&certs, "client-keystore.pem")),
        shutdown,
    );
    match client.create_topic(topic("intruder")).await {
        Err(ClusterError::Rejected { code, message }) => {
            assert_eq!(code, KafkaCode::TOPIC_AUTHORIZATION_FAILED, "{message}");
            assert!(message.contains("User:CN=client,O=gregor"), "{message}");
        }
        other => panic!("expected TOPIC_AUTHORIZATION_FAILED, got {other:?}"),
    }
    match client.allocate_producer_ids(0).await {
        Err(ClusterError::Rejected { code, .. }) => {
            assert_eq!(code, KafkaCode::CLUSTER_AUTHORIZATION_FAILED);
        }
        other => panic!("expected CLUSTER_AUTHORIZATION_FAILED, got {other:?}"),
    }
    assert!(broker.image().topic("intruder").is_none());
}
