//! The old offsets log: replay, torn tails, corruption, and forgetting
//! migrated groups until the file goes.

use super::*;

fn commit(group: &str, topic: &str, partition: i32, offset: i64) -> LegacyRecord {
    LegacyRecord::Commit {
        group: group.into(),
        topic: topic.into(),
        partition,
        value: CommittedOffset {
            offset,
            leader_epoch: 3,
            metadata: Some(format!("meta-{offset}")),
            commit_timestamp: 100 + offset,
        },
    }
}

/// Writes `records` as the old store did and returns the file's path.
fn write_legacy(data_dir: &Path, records: &[LegacyRecord]) -> PathBuf {
    let dir = data_dir.join(LEGACY_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(LEGACY_FILE);
    let payloads: Vec<Vec<u8>> = records.iter().map(encode_payload).collect();
    RecordLog::create(&path, &payloads).unwrap();
    path
}

fn offset(legacy: &LegacyOffsets, group: &str, topic: &str, partition: i32) -> Option<i64> {
    legacy
        .groups_where(|g| g == group)
        .first()
        .and_then(|(_, offsets)| offsets.get(&(topic.to_string(), partition)))
        .map(|v| v.offset)
}

#[test]
fn no_file_is_nothing_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    assert!(LegacyOffsets::open(dir.path()).unwrap().is_none());
}

#[test]
fn the_old_log_replays_commits_deletes_and_group_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    write_legacy(
        dir.path(),
        &[
            commit("g", "t", 0, 5),
            commit("g", "t", 1, 7),
            commit("g", "t", 0, 2),
            commit("gone", "t", 0, 1),
            LegacyRecord::DeleteGroup {
                group: "gone".into(),
            },
            commit("h", "u", 0, 9),
            LegacyRecord::DeleteOffset {
                group: "h".into(),
                topic: "u".into(),
                partition: 0,
            },
        ],
    );
    let legacy = LegacyOffsets::open(dir.path()).unwrap().expect("a file");
    assert_eq!(offset(&legacy, "g", "t", 0), Some(2), "the latest wins");
    assert_eq!(offset(&legacy, "g", "t", 1), Some(7));
    let all = legacy.groups_where(|_| true);
    assert_eq!(all.len(), 1, "deleted groups are gone: {all:?}");
    let value = &all[0].1[&("t".to_string(), 0)];
    assert_eq!(value.metadata.as_deref(), Some("meta-2"));
    assert_eq!((value.commit_timestamp, value.leader_epoch), (102, 3));
}

#[test]
fn forgetting_migrated_groups_rewrites_the_file_until_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_legacy(
        dir.path(),
        &[
            commit("a", "t", 0, 1),
            commit("b", "t", 0, 2),
            commit("a", "t", 0, 3),
        ],
    );
    let mut legacy = LegacyOffsets::open(dir.path()).unwrap().unwrap();
    legacy.forget(&["a".to_string()]).unwrap();
    drop(legacy);
    let legacy = LegacyOffsets::open(dir.path()).unwrap().unwrap();
    assert_eq!(
        offset(&legacy, "a", "t", 0),
        None,
        "migrated once, never again"
    );
    assert_eq!(offset(&legacy, "b", "t", 0), Some(2));
    let mut legacy = legacy;
    legacy.forget(&["b".to_string()]).unwrap();
    assert!(legacy.is_empty());
    assert!(!path.exists(), "an empty old log is removed");
    assert!(!path.parent().unwrap().exists(), "and its empty directory");
    assert!(LegacyOffsets::open(dir.path()).unwrap().is_none());
}

#[test]
fn a_torn_tail_is_cut_and_the_commits_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_legacy(
        dir.path(),
        &[commit("g", "t", 0, 1), commit("g", "t", 0, 2)],
    );
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 5).unwrap();
    let legacy = LegacyOffsets::open(dir.path()).unwrap().unwrap();
    assert_eq!(offset(&legacy, "g", "t", 0), Some(1));
}

#[test]
fn a_corrupt_record_in_the_middle_stops_the_start_with_file_and_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_legacy(
        dir.path(),
        &[
            commit("g", "t", 0, 1),
            commit("g", "t", 0, 2),
            commit("g", "t", 0, 3),
        ],
    );
    let mut bytes = std::fs::read(&path).unwrap();
    let frame_len = bytes.len() / 3;
    bytes[frame_len + 12] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let message = match LegacyOffsets::open(dir.path()) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a damaged log must not load"),
    };
    assert!(
        message.contains(&path.display().to_string())
            && message.contains(&format!("at byte {frame_len}")),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file is kept");
}

#[test]
fn payloads_round_trip_and_garbage_is_refused() {
    for record in [
        commit("g", "t", 0, 1),
        LegacyRecord::DeleteOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 4,
        },
        LegacyRecord::DeleteGroup { group: "g".into() },
    ] {
        let payload = encode_payload(&record);
        assert_eq!(decode_payload(&payload), Some(record));
        for cut in 0..payload.len() {
            assert_eq!(decode_payload(&payload[..cut]), None);
        }
    }
    // A claimed 4 GiB string in a short payload.
    assert_eq!(
        decode_payload(&[KIND_DELETE_GROUP, 0xff, 0xff, 0xff, 0xff, b'x']),
        None
    );
}
