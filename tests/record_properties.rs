//! Properties of the record walker (batch verification and timestamp
//! lookup), the stable counterpart of the `batch_validator` fuzz target:
//! real batches of every codec agree with their headers, and batches whose
//! bytes were changed (with the CRC made valid again, as a hostile client
//! would) are refused or accepted, never panic, and never report a record
//! count other than the one the records really have.

use bytes::{Bytes, BytesMut};
use gregor::records::{BatchHeader, RecordError, find_by_timestamp, split_batches, verify_records};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;

const CAP: usize = 1 << 20;

fn encode(values: &[Vec<u8>], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + 10 * i as i64,
            key: (i % 2 == 0).then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(v.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.freeze()
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn real_batches_verify_and_find_each_timestamp(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
        compression in codec(),
    ) {
        let batch = encode(&values, compression);
        let (header, _) = split_batches(&batch).unwrap()[0].clone();
        prop_assert_eq!(verify_records(&batch, &header, CAP), Ok(()));
        let count = values.len() as i64;
        for i in 0..count {
            let wanted = 1_700_000_000_000 + 10 * i;
            prop_assert_eq!(find_by_timestamp(&batch, wanted - 5, 0, CAP), Ok(Some((i, wanted))));
            // Records below `from_offset` (the log start) do not count.
            let from = count - 1 - i;
            let at = i.max(from);
            prop_assert_eq!(
                find_by_timestamp(&batch, wanted - 5, from, CAP),
                Ok(Some((at, 1_700_000_000_000 + 10 * at)))
            );
        }
        let past = 1_700_000_000_000 + 10 * count;
        prop_assert_eq!(find_by_timestamp(&batch, past, 0, CAP), Ok(None));
        prop_assert_eq!(find_by_timestamp(&batch, 0, count, CAP), Ok(None));
    }

    #[test]
    fn changed_batches_with_a_valid_crc_never_pass_with_a_wrong_count(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..10),
        compression in codec(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut batch = encode(&values, compression).to_vec();
        for (at, byte) in edits {
            // Anything from the attributes on: the part the CRC covers.
            let at = 21 + at % (batch.len() - 21);
            batch[at] = byte;
        }
        fix_crc(&mut batch);
        let Some(header) = BatchHeader::parse(&batch) else { return Ok(()) };
        let verdict = verify_records(&batch, &header, CAP);
        let _ = find_by_timestamp(&batch, 0, 0, CAP);
        if verdict.is_ok() && header.check_structure().is_ok() {
            // What passed must decode to exactly the records it declares.
            let mut input = Bytes::from(batch.clone());
            if let Ok(set) = RecordBatchDecoder::decode(&mut input) {
                prop_assert_eq!(set.records.len(), header.record_count as usize);
            }
        }
        if let Err(error) = verdict {
            let expected = matches!(
                error,
                RecordError::RecordsDisagree { .. } | RecordError::DecompressedTooLarge { .. }
            );
            prop_assert!(expected, "unexpected error {}", error);
        }
    }
}
