//! Any bytes as the only segment of a partition left by a crash (no clean
//! marker): see `gregor::properties::segment_recovery`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    gregor::properties::segment_recovery(dir.path(), data);
});
