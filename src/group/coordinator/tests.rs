//! The coordinator shell over an in-memory offsets log: a group's
//! generation is stored before SyncGroup answers, a broker that takes over
//! the partition restores the group and its commits, and one that loses it
//! tells the group's waiting members NOT_COORDINATOR.

use std::collections::BTreeMap;

use bytes::Bytes;
use uuid::Uuid;

use super::*;
use crate::cluster::metadata::Command as MetadataCommand;
use crate::group::log::fake::FakeLog;
use crate::group::log::read_partition;
use crate::group::ownership::OFFSETS_TOPIC;
use crate::group::records::CommittedOffset;

const OFFSETS_ID: u128 = 77;

fn settings() -> GroupSettings {
    GroupSettings {
        offsets_topic_partitions: 1,
        min_session_timeout: Duration::from_secs(1),
        max_session_timeout: Duration::from_secs(300),
        initial_rebalance_delay: Duration::ZERO,
        offsets_retention: Duration::from_secs(86_400),
        offsets_topic_replication_factor: 1,
        offsets_commit_timeout: Duration::from_secs(5),
    }
}

/// Broker 0 leads the one offsets partition.
fn led_here() -> MetadataImage {
    let mut image = crate::properties::image_with_live_broker();
    let create = MetadataCommand::CreateTopic {
        name: OFFSETS_TOPIC.into(),
        topic_id: Uuid::from_u128(OFFSETS_ID),
        configs: BTreeMap::new(),
        assignments: vec![vec![0]],
    };
    image.apply(3, &create).expect("offsets topic");
    image
}

/// The same partition without a leader.
fn led_nowhere(mut image: MetadataImage) -> MetadataImage {
    let change = MetadataCommand::PartitionChange {
        topic_id: Uuid::from_u128(OFFSETS_ID),
        partition: 0,
        expected_partition_epoch: 0,
        leader: Some(-1),
        isr: None,
        isr_broker_epochs: Vec::new(),
    };
    image.apply(4, &change).expect("leader gone");
    image
}

fn start(log: &Arc<FakeLog>) -> (GroupCoordinator, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let coordinator = GroupCoordinator::start(settings(), 0, log.clone(), None, shutdown);
    (coordinator, stop)
}

async fn served(coordinator: &GroupCoordinator, image: &MetadataImage) {
    for _ in 0..500 {
        if coordinator.refusal(image, "g").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the offsets partition was never loaded");
}

fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        session_timeout: Duration::from_secs(30),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

fn sync_request(member_id: &str, assignment: &'static [u8]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id: 1,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![(member_id.into(), Bytes::from_static(assignment))],
    }
}

fn member(member_id: &str) -> MemberRef {
    MemberRef {
        member_id: member_id.into(),
        group_instance_id: None,
    }
}

#[tokio::test]
async fn a_group_moves_with_its_partition_and_carries_on() {
    let log = Arc::new(FakeLog::default());
    let image = Arc::new(led_here());
    let (first, _stop_first) = start(&log);
    assert_eq!(
        first.refusal(&image, "g"),
        Some(ResponseError::CoordinatorLoadInProgress)
    );
    first.image_reconciled(image.clone());
    served(&first, &image).await;

    let joined = first.join("g", join_request("")).await;
    assert_eq!(joined.error, None);
    let id = joined.member_id;
    let synced = first.sync("g", sync_request(&id, b"all")).await;
    assert_eq!(
        (synced.error, synced.assignment),
        (None, Bytes::from_static(b"all"))
    );
    let stored = read_partition(log.as_ref(), 0, &|| false).unwrap();
    assert_eq!(
        stored.groups["g"].generation_id, 1,
        "stored before SyncGroup answered"
    );
    first
        .validate_commit("g", member(&id), 1)
        .await
        .expect("valid");
    first
        .offsets
        .commit(
            "g",
            vec![(
                "t".into(),
                0,
                CommittedOffset {
                    offset: 12,
                    leader_epoch: -1,
                    metadata: None,
                    commit_timestamp: now_ms(),
                },
            )],
        )
        .await
        .expect("committed");

    // The partition's leader goes: the group goes with it.
    let gone = Arc::new(led_nowhere((*image).clone()));
    first.image_reconciled(gone.clone());
    for _ in 0..500 {
        if first.offsets.ownership("g") == Ownership::NotOwned {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        first.refusal(&gone, "g"),
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(first.offsets.offset("g", "t", 0), None);
    assert_eq!(
        first.heartbeat("g", member(&id), 1).await,
        Some(ResponseError::NotCoordinator)
    );
    first.close().await;

    // Another coordinator loads the partition: same generation, member and
    // offsets, no rebalance.
    let (second, _stop_second) = start(&log);
    second.image_reconciled(image.clone());
    served(&second, &image).await;
    assert_eq!(second.heartbeat("g", member(&id), 1).await, None);
    assert_eq!(
        second.offsets.offset("g", "t", 0).map(|c| c.offset),
        Some(12)
    );
    let described = second.describe(vec!["g".into()]).await;
    assert_eq!(described[0].state, Some(GroupState::Stable));
    assert_eq!(described[0].members.len(), 1);
    assert_eq!(
        described[0].members[0].assignment,
        Bytes::from_static(b"all")
    );
    second
        .validate_commit("g", member(&id), 1)
        .await
        .expect("valid");
    second.close().await;
}

#[tokio::test]
async fn a_failed_group_store_fails_the_sync_and_the_group_rebalances() {
    let log = Arc::new(FakeLog::default());
    let image = Arc::new(led_here());
    let (coordinator, _stop) = start(&log);
    coordinator.image_reconciled(image.clone());
    served(&coordinator, &image).await;
    let id = coordinator.join("g", join_request("")).await.member_id;
    log.fail_next(ResponseError::NotEnoughReplicas, false);
    let synced = coordinator.sync("g", sync_request(&id, b"all")).await;
    assert_eq!(synced.error, Some(ResponseError::CoordinatorNotAvailable));
    assert_eq!(
        coordinator.heartbeat("g", member(&id), 1).await,
        Some(ResponseError::RebalanceInProgress)
    );
    coordinator.close().await;
}
