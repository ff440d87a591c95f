//! Properties of record-log recovery, the stable counterpart of the
//! `record_log_recovery` fuzz target: any file is opened or refused, never
//! panics; what is kept re-encodes to the prefix left on disk; a torn tail
//! is all that is ever cut off; damage before intact records is refused at
//! the damaged record's position, with the file left as it was.

use gregor::record_log::{RecordLog, RecordLogError, frame};
use proptest::prelude::*;

fn encode(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for payload in payloads {
        starts.push(bytes.len());
        frame::encode(payload, &mut bytes);
    }
    (bytes, starts)
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..12)
}

/// Writes `bytes` as a log file and opens it.
fn recover(
    bytes: &[u8],
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Result<gregor::record_log::Recovered, RecordLogError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("records.log");
    std::fs::write(&path, bytes).expect("write");
    let opened = RecordLog::open(&path);
    (dir, path, opened)
}

proptest! {
    #[test]
    fn any_file_is_recovered_to_a_prefix_or_refused_untouched(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let (_dir, path, opened) = recover(&bytes);
        let on_disk = std::fs::read(&path).expect("read");
        match opened {
            Ok(recovered) => {
                let kept: Vec<Vec<u8>> =
                    recovered.records.iter().map(|r| r.payload.to_vec()).collect();
                let (encoded, starts) = encode(&kept);
                prop_assert!(bytes.starts_with(&encoded));
                prop_assert_eq!(&on_disk, &encoded);
                let positions: Vec<usize> =
                    recovered.records.iter().map(|r| r.position as usize).collect();
                prop_assert_eq!(positions, starts);
                // Nothing after the cut is an intact frame.
                for at in encoded.len()..bytes.len() {
                    prop_assert!(frame::frame_at(&bytes, at).is_err());
                }
            }
            Err(RecordLogError::CorruptRecord { position, next_intact, .. }) => {
                prop_assert!(position < next_intact);
                prop_assert!(frame::frame_at(&bytes, next_intact as usize).is_ok());
                prop_assert_eq!(&on_disk, &bytes);
            }
            Err(other) => prop_assert!(false, "unexpected error: {other}"),
        }
    }

    #[test]
    fn a_torn_last_frame_is_cut_off_and_the_rest_is_kept(
        kept in payloads(),
        last in prop::collection::vec(any::<u8>(), 1..40),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut bytes, _) = encode(&kept);
        let intact = bytes.clone();
        let mut whole = Vec::new();
        frame::encode(&last, &mut whole);
        bytes.extend_from_slice(&whole[..cut.index(whole.len())]);
        let (_dir, path, opened) = recover(&bytes);
        let recovered = opened.expect("a torn tail is recovered");
        let payloads: Vec<Vec<u8>> =
            recovered.records.iter().map(|r| r.payload.to_vec()).collect();
        prop_assert_eq!(payloads, kept);
        prop_assert_eq!(std::fs::read(&path).expect("read"), intact);
    }

    #[test]
    fn damage_before_the_last_frame_is_refused_at_the_damaged_frame(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 2..10),
        victim in any::<prop::sample::Index>(),
        byte in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let (mut bytes, starts) = encode(&records);
        let k = victim.index(records.len() - 1);
        let frame_len = starts[k + 1] - starts[k];
        bytes[starts[k] + byte.index(frame_len)] ^= flip;
        let (_dir, path, opened) = recover(&bytes);
        match opened {
            Err(RecordLogError::CorruptRecord { position, next_intact, .. }) => {
                prop_assert_eq!(position as usize, starts[k]);
                prop_assert!(next_intact as usize <= starts[k + 1]);
            }
            Err(other) => prop_assert!(false, "unexpected error: {other}"),
            Ok(recovered) => prop_assert!(
                false,
                "opened with {} of {} records",
                recovered.records.len(),
                records.len()
            ),
        }
        prop_assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }
}
