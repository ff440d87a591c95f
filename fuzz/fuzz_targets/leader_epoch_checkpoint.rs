//! Any bytes as a partition's `leader-epoch-checkpoint`, the first half
//! beside a segment of the other half: see
//! `gregor::properties::leader_epoch_checkpoint`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let (checkpoint, segment) = data.split_at(data.len() / 2);
    gregor::properties::leader_epoch_checkpoint(dir.path(), segment, checkpoint);
});
