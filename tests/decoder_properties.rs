//! The fuzz targets' properties, run on stable as bounded property tests:
//! the frame splitter, request decoder and batch validator never panic and
//! never allocate what a hostile size prefix claims, whatever bytes arrive.
//! Inputs are random bytes and mutations of real frames.

use bytes::{BufMut, Bytes, BytesMut};
use gregor::protocol::{decode_request, split_frame};
use gregor::records::split_batches;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;

fn batch(values: &[Vec<u8>]) -> Bytes {
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
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.freeze()
}

/// A real request frame body (no size prefix), as a client would send it.
fn frame(api_key: ApiKey, version: i16, body: RequestKind) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("prop")));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out.to_vec()
}

fn golden_frames() -> Vec<Vec<u8>> {
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(&[b"a".to_vec(), b"bc".to_vec()]))),
                ]),
        ]);
    vec![
        frame(ApiKey::Produce, 9, RequestKind::Produce(produce.clone())),
        frame(ApiKey::Produce, 3, RequestKind::Produce(produce)),
        frame(
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(MetadataRequest::default()),
        ),
        frame(
            ApiKey::Metadata,
            1,
            RequestKind::Metadata(MetadataRequest::default()),
        ),
    ]
}

fn mutate(mut frame: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(at, byte) in edits {
        if !frame.is_empty() {
            let at = at % frame.len();
            frame[at] = byte;
        }
    }
    frame.truncate(frame.len().saturating_sub(cut % 8));
    frame
}

/// A group metadata record of `__consumer_offsets`, framed as
/// `gregor::properties::offsets_record` reads it.
fn offsets_record() -> Vec<u8> {
    use gregor::group::records::MemberMetadata;
    use gregor::group::{GroupMetadata, GroupRecord};
    let record = GroupRecord::GroupMetadata {
        group: "g".into(),
        value: Some(GroupMetadata {
            protocol_type: "consumer".into(),
            generation_id: 3,
            protocol_name: Some("range".into()),
            leader: Some("m".into()),
            current_state_timestamp: 1,
            members: vec![MemberMetadata {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        }),
    };
    let key = record.key();
    let mut framed = vec![key.len() as u8];
    framed.extend_from_slice(&key);
    framed.extend_from_slice(&record.value().unwrap_or_default());
    framed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn offsets_records_decode_round_trip_or_are_refused(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        random in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        gregor::properties::offsets_record(&mutate(offsets_record(), &edits, cut));
        gregor::properties::offsets_record(&random);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(Bytes::from(bytes.clone()));
        let _ = split_batches(&Bytes::from(bytes));
    }

    #[test]
    fn mutated_real_frames_never_panic_the_decoder(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let frame = mutate(golden_frames()[which].clone(), &edits, cut);
        let _ = decode_request(Bytes::from(frame));
    }

    #[test]
    fn mutated_batches_are_refused_or_accepted_never_panic(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let original = batch(&values);
        prop_assert!(split_batches(&original).is_ok());
        let mutated = mutate(original.to_vec(), &edits, cut);
        let _ = split_batches(&Bytes::from(mutated));
    }

    #[test]
    fn streams_split_into_frames_without_allocating_claimed_sizes(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            while let Ok(Some(_)) = split_frame(&mut buf, 1024) {}
            prop_assert!(buf.capacity() < 64 * 1024);
        }
    }
}

#[test]
fn golden_frames_decode() {
    for frame in golden_frames() {
        assert!(decode_request(Bytes::from(frame)).is_ok());
    }
}

#[test]
fn size_prefixed_stream_of_golden_frames_splits_exactly() {
    let mut stream = BytesMut::new();
    for frame in golden_frames() {
        stream.put_i32(frame.len() as i32);
        stream.extend_from_slice(&frame);
    }
    let mut count = 0;
    while let Some(frame) = split_frame(&mut stream, 1 << 20).unwrap() {
        assert!(decode_request(frame).is_ok());
        count += 1;
    }
    assert_eq!(count, 4);
}
