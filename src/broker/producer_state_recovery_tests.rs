//! A partition's producer state across restarts and truncation: recovered
//! from the newest producer snapshot plus the log after it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::partition::{Appended, Partition, WritePolicy};
use crate::records::{BatchHeader, split_batches};
use crate::storage::LogConfig;

const POLICY: WritePolicy = WritePolicy {
    log_append_time: false,
};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

/// One idempotent batch of `count` records from `producer_id` (epoch 0).
fn batch(producer_id: i64, first_sequence: i32, count: i32) -> Vec<(BatchHeader, Bytes)> {
    split_batches(&encoded(producer_id, first_sequence, 0, count)).unwrap()
}

/// The same batch at `base_offset`, as a leader's log holds it.
fn encoded(producer_id: i64, first_sequence: i32, base_offset: i64, count: i32) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: base_offset + i64::from(i),
            sequence: first_sequence + i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

async fn append(partition: &Partition, batches: Vec<(BatchHeader, Bytes)>) -> Appended {
    partition.append(batches, None, 0).await.unwrap().unwrap()
}

fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "snapshot"))
        .collect();
    found.sort();
    found
}

/// Producer 7 writes one batch at offset 0; producer 8 then writes
/// 12,000 records behind it, rolling the log several times.
async fn idle_producer_far_back(path: &Path) -> Arc<Partition> {
    let partition = Partition::open("t", 0, path.to_path_buf(), config(), POLICY).unwrap();
    assert_eq!(append(&partition, batch(7, 0, 3)).await.base_offset, 0);
    for i in 0..120 {
        append(&partition, batch(8, i * 100, 100)).await;
    }
    assert_eq!(partition.log_end_offset(), 12_003);
    partition
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_producer_retry_is_a_duplicate_after_clean_and_unclean_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let partition = idle_producer_far_back(&path).await;
    assert!(snapshots(&path).len() > 2, "every roll writes a snapshot");
    partition.close().await.unwrap();
    let newest = snapshots(&path).pop().unwrap();
    assert!(newest.ends_with("00000000000000012003.snapshot"));

    // Clean: the shutdown snapshot is at the log end.
    let partition = Partition::open("t", 0, path.clone(), config(), POLICY).unwrap();
    let retry = append(&partition, batch(7, 0, 3)).await;
    assert_eq!((retry.base_offset, partition.log_end_offset()), (0, 12_003));
    partition.close().await.unwrap();

    // Unclean: no marker and no shutdown snapshot; the last roll's
    // snapshot and the log after it are replayed.
    std::fs::remove_file(path.join(".clean_shutdown")).unwrap();
    std::fs::remove_file(&newest).unwrap();
    let partition = Partition::open("t", 0, path.clone(), config(), POLICY).unwrap();
    let retry = append(&partition, batch(7, 0, 3)).await;
    assert_eq!((retry.base_offset, partition.log_end_offset()), (0, 12_003));
    let next = append(&partition, batch(7, 3, 1)).await;
    assert_eq!(next.base_offset, 12_003);
    partition.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_snapshot_is_ignored_and_the_state_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    idle_producer_far_back(&path).await.close().await.unwrap();
    for snapshot in snapshots(&path) {
        let mut bytes = std::fs::read(&snapshot).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&snapshot, bytes).unwrap();
    }
    let partition = Partition::open("t", 0, path.clone(), config(), POLICY).unwrap();
    let retry = append(&partition, batch(7, 0, 3)).await;
    assert_eq!((retry.base_offset, partition.log_end_offset()), (0, 12_003));
    let retry = append(&partition, batch(8, 11_900, 100)).await;
    assert_eq!(retry.base_offset, 11_903);
    partition.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_drops_snapshots_and_state_past_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let partition = idle_producer_far_back(&path).await;
    let after_cut = append(&partition, batch(7, 3, 2)).await;
    assert_eq!(after_cut.base_offset, 12_003);

    assert_eq!(partition.truncate_to(5_003).await.unwrap().unwrap(), 5_003);
    let past_cut: Vec<i64> = snapshots(&path)
        .iter()
        .filter_map(|p| p.file_stem()?.to_str()?.parse().ok())
        .filter(|&offset: &i64| offset > 5_003)
        .collect();
    assert_eq!(past_cut, Vec::<i64>::new());
    // Producer 8's batches past the cut are gone: its next one after the
    // cut is appended again, and producer 7's retry of a cut batch is new.
    let again = append(&partition, batch(8, 5_000, 100)).await;
    assert_eq!(again.base_offset, 5_003);
    let retry = append(&partition, batch(7, 3, 2)).await;
    assert_eq!(retry.base_offset, 5_103);
    assert_eq!(append(&partition, batch(7, 0, 3)).await.base_offset, 0);
    partition.close().await.unwrap();

    // And the same holds after a restart from the snapshots left.
    let partition = Partition::open("t", 0, path.clone(), config(), POLICY).unwrap();
    let retry = append(&partition, batch(8, 5_000, 100)).await;
    assert_eq!(retry.base_offset, 5_003);
    partition.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_snapshots_what_it_replicates_and_leads_with_it_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let follower = Partition::open("t", 0, path.clone(), config(), POLICY).unwrap();
    let end = follower.append_replicated(encoded(7, 0, 0, 3));
    assert_eq!(end.await.unwrap().unwrap(), 3);
    for i in 0..120 {
        let records = encoded(8, i * 100, 3 + i64::from(i) * 100, 100);
        follower.append_replicated(records).await.unwrap().unwrap();
    }
    assert!(
        snapshots(&path).len() > 2,
        "a follower's rolls write snapshots too"
    );
    follower.close().await.unwrap();
    std::fs::remove_file(path.join(".clean_shutdown")).unwrap();
    std::fs::remove_file(snapshots(&path).pop().unwrap()).unwrap();

    let leader = Partition::open("t", 0, path.clone(), config(), POLICY).unwrap();
    let retry = append(&leader, batch(7, 0, 3)).await;
    assert_eq!((retry.base_offset, leader.log_end_offset()), (0, 12_003));
    leader.close().await.unwrap();
}
