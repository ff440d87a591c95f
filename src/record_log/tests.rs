//! The record log's contract: recovery keeps intact records, cuts off only a
//! torn tail, refuses mid-log corruption by file and position; a failed
//! append leaves nothing behind and the next one lands where it should.

use super::fault::Faults;
use super::frame::FRAME_HEADER_LEN;
use super::*;
// The tests prepare and inspect files on the real disk.
use std::fs;

fn payloads(recovered: &Recovered) -> Vec<&[u8]> {
    recovered.records.iter().map(|r| &r.payload[..]).collect()
}

fn log_with(dir: &Path, records: &[&[u8]]) -> PathBuf {
    let path = dir.join("test.log");
    let mut log = RecordLog::open(&path).expect("open").log;
    log.append(records).expect("append");
    path
}

#[test]
fn appended_records_come_back_in_order_with_their_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one", b"two"]);
    let mut log = RecordLog::open(&path).expect("reopen").log;
    log.append(&[b"three"]).expect("append");
    let recovered = RecordLog::open(&path).expect("reopen");
    assert_eq!(payloads(&recovered), [&b"one"[..], b"two", b"three"]);
    let positions: Vec<u64> = recovered.records.iter().map(|r| r.position).collect();
    assert_eq!(positions, [0, 11, 22]);
    assert_eq!(recovered.recovery.torn_tail, None);
    assert_eq!(
        recovered.log.len(),
        fs::metadata(&path).expect("stat").len()
    );
}

#[test]
fn a_torn_tail_is_cut_off_and_appends_continue_after_the_last_intact_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one", b"two"]);
    let intact = fs::read(&path).expect("read");
    // Half a frame, as a crash during an append leaves.
    let mut torn = intact.clone();
    frame::encode(b"three", &mut torn);
    torn.truncate(intact.len() + FRAME_HEADER_LEN + 2);
    fs::write(&path, &torn).expect("write");

    let mut recovered = RecordLog::open(&path).expect("open torn");
    assert_eq!(payloads(&recovered), [&b"one"[..], b"two"]);
    let torn_tail = recovered.recovery.torn_tail.expect("reported");
    assert_eq!(torn_tail.position, intact.len() as u64);
    assert_eq!(torn_tail.dropped_bytes, FRAME_HEADER_LEN as u64 + 2);
    assert_eq!(fs::read(&path).expect("read"), intact);

    recovered.log.append(&[b"four"]).expect("append");
    let reopened = RecordLog::open(&path).expect("reopen");
    assert_eq!(payloads(&reopened), [&b"one"[..], b"two", b"four"]);
}

#[test]
fn a_bad_checksum_in_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one", b"two"]);
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&path, &bytes).expect("write");
    let recovered = RecordLog::open(&path).expect("open");
    assert_eq!(payloads(&recovered), [&b"one"[..]]);
    assert!(matches!(
        recovered.recovery.torn_tail.map(|t| t.defect),
        Some(FrameDefect::ChecksumMismatch { .. })
    ));
}

#[test]
fn zero_filled_space_at_the_end_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one"]);
    let mut bytes = fs::read(&path).expect("read");
    bytes.extend_from_slice(&[0; 4096]);
    fs::write(&path, &bytes).expect("write");
    let recovered = RecordLog::open(&path).expect("open");
    assert_eq!(payloads(&recovered), [&b"one"[..]]);
    assert_eq!(recovered.recovery.valid_len, 11);
}

#[test]
fn corruption_before_intact_records_is_refused_naming_file_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one", b"two", b"three"]);
    let mut bytes = fs::read(&path).expect("read");
    // A payload byte of "two", whose frame starts at byte 11.
    bytes[11 + FRAME_HEADER_LEN] ^= 0x20;
    fs::write(&path, &bytes).expect("write");

    let error = RecordLog::open(&path).err().expect("refused");
    assert!(
        matches!(
            error,
            RecordLogError::CorruptRecord {
                position: 11,
                next_intact: 22,
                defect: FrameDefect::ChecksumMismatch { .. },
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("at byte 11"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert_eq!(fs::read(&path).expect("read"), bytes, "nothing is cut off");
}

#[test]
fn a_damaged_length_before_intact_records_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one", b"two", b"three"]);
    let mut bytes = fs::read(&path).expect("read");
    bytes[0] = 0x7f; // the first length now reaches past the end of the file
    fs::write(&path, &bytes).expect("write");
    assert!(matches!(
        RecordLog::open(&path),
        Err(RecordLogError::CorruptRecord {
            position: 0,
            next_intact: 11,
            defect: FrameDefect::PayloadCut { .. },
            ..
        })
    ));
}

#[test]
fn a_torn_append_is_cut_back_and_the_next_append_lands_after_the_last_good_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.log");
    let faults = Faults::default();
    let mut log = RecordLog::open_wrapped(&path, faults.wrapper())
        .expect("open")
        .log;
    log.append(&[b"one"]).expect("append");
    let before = fs::read(&path).expect("read");

    faults.plan().tear_next_append_after = Some(13);
    let error = log.append(&[&b"two"[..], b"three"]).expect_err("fails");
    assert!(
        matches!(error, RecordLogError::AppendFailed { len: 11, .. }),
        "{error:?}"
    );
    assert_eq!(fs::read(&path).expect("read"), before, "cut back");
    assert_eq!(log.len(), 11);

    log.append(&[b"four"]).expect("append after failure");
    let recovered = RecordLog::open(&path).expect("reopen");
    assert_eq!(payloads(&recovered), [&b"one"[..], b"four"]);
    assert_eq!(recovered.records[1].position, 11);
}

#[test]
fn a_failed_sync_is_cut_back_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.log");
    let faults = Faults::default();
    let mut log = RecordLog::open_wrapped(&path, faults.wrapper())
        .expect("open")
        .log;
    log.append(&[b"one"]).expect("append");
    faults.plan().fail_next_sync = true;
    assert!(log.append(&[b"two"]).is_err());
    log.append(&[b"three"]).expect("append");
    let recovered = RecordLog::open(&path).expect("reopen");
    assert_eq!(payloads(&recovered), [&b"one"[..], b"three"]);
}

#[test]
fn a_log_that_cannot_be_cut_back_refuses_later_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.log");
    let faults = Faults::default();
    let mut log = RecordLog::open_wrapped(&path, faults.wrapper())
        .expect("open")
        .log;
    log.append(&[b"one"]).expect("append");
    {
        let mut plan = faults.plan();
        plan.tear_next_append_after = Some(5);
        plan.fail_cut_back = true;
    }
    assert!(matches!(
        log.append(&[b"two"]),
        Err(RecordLogError::AppendFailed { .. })
    ));
    faults.plan().fail_cut_back = false;
    assert!(matches!(
        log.append(&[b"three"]),
        Err(RecordLogError::CutBackFailed { len: 11, .. })
    ));
    // The partial frame is still there: recovery treats it as a torn tail.
    let recovered = RecordLog::open(&path).expect("reopen");
    assert_eq!(payloads(&recovered), [&b"one"[..]]);
    assert!(recovered.recovery.torn_tail.is_some());
}

#[test]
fn rewrite_replaces_the_content_and_later_appends_follow_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one", b"two", b"three"]);
    let faults = Faults::default();
    let mut log = RecordLog::open_wrapped(&path, faults.wrapper())
        .expect("open")
        .log;
    log.rewrite(&[b"three"]).expect("rewrite");
    assert_eq!(log.len(), 13);
    // The new file is written through the wrapper too.
    faults.plan().tear_next_append_after = Some(3);
    assert!(log.append(&[b"lost"]).is_err());
    log.append(&[b"four"]).expect("append");
    let recovered = RecordLog::open(&path).expect("reopen");
    assert_eq!(payloads(&recovered), [&b"three"[..], b"four"]);
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["test.log"], "no temporary file is left");
}

#[test]
fn empty_records_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_with(dir.path(), &[b"one"]);
    let mut log = RecordLog::open(&path).expect("open").log;
    assert!(matches!(
        log.append(&[&b"two"[..], b""]),
        Err(RecordLogError::UnframeableRecord { len: 0, .. })
    ));
    assert_eq!(payloads(&RecordLog::open(&path).expect("reopen")), [b"one"]);
}

#[test]
fn create_writes_exactly_the_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.log");
    RecordLog::create(&path, &[&b"header"[..], b"entry"]).expect("create");
    let recovered = RecordLog::open(&path).expect("open");
    assert_eq!(payloads(&recovered), [&b"header"[..], b"entry"]);
}
