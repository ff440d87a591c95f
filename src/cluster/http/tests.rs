//! The coordinator server and [`RemoteCoordinator`] together, in-process on
//! loopback: the broker side of every route, and the log-pull path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use uuid::Uuid;

use super::settings::CoordinatorSettings;
use super::{RemoteCoordinator, run_on};
use crate::cluster::{
    BrokerRegistration, ClusterCoordinator, ClusterError, Command, CreateTopicRequest,
    EmbeddedCoordinator, KafkaCode, Listener, LogRead, MetadataImage, SecurityProtocol,
};
use crate::config::PartitionLimits;
use crate::security::sasl::{ScramCredential, ScramMechanism};

struct Running {
    address: String,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_coordinator() -> Running {
    start_coordinator_with(Duration::from_secs(30)).await
}

async fn start_coordinator_with(request_timeout: Duration) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let settings = CoordinatorSettings {
        data_dir: dir.path().to_owned(),
        listen: Some(address),
        secure: None,
        authorization: Default::default(),
        max_client_connections: None,
        node_id: 0,
        request_timeout,
        partition_limits: PartitionLimits::default(),
        leader_rebalance: Default::default(),
        eligible_leader_replicas: Default::default(),
        ensemble: None,
    };
    let (stop, shutdown) = watch::channel(false);
    let server = tokio::spawn(async move {
        run_on(listener, settings, shutdown)
            .await
            .expect("coordinator");
    });
    Running {
        address: address.to_string(),
        stop,
        server,
        _dir: dir,
    }
}

fn registration(broker_id: i32) -> BrokerRegistration {
    BrokerRegistration {
        broker_id,
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
    }
}

fn topic(name: &str, partitions: i32) -> CreateTopicRequest {
    CreateTopicRequest {
        assignments: Vec::new(),
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        configs: BTreeMap::new(),
        validate_only: false,
    }
}

async fn eventually(images: &mut watch::Receiver<Arc<MetadataImage>>, want: &MetadataImage) {
    let caught_up = images.wait_for(|image| **image == *want);
    tokio::time::timeout(Duration::from_secs(10), caught_up)
        .await
        .expect("image in time")
        .expect("image channel open");
}

#[tokio::test]
async fn a_remote_broker_registers_writes_and_sees_its_writes_at_once() {
    let coordinator = start_coordinator().await;
    let (_stop_broker, shutdown) = watch::channel(false);
    let broker = RemoteCoordinator::start(&coordinator.address, shutdown);
    let epoch = broker
        .register_broker(registration(0))
        .await
        .expect("register");
    let me = broker.image().broker(0).cloned().expect("registered");
    assert_eq!(me.epoch, epoch);
    assert!(!me.fenced, "register returns once unfenced");

    let created = broker
        .create_topic(topic("orders", 3))
        .await
        .expect("create");
    let image = broker.image();
    let orders = image.topic("orders").expect("visible right after create");
    assert_eq!(orders.id, created.id);
    assert_eq!(orders.partitions.len(), 3);

    match broker.create_topic(topic("orders", 1)).await {
        Err(ClusterError::Rejected { code, .. }) => {
            assert_eq!(code, KafkaCode::TOPIC_ALREADY_EXISTS);
        }
        other => panic!("expected TOPIC_ALREADY_EXISTS, got {other:?}"),
    }

    broker
        .create_partitions("orders", 5, None, false)
        .await
        .expect("grow");
    assert_eq!(
        broker.image().topic("orders").map(|t| t.partitions.len()),
        Some(5)
    );
    let set = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
    broker
        .alter_topic_configs("orders", set, Vec::new())
        .await
        .expect("alter");
    assert_eq!(
        broker
            .image()
            .topic("orders")
            .and_then(|t| t.configs.get("retention.ms").cloned()),
        Some("1000".to_owned())
    );

    // SCRAM credentials go through the coordinator and come back in the image.
    let credential = ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt", 4096);
    broker
        .alter_scram_credential("alice", ScramMechanism::Sha256, Some(credential.clone()))
        .await
        .expect("upsert");
    assert_eq!(
        broker
            .image()
            .scram_credential("alice", ScramMechanism::Sha256),
        Some(&credential)
    );
    match broker
        .alter_scram_credential("alice", ScramMechanism::Sha512, None)
        .await
    {
        Err(error) => assert_eq!(error.code(), KafkaCode::RESOURCE_NOT_FOUND),
        Ok(()) => panic!("deleted a credential that does not exist"),
    }

    let first = broker.allocate_producer_ids(0).await.expect("ids");
    let second = broker.allocate_producer_ids(0).await.expect("ids");
    assert!(first.end <= second.start);

    assert_eq!(
        broker.delete_topic("orders").await.expect("delete"),
        created.id
    );
    assert!(broker.image().topic("orders").is_none());
    match broker.delete_topic("no/such topic").await {
        Err(error) => assert_eq!(error.code(), KafkaCode::UNKNOWN_TOPIC_OR_PARTITION),
        Ok(id) => panic!("deleted a topic that cannot exist: {id}"),
    }

    // A broker joining later starts from a snapshot and follows the log.
    let (_stop_late, shutdown) = watch::channel(false);
    let late = RemoteCoordinator::start(&coordinator.address, shutdown);
    let mut images = late.watch();
    eventually(&mut images, &broker.image()).await;
    broker
        .create_topic(topic("later", 1))
        .await
        .expect("create");
    eventually(&mut images, &broker.image()).await;

    coordinator.stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), coordinator.server)
        .await
        .expect("stops in time")
        .expect("server task");
}

#[tokio::test]
async fn registration_waits_for_a_coordinator_that_is_not_up_yet() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let (_stop, shutdown) = watch::channel(false);
    let broker = RemoteCoordinator::start(&address.to_string(), shutdown);
    let registering = tokio::spawn(async move { broker.register_broker(registration(1)).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!registering.is_finished());

    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind(address).await.expect("rebind");
    let settings = CoordinatorSettings {
        data_dir: dir.path().to_owned(),
        listen: Some(address),
        secure: None,
        authorization: Default::default(),
        max_client_connections: None,
        node_id: 0,
        request_timeout: Duration::from_secs(30),
        partition_limits: PartitionLimits::default(),
        leader_rebalance: Default::default(),
        eligible_leader_replicas: Default::default(),
        ensemble: None,
    };
    let (_stop_server, server_shutdown) = watch::channel(false);
    tokio::spawn(run_on(listener, settings, server_shutdown));
    let epoch = tokio::time::timeout(Duration::from_secs(10), registering)
        .await
        .expect("registers once the coordinator is up")
        .expect("task")
        .expect("register");
    assert!(epoch >= 1);
}

#[tokio::test]
async fn the_log_is_read_from_an_index_or_as_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = EmbeddedCoordinator::open(dir.path(), 0).expect("open");
    let epoch = coordinator
        .register_broker(registration(0))
        .await
        .expect("register");
    coordinator
        .create_topic(topic("t", 1))
        .await
        .expect("create");
    let last = coordinator.image().last_applied;
    assert!(matches!(
        coordinator.read_log(0, 100).await,
        LogRead::Snapshot(_)
    ));
    match coordinator.read_log(1, 100).await {
        LogRead::Entries(entries) => {
            assert_eq!(entries.len() as u64, last);
            assert!(matches!(
                entries[0].command,
                Command::RegisterBroker { broker_id: 0, .. }
            ));
            assert_eq!(entries[0].index, u64::try_from(epoch).expect("epoch"));
        }
        other => panic!("expected entries, got {other:?}"),
    }
    match coordinator.read_log(2, 1).await {
        LogRead::Entries(entries) => assert_eq!(entries.len(), 1),
        other => panic!("expected one entry, got {other:?}"),
    }
    assert_eq!(
        coordinator.read_log(last + 1, 100).await,
        LogRead::Entries(Vec::new())
    );
    // A reader ahead of the log saw entries this coordinator lost.
    assert!(matches!(
        coordinator.read_log(last + 2, 100).await,
        LogRead::Snapshot(_)
    ));
    // Replayed after a restart, the log serves the same entries.
    drop(coordinator);
    let reopened = EmbeddedCoordinator::open(dir.path(), 0).expect("reopen");
    assert!(matches!(
        reopened.read_log(1, 100).await,
        LogRead::Entries(entries) if entries.len() as u64 == last
    ));
}

/// Reads until the server closes the connection; what it sent before.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("the coordinator closed the connection")
        .expect("read");
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn unfinished_headers_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let running = start_coordinator_with(Duration::from_millis(300)).await;
    let mut partial = tokio::net::TcpStream::connect(&running.address)
        .await
        .unwrap();
    partial
        .write_all(b"GET /v1/cluster HTTP/1.1\r\nHost: c\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(&running.address)
        .await
        .unwrap();
    read_until_closed(&mut partial).await;
    read_until_closed(&mut silent).await;
    let _ = running.stop.send(true);
}

#[tokio::test]
async fn a_trickled_body_is_refused_after_the_request_timeout() {
    use tokio::io::AsyncWriteExt;
    let running = start_coordinator_with(Duration::from_millis(300)).await;
    let mut stream = tokio::net::TcpStream::connect(&running.address)
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /v1/topics HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\":",
        )
        .await
        .unwrap();
    let reply = read_until_closed(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("request body not received"), "{reply}");
    let _ = running.stop.send(true);
}

#[tokio::test]
async fn acls_are_created_and_deleted_through_a_remote_coordinator() {
    use crate::security::acl::{
        AccessControlEntry, AclBinding, AclOperation, AclPermissionType, ResourcePattern,
        ResourceType,
    };
    let coordinator = start_coordinator().await;
    let (_stop_broker, shutdown) = watch::channel(false);
    let broker = RemoteCoordinator::start(&coordinator.address, shutdown);
    broker
        .register_broker(registration(0))
        .await
        .expect("register");
    let binding = AclBinding {
        pattern: ResourcePattern::prefixed(ResourceType::Topic, "app-"),
        entry: AccessControlEntry {
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermissionType::Allow,
        },
    };
    broker
        .create_acls(vec![binding.clone()])
        .await
        .expect("create acls");
    assert!(broker.image().acls.contains(&binding), "visible at once");
    let mut invalid = binding.clone();
    invalid.entry.operation = AclOperation::Any;
    match broker.create_acls(vec![invalid]).await {
        Err(ClusterError::Rejected { code, .. }) => assert_eq!(code, KafkaCode::INVALID_REQUEST),
        other => panic!("expected INVALID_REQUEST, got {other:?}"),
    }
    broker
        .delete_acls(vec![binding.clone()])
        .await
        .expect("delete acls");
    assert!(broker.image().acls.is_empty());
}
