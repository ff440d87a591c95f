//! Any bytes as a partition's producer snapshot: see
//! `gregor::properties::producer_snapshot`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    gregor::properties::producer_snapshot(dir.path(), data);
});
