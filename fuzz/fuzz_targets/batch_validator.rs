//! Any produced record set: validation, record verification, timestamp
//! lookup and legacy conversion must accept or refuse it, never panic or
//! abort, and never spend more than the decompression cap.
#![no_main]

use gregor::records::{find_by_timestamp, split_batches, up_convert, verify_records};
use libfuzzer_sys::fuzz_target;

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let records = bytes::Bytes::copy_from_slice(data);
    if let Ok(batches) = split_batches(&records) {
        for (header, batch) in &batches {
            let _ = verify_records(batch, header, CAP);
            let _ = find_by_timestamp(batch, 0, CAP);
        }
    }
    let _ = up_convert(&records, CAP);
});
