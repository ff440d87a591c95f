//! Any file as a record log: recovery must open it or refuse it with a
//! mid-log corruption, never panic; what it keeps must re-encode to exactly
//! the prefix of the file it leaves on disk, and a refused file must be
//! left untouched.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use gregor::record_log::{RecordLog, RecordLogError, frame};
use libfuzzer_sys::fuzz_target;

static RUN: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!(
        "gregor-fuzz-record-log-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed) % 4
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("fuzz.log");
    std::fs::write(&path, data).expect("write input");
    match RecordLog::open(&path) {
        Ok(recovered) => {
            let payloads: Vec<&[u8]> = recovered.records.iter().map(|r| &r.payload[..]).collect();
            let mut encoded = Vec::new();
            for payload in &payloads {
                frame::encode(payload, &mut encoded);
            }
            assert!(data.starts_with(&encoded), "recovered records are a prefix");
            assert_eq!(encoded.len() as u64, recovered.recovery.valid_len);
            assert_eq!(recovered.log.len(), recovered.recovery.valid_len);
            let on_disk = std::fs::read(&path).expect("read back");
            assert_eq!(on_disk, encoded, "only the torn tail is cut off");
        }
        Err(RecordLogError::CorruptRecord {
            position,
            next_intact,
            ..
        }) => {
            assert!(position < next_intact && (next_intact as usize) < data.len());
            assert!(frame::frame_at(data, next_intact as usize).is_ok());
            let on_disk = std::fs::read(&path).expect("read back");
            assert_eq!(on_disk, data, "a refused file is left as it was");
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
    let _ = std::fs::remove_file(&path);
});
