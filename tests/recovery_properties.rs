//! The `segment_recovery` and `metadata_command` fuzz targets' properties
//! on stable, as bounded property tests over real inputs with random
//! damage: torn, flipped and zeroed segment files, and command log entries
//! with changed bytes.

use bytes::BytesMut;
use gregor::cluster::LogEntry;
use gregor::cluster::metadata::Command;
use gregor::properties::{metadata_command, segment_recovery};
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
