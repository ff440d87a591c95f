//! Any bytes as a command log entry: see
//! `gregor::properties::metadata_command`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gregor::properties::metadata_command(data);
});
