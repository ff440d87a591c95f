//! The offset store: durability through reopen, torn tails, compaction,
//! expiry and group tombstones.

use super::*;

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
    store.wait_loaded().await;
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
async fn a_corrupt_record_ends_replay() {
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
    assert!(!dir.path().join(COMPACT_FILE).exists());
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
fn frames_round_trip() {
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
    let mut buf = Vec::new();
    for record in &records {
        encode_frame(record, &mut buf);
    }
    let (decoded, len) = decode_all(&buf);
    assert_eq!(decoded, records);
    assert_eq!(len, buf.len());
}
