//! Behaviour tests of [`PartitionLog`] against real files in temp directories.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::batch::test_util::make_batch;
use super::recovery::{CLEAN_SHUTDOWN_FILE, LOG_START_FILE, RECOVERY_POINT_FILE};
use super::segment::{index_path, log_path};
use super::{LogConfig, PartitionLog, StorageError};

/// Small segments, frequent index entries, no cache unless asked: exercises the file paths.
fn config(segment_bytes: u64, cache_bytes: usize) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        cache_bytes,
        ..LogConfig::default()
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Appends `n` batches of `records` records each, one call per batch; returns them.
fn append_batches(log: &mut PartitionLog, n: usize, records: i32, ts: i64) -> Vec<Bytes> {
    (0..n)
        .map(|i| {
            let b = make_batch(log.log_end_offset(), records, 100 + i % 7, ts + i as i64);
            log.append(std::slice::from_ref(&b)).expect("append");
            b
        })
        .collect()
}

/// Reads everything from the log start with a generous fetch size, following segments.
fn read_all(log: &PartitionLog) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let got = log.read(offset, 1 << 20).expect("read");
        let Some(last) = got.last() else { break };
        let h = super::BatchHeader::parse(last).expect("header");
        offset = h.last_offset() + 1;
        out.extend(got);
    }
    out
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

#[test]
fn partition_log_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
}

#[test]
fn append_and_read_round_trip_across_segments() {
    let dir = tempdir();
    for cache in [0, 1 << 20] {
        let path = dir.path().join(format!("p-{cache}"));
        let mut log = PartitionLog::open(&path, config(1000, cache)).expect("open");
        let written = append_batches(&mut log, 40, 3, 1_000);
        assert_eq!(log.log_end_offset(), 120);
        assert!(log.segment_count() > 5, "small segments must roll");
        assert_eq!(read_all(&log), written);
        let total: u64 = written.iter().map(|b| b.len() as u64).sum();
        assert_eq!(log.size_bytes(), total);
    }
}

#[test]
fn one_append_call_with_many_batches_splits_across_segments() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(700, 0)).expect("open");
    let mut batches = Vec::new();
    let mut next = 0;
    for _ in 0..10 {
        let b = make_batch(next, 2, 150, 5);
        next += 2;
        batches.push(b);
    }
    let infos = log.append(&batches).expect("append");
    assert_eq!(infos.len(), 10);
    assert_eq!(infos[3].base_offset, 6);
    assert_eq!(infos[3].last_offset, 7);
    assert!(log.segment_count() >= 3);
    assert_eq!(read_all(&log), batches);
}

#[test]
fn read_from_middle_of_batch_returns_that_whole_batch() {
    let dir = tempdir();
    for cache in [0, 1 << 20] {
        let mut log =
            PartitionLog::open(&dir.path().join(cache.to_string()), config(1 << 20, cache))
                .expect("open");
        let written = append_batches(&mut log, 50, 10, 0);
        let got = log.read(237, 1).expect("read");
        assert_eq!(got, vec![written[23].clone()]);
    }
}

#[test]
fn max_bytes_is_respected_at_batch_boundaries() {
    let dir = tempdir();
    for cache in [0, 1 << 20] {
        let mut log =
            PartitionLog::open(&dir.path().join(cache.to_string()), config(1 << 20, cache))
                .expect("open");
        let written = append_batches(&mut log, 20, 1, 0);
        let two = written[4].len() + written[5].len();
        let got = log.read(4, two + written[6].len() - 1).expect("read");
        assert_eq!(got, written[4..6].to_vec());
        // The first batch comes whole even when larger than max_bytes.
        assert_eq!(log.read(4, 0).expect("read"), vec![written[4].clone()]);
    }
}

#[test]
fn reading_outside_the_log_is_offset_out_of_range_and_log_end_is_empty() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 0)).expect("open");
    append_batches(&mut log, 3, 2, 0);
    assert!(log.read(6, 100).expect("read at end").is_empty());
    match log.read(7, 100) {
        Err(StorageError::OffsetOutOfRange {
            offset: 7,
            log_start: 0,
            log_end: 6,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        log.read(-1, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn append_rejects_bad_batches_without_changing_the_log() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 0)).expect("open");
    append_batches(&mut log, 2, 1, 0);
    let good = make_batch(2, 1, 10, 0);
    let gap = make_batch(5, 1, 10, 0);
    assert!(matches!(
        log.append(&[good.clone(), gap]),
        Err(StorageError::NonConsecutiveOffset {
            expected: 3,
            found: 5
        })
    ));
    assert!(matches!(
        log.append(&[good.slice(..good.len() - 1)]),
        Err(StorageError::MalformedBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 2);
    log.append(&[good]).expect("append continues");
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn empty_log_reopens_in_the_same_state() {
    let dir = tempdir();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    log.close().expect("close");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!((log.segment_count(), log.size_bytes()), (1, 0));
    assert!(log.read(0, 100).expect("read").is_empty());
}

#[test]
fn reopen_after_close_keeps_everything_and_skips_the_scan() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(2000, 0)).expect("open");
    let written = append_batches(&mut log, 30, 2, 0);
    let segments = log.segment_count();
    log.close().expect("close");
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    // A body byte flipped behind our back is not noticed: a clean log is trusted, not scanned.
    let seg0 = log_path(dir.path(), 0);
    let mut data = std::fs::read(&seg0).expect("read");
    data[100] ^= 0xff;
    std::fs::write(&seg0, &data).expect("write");
    let log = PartitionLog::open(dir.path(), config(2000, 0)).expect("reopen");
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(read_all(&log)[1..], written[1..]);
}

#[test]
fn reopen_without_marker_recovers_everything_written() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(2000, 0)).expect("open");
    let written = append_batches(&mut log, 30, 2, 0);
    drop(log); // crash: no flush, no marker
    std::fs::remove_file(index_path(dir.path(), 0)).ok();
    let mut log = PartitionLog::open(dir.path(), config(2000, 0)).expect("reopen");
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(read_all(&log), written);
    assert!(index_path(dir.path(), 0).exists(), "indexes are rebuilt");
    let more = append_batches(&mut log, 1, 1, 0);
    assert_eq!(log.read(60, 1).expect("read"), more);
}

/// Opens a crashed log whose active segment's last batch got damaged by `damage`, and checks
/// it is truncated to the batch before and keeps appending at the right offset.
fn check_tail_damage_recovery(damage: impl Fn(&mut Vec<u8>, usize)) {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 0)).expect("open");
    let written = append_batches(&mut log, 10, 3, 0);
    drop(log);
    let seg = log_path(dir.path(), 0);
    let mut data = std::fs::read(&seg).expect("read");
    let last_start = data.len() - written[9].len();
    damage(&mut data, last_start);
    std::fs::write(&seg, &data).expect("write");

    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 0)).expect("reopen");
    assert_eq!(log.log_end_offset(), 27, "last good batch ends at 26");
    assert_eq!(file_len(&seg), last_start as u64);
    assert_eq!(read_all(&log), written[..9].to_vec());
    let b = make_batch(27, 2, 50, 0);
    let info = log.append(std::slice::from_ref(&b)).expect("append");
    assert_eq!(info[0].base_offset, 27);
    assert_eq!(log.read(27, 0).expect("read"), vec![b]);
    log.close().expect("close");
    let log = PartitionLog::open(dir.path(), config(1 << 20, 0)).expect("reopen");
    assert_eq!(log.log_end_offset(), 29);
}

#[test]
fn flipped_bytes_in_last_batch_truncate_to_last_good_batch() {
    check_tail_damage_recovery(|data, _| {
        let n = data.len();
        data[n - 3] ^= 0x5a;
        data[n - 1] ^= 0xff;
    });
}

#[test]
fn torn_write_mid_batch_truncates_to_last_good_batch() {
    check_tail_damage_recovery(|data, last_start| data.truncate(last_start + 40));
}

#[test]
fn torn_write_mid_header_and_zero_fill_truncate_to_last_good_batch() {
    check_tail_damage_recovery(|data, last_start| data.truncate(last_start + 5));
    check_tail_damage_recovery(|data, last_start| {
        data.truncate(last_start);
        data.extend_from_slice(&[0u8; 300]);
    });
}

#[test]
fn corruption_in_an_older_unflushed_segment_drops_everything_after_it() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1000, 0)).expect("open");
    let written = append_batches(&mut log, 30, 1, 0);
    assert!(log.segment_count() >= 3);
    drop(log);
    // Recovery point is 0 (never flushed), so every segment is verified.
    let seg0 = log_path(dir.path(), 0);
    let mut data = std::fs::read(&seg0).expect("read");
    let second = written[0].len();
    data[second + 70] ^= 1;
    std::fs::write(&seg0, &data).expect("write");
    let log = PartitionLog::open(dir.path(), config(1000, 0)).expect("reopen");
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(read_all(&log), written[..1].to_vec());
}

#[test]
fn message_count_policy_syncs_by_ticket_and_checkpoints_after() {
    let dir = tempdir();
    let cfg = LogConfig {
        flush_interval_messages: 5,
        ..config(1 << 20, 0)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
    let rp = dir.path().join(RECOVERY_POINT_FILE);
    append_batches(&mut log, 2, 2, 0);
    let before = std::fs::read_to_string(&rp).expect("written at open");
    assert_eq!(before.trim(), "0");
    assert!(!log.sync_due());
    append_batches(&mut log, 1, 2, 0);
    assert!(log.sync_due(), "5 records reached");
    let ticket = log.take_sync_ticket();
    assert!(!log.sync_due(), "a ticket restarts the count");
    assert_eq!(ticket.up_to(), 6);
    ticket.sync().expect("fdatasync");
    // The checkpoint follows a completed sync on the next tick, never before it.
    log.maybe_flush(0).expect("tick");
    assert_eq!(std::fs::read_to_string(&rp).expect("rp").trim(), "0");
    log.note_synced(ticket.up_to());
    log.maybe_flush(0).expect("tick");
    assert_eq!(std::fs::read_to_string(&rp).expect("rp").trim(), "6");
}

#[test]
fn sync_ticket_covers_segments_rolled_since_the_last_one() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(600, 0)).expect("open");
    log.commit().expect("first commit");
    append_batches(&mut log, 8, 2, 0);
    assert!(log.segment_count() > 2, "small segments roll");
    let segments = log.segment_count();
    let ticket = log.take_sync_ticket();
    assert_eq!(ticket.up_to(), 16);
    assert_eq!(ticket.file_count(), segments, "every segment written since");
    assert!(
        ticket.syncs_dir(),
        "new segment files need their directory entry synced"
    );
    ticket.sync().expect("fdatasync");
    let mut later = log.take_sync_ticket();
    assert_eq!(later.file_count(), 0, "nothing written since");
    assert!(!later.syncs_dir());
    append_batches(&mut log, 1, 2, 0);
    later.absorb(log.take_sync_ticket());
    later.absorb(ticket);
    assert_eq!(later.up_to(), 18);
    assert_eq!(later.file_count(), segments, "the active segment once");
    later.sync().expect("one sync for both tickets");
}

#[test]
fn maybe_flush_waits_for_the_flush_interval() {
    let dir = tempdir();
    let cfg = LogConfig {
        flush_interval: Some(Duration::from_secs(1)),
        ..config(1 << 20, 0)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
    let rp = dir.path().join(RECOVERY_POINT_FILE);
    append_batches(&mut log, 1, 4, 0);
    let now = super::log::now_ms();
    log.maybe_flush(now).expect("maybe_flush");
    assert_eq!(std::fs::read_to_string(&rp).expect("rp").trim(), "0");
    log.maybe_flush(now + 5_000).expect("maybe_flush");
    assert_eq!(std::fs::read_to_string(&rp).expect("rp").trim(), "4");
}

#[test]
fn retention_by_time_deletes_old_segments_and_log_start_survives_reopen() {
    let dir = tempdir();
    let cfg = LogConfig {
        retention: Some(Duration::from_millis(1000)),
        ..config(1000, 1 << 20)
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
    append_batches(&mut log, 20, 1, 1_000); // old: ts 1000..1019
    let old_end = log.log_end_offset();
    log.roll(0).expect("roll");
    let recent = append_batches(&mut log, 5, 1, 50_000);
    let deleted = log.enforce_retention(10_000).expect("retention");
    assert!(deleted >= 2);
    assert_eq!(log.log_start_offset(), old_end);
    assert!(matches!(
        log.read(0, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log), recent);
    log.close().expect("close");
    let log = PartitionLog::open(dir.path(), cfg).expect("reopen");
    assert_eq!(log.log_start_offset(), old_end);
    assert_eq!(read_all(&log), recent);
}

#[test]
fn retention_by_time_rolls_a_fully_expired_active_segment() {
    let dir = tempdir();
    let cfg = LogConfig {
        retention: Some(Duration::from_millis(1000)),
        ..config(1 << 20, 1 << 20)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
    append_batches(&mut log, 5, 2, 0);
    assert_eq!(log.enforce_retention(10_000).expect("retention"), 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert!(log.read(10, 100).expect("read").is_empty());
    assert_eq!(log.size_bytes(), 0);
    append_batches(&mut log, 1, 1, 0);
    assert_eq!(log.log_end_offset(), 11);
}

#[test]
fn retention_by_size_deletes_oldest_segments_down_to_the_limit() {
    let dir = tempdir();
    let cfg = LogConfig {
        retention: None,
        retention_bytes: Some(2500),
        ..config(1000, 0)
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
    append_batches(&mut log, 60, 1, 0);
    let deleted = log.enforce_retention(i64::MAX).expect("retention");
    assert!(deleted > 0);
    assert!(log.size_bytes() >= 2500);
    assert!(log.size_bytes() < 2500 + 1000);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(log.enforce_retention(i64::MAX).expect("again"), 0);
    log.close().expect("close");
    let log = PartitionLog::open(dir.path(), cfg).expect("reopen");
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn advancing_log_start_hides_offsets_and_survives_reopen() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1000, 1 << 20)).expect("open");
    let written = append_batches(&mut log, 30, 1, 0);
    log.advance_log_start_offset(17).expect("advance");
    assert!(log.read(16, 10).is_err());
    assert_eq!(log.read(17, 0).expect("read"), vec![written[17].clone()]);
    assert!(log.advance_log_start_offset(31).is_err());
    let before = log.segment_count();
    assert!(log.enforce_retention(0).expect("retention") > 0);
    assert!(log.segment_count() < before);
    assert_eq!(log.log_start_offset(), 17);
    drop(log);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LOG_START_FILE))
            .expect("checkpoint")
            .trim(),
        "17"
    );
    let log = PartitionLog::open(dir.path(), config(1000, 0)).expect("reopen");
    assert_eq!(log.log_start_offset(), 17);
    assert_eq!(read_all(&log)[0], written[17]);
}

#[test]
fn advancing_log_start_first_makes_the_data_below_it_durable() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 1 << 20)).expect("open");
    append_batches(&mut log, 10, 1, 0);
    log.advance_log_start_offset(10)
        .expect("advance to the log end");
    // Everything appended was synced by the advance: a crash cannot recover
    // a log that ends below its start.
    assert_eq!(log.take_sync_ticket().file_count(), 0);
    // An advance below the start changes nothing.
    log.advance_log_start_offset(3).expect("no-op");
    assert_eq!(log.log_start_offset(), 10);
}

#[test]
fn a_torn_log_start_checkpoint_swap_keeps_the_previous_value() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 1 << 20)).expect("open");
    append_batches(&mut log, 10, 1, 0);
    log.advance_log_start_offset(4).expect("advance");
    drop(log);
    // A crash between writing the temporary file and renaming it leaves
    // the temporary file behind; the checkpoint itself is intact.
    std::fs::write(dir.path().join(format!("{LOG_START_FILE}.tmp")), "9").expect("torn temp");
    let log = PartitionLog::open(dir.path(), config(1 << 20, 1 << 20)).expect("reopen");
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.log_end_offset(), 10);
}

#[test]
fn offset_for_timestamp_finds_first_batch_reaching_the_timestamp() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(800, 0)).expect("open");
    // Batch i (records 2i, 2i+1) has max timestamp 1000 + 10 * i.
    for i in 0..40i64 {
        let b = make_batch(2 * i, 2, 60, 1000 + 10 * i);
        log.append(&[b]).expect("append");
    }
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1000).expect("ts"), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1001).expect("ts"), Some((2, 1010)));
    assert_eq!(
        log.offset_for_timestamp(1255).expect("ts"),
        Some((52, 1260))
    );
    assert_eq!(
        log.offset_for_timestamp(1390).expect("ts"),
        Some((78, 1390))
    );
    assert_eq!(log.offset_for_timestamp(1391).expect("ts"), None);
    log.close().expect("close");
    let mut log = PartitionLog::open(dir.path(), config(800, 0)).expect("reopen");
    assert_eq!(
        log.offset_for_timestamp(1255).expect("ts"),
        Some((52, 1260))
    );
    log.advance_log_start_offset(53).expect("advance");
    assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((53, 1260)));
}

#[test]
fn segments_roll_when_first_batch_is_older_than_segment_roll() {
    let dir = tempdir();
    let cfg = LogConfig {
        segment_roll: Duration::from_millis(100),
        ..config(1 << 20, 0)
    };
    let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
    log.append(&[make_batch(0, 1, 10, 1_000)]).expect("append");
    log.append(&[make_batch(1, 1, 10, 1_050)]).expect("append");
    assert_eq!(log.segment_count(), 1);
    log.append(&[make_batch(2, 1, 10, 1_200)]).expect("append");
    assert_eq!(log.segment_count(), 2);
}

/// Writes a 40-batch log, closes it, and rewrites index entry `entry` (negative: from the end)
/// to point one byte past its batch; then checks every read still finds the right batch.
fn check_damaged_index_entry(entry: isize) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 0)).expect("open");
    let written = append_batches(&mut log, 40, 1, 0);
    log.close().expect("close");
    let idx = index_path(dir.path(), 0);
    let mut data = std::fs::read(&idx).expect("index");
    let entries = (data.len() / 8) as isize;
    assert!(entries >= 3);
    let at = (entry.rem_euclid(entries) * 8 + 4) as usize;
    let pos = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    data[at..at + 4].copy_from_slice(&(pos + 1).to_be_bytes());
    std::fs::write(&idx, &data).expect("write");
    let log = PartitionLog::open(dir.path(), config(1 << 20, 0)).expect("reopen");
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(read_all(&log), written);
    for (i, b) in written.iter().enumerate() {
        assert_eq!(&log.read(i as i64, 0).expect("read")[0], b);
    }
    log.close().expect("close");
    (dir, data)
}

#[test]
fn damaged_last_index_entry_is_rebuilt_on_clean_open() {
    let (dir, damaged) = check_damaged_index_entry(-1);
    let rewritten = std::fs::read(index_path(dir.path(), 0)).expect("index");
    assert_ne!(rewritten, damaged, "rebuilt index is written back on close");
}

#[test]
fn damaged_middle_index_entry_falls_back_to_scanning() {
    check_damaged_index_entry(1);
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempdir();
    let path = dir.path().join("t-0");
    let mut log = PartitionLog::open(&path, config(1000, 0)).expect("open");
    append_batches(&mut log, 10, 1, 0);
    log.delete().expect("delete");
    assert!(!path.exists());
}

/// Randomized model check (a seeded xorshift instead of proptest, so the module needs no extra
/// dev-dependency): random appends, clean and crash reopens and torn tails must always leave
/// the log equal to the list of batches that survived.
mod model {
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn run(seed: u64) {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let dir = tempdir();
        let cfg = || LogConfig {
            index_interval_bytes: 200,
            ..config(1200, 600)
        };
        let mut log = PartitionLog::open(dir.path(), cfg()).expect("open");
        let mut model: Vec<Bytes> = Vec::new();
        for step in 0..(1 + rng.below(25)) {
            match rng.below(7) {
                0..4 => {
                    let mut next = log.log_end_offset();
                    let batches: Vec<Bytes> = (0..1 + rng.below(3))
                        .map(|_| {
                            let n = 1 + rng.below(4) as i32;
                            let b = make_batch(next, n, rng.below(300) as usize, next);
                            next += i64::from(n);
                            b
                        })
                        .collect();
                    log.append(&batches).expect("append");
                    model.extend(batches);
                }
                4 => {
                    log.close().expect("close");
                    log = PartitionLog::open(dir.path(), cfg()).expect("open");
                }
                5 => {
                    drop(log);
                    log = PartitionLog::open(dir.path(), cfg()).expect("open");
                }
                _ => {
                    // Crash in the middle of writing the last batch.
                    let end = log.log_end_offset();
                    let active = log.active.base_offset;
                    drop(log);
                    let seg = log_path(dir.path(), active);
                    let len = file_len(&seg);
                    if let Some(last) = model.last().filter(|_| end > active && len > 0) {
                        let cut = 1 + rng.below(last.len() as u64 - 1);
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open(&seg)
                            .expect("open segment");
                        f.set_len(len - cut).expect("truncate");
                        model.pop();
                    }
                    log = PartitionLog::open(dir.path(), cfg()).expect("open");
                }
            }
            let expected_end = model.last().map_or(0, |b| {
                super::super::BatchHeader::parse(b)
                    .expect("header")
                    .last_offset()
                    + 1
            });
            assert_eq!(
                log.log_end_offset(),
                expected_end,
                "seed {seed} step {step}"
            );
            assert_eq!(read_all(&log), model, "seed {seed} step {step}");
        }
    }

    #[test]
    fn random_appends_reopens_and_torn_tails_match_a_model() {
        for seed in 0..48 {
            run(seed);
        }
    }
}

#[test]
fn failed_roll_mid_append_keeps_the_batches_before_it_and_the_log_usable() {
    let dir = tempdir();
    let first = make_batch(0, 1, 200, 1_000);
    let second = make_batch(1, 1, 200, 1_001);
    // One batch per segment: the second batch of the call needs a roll.
    let mut log = PartitionLog::open(dir.path(), config(first.len() as u64 + 10, 0)).unwrap();
    // The next segment's file name is taken by a directory, so the roll fails.
    let blocker = log_path(dir.path(), 1);
    std::fs::create_dir(&blocker).unwrap();
    let pending: Vec<super::PendingBatch> = [&first, &second]
        .iter()
        .enumerate()
        .map(|(i, b)| super::PendingBatch {
            stamp: super::BatchStamp {
                base_offset: i as i64,
                partition_leader_epoch: 0,
            },
            bytes: (*b).clone(),
        })
        .collect();
    let error = log.append_pending(&pending).unwrap_err();
    assert_eq!(error.written, 1);
    assert_eq!(log.log_end_offset(), 1, "the state covers what was written");
    assert_eq!(read_all(&log), vec![first.clone()]);

    // The refused batch goes in at the offset it was refused at, once space returns.
    std::fs::remove_dir(&blocker).unwrap();
    log.append(std::slice::from_ref(&second)).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config(first.len() as u64 + 10, 0)).unwrap();
    let offsets: Vec<i64> = read_all(&log)
        .iter()
        .map(|b| super::BatchHeader::parse(b).unwrap().base_offset)
        .collect();
    assert_eq!(offsets, vec![0, 1]);
}

#[test]
fn truncate_to_cuts_at_a_batch_boundary_across_segments_and_appends_continue_there() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1024, 0)).unwrap();
    let batches = append_batches(&mut log, 30, 3, 1_000);
    assert!(log.segment_count() > 3);
    // Offset 31 is inside the batch at 30: that batch goes too.
    log.truncate_to(31).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_all(&log), batches[..10].to_vec());
    let more = append_batches(&mut log, 2, 3, 5_000);
    assert_eq!(log.log_end_offset(), 36);
    log.close().unwrap();

    // Reopened, it is the cut log plus what came after, indexes and all.
    let log = PartitionLog::open(dir.path(), config(1024, 0)).unwrap();
    assert_eq!(read_all(&log), [&batches[..10], &more[..]].concat());
    assert_eq!(log.read(33, 1).unwrap(), vec![more[1].clone()]);
}

#[test]
fn truncate_to_the_log_start_empties_the_log() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1024, 0)).unwrap();
    append_batches(&mut log, 20, 2, 1_000);
    log.truncate_to(0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert!(read_all(&log).is_empty());
    append_batches(&mut log, 1, 2, 9_000);
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn restart_at_empties_the_log_and_continues_at_the_offset_across_a_reopen() {
    let dir = tempdir();
    let mut log = PartitionLog::open(dir.path(), config(1024, 0)).unwrap();
    append_batches(&mut log, 20, 2, 1_000);
    log.restart_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert!(read_all(&log).is_empty());
    let more = append_batches(&mut log, 3, 2, 9_000);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config(1024, 0)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 106));
    assert_eq!(read_all(&log), more);
}

/// `batch` as the client sent it, to be stored at `base_offset` under `epoch`.
fn stamped(batch: &Bytes, base_offset: i64, epoch: i32) -> super::PendingBatch {
    super::PendingBatch {
        stamp: super::BatchStamp {
            base_offset,
            partition_leader_epoch: epoch,
        },
        bytes: batch.clone(),
    }
}

#[test]
fn a_stamped_leader_epoch_is_stored_outside_the_crc_and_read_back_from_cache_and_file() {
    let dir = tempdir();
    let client = make_batch(0, 2, 50, 1_000);
    assert_eq!(
        super::BatchHeader::parse(&client)
            .unwrap()
            .partition_leader_epoch,
        0
    );
    let mut log = PartitionLog::open(dir.path(), config(1 << 20, 1 << 20)).unwrap();
    log.append_pending(&[stamped(&client, 0, 7), stamped(&client, 2, 9)])
        .unwrap();
    let check = |batches: Vec<Bytes>| {
        let epochs: Vec<(i64, i32)> = batches
            .iter()
            .map(|b| {
                assert!(super::crc_matches(b), "the stamp leaves the CRC valid");
                let h = super::BatchHeader::parse(b).unwrap();
                (h.base_offset, h.partition_leader_epoch)
            })
            .collect();
        assert_eq!(epochs, vec![(0, 7), (2, 9)]);
    };
    assert!(log.reads_from_memory(0));
    check(read_all(&log));
    log.close().unwrap();
    // Reopened: no cache, the segment file holds the stamped bytes.
    let log = PartitionLog::open(dir.path(), config(1 << 20, 0)).unwrap();
    check(read_all(&log));
}

fn epoch_pairs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// Three epochs over small segments: 0 at 0, 3 at 4, 5 at 10 (end 14).
fn log_with_epochs(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config(400, 0)).unwrap();
    for (epoch, batches) in [(0, 2), (3, 3), (5, 2)] {
        for _ in 0..batches {
            let end = log.log_end_offset();
            let batch = make_batch(end, 2, 100, 1_000 + end);
            log.append_pending(&[stamped(&batch, end, epoch)]).unwrap();
        }
    }
    assert_eq!(log.log_end_offset(), 14);
    log
}

fn checkpoint_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("leader-epoch-checkpoint")).unwrap()
}

#[test]
fn appends_record_each_epoch_start_in_the_checkpoint_that_a_reopen_reads() {
    let dir = tempdir();
    let log = log_with_epochs(dir.path());
    assert_eq!(epoch_pairs(&log), vec![(0, 0), (3, 4), (5, 10)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n3 4\n5 10\n");
    assert_eq!(log.end_offset_for_epoch(3), (3, 10));
    assert_eq!(log.end_offset_for_epoch(5), (5, 14));
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), config(400, 0)).unwrap();
    assert_eq!(epoch_pairs(&log), vec![(0, 0), (3, 4), (5, 10)]);
}

#[test]
fn a_missing_or_untrustworthy_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempdir();
    log_with_epochs(dir.path()).close().unwrap();
    let path = dir.path().join("leader-epoch-checkpoint");
    for hostile in [
        None,
        Some("0\n999999999999\n0 0\n"),
        Some("0\n2\n0 0\n"),
        Some("0\n3\n0 0\n5 4\n3 10\n"),
        Some("junk"),
    ] {
        match hostile {
            None => std::fs::remove_file(&path).unwrap(),
            Some(text) => std::fs::write(&path, text).unwrap(),
        }
        let log = PartitionLog::open(dir.path(), config(400, 0)).unwrap();
        assert_eq!(
            epoch_pairs(&log),
            vec![(0, 0), (3, 4), (5, 10)],
            "after {hostile:?}"
        );
        assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n3 4\n5 10\n");
        log.close().unwrap();
    }
}

#[test]
fn after_a_crash_the_replayed_batches_add_the_epochs_the_checkpoint_missed() {
    let dir = tempdir();
    let log = log_with_epochs(dir.path());
    drop(log); // no clean shutdown marker: recovery replays what was not flushed
    // A checkpoint from before epoch 5 began, and one naming an epoch
    // beyond the recovered log end.
    for stale in ["0\n2\n0 0\n3 4\n", "0\n4\n0 0\n3 4\n5 10\n7 20\n"] {
        std::fs::write(dir.path().join("leader-epoch-checkpoint"), stale).unwrap();
        std::fs::write(dir.path().join(RECOVERY_POINT_FILE), "0\n").unwrap();
        let _ = std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE));
        let log = PartitionLog::open(dir.path(), config(400, 0)).unwrap();
        assert_eq!(
            epoch_pairs(&log),
            vec![(0, 0), (3, 4), (5, 10)],
            "{stale:?}"
        );
        drop(log);
    }
}

#[test]
fn cutting_either_end_of_the_log_cuts_its_epochs() {
    let dir = tempdir();
    let mut log = log_with_epochs(dir.path());
    log.truncate_to(10).unwrap();
    assert_eq!(epoch_pairs(&log), vec![(0, 0), (3, 4)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 10));
    log.advance_log_start_offset(6).unwrap();
    assert_eq!(epoch_pairs(&log), vec![(3, 6)]);
    assert_eq!(log.leader_epochs().epoch_for_offset(7), Some(3));
    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(400, 0)).unwrap();
    assert_eq!(epoch_pairs(&log), vec![(3, 6)]);
    log.restart_at(40).unwrap();
    assert!(log.leader_epochs().is_empty());
    assert_eq!(checkpoint_text(dir.path()), "0\n0\n");
}

#[test]
fn a_new_leader_records_its_epoch_at_the_log_end_before_any_batch() {
    let dir = tempdir();
    let mut log = log_with_epochs(dir.path());
    log.assign_leader_epoch(6).unwrap();
    assert_eq!(log.latest_leader_epoch(), Some(6));
    assert_eq!(log.end_offset_for_epoch(5), (5, 14));
    log.assign_leader_epoch(6).unwrap();
    assert_eq!(epoch_pairs(&log), vec![(0, 0), (3, 4), (5, 10), (6, 14)]);
    // It lost leadership before writing: as a follower cut back to (or
    // past) its log end, it forgets the epoch it never wrote under, so its
    // fetches name epoch 5 again.
    log.truncate_to(14).unwrap();
    assert_eq!(epoch_pairs(&log), vec![(0, 0), (3, 4), (5, 10)]);
    assert_eq!(log.log_end_offset(), 14);
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n3 4\n5 10\n");
}
