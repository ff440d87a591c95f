//! Any bytes on a connection: see `gregor::properties::request_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gregor::properties::request_decoder(data);
});
