//! Any produced record set: see `gregor::properties::batch_validator`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gregor::properties::batch_validator(data);
});
