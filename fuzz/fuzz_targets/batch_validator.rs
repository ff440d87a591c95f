//! Any produced record set: validation and legacy conversion must accept or
//! refuse it, never panic or abort.
#![no_main]

use gregor::records::{split_batches, up_convert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let records = bytes::Bytes::copy_from_slice(data);
    let _ = split_batches(&records);
    let _ = up_convert(&records);
});
