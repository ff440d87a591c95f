//! The offset store: durability through reopen, torn tails, corruption,
//! failed writes, compaction, expiry and group tombstones.

use super::*;
use crate::group::coordinator::store_error;
use crate::record_log::fault::Faults;
use kafka_protocol::error::ResponseError;

fn commit(group: &str, topic: &str, partition: i32, offset: i64, at: i64) -> Record {
    Record::Commit {
        group: group.into(),
        topic: topic.into(),
        partition,
        value: CommittedOffset {
            offset,
            leader_epoch: 3,
            metadata: Some(format!("meta-{offset}")),
            commit_timestamp: at,
        },
    }
}

async fn open(dir: &Path) -> OffsetStore {
    let store = OffsetStore::open(dir).expect("open");
    store.wait_loaded().await.expect("loaded");
    store
}

#[tokio::test]
async fn commits_survive_a_reopen_with_metadata_and_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path()).await;
        store
            .append(vec![
                commit("g", "t", 0, 5, 100),
                commit("g", "t", 1, 7, 100),
            ])
            .await
            .expect("append");
        store
            .append(vec![commit("g", "t", 0, 2, 200)])
            .await
            .expect("append");
    }
    let store = open(dir.path()).await;
    let value = store.offset("g", "t", 0).expect("committed");
    assert_eq!(value.offset, 2, "the latest commit wins, even going back");
    assert_eq!(value.metadata.as_deref(), Some("meta-2"));
    assert_eq!(value.commit_timestamp, 200);
    assert_eq!(value.leader_epoch, 3);
    assert_eq!(store.offset("g", "t", 1).map(|v| v.offset), Some(7));
    assert_eq!(store.group_offsets("g").len(), 2);
}

#[tokio::test]
async fn a_torn_tail_is_dropped_and_later_commits_still_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path()).await;
        store
            .append(vec![commit("g", "t", 0, 1, 1)])
            .await
            .expect("append");
        store
            .append(vec![commit("g", "t", 0, 2, 1)])
            .await
            .expect("append");
    }
    let path = dir.path().join(LOG_FILE);
    let bytes = std::fs::read(&path).expect("read");
    // Cut the second record in half, as a crash mid-write would.
    std::fs::write(&path, &bytes[..bytes.len() - 5]).expect("write");
    {
        let store = open(dir.path()).await;
        assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(1));
        store
            .append(vec![commit("g", "t", 0, 9, 1)])
            .await
            .expect("append");
    }
    let store = open(dir.path()).await;
    assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(9));
}

#[tokio::test]
async fn a_damaged_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path()).await;
        store
            .append(vec![commit("g", "t", 0, 1, 1)])
            .await
            .expect("append");
        store
            .append(vec![commit("g", "t", 0, 2, 1)])
            .await
            .expect("append");
    }
    let path = dir.path().join(LOG_FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let store = open(dir.path()).await;
    assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(1));
}

#[tokio::test]
async fn start_up_compacts_superseded_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path()).await;
        for offset in 0..200 {
            store
                .append(vec![commit("g", "t", 0, offset, 1)])
                .await
                .expect("append");
        }
    }
    let path = dir.path().join(LOG_FILE);
    let before = std::fs::metadata(&path).expect("stat").len();
    {
        let store = open(dir.path()).await;
        assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(199));
    }
    let after = std::fs::metadata(&path).expect("stat").len();
    assert!(after * 100 < before, "{after} bytes left of {before}");
    let store = open(dir.path()).await;
    assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(199));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [LOG_FILE], "no temporary file is left");
}

#[tokio::test]
async fn expiry_spares_active_groups_and_recent_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = Duration::from_secs(60);
    {
        let store = open(dir.path()).await;
        store
            .append(vec![
                commit("old", "t", 0, 1, 0),
                commit("active", "t", 0, 1, 0),
                commit("recent", "t", 0, 1, 100_000),
            ])
            .await
            .expect("append");
        let active = HashSet::from(["active".to_string()]);
        let expired = store
            .expire(120_000, retention, &active)
            .await
            .expect("expire");
        assert_eq!(expired, 1);
        assert!(!store.has_group("old"));
        assert!(store.has_group("active"));
        assert!(store.has_group("recent"));
    }
    let store = open(dir.path()).await;
    assert!(!store.has_group("old"), "expiry is durable");
    assert!(store.has_group("recent"));
}

#[tokio::test]
async fn a_group_tombstone_deletes_every_offset_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path()).await;
        store
            .append(vec![commit("g", "t", 0, 1, 1), commit("g", "u", 3, 1, 1)])
            .await
            .expect("append");
        store
            .append(vec![Record::DeleteGroup { group: "g".into() }])
            .await
            .expect("append");
        assert!(store.groups().is_empty());
    }
    let store = open(dir.path()).await;
    assert!(store.offset("g", "t", 0).is_none());
}

#[tokio::test]
async fn concurrent_commits_all_become_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Arc::new(open(dir.path()).await);
        let mut tasks = tokio::task::JoinSet::new();
        for partition in 0..50 {
            let store = store.clone();
            tasks.spawn(async move { store.append(vec![commit("g", "t", partition, 1, 1)]).await });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("join").expect("append");
        }
        store.close();
    }
    let store = open(dir.path()).await;
    assert_eq!(store.group_offsets("g").len(), 50);
}

#[test]
fn payloads_round_trip() {
    let records = vec![
        commit("g", "t", 1, 2, 3),
        Record::Commit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: CommittedOffset {
                offset: -1,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp: 0,
            },
        },
        Record::DeleteOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 4,
        },
        Record::DeleteGroup { group: "g".into() },
    ];
    for record in records {
        assert_eq!(decode_payload(&encode_payload(&record)), Some(record));
    }
}

/// Commits offsets 1, 2 and 3 of `g/t/0`, one record each, and returns the
/// log file's path and the length of one record's frame.
async fn three_commits(dir: &Path) -> (PathBuf, usize) {
    let store = open(dir).await;
    for offset in [1, 2, 3] {
        store
            .append(vec![commit("g", "t", 0, offset, 1)])
            .await
            .expect("append");
    }
    store.close();
    let path = dir.join(LOG_FILE);
    let len = std::fs::metadata(&path).expect("stat").len() as usize;
    (path, len / 3)
}

#[tokio::test]
async fn a_corrupt_record_in_the_middle_stops_the_load_instead_of_dropping_later_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, frame_len) = three_commits(dir.path()).await;
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[frame_len + 12] ^= 0xff; // inside the payload of offset 2's record
    std::fs::write(&path, &bytes).expect("write");

    let store = OffsetStore::open(dir.path()).expect("open");
    let error = store.wait_loaded().await.expect_err("load refused");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string())
            && message.contains(&format!("at byte {frame_len}")),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(store.offset("g", "t", 0), None, "no older offset is served");
    assert!(matches!(
        store.append(vec![commit("g", "t", 0, 4, 1)]).await,
        Err(OffsetStoreError::LoadFailed(_))
    ));
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "the file is kept"
    );
}

#[tokio::test]
async fn a_failed_write_is_invisible_and_later_commits_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = Faults::default();
    {
        let store = OffsetStore::open_wrapped(dir.path(), faults.wrapper()).expect("open");
        store.wait_loaded().await.expect("loaded");
        store
            .append(vec![commit("g", "t", 0, 1, 1)])
            .await
            .expect("append");
        faults.plan().tear_next_append_after = Some(20);
        let error = store
            .append(vec![commit("g", "t", 0, 2, 1), commit("g", "t", 1, 2, 1)])
            .await
            .expect_err("the write fails");
        assert!(matches!(error, OffsetStoreError::WriteFailed(_)), "{error}");
        assert_eq!(store_error(error), ResponseError::NotCoordinator);
        assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(1));
        assert_eq!(store.offset("g", "t", 1), None);

        faults.plan().fail_next_sync = true;
        assert!(store.append(vec![commit("g", "t", 0, 3, 1)]).await.is_err());
        assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(1));

        store
            .append(vec![commit("g", "t", 0, 4, 1)])
            .await
            .expect("append after failures");
    }
    let store = open(dir.path()).await;
    assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(4));
    assert_eq!(store.offset("g", "t", 1), None);
}

#[test]
fn store_failures_map_to_kafkas_offset_commit_errors() {
    let write_failed = OffsetStoreError::WriteFailed(Arc::new(RecordLogError::CutBackFailed {
        path: PathBuf::from("offsets.log"),
        len: 0,
    }));
    assert_eq!(store_error(write_failed), ResponseError::NotCoordinator);
    let too_large = OffsetStoreError::WriteFailed(Arc::new(RecordLogError::UnframeableRecord {
        path: PathBuf::from("offsets.log"),
        len: 0,
    }));
    assert_eq!(
        store_error(too_large),
        ResponseError::InvalidCommitOffsetSize
    );
    assert_eq!(
        store_error(OffsetStoreError::Loading),
        ResponseError::CoordinatorLoadInProgress
    );
    assert_eq!(
        store_error(OffsetStoreError::Stopped),
        ResponseError::CoordinatorNotAvailable
    );
}
