//! The embedded coordinator against a real (temporary) data directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::cluster::command_log::METADATA_DIR;
use crate::cluster::{AlterPartitionRequest, Listener, ReplicaAssignment, SecurityProtocol};

const NODE: i32 = 1;

fn registration(broker_id: i32) -> BrokerRegistration {
    BrokerRegistration {
        broker_id,
        incarnation_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
        }],
        rack: None,
        directory_id: Uuid::nil(),
        previous_broker_epoch: None,
    }
}

fn topic(name: &str, partitions: i32, replication_factor: i16) -> CreateTopicRequest {
    CreateTopicRequest {
        assignments: Vec::new(),
        name: name.into(),
        partitions,
        replication_factor,
        configs: BTreeMap::new(),
        validate_only: false,
    }
}

/// A coordinator with broker `NODE` registered.
async fn started(dir: &Path) -> EmbeddedCoordinator {
    let coordinator = EmbeddedCoordinator::open(dir, NODE).expect("open");
    coordinator
        .register_broker(registration(NODE))
        .await
        .expect("register");
    coordinator
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join(METADATA_DIR).join("commands.log")
}

#[tokio::test]
async fn registered_broker_is_unfenced_with_its_registration_index_as_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = EmbeddedCoordinator::open(dir.path(), NODE).expect("open");
    let epoch = coordinator
        .register_broker(registration(NODE))
        .await
        .expect("register");
    let image = coordinator.image();
    let broker = image.broker(NODE).expect("broker");
    assert_eq!(broker.epoch, epoch);
    assert!(!broker.fenced);
    assert_eq!(image.cluster_id.len(), 22);
}

#[tokio::test]
async fn reopen_replays_the_log_and_keeps_topic_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cluster_id, id, first_epoch) = {
        let coordinator = started(dir.path()).await;
        let summary = coordinator
            .create_topic(topic("orders", 3, 1))
            .await
            .expect("create");
        coordinator
            .create_partitions("orders", 5, None, false)
            .await
            .expect("grow");
        let image = coordinator.image();
        let epoch = image.broker(NODE).expect("broker").epoch;
        (image.cluster_id.clone(), summary.id, epoch)
    };
    let coordinator = EmbeddedCoordinator::open(dir.path(), NODE).expect("reopen");
    let image = coordinator.image();
    assert_eq!(image.cluster_id, cluster_id);
    let orders = image.topic("orders").expect("topic survives restart");
    assert_eq!(orders.id, id);
    assert_eq!(orders.partitions.len(), 5);
    let epoch = coordinator
        .register_broker(registration(NODE))
        .await
        .expect("re-register");
    assert!(epoch > first_epoch, "broker epochs grow across restarts");
}

#[tokio::test]
async fn torn_last_record_is_dropped_and_the_log_stays_appendable() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(started(dir.path()).await);
    let path = log_path(dir.path());
    let intact = fs::read(&path).expect("read log");
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(br#"{"index":3,"command":{"type":"create_to"#))
        .expect("tear");

    let coordinator = EmbeddedCoordinator::open(dir.path(), NODE).expect("open with torn line");
    assert_eq!(fs::read(&path).expect("read log"), intact);
    coordinator
        .create_topic(topic("after-tear", 1, 1))
        .await
        .expect("append after recovery");
    drop(coordinator);
    let coordinator = EmbeddedCoordinator::open(dir.path(), NODE).expect("reopen");
    assert!(coordinator.image().topic("after-tear").is_some());
}

#[tokio::test]
async fn corrupt_record_before_the_end_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(started(dir.path()).await);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).expect("read log");
    // The header record, then the registration; damage the header's JSON.
    bytes[10] ^= 0x01;
    fs::write(&path, &bytes).expect("write");
    let err = EmbeddedCoordinator::open(dir.path(), NODE)
        .err()
        .expect("refused");
    assert!(
        matches!(err, ClusterError::CorruptLog { position: 0, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn meta_json_disagreeing_with_the_log_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(started(dir.path()).await);
    let meta = dir.path().join(METADATA_DIR).join("meta.json");
    fs::write(
        &meta,
        r#"{"cluster_id":"AAAAAAAAAAAAAAAAAAAAAA","node_id":1}"#,
    )
    .expect("write");
    let err = EmbeddedCoordinator::open(dir.path(), NODE)
        .err()
        .expect("refused");
    assert!(
        matches!(err, ClusterError::InconsistentMetadata { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("AAAAAAAAAAAAAAAAAAAAAA"), "{err}");
}

#[tokio::test]
async fn opening_as_another_node_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(EmbeddedCoordinator::open(dir.path(), NODE).expect("open"));
    let err = EmbeddedCoordinator::open(dir.path(), NODE + 1)
        .err()
        .expect("refused");
    assert!(
        matches!(err, ClusterError::InconsistentMetadata { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn watch_fires_on_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = started(dir.path()).await;
    let mut images = coordinator.watch();
    images.mark_unchanged();
    coordinator
        .create_topic(topic("orders", 1, 1))
        .await
        .expect("create");
    images.changed().await.expect("sender alive");
    assert!(images.borrow_and_update().topic("orders").is_some());
}

#[tokio::test]
async fn rejected_commands_are_not_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = started(dir.path()).await;
    let before = fs::read(log_path(dir.path())).expect("read log");
    let err = coordinator
        .create_topic(topic("orders", 1, 3))
        .await
        .expect_err("too few brokers");
    assert_eq!(err.code(), KafkaCode::INVALID_REPLICATION_FACTOR);
    assert_eq!(
        err.to_string(),
        "INVALID_REPLICATION_FACTOR (38): replication factor 3 larger than available brokers 1"
    );
    let err = coordinator
        .create_topic(topic("bad name", 1, 1))
        .await
        .expect_err("bad name");
    assert_eq!(err.code(), KafkaCode::INVALID_TOPIC_EXCEPTION);
    assert_eq!(fs::read(log_path(dir.path())).expect("read log"), before);
}

#[tokio::test]
async fn validate_only_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = started(dir.path()).await;
    let before = coordinator.image();
    let summary = coordinator
        .create_topic(CreateTopicRequest {
            assignments: Vec::new(),
            validate_only: true,
            ..topic("orders", 2, 1)
        })
        .await
        .expect("valid");
    assert!(summary.id.is_nil());
    assert_eq!(summary.partitions, 2);
    assert!(Arc::ptr_eq(&before, &coordinator.image()));
}

#[tokio::test]
async fn topic_lifecycle_through_the_trait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator: Arc<dyn ClusterCoordinator> = Arc::new(started(dir.path()).await);
    let summary = coordinator
        .create_topic(topic("orders", 2, 1))
        .await
        .expect("create");
    let err = coordinator
        .create_topic(topic("orders", 2, 1))
        .await
        .expect_err("duplicate");
    assert_eq!(err.code(), KafkaCode::TOPIC_ALREADY_EXISTS);
    let err = coordinator
        .create_partitions("orders", 1, None, false)
        .await
        .expect_err("shrink");
    assert_eq!(err.code(), KafkaCode::INVALID_PARTITIONS);
    coordinator
        .alter_topic_configs(
            "orders",
            BTreeMap::from([("retention.ms".to_owned(), "60000".to_owned())]),
            vec![],
        )
        .await
        .expect("alter");
    let first = coordinator.allocate_producer_ids(NODE).await.expect("ids");
    let second = coordinator.allocate_producer_ids(NODE).await.expect("ids");
    assert_eq!((first, second), (0..1000, 1000..2000));
    assert_eq!(
        coordinator.delete_topic("orders").await.expect("delete"),
        summary.id
    );
    let err = coordinator.delete_topic("orders").await.expect_err("gone");
    assert_eq!(err.code(), KafkaCode::UNKNOWN_TOPIC_OR_PARTITION);
}

#[tokio::test]
async fn cancelled_proposal_does_not_wedge_the_coordinator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = started(dir.path()).await;
    // Polled exactly once — far enough to hand the append to a blocking
    // thread — and then dropped.
    let mut proposal = coordinator.create_topic(topic("orders", 1, 1));
    let first_poll =
        std::future::poll_fn(|cx| std::task::Poll::Ready(proposal.as_mut().poll(cx))).await;
    drop(proposal);
    if first_poll.is_pending() {
        let image = coordinator.image();
        assert!(
            image.topic("orders").is_none(),
            "not yet known to be durable"
        );
    }
    coordinator
        .create_partitions("orders", 2, None, false)
        .await
        .expect("the abandoned append landed and is adopted");
    drop(coordinator);
    let reopened = EmbeddedCoordinator::open(dir.path(), NODE).expect("reopen");
    assert_eq!(
        reopened.image().topic("orders").map(|t| t.partitions.len()),
        Some(2)
    );
}

#[tokio::test]
async fn alter_partition_takes_the_leaders_isr_change_and_refuses_stale_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = started(dir.path()).await;
    coordinator
        .register_broker(registration(2))
        .await
        .expect("register");
    let mut request = topic("replicated", 1, 2);
    request.partitions = -1;
    request.replication_factor = -1;
    request.assignments = vec![ReplicaAssignment {
        partition_index: 0,
        broker_ids: vec![NODE, 2],
    }];
    let created = coordinator.create_topic(request).await.expect("created");
    let change = |broker_id, leader_epoch, partition_epoch, isr: &[i32]| AlterPartitionRequest {
        broker_id,
        topic_id: created.id,
        partition: 0,
        leader_epoch,
        partition_epoch,
        isr: isr.to_vec(),
        broker_epochs: Vec::new(),
    };
    let code = |result: Result<(), ClusterError>| result.err().map(|e| e.code());

    // Only the leader, at its current epoch, may change the ISR.
    assert_eq!(
        code(coordinator.alter_partition(change(2, 0, 0, &[2])).await),
        Some(KafkaCode::FENCED_LEADER_EPOCH)
    );
    assert_eq!(
        code(
            coordinator
                .alter_partition(change(NODE, 3, 0, &[NODE]))
                .await
        ),
        Some(KafkaCode::FENCED_LEADER_EPOCH)
    );
    coordinator
        .alter_partition(change(NODE, 0, 0, &[NODE]))
        .await
        .expect("shrunk");
    let state = coordinator.image().partition("replicated", 0).cloned();
    let state = state.expect("partition");
    assert_eq!((state.isr, state.partition_epoch), (vec![NODE], 1));
    // A change decided before that one is stale.
    assert_eq!(
        code(
            coordinator
                .alter_partition(change(NODE, 0, 0, &[NODE, 2]))
                .await
        ),
        Some(KafkaCode::INVALID_UPDATE_VERSION)
    );
    coordinator
        .alter_partition(change(NODE, 0, 1, &[NODE, 2]))
        .await
        .expect("grown");
    let state = coordinator.image().partition("replicated", 0).cloned();
    assert_eq!(state.expect("partition").isr, vec![NODE, 2]);
}

#[tokio::test]
async fn elect_leaders_moves_leadership_back_and_lists_only_what_it_elected_when_asked_for_all() {
    use crate::cluster::{ElectLeadersRequest, ElectionTopic, ElectionType, PartitionElection};

    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = started(dir.path()).await;
    coordinator
        .register_broker(registration(2))
        .await
        .expect("register");
    let mut request = topic("t", 2, 2);
    request.assignments = vec![
        ReplicaAssignment {
            partition_index: 0,
            broker_ids: vec![NODE, 2],
        },
        ReplicaAssignment {
            partition_index: 1,
            broker_ids: vec![2, NODE],
        },
    ];
    let created = coordinator.create_topic(request).await.expect("create");
    let broker_epoch = coordinator.image().broker(NODE).expect("registered").epoch;
    for command in [
        Command::FenceBroker {
            broker_id: NODE,
            broker_epoch,
        },
        Command::UnfenceBroker {
            broker_id: NODE,
            broker_epoch,
        },
    ] {
        coordinator.propose(command).await.expect("accepted");
    }
    let moved = coordinator
        .image()
        .partition("t", 0)
        .expect("exists")
        .clone();
    assert_eq!((moved.leader, moved.isr.clone()), (2, vec![2]));
    // Out of the ISR: the preferred replica may not lead yet.
    let one = |partitions: Vec<i32>| ElectLeadersRequest {
        election_type: ElectionType::Preferred,
        topic_partitions: Some(vec![ElectionTopic {
            topic: "t".into(),
            partitions,
        }]),
    };
    let results = coordinator.elect_leaders(one(vec![0])).await.expect("ran");
    assert_eq!(
        results[0].partitions[0].error_code,
        KafkaCode::PREFERRED_LEADER_NOT_AVAILABLE
    );
    coordinator
        .propose(Command::PartitionChange {
            topic_id: created.id,
            partition: 0,
            expected_partition_epoch: moved.partition_epoch,
            leader: None,
            isr: Some(vec![2, NODE]),
            isr_broker_epochs: Vec::new(),
        })
        .await
        .expect("rejoined");
    let all = ElectLeadersRequest {
        election_type: ElectionType::Preferred,
        topic_partitions: None,
    };
    let results = coordinator.elect_leaders(all).await.expect("ran");
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].partitions,
        vec![PartitionElection {
            partition: 0,
            error_code: KafkaCode::NONE,
            error_message: None,
        }]
    );
    let back = coordinator
        .image()
        .partition("t", 0)
        .expect("exists")
        .clone();
    assert_eq!(back.leader, NODE);
    assert_eq!(back.leader_epoch, moved.leader_epoch + 1);
    let again = coordinator
        .elect_leaders(one(vec![0, 1, 5]))
        .await
        .expect("ran");
    let codes: Vec<KafkaCode> = again[0].partitions.iter().map(|p| p.error_code).collect();
    assert_eq!(
        codes,
        vec![
            KafkaCode::ELECTION_NOT_NEEDED,
            KafkaCode::ELECTION_NOT_NEEDED,
            KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    assert_eq!(coordinator.rebalance_leaders(10).await.expect("ran"), 0);
}
