//! Any record of `__consumer_offsets`: see `gregor::properties::offsets_record`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gregor::properties::offsets_record(data);
});
