//! Any bytes on a connection: framing then request decoding must return
//! a value or an error, never panic or abort.
#![no_main]

use bytes::BytesMut;
use gregor::protocol::{decode_request, split_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_request(bytes::Bytes::copy_from_slice(data));
    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = split_frame(&mut stream, 1 << 20) {
        let _ = decode_request(frame);
    }
});
