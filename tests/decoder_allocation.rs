//! A count or length on the wire costs what the frame carries, not what it
//! claims: hostile frames fail to decode, and no single allocation made
//! while decoding them reaches [`SMALL`].
//!
//! The proof is a global allocator of this test binary's own that records
//! the largest request per thread. For that reason this file decodes with
//! `kafka_protocol` directly (the patched crate under patches/, the one the
//! broker links) and never names `gregor`, whose library installs mimalloc
//! as the global allocator; the calls are the ones `protocol::decode_request`
//! and `records::up_convert` make.
//!
//! Against kafka-protocol 0.15.1 as published every hostile case here aborts
//! the test binary with "memory allocation of N bytes failed".

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// What a decode of a few dozen hostile bytes may allocate at once.
const SMALL: usize = 1 << 20;

/// Requests above this are refused outright (the process then aborts, as it
/// would in the broker), so that the unpatched decoder fails this test fast
/// instead of zero-filling gigabytes first.
const REFUSED: usize = 64 << 20;

/// Records the largest single allocation made on the current thread.
struct LargestAllocation;

thread_local! {
    // `const` and `Cell<usize>`: no lazy initialisation and no destructor,
    // so the allocator can touch it without allocating.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) -> bool {
    // `try_with` fails only while the thread is being torn down.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
    size <= REFUSED
}

// SAFETY: every call is forwarded to `System` with the caller's layout and
// pointer unchanged; refusing a request by returning null is allowed.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Runs `f` and returns its result with the largest allocation it made.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|largest| largest.set(0));
    let result = f();
    (result, LARGEST.with(Cell::get))
}

/// Decodes a frame (no size prefix) as the broker does: header, then body.
fn decode_request(frame: &[u8]) -> anyhow::Result<RequestKind> {
    let mut buf = Bytes::copy_from_slice(frame);
    let api_key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
        .map_err(|()| anyhow::anyhow!("unknown api key"))?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    RequestHeader::decode(&mut buf, api_key.request_header_version(version))?;
    RequestKind::decode(api_key, &mut buf, version)
}

fn assert_refused_cheaply(what: &str, frame: &[u8], decode: impl FnOnce(&[u8]) -> bool) {
    let (failed, largest) = largest_allocation(|| decode(frame));
    assert!(failed, "{what}: a hostile frame decoded");
    assert!(
        largest < SMALL,
        "{what}: largest allocation {largest} bytes for a {}-byte frame",
        frame.len()
    );
}

#[test]
fn create_topics_claiming_i32_max_topics_fails_without_a_huge_allocation() {
    // The 14-byte CreateTopics v4 that killed the broker: header v1 with a
    // null client id, then a topics array count of 2^31-1 and nothing else.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::CreateTopics as i16);
    frame.put_i16(4);
    frame.put_i32(7);
    frame.put_i16(-1);
    frame.put_i32(i32::MAX);
    assert_eq!(frame.len(), 14);
    assert_refused_cheaply("CreateTopics v4", &frame, |f| decode_request(f).is_err());
}

#[test]
fn compact_array_claiming_u32_max_minus_one_elements_fails_without_a_huge_allocation() {
    // CreateTopics v5 is flexible: header v2 (client id, empty tagged
    // fields), then a compact array whose varint u32::MAX means
    // u32::MAX - 1 elements.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::CreateTopics as i16);
    frame.put_i16(5);
    frame.put_i32(7);
    frame.put_i16(1);
    frame.put_slice(b"x");
    frame.put_u8(0);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_refused_cheaply("CreateTopics v5", &frame, |f| decode_request(f).is_err());
}

#[test]
fn compact_string_claiming_four_gigabytes_fails_without_a_huge_allocation() {
    // Metadata v12, topics: one element whose topic id is followed by a
    // compact string length of u32::MAX - 1. Names decode as `StrBytes`,
    // which 0.15.1 already checked before slicing (only the `String`
    // decoders, unused by the generated messages, allocated first); this
    // keeps it that way.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(12);
    frame.put_i32(7);
    frame.put_i16(-1);
    frame.put_u8(0);
    frame.put_u8(2);
    frame.put_slice(&[0; 16]);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_refused_cheaply("Metadata v12", &frame, |f| decode_request(f).is_err());
}

fn record(headers: usize) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: (0..headers)
            .map(|i| {
                (
                    StrBytes::from_string(format!("h{i}")),
                    Some(Bytes::from_static(b"x")),
                )
            })
            .collect(),
    }
}

fn encode_batch(records: &[Record], compression: Compression) -> BytesMut {
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut out, records, &options).unwrap();
    out
}

/// Recomputes a v2 batch's CRC-32C (it covers everything from byte 21 on),
/// so an edited batch gets past the checksum to the field under test.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn decode_batch(batch: &[u8]) -> bool {
    RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch)).is_err()
}

#[test]
fn record_claiming_i32_max_headers_fails_without_a_huge_allocation() {
    let mut batch = encode_batch(&[record(1)], Compression::None).to_vec();
    // The record ends with its one header: key "h0" (length varint, 2
    // bytes), value "x" (length varint, 1 byte), 5 bytes in all; before
    // them sits the header count, zigzag varint 1 (0x02). Replace it by
    // i32::MAX (5 varint bytes) and grow the record's size varint, at the
    // start of the records, by the 4 extra bytes.
    let count_at = batch.len() - 6;
    assert_eq!(batch[count_at], 0x02);
    batch.splice(count_at..=count_at, [0xfe, 0xff, 0xff, 0xff, 0x0f]);
    let size_at = 61;
    let size = batch[size_at] as usize / 2;
    batch[size_at] = ((size + 4) * 2) as u8;
    let batch_length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    fix_crc(&mut batch);
    assert_refused_cheaply("record headers", &batch, decode_batch);
}

#[test]
fn batch_claiming_i32_max_records_fails_without_a_huge_allocation() {
    let mut batch = encode_batch(&[record(0)], Compression::None).to_vec();
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    fix_crc(&mut batch);
    assert_refused_cheaply("record count", &batch, decode_batch);
}

#[test]
fn snappy_batch_claiming_four_gigabytes_fails_without_a_huge_allocation() {
    // The records section of a snappy batch starts with the uncompressed
    // length as a varint; claim u32::MAX over a few bytes of input.
    let mut batch = encode_batch(&[record(0)], Compression::Snappy).to_vec();
    batch.truncate(61);
    batch.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00]);
    let batch_length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    fix_crc(&mut batch);
    assert_refused_cheaply("snappy length", &batch, decode_batch);
}

#[test]
fn honest_batches_still_decode_and_the_allocator_sees_them() {
    // The bound must not change what decodes: a batch with many records,
    // each with headers, in every compression the broker may store.
    let records: Vec<Record> = (0..500)
        .map(|i| {
            let mut r = record(3);
            r.offset = i;
            r.sequence = i as i32 - 1;
            r
        })
        .collect();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = encode_batch(&records, compression).freeze();
        let (set, largest) =
            largest_allocation(|| RecordBatchDecoder::decode(&mut batch.clone()).unwrap());
        assert_eq!(set.records.len(), 500, "{compression:?}");
        assert_eq!(set.records[499].headers.len(), 3, "{compression:?}");
        // The instrument works: 500 records are worth more than a page.
        assert!(largest > 4096, "{compression:?}: largest {largest}");
    }
}

/// Not an allocation property, but the same decoder: a header whose value
/// is null (length -1, as Kafka and the crate's own encoder write it)
/// decodes as null. Upstream 0.15.1 refused it, so every record carrying
/// one failed down-conversion for old clients.
#[test]
fn null_header_values_decode_as_null() {
    let mut with_null = record(1);
    with_null
        .headers
        .insert(StrBytes::from_static_str("trace"), None);
    let batch = encode_batch(&[with_null], Compression::None);
    let set = RecordBatchDecoder::decode(&mut batch.freeze()).expect("decodes");
    let headers = &set.records[0].headers;
    assert_eq!(
        headers.get(&StrBytes::from_static_str("trace")),
        Some(&None)
    );
    assert_eq!(
        headers.get(&StrBytes::from_static_str("h0")),
        Some(&Some(Bytes::from_static(b"x")))
    );
}
