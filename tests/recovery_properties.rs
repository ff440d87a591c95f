//! The `segment_recovery`, `leader_epoch_checkpoint`, `metadata_command`
//! and `producer_snapshot` fuzz targets' properties on stable, as bounded property tests over real
//! inputs with random damage: torn, flipped and zeroed segment files,
//! leader-epoch checkpoints with changed bytes, and command log entries
//! with changed bytes, producer snapshots with changed bytes.

use bytes::BytesMut;
use gregor::cluster::LogEntry;
use gregor::cluster::metadata::Command;
use gregor::properties::{
    leader_epoch_checkpoint, metadata_command, producer_snapshot, segment_recovery,
};
use gregor::storage::{ProducerSnapshot, SnapshotBatch, SnapshotProducer};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;

/// Three batches with consecutive offsets, as a segment file holds them.
fn segment() -> Vec<u8> {
    let mut out = BytesMut::new();
    for (base, count) in [(0i64, 2i64), (2, 1), (3, 3)] {
        let records: Vec<Record> = (base..base + count)
            .map(|offset| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                sequence: -1,
                timestamp: 1_700_000_000_000 + offset,
                key: None,
                value: Some(bytes::Bytes::from(format!("value-{offset}"))),
                headers: Default::default(),
            })
            .collect();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    }
    out.to_vec()
}

/// [`segment`]'s six one-record batches stamped with leader epochs: 0 from
/// offset 0, 2 from 2, 5 from 3.
fn stamped_segment() -> Vec<u8> {
    let mut data = segment();
    let mut at = 0;
    for epoch in [0i32, 0, 2, 5, 5, 5] {
        data[at + 12..at + 16].copy_from_slice(&epoch.to_be_bytes());
        let length = i32::from_be_bytes(data[at + 8..at + 12].try_into().unwrap());
        at += 12 + length as usize;
    }
    data
}

/// Real command log entries, encoded as the command log writes them.
fn entries() -> Vec<String> {
    let topic_id = uuid::Uuid::from_u128(7);
    [
        Command::DeleteTopic { topic_id },
        Command::CreatePartitions {
            name: "t".into(),
            new_assignments: vec![vec![0], vec![0]],
        },
        Command::UnfenceBroker {
            broker_id: 0,
            broker_epoch: 1,
        },
    ]
    .into_iter()
    .map(|command| serde_json::to_string(&LogEntry { index: 4, command }).unwrap())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn damaged_segments_recover_to_a_valid_prefix(
        cut in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        zero_tail in any::<bool>(),
    ) {
        let mut data = segment();
        for (at, byte) in edits {
            let at = at.index(data.len());
            data[at] = byte;
        }
        data.truncate(cut.index(data.len() + 1));
        if zero_tail {
            data.extend(std::iter::repeat_n(0u8, 100));
        }
        let dir = tempfile::tempdir().unwrap();
        segment_recovery(dir.path(), &data);
    }

    #[test]
    fn damaged_leader_epoch_checkpoints_are_read_or_rebuilt(
        checkpoint in prop::sample::select(vec![
            "0\n1\n0 0\n", "0\n2\n0 0\n3 4\n", "0\n3\n0 0\n2 2\n5 3\n", "0\n0\n",
        ]),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = checkpoint.as_bytes().to_vec();
        for (at, byte) in edits {
            let at = at.index(data.len());
            data[at] = byte;
        }
        data.truncate(cut.index(data.len() + 1));
        let dir = tempfile::tempdir().unwrap();
        leader_epoch_checkpoint(dir.path(), &stamped_segment(), &data);
    }

    #[test]
    fn changed_command_entries_apply_or_change_nothing(
        entry in prop::sample::select(entries()),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let mut data = entry.as_bytes().to_vec();
        for (at, byte) in edits {
            let at = at.index(data.len());
            data[at] = byte;
        }
        metadata_command(&data);
    }

    #[test]
    fn changed_producer_snapshots_are_taken_or_ignored(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = sample_snapshot().encode();
        for (at, byte) in edits {
            let at = at.index(data.len());
            data[at] = byte;
        }
        data.truncate(cut.index(data.len() + 1));
        let dir = tempfile::tempdir().unwrap();
        producer_snapshot(dir.path(), &data);
    }
}

#[test]
fn a_true_or_missing_leader_epoch_checkpoint_gives_the_batches_epochs() {
    for checkpoint in ["0\n3\n0 0\n2 2\n5 3\n", ""] {
        let dir = tempfile::tempdir().unwrap();
        leader_epoch_checkpoint(dir.path(), &stamped_segment(), checkpoint.as_bytes());
        let saved = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
        assert_eq!(saved, "0\n3\n0 0\n2 2\n5 3\n");
    }
}

#[test]
fn an_undamaged_segment_recovers_whole() {
    let dir = tempfile::tempdir().unwrap();
    segment_recovery(dir.path(), &segment());
}

#[test]
fn the_seed_entries_decode() {
    for entry in entries() {
        serde_json::from_str::<LogEntry>(&entry).expect(&entry);
    }
}

/// Two producers, one with two batches, as a snapshot at offset 50.
fn sample_snapshot() -> ProducerSnapshot {
    let batch = |first_sequence, base_offset| SnapshotBatch {
        first_sequence,
        last_sequence: first_sequence + 1,
        base_offset,
    };
    ProducerSnapshot {
        offset: 50,
        producers: vec![
            SnapshotProducer {
                producer_id: 7,
                epoch: 1,
                batches: vec![batch(0, 10), batch(2, 30)],
            },
            SnapshotProducer {
                producer_id: 9,
                epoch: 0,
                batches: vec![batch(0, 40)],
            },
        ],
    }
}
