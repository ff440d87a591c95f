//! The offset store over an in-memory offsets log: commits answered once
//! written and readable again by the next leader's load, failures that
//! change nothing, Kafka's error mapping, loading states, tombstones,
//! expiry and the old file's migration.

use std::sync::Mutex;

use bytes::Bytes;

use super::*;
use crate::group::legacy::{LEGACY_DIR, LEGACY_FILE, LegacyOffsets, LegacyRecord, encode_payload};
use crate::group::loader;
use crate::group::log::apply_offset;
use crate::group::log::fake::FakeLog;
use crate::group::log::{LoadedPartition, read_partition};
use crate::group::records::MemberMetadata;
use crate::record_log::RecordLog;

fn value(offset: i64, at: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: 3,
        metadata: Some(format!("meta-{offset}")),
        commit_timestamp: at,
    }
}

/// A store over `log` with one offsets partition, loaded.
fn loaded_store(log: &Arc<FakeLog>) -> OffsetStore {
    let store = OffsetStore::new(log.clone(), Duration::from_secs(5));
    store.set_partition_count(1);
    let token = store.begin_load(0, 1);
    let loaded = read_partition(log.as_ref(), 0, &|| false).expect("read");
    assert!(store.finish_load(0, token, loaded.offsets));
    store
}

/// What the next leader reads from the log.
fn reload(log: &Arc<FakeLog>) -> LoadedPartition {
    read_partition(log.as_ref(), 0, &|| false).expect("read")
}

fn live(loaded: &LoadedPartition, group: &str, topic: &str, partition: i32) -> Option<i64> {
    loaded
        .offsets
        .get(group)?
        .get(&(topic.to_string(), partition))?
        .value
        .as_ref()
        .map(|v| v.offset)
}

#[tokio::test]
async fn a_commit_is_served_and_read_back_by_the_next_leader() {
    let log = Arc::new(FakeLog::default());
    let store = loaded_store(&log);
    store
        .commit(
            "g",
            vec![
                ("t".into(), 0, value(5, 100)),
                ("t".into(), 1, value(7, 100)),
            ],
        )
        .await
        .expect("committed");
    store
        .commit("g", vec![("t".into(), 0, value(2, 200))])
        .await
        .expect("committed");
    let served = store.offset("g", "t", 0).expect("served");
    assert_eq!(served.offset, 2, "the latest commit wins, even going back");
    assert_eq!(served.metadata.as_deref(), Some("meta-2"));
    assert_eq!((served.commit_timestamp, served.leader_epoch), (200, 3));
    assert_eq!(store.group_offsets("g").len(), 2);
    assert_eq!(store.groups(), vec!["g".to_string()]);

    let next = reload(&log);
    assert_eq!(live(&next, "g", "t", 0), Some(2));
    assert_eq!(live(&next, "g", "t", 1), Some(7));
    let slot = &next.offsets["g"][&("t".to_string(), 0)];
    assert_eq!(
        slot.value.as_ref().unwrap().metadata.as_deref(),
        Some("meta-2")
    );
}

#[tokio::test]
async fn a_failed_commit_changes_nothing_and_maps_to_kafkas_error() {
    let log = Arc::new(FakeLog::default());
    let store = loaded_store(&log);
    store
        .commit("g", vec![("t".into(), 0, value(1, 1))])
        .await
        .unwrap();
    for (append_error, answered, written) in [
        (
            ResponseError::NotEnoughReplicas,
            ResponseError::CoordinatorNotAvailable,
            false,
        ),
        (
            ResponseError::NotEnoughReplicasAfterAppend,
            ResponseError::CoordinatorNotAvailable,
            true,
        ),
        (
            ResponseError::NotLeaderOrFollower,
            ResponseError::NotCoordinator,
            false,
        ),
        (
            ResponseError::KafkaStorageError,
            ResponseError::NotCoordinator,
            false,
        ),
        (
            ResponseError::MessageTooLarge,
            ResponseError::InvalidCommitOffsetSize,
            false,
        ),
        (
            ResponseError::RequestTimedOut,
            ResponseError::RequestTimedOut,
            true,
        ),
    ] {
        log.fail_next(append_error, written);
        let error = store
            .commit("g", vec![("t".into(), 0, value(9, 2))])
            .await
            .expect_err("fails");
        assert_eq!(error, answered, "{append_error:?}");
        assert_eq!(
            store.offset("g", "t", 0).map(|v| v.offset),
            Some(1),
            "nothing is served that the ISR may not have"
        );
    }
}

#[test]
fn group_store_failures_map_as_kafkas_store_group() {
    assert_eq!(
        group_store_error(ResponseError::RequestTimedOut),
        ResponseError::RebalanceInProgress
    );
    assert_eq!(
        group_store_error(ResponseError::MessageTooLarge),
        ResponseError::UnknownServerError
    );
    assert_eq!(
        group_store_error(ResponseError::NotEnoughReplicas),
        ResponseError::CoordinatorNotAvailable
    );
    assert_eq!(
        group_store_error(ResponseError::NotLeaderOrFollower),
        ResponseError::NotCoordinator
    );
    assert_eq!(
        commit_error(ResponseError::UnknownTopicOrPartition),
        ResponseError::CoordinatorNotAvailable
    );
}

#[tokio::test]
async fn partitions_serve_only_once_loaded_and_not_after_unloading() {
    let log = Arc::new(FakeLog::default());
    let store = OffsetStore::new(log.clone(), Duration::from_secs(5));
    store.set_partition_count(1);
    assert_eq!(store.ownership("g"), Ownership::NotOwned);
    let commit = || store.commit("g", vec![("t".into(), 0, value(1, 1))]);
    assert_eq!(commit().await, Err(ResponseError::NotCoordinator));

    let token = store.begin_load(0, 1);
    assert_eq!(store.ownership("g"), Ownership::Loading);
    assert!(store.any_loading());
    assert_eq!(
        commit().await,
        Err(ResponseError::CoordinatorLoadInProgress)
    );
    assert!(store.finish_load(0, token, HashMap::new()));
    assert_eq!(store.ownership("g"), Ownership::Loaded);
    commit().await.expect("served once loaded");

    store.unload(0);
    assert_eq!(store.ownership("g"), Ownership::NotOwned);
    assert_eq!(
        store.offset("g", "t", 0),
        None,
        "unloaded offsets are not served"
    );
    // A load overtaken by another (leadership lost and back) is dropped.
    let stale = store.begin_load(0, 1);
    let current = store.begin_load(0, 2);
    assert!(!store.finish_load(0, stale, HashMap::new()));
    assert!(store.is_current(0, current));
}

#[tokio::test]
async fn a_write_that_ends_after_its_partition_was_unloaded_is_not_applied() {
    let log = Arc::new(FakeLog::default());
    let store = Arc::new(loaded_store(&log));
    let release = log.hold_next();
    let committing = {
        let store = store.clone();
        tokio::spawn(async move { store.commit("g", vec![("t".into(), 0, value(4, 1))]).await })
    };
    while log.log_end(0) == 0 {
        tokio::task::yield_now().await;
    }
    store.unload(0);
    let token = store.begin_load(0, 2);
    assert!(store.finish_load(0, token, HashMap::new()));
    release.send(()).unwrap();
    assert_eq!(committing.await.unwrap(), Ok(()), "it is in the log");
    assert_eq!(
        store.offset("g", "t", 0),
        None,
        "but not applied over the new load"
    );
    assert_eq!(live(&reload(&log), "g", "t", 0), Some(4));
}

#[test]
fn the_record_furthest_in_the_log_wins_whatever_order_appends_complete_in() {
    let mut groups = HashMap::new();
    let key = || ("t".to_string(), 0);
    apply_offset(&mut groups, "g", key(), Some(value(20, 1)), 11);
    apply_offset(&mut groups, "g", key(), Some(value(10, 1)), 10);
    assert_eq!(
        groups["g"][&key()].value.as_ref().map(|v| v.offset),
        Some(20)
    );
    apply_offset(&mut groups, "g", key(), None, 12);
    apply_offset(&mut groups, "g", key(), Some(value(30, 1)), 9);
    assert_eq!(groups["g"][&key()].value, None, "a later tombstone stays");
}

fn metadata(generation_id: i32, members: &[&str]) -> GroupMetadata {
    GroupMetadata {
        protocol_type: "consumer".into(),
        generation_id,
        protocol_name: Some("range".into()),
        leader: members.first().map(|m| m.to_string()),
        current_state_timestamp: 5,
        members: members
            .iter()
            .map(|m| MemberMetadata {
                member_id: m.to_string(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 1000,
                session_timeout_ms: 1000,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::from_static(b"a"),
            })
            .collect(),
    }
}

#[tokio::test]
async fn group_metadata_and_deletion_reach_the_next_leader() {
    let log = Arc::new(FakeLog::default());
    let store = loaded_store(&log);
    store.store_group("g", metadata(1, &["m1"])).await.unwrap();
    store
        .store_group("g", metadata(2, &["m1", "m2"]))
        .await
        .unwrap();
    store.store_group("gone", metadata(1, &[])).await.unwrap();
    store
        .commit("gone", vec![("t".into(), 0, value(3, 1))])
        .await
        .unwrap();
    let next = reload(&log);
    assert_eq!(
        next.groups["g"],
        metadata(2, &["m1", "m2"]),
        "the last generation"
    );
    assert_eq!(live(&next, "gone", "t", 0), Some(3));

    store.delete_group("gone").await.expect("deleted");
    assert!(!store.has_group("gone"));
    let next = reload(&log);
    assert!(!next.groups.contains_key("gone"));
    assert!(
        !next.offsets.contains_key("gone"),
        "its offsets are tombstoned too"
    );
    assert!(next.groups.contains_key("g"));
}

#[tokio::test]
async fn expiry_spares_active_groups_and_recent_commits_and_writes_tombstones() {
    let log = Arc::new(FakeLog::default());
    let store = loaded_store(&log);
    let day_ms = 86_400_000;
    store
        .commit(
            "idle",
            vec![
                ("t".into(), 0, value(1, 0)),
                ("t".into(), 1, value(1, 5 * day_ms)),
            ],
        )
        .await
        .unwrap();
    store
        .commit("busy", vec![("t".into(), 0, value(1, 0))])
        .await
        .unwrap();
    let active = HashSet::from(["busy".to_string()]);
    let expired = store
        .expire(
            6 * day_ms,
            Duration::from_millis(2 * day_ms as u64),
            &active,
        )
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(store.offset("idle", "t", 0), None);
    assert!(store.offset("idle", "t", 1).is_some());
    assert!(store.offset("busy", "t", 0).is_some());
    let next = reload(&log);
    assert_eq!(live(&next, "idle", "t", 0), None);
    assert_eq!(live(&next, "busy", "t", 0), Some(1));
}

#[tokio::test]
async fn unreadable_records_are_skipped_by_the_load() {
    let log = Arc::new(FakeLog::default());
    let store = loaded_store(&log);
    store
        .commit("g", vec![("t".into(), 0, value(1, 1))])
        .await
        .unwrap();
    // A record of a newer schema (key version 9) gregor cannot read.
    let foreign = kafka_protocol::records::Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: Some(Bytes::from_static(&[0, 9, 0, 0])),
        value: Some(Bytes::from_static(b"x")),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut buf,
        &[foreign],
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::None,
        },
    )
    .unwrap();
    log.append(0, buf.freeze(), Duration::ZERO).await.unwrap();
    let next = reload(&log);
    assert_eq!(next.skipped, 1);
    assert_eq!(live(&next, "g", "t", 0), Some(1));
}

fn legacy_commit(group: &str, offset: i64) -> LegacyRecord {
    LegacyRecord::Commit {
        group: group.into(),
        topic: "t".into(),
        partition: 0,
        value: value(offset, 7),
    }
}

#[tokio::test]
async fn the_old_offsets_file_moves_into_the_partition_once() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join(LEGACY_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let payloads: Vec<Vec<u8>> = [legacy_commit("old", 41), legacy_commit("old", 42)]
        .iter()
        .map(encode_payload)
        .collect();
    RecordLog::create(&dir.join(LEGACY_FILE), &payloads).unwrap();
    let legacy = Arc::new(Mutex::new(
        LegacyOffsets::open(data.path()).unwrap().unwrap(),
    ));

    let log = Arc::new(FakeLog::default());
    let store = Arc::new(OffsetStore::new(log.clone(), Duration::from_secs(5)));
    store.set_partition_count(1);
    let load = |epoch| {
        let token = store.begin_load(0, epoch);
        loader::load(
            store.clone(),
            0,
            Load {
                leader_epoch: epoch,
                token,
                loaded: false,
            },
            Some(legacy.clone()),
        )
    };
    let outcome = load(1).await;
    let loaded = outcome.result.expect("loaded");
    assert_eq!(live(&loaded, "old", "t", 0), Some(42));
    assert!(store.finish_load(0, outcome.token, loaded.offsets));
    assert_eq!(store.offset("old", "t", 0).map(|v| v.offset), Some(42));
    assert!(
        !dir.join(LEGACY_FILE).exists(),
        "the old file goes once migrated"
    );
    assert_eq!(
        live(&reload(&log), "old", "t", 0),
        Some(42),
        "it is in the log"
    );

    store
        .commit("old", vec![("t".into(), 0, value(50, 9))])
        .await
        .unwrap();
    let batches = log.batches(0).len();
    let outcome = load(2).await;
    assert_eq!(live(&outcome.result.unwrap(), "old", "t", 0), Some(50));
    assert_eq!(log.batches(0).len(), batches, "nothing migrated twice");
}

#[tokio::test(start_paused = true)]
async fn a_load_waits_until_the_broker_acts_as_leader() {
    let log = Arc::new(FakeLog::default());
    log.set_ready(false);
    let store = Arc::new(OffsetStore::new(log.clone(), Duration::from_secs(5)));
    store.set_partition_count(1);
    let token = store.begin_load(0, 1);
    let load = Load {
        leader_epoch: 1,
        token,
        loaded: false,
    };
    let waiting = tokio::spawn(loader::load(store.clone(), 0, load, None));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished());
    log.set_ready(true);
    let outcome = waiting.await.unwrap();
    assert!(outcome.result.is_ok());
    // And one whose partition was unloaded meanwhile gives up.
    log.set_ready(false);
    let token = store.begin_load(0, 2);
    let load = Load {
        leader_epoch: 2,
        token,
        loaded: false,
    };
    let waiting = tokio::spawn(loader::load(store.clone(), 0, load, None));
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.unload(0);
    assert!(waiting.await.unwrap().result.is_err());
}
