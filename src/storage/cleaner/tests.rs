//! The cleaner against real logs in temporary directories: what it keeps,
//! reads across the gaps it leaves, and recovery after a crash at each
//! step of the segment swap.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::storage::{LogConfig, PartitionLog};

const NOW: i64 = 1_700_000_100_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        cache_bytes: 1 << 20,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.01,
        delete_retention: Duration::from_millis(1000),
        ..LogConfig::default()
    }
}

fn cleaner(dedupe_bytes: usize) -> Cleaner {
    Cleaner::new(
        dedupe_bytes,
        None,
        1 << 20,
        Arc::new(AtomicBool::new(false)),
    )
}

/// One batch at `base` of `(key, value)` records; `None` is a tombstone.
fn batch(base: i64, records: &[(String, Option<String>)], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base + i as i64,
            sequence: (base + i as i64) as i32,
            timestamp: NOW - 50_000 + base + i as i64,
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

/// Appends `count` records, `per_batch` to a batch, key `k{i % keys}`,
/// value `v{i}`, every codec in turn.
fn fill(log: &mut PartitionLog, count: i64, per_batch: i64, keys: i64) {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut i = log.log_end_offset();
    let end = i + count;
    while i < end {
        let records: Vec<(String, Option<String>)> = (i..(i + per_batch).min(end))
            .map(|n| (format!("k{}", n % keys), Some(format!("v{n}"))))
            .collect();
        let codec = codecs[(i / per_batch) as usize % codecs.len()];
        let encoded = batch(i, &records, codec);
        let split: Vec<Bytes> = crate::records::split_batches(&encoded)
            .unwrap()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        assert_eq!(split.len(), 1, "{codec:?}");
        log.append(&split).unwrap();
        i += records.len() as i64;
    }
}

/// Every record as `(offset, key, value)`, read from the log start.
fn records(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let batches = log.read(offset, 1 << 20).unwrap();
        if batches.is_empty() {
            return out;
        }
        for b in batches {
            let h = BatchHeader::parse(&b).unwrap();
            let mut buf = b.clone();
            for r in RecordBatchDecoder::decode(&mut buf).unwrap().records {
                out.push((
                    r.offset,
                    String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                    r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                ));
            }
            offset = h.last_offset() + 1;
        }
    }
}

/// What a clean of everything before `active_base` must leave: the latest
/// record per key there, then everything from `active_base` on.
fn compacted(
    all: &[(i64, String, Option<String>)],
    active_base: i64,
) -> Vec<(i64, String, Option<String>)> {
    let mut latest = BTreeMap::new();
    for (offset, key, _) in all.iter().filter(|r| r.0 < active_base) {
        latest.insert(key.clone(), *offset);
    }
    all.iter()
        .filter(|(offset, key, _)| *offset >= active_base || latest[key] == *offset)
        .cloned()
        .collect()
}

fn shared(log: PartitionLog) -> RwLock<PartitionLog> {
    RwLock::new(log)
}

#[test]
fn keeps_the_latest_record_per_key_with_its_offset_and_reads_across_the_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    fill(&mut log, 300, 3, 7);
    let before = records(&log);
    let active_base = log.active.base_offset;
    let segments_before = log.segment_count();
    assert!(segments_before > 5, "{segments_before}");
    assert!(log.cleanable(NOW).is_some());
    let log = shared(log);
    let stats = cleaner(1 << 20).clean(&log, NOW).unwrap();
    assert_eq!(stats.first_dirty, active_base);
    assert!(stats.records_removed > 200, "{stats:?}");
    let mut log = log.into_inner().unwrap();
    let want = compacted(&before, active_base);
    assert_eq!(records(&log), want);
    assert!(log.segment_count() < segments_before);

    // A fetch at a removed offset gets the next batch kept, within and
    // between segments.
    for offset in 0..active_base {
        let got = log.read(offset, 1).unwrap();
        let first = BatchHeader::parse(&got[0]).unwrap();
        let next_kept = want.iter().find(|r| r.0 >= offset).unwrap().0;
        assert!(first.base_offset <= next_kept && next_kept <= first.last_offset());
    }
    // Nothing more to do until more is written.
    assert_eq!(log.cleanable(NOW), None);
    // Appends go on after the gaps; reopening (clean and after a crash) keeps it all.
    fill(&mut log, 10, 2, 7);
    let after = records(&log);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(records(&log), after);
    assert_eq!(log.cleaner_checkpoint, active_base);
    drop(log);
    std::fs::remove_file(dir.path().join("recovery-point")).ok();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(
        records(&log),
        after,
        "a full recovery scan accepts the gaps"
    );
}

#[test]
fn a_second_clean_removes_what_newer_records_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    fill(&mut log, 100, 2, 5);
    let log = shared(log);
    cleaner(1 << 20).clean(&log, NOW).unwrap();
    fill(&mut log.write().unwrap(), 100, 2, 5);
    let before = records(&log.read().unwrap());
    let active_base = log.read().unwrap().active.base_offset;
    cleaner(1 << 20).clean(&log, NOW).unwrap();
    assert_eq!(
        records(&log.read().unwrap()),
        compacted(&before, active_base)
    );
}

#[test]
fn a_small_dedupe_buffer_cleans_the_prefix_it_maps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    fill(&mut log, 300, 3, 1000);
    let log = shared(log);
    // Room for 30 keys: the first clean maps offsets [0, 30) only.
    let stats = cleaner(30 * ENTRY_BYTES).clean(&log, NOW).unwrap();
    assert_eq!(stats.first_dirty, 30);
    assert_eq!(log.read().unwrap().cleaner_checkpoint, 30);
    // Unique keys: nothing is removed, nothing lost.
    assert_eq!(records(&log.read().unwrap()).len(), 300);
}

#[test]
fn records_younger_than_the_min_compaction_lag_are_not_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let lagged = LogConfig {
        min_compaction_lag: Duration::from_secs(3600),
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), lagged).unwrap();
    fill(&mut log, 100, 2, 3);
    assert_eq!(log.cleanable(NOW), None);
    let before = records(&log);
    let log = shared(log);
    cleaner(1 << 20).clean(&log, NOW).unwrap();
    assert_eq!(records(&log.read().unwrap()), before);
}

#[test]
fn tombstones_stay_for_delete_retention_after_their_first_clean_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    fill(&mut log, 50, 5, 5);
    let end = log.log_end_offset();
    let tombstone = batch(end, &[("k1".into(), None)], Compression::None);
    log.append(&[tombstone]).unwrap();
    fill(&mut log, 60, 5, 1000); // unique keys, rolls the tombstone's segment
    let log = shared(log);
    cleaner(1 << 20).clean(&log, NOW).unwrap();
    let kept = records(&log.read().unwrap());
    assert!(
        kept.iter().any(|r| r.1 == "k1" && r.2.is_none()),
        "kept at first"
    );
    assert!(!kept.iter().any(|r| r.1 == "k1" && r.2.is_some()));
    assert_eq!(log.read().unwrap().tombstone_deadline, Some(NOW + 1000));
    assert!(log.read().unwrap().cleanable(NOW + 999).is_none());
    assert!(log.read().unwrap().cleanable(NOW + 1000).unwrap().overdue);
    cleaner(1 << 20).clean(&log, NOW + 1000).unwrap();
    let kept = records(&log.read().unwrap());
    assert!(
        !kept.iter().any(|r| r.1 == "k1"),
        "gone after delete.retention.ms"
    );
    assert_eq!(log.read().unwrap().tombstone_deadline, None);
}

#[test]
fn retention_does_not_delete_a_compact_only_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention: Some(Duration::from_millis(1)),
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    fill(&mut log, 100, 2, 5);
    assert_eq!(log.enforce_retention(NOW * 2).unwrap(), 0);
}

/// A log in `dir` with many closed segments, and the directory's files
/// after cleaning it (in a copy), keyed by name.
type Records = Vec<(i64, String, Option<String>)>;

fn cleaned_copy(dir: &Path) -> (Records, BTreeMap<String, Vec<u8>>) {
    let mut log = PartitionLog::open(dir, config()).unwrap();
    fill(&mut log, 200, 4, 6);
    log.flush().unwrap();
    let before = records(&log);
    let active_base = log.active.base_offset;
    drop(log);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let log = shared(PartitionLog::open(copy.path(), config()).unwrap());
    cleaner(1 << 20).clean(&log, NOW).unwrap();
    assert_eq!(
        records(&log.read().unwrap()),
        compacted(&before, active_base)
    );
    log.into_inner().unwrap().close().unwrap();
    (compacted(&before, active_base), files(copy.path()))
}

fn copy_dir(from: &Path, to: &Path) {
    for (name, bytes) in files(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The cleaned segment files: those whose content the clean changed.
fn cleaned_segments(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(name, bytes)| {
            // An emptied first segment is renamed in without a swap.
            name.ends_with(".log") && !bytes.is_empty() && before.get(*name) != Some(bytes)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn a_crash_before_the_swap_leaves_the_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (_, after) = cleaned_copy(dir.path());
    let before_files = files(dir.path());
    let before = records(&PartitionLog::open(dir.path(), config()).unwrap());
    // Crash while writing (or before renaming) the cleaned file.
    for name in cleaned_segments(&before_files, &after) {
        let data = &after[&name];
        std::fs::write(
            dir.path().join(format!("{name}.cleaned")),
            &data[..data.len() / 2],
        )
        .unwrap();
    }
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(records(&log), before);
    assert!(!files(dir.path()).keys().any(|n| n.ends_with(".cleaned")));
}

#[test]
fn a_crash_after_the_swap_file_is_complete_finishes_the_swap() {
    // Every point between the fsynced rename to .swap and the rename over
    // the old segment: none, some or all of the replaced files unlinked.
    for unlinked in [0usize, 1, usize::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let (want, after) = cleaned_copy(dir.path());
        let before_files = files(dir.path());
        let pristine = copy_of(dir.path());
        let before = records(&PartitionLog::open(&pristine, config()).unwrap());
        std::fs::remove_dir_all(pristine).unwrap();
        let cleaned = cleaned_segments(&before_files, &after);
        assert!(!cleaned.is_empty());
        for name in &cleaned {
            std::fs::write(dir.path().join(format!("{name}.swap")), &after[name]).unwrap();
        }
        let swapped: Vec<i64> = cleaned
            .iter()
            .map(|n| n.trim_end_matches(".log").parse().unwrap())
            .collect();
        // The replaced segments: those gone after the clean.
        let replaced: Vec<&String> = before_files
            .keys()
            .filter(|n| n.ends_with(".log") && !after.contains_key(*n))
            .collect();
        for name in replaced.iter().take(unlinked) {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
        std::fs::remove_file(dir.path().join(".clean_shutdown")).ok();
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        assert_whole(&records(&log), &before, &want);
        assert!(!files(dir.path()).keys().any(|n| n.ends_with(".swap")));
        // The swapped segments hold exactly what the clean left there.
        let end = want.iter().map(|r| r.0).max().unwrap();
        let from = swapped.iter().min().copied().unwrap();
        let part = |rs: &Records| -> Records {
            rs.iter()
                .filter(|r| r.0 >= from && r.0 <= end)
                .cloned()
                .collect()
        };
        assert_eq!(part(&records(&log)), part(&want), "{unlinked} unlinked");
    }
}

/// A copy of `dir` without the swap files: the log as it was before the clean.
fn copy_of(dir: &Path) -> PathBuf {
    let copy = tempfile::tempdir().unwrap().keep();
    for (name, bytes) in files(dir) {
        if !name.ends_with(".swap") {
            std::fs::write(copy.join(name), bytes).unwrap();
        }
    }
    copy
}

/// After a crash mid-clean the log is whole: every record the clean keeps
/// is there, and nothing else but records that were there before, at the
/// same offsets.
fn assert_whole(got: &Records, before: &Records, want: &Records) {
    for r in want {
        assert!(got.contains(r), "{r:?} lost");
    }
    for r in got {
        assert!(before.contains(r), "{r:?} was never written");
    }
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn a_crash_after_the_swap_without_indexes_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let (want, after) = cleaned_copy(dir.path());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for (name, bytes) in &after {
        if !name.ends_with("index") && name != ".clean_shutdown" {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
    }
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(records(&log), want);
}

#[test]
fn a_swap_is_refused_when_retention_deleted_a_segment_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    fill(&mut log, 100, 2, 5);
    let plan = log.clean_plan(NOW);
    let first = plan.segments[0].clone();
    log.advance_log_start_offset(first.next_offset).unwrap();
    log.enforce_retention(NOW).unwrap();
    let swap = dir.path().join("x.log.swap");
    std::fs::write(&swap, b"").unwrap();
    let seg = Segment::with_file(dir.path(), first.base, File::open(&swap).unwrap(), NOW);
    assert!(
        !log.replace_segments(&[first], Some((seg, swap.clone())))
            .unwrap()
    );
    assert!(!swap.exists());
}

#[test]
fn segments_group_up_to_segment_bytes() {
    let view = |base: i64, size: u64| SegmentView {
        base,
        next_offset: base + 10,
        size,
        file: Arc::new(tempfile::tempfile().unwrap()),
        path: PathBuf::new(),
    };
    let segments = vec![view(0, 400), view(10, 400), view(20, 400), view(30, 2000)];
    let groups: Vec<Vec<i64>> = group_segments(&segments, 1000)
        .iter()
        .map(|g| g.iter().map(|s| s.base).collect())
        .collect();
    assert_eq!(groups, vec![vec![0, 10], vec![20], vec![30]]);
}
