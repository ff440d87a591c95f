use proptest::prelude::*;

use super::*;

fn commit(offset: i64, metadata: Option<&str>) -> GroupRecord {
    GroupRecord::OffsetCommit {
        group: "g".into(),
        topic: "t".into(),
        partition: 3,
        value: Some(CommittedOffset {
            offset,
            leader_epoch: 7,
            metadata: metadata.map(str::to_owned),
            commit_timestamp: 1_700_000_000_000,
        }),
    }
}

fn group_metadata() -> GroupRecord {
    GroupRecord::GroupMetadata {
        group: "g".into(),
        value: Some(GroupMetadata {
            protocol_type: "consumer".into(),
            generation_id: 4,
            protocol_name: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp: 1_700_000_000_123,
            members: vec![
                MemberMetadata {
                    member_id: "m-1".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"\x00\x01sub"),
                    assignment: Bytes::from_static(b"\x00\x01asg"),
                },
                MemberMetadata {
                    member_id: "m-2".into(),
                    group_instance_id: Some("static-2".into()),
                    client_id: "c".into(),
                    client_host: "/10.0.0.2".into(),
                    rebalance_timeout_ms: 60_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }),
    }
}

fn round_trip(record: &GroupRecord) -> GroupRecord {
    let key = record.key();
    let value = record.value();
    GroupRecord::decode(Some(&key), value.as_deref()).expect("decodes")
}

#[test]
fn offset_commits_group_metadata_and_tombstones_round_trip() {
    let with_metadata = commit(42, Some("checkpoint"));
    assert_eq!(round_trip(&with_metadata), with_metadata);
    assert_eq!(round_trip(&group_metadata()), group_metadata());
    let tombstone = GroupRecord::OffsetCommit {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
        value: None,
    };
    assert_eq!(tombstone.value(), None);
    assert_eq!(round_trip(&tombstone), tombstone);
    let deleted = GroupRecord::GroupMetadata {
        group: "g".into(),
        value: None,
    };
    assert_eq!(round_trip(&deleted), deleted);
}

#[test]
fn missing_metadata_is_written_as_kafka_writes_it_an_empty_string() {
    let decoded = round_trip(&commit(1, None));
    let GroupRecord::OffsetCommit { value: Some(v), .. } = decoded else {
        panic!("an offset commit");
    };
    assert_eq!(v.metadata.as_deref(), Some(""));
}

/// The bytes Kafka's `GroupMetadataManager.offsetCommitKey` /
/// `offsetCommitValue` (v3) write, field by field.
#[test]
fn offset_commit_bytes_are_kafkas_schema() {
    let record = commit(42, Some("m"));
    assert_eq!(
        record.key(),
        [
            &[0, 1][..],   // key version 1
            &[0, 1, b'g'], // group
            &[0, 1, b't'], // topic
            &[0, 0, 0, 3], // partition
        ]
        .concat()
    );
    assert_eq!(
        record.value().unwrap(),
        [
            &[0, 3][..],                         // value version 3
            &42i64.to_be_bytes(),                // offset
            &7i32.to_be_bytes(),                 // leader epoch
            &[0, 1, b'm'],                       // metadata
            &1_700_000_000_000i64.to_be_bytes(), // commit timestamp
        ]
        .concat()
    );
    let key = GroupRecord::GroupMetadata {
        group: "ab".into(),
        value: None,
    }
    .key();
    assert_eq!(key, [0, 2, 0, 2, b'a', b'b']);
}

#[test]
fn older_value_versions_written_by_kafka_are_read() {
    let key = commit(0, None).key();
    // v1: offset, metadata, commit timestamp, expire timestamp.
    let v1 = [
        &[0, 1][..],
        &9i64.to_be_bytes(),
        &[0, 0],
        &5i64.to_be_bytes(),
        &(-1i64).to_be_bytes(),
    ]
    .concat();
    let GroupRecord::OffsetCommit { value: Some(v), .. } =
        GroupRecord::decode(Some(&key), Some(&v1)).unwrap()
    else {
        panic!("an offset commit");
    };
    assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp), (9, -1, 5));
    // GroupMetadataValue v0: no rebalance timeout, no state timestamp.
    let group_key = [0, 2, 0, 1, b'g'];
    let v0 = [
        &[0, 0][..],
        &[0, 8],
        b"consumer",
        &1i32.to_be_bytes(),
        &[0xff, 0xff],
        &[0xff, 0xff],
        &0i32.to_be_bytes(),
    ]
    .concat();
    let decoded = GroupRecord::decode(Some(&group_key), Some(&v0)).unwrap();
    let GroupRecord::GroupMetadata { value: Some(g), .. } = decoded else {
        panic!("group metadata");
    };
    assert_eq!((g.generation_id, g.current_state_timestamp), (1, -1));
    assert!(g.members.is_empty() && g.protocol_name.is_none());
}

#[test]
fn unknown_versions_and_missing_keys_are_refused() {
    assert_eq!(
        GroupRecord::decode(None, Some(b"x")),
        Err(RecordDecodeError::MissingKey)
    );
    assert_eq!(
        GroupRecord::decode(Some(&[0, 9, 0, 0]), None),
        Err(RecordDecodeError::UnknownKeyVersion(9))
    );
    let key = commit(0, None).key();
    assert!(matches!(
        GroupRecord::decode(Some(&key), Some(&[0, 4, 0, 0])),
        Err(RecordDecodeError::UnknownValueVersion { version: 4, .. })
    ));
}

#[test]
fn every_truncation_and_trailing_byte_is_refused() {
    for record in [commit(42, Some("metadata")), group_metadata()] {
        let key = record.key();
        let value = record.value().unwrap();
        for cut in 0..value.len() {
            assert!(GroupRecord::decode(Some(&key), Some(&value[..cut])).is_err());
        }
        for cut in 0..key.len() {
            assert!(GroupRecord::decode(Some(&key[..cut]), Some(&value)).is_err());
        }
        let mut longer = value.clone();
        longer.push(0);
        assert!(matches!(
            GroupRecord::decode(Some(&key), Some(&longer)),
            Err(RecordDecodeError::TrailingBytes { extra: 1, .. })
        ));
    }
}

#[test]
fn a_huge_member_count_or_length_allocates_nothing_and_fails() {
    let group_key = [0, 2, 0, 1, b'g'];
    let hostile = [
        &[0, 3][..],
        &[0, 1, b'c'],
        &1i32.to_be_bytes(),
        &[0xff, 0xff],
        &[0xff, 0xff],
        &(-1i64).to_be_bytes(),
        &i32::MAX.to_be_bytes(), // two billion members claimed, none there
    ]
    .concat();
    assert!(matches!(
        GroupRecord::decode(Some(&group_key), Some(&hostile)),
        Err(RecordDecodeError::Malformed { .. })
    ));
    let mut huge_bytes = group_metadata().value().unwrap();
    // The first member's subscription length: claim 2 GiB.
    let at = huge_bytes
        .windows(5)
        .position(|w| w == [0, 0, 0, 5, 0])
        .expect("subscription length");
    huge_bytes[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(GroupRecord::decode(Some(&[0, 2, 0, 1, b'g']), Some(&huge_bytes)).is_err());
}

fn member_strategy() -> impl Strategy<Value = MemberMetadata> {
    (
        ".{0,20}",
        proptest::option::of(".{0,10}"),
        ".{0,10}",
        ".{0,10}",
        any::<i32>(),
        any::<i32>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(
            |(member_id, instance, client_id, host, rebalance, session, sub, asg)| MemberMetadata {
                member_id,
                group_instance_id: instance,
                client_id,
                client_host: host,
                rebalance_timeout_ms: rebalance,
                session_timeout_ms: session,
                subscription: Bytes::from(sub),
                assignment: Bytes::from(asg),
            },
        )
}

proptest! {
    #[test]
    fn any_offset_commit_round_trips(
        group in ".{0,30}", topic in ".{0,30}", partition in any::<i32>(),
        offset in any::<i64>(), epoch in any::<i32>(), metadata in ".{0,40}",
        timestamp in any::<i64>(),
    ) {
        let record = GroupRecord::OffsetCommit {
            group, topic, partition,
            value: Some(CommittedOffset {
                offset, leader_epoch: epoch, metadata: Some(metadata), commit_timestamp: timestamp,
            }),
        };
        prop_assert_eq!(round_trip(&record), record);
    }

    #[test]
    fn any_group_metadata_round_trips(
        group in ".{0,30}", protocol_type in ".{0,10}", generation in any::<i32>(),
        protocol in proptest::option::of(".{0,10}"), leader in proptest::option::of(".{0,10}"),
        timestamp in any::<i64>(), members in proptest::collection::vec(member_strategy(), 0..4),
    ) {
        let record = GroupRecord::GroupMetadata {
            group,
            value: Some(GroupMetadata {
                protocol_type, generation_id: generation, protocol_name: protocol, leader,
                current_state_timestamp: timestamp, members,
            }),
        };
        prop_assert_eq!(round_trip(&record), record);
    }

    #[test]
    fn hostile_bytes_never_panic(
        key in proptest::collection::vec(any::<u8>(), 0..64),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
    ) {
        let _ = GroupRecord::decode(Some(&key), value.as_deref());
    }
}
