//! Properties of the decoders and recovery paths that parse bytes from the
//! network or the disk, as plain functions: the cargo-fuzz targets in
//! `fuzz/` call them with coverage-guided inputs, and `tests/` with bounded
//! random ones on stable, so CI checks the same properties the fuzzers do.
//! Each panics when its property does not hold.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;

use crate::cluster::LogEntry;
use crate::cluster::metadata::{Command, Listener, MetadataImage, SecurityProtocol};
use crate::protocol::{decode_request, split_frame};
use crate::records::{find_by_timestamp, split_batches, up_convert, verify_records};
use crate::storage::{
    BatchHeader, LeaderEpochCache, LogConfig, PartitionLog, ProducerSnapshot, crc_matches,
    latest_valid_snapshot, snapshot_path,
};

/// `data` as the only segment file of a partition left by a crash:
/// recovery keeps a prefix of whole, CRC-valid batches with consecutive
/// offsets, every offset below the recovered end is readable, and the next
/// append lands at that end.
/// Any bytes on a connection: framing then request decoding return a
/// value or an error, never panic or abort.
pub fn request_decoder(data: &[u8]) {
    let _ = decode_request(Bytes::copy_from_slice(data));
    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = split_frame(&mut stream, 1 << 20) {
        let _ = decode_request(frame);
    }
}

/// Any produced record set: validation, record verification, timestamp
/// lookup and legacy conversion accept or refuse it, never panic or abort,
/// and never spend more than the decompression cap.
pub fn batch_validator(data: &[u8]) {
    const CAP: usize = 1 << 20;
    let records = Bytes::copy_from_slice(data);
    if let Ok(batches) = split_batches(&records) {
        for (header, batch) in &batches {
            let _ = verify_records(batch, header, CAP);
            let _ = find_by_timestamp(batch, 0, 0, CAP);
        }
    }
    let _ = up_convert(&records, CAP);
}

/// `dir` is an empty directory of the caller's (a temporary one).
pub fn segment_recovery(dir: &Path, data: &[u8]) {
    std::fs::write(dir.join("00000000000000000000.log"), data).expect("write segment");
    let config = LogConfig {
        cache_bytes: 0,
        ..LogConfig::default()
    };
    let Ok(mut log) = PartitionLog::open(dir, config) else {
        return;
    };
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut kept = 0usize;
    while offset < end {
        let batches = log
            .read(offset, 1 << 20)
            .expect("recovered offsets are readable");
        assert!(
            !batches.is_empty(),
            "offset {offset} below the end {end} reads nothing"
        );
        for batch in &batches {
            assert!(crc_matches(batch), "recovery kept a batch with a bad CRC");
            let header = BatchHeader::parse(batch).expect("whole header");
            assert_eq!(
                &data[kept..kept + batch.len()],
                &batch[..],
                "not a prefix of the file"
            );
            kept += batch.len();
            offset = header.last_offset() + 1;
        }
    }
    assert_eq!(offset, end, "batches end where the log says");
    let infos = log
        .append(&[one_record_batch(end)])
        .expect("append after recovery");
    assert_eq!(infos[0].base_offset, end);
}

fn one_record_batch(offset: i64) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from_static(b"after recovery")),
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, std::iter::once(&record), &options)
        .expect("encode one record");
    out.freeze()
}

/// `checkpoint` as the `leader-epoch-checkpoint` beside `segment` (the
/// only segment file, left by a crash): the log opens; what the cache then
/// holds is monotonic, lies within the log and is what the file on disk
/// says; and a parse of the raw bytes that succeeds round-trips. Never an
/// allocation sized by the file's count.
pub fn leader_epoch_checkpoint(dir: &Path, segment: &[u8], checkpoint: &[u8]) {
    if let Ok(text) = std::str::from_utf8(checkpoint)
        && let Ok(cache) = LeaderEpochCache::from_checkpoint(text)
    {
        let again = LeaderEpochCache::from_checkpoint(&cache.to_checkpoint());
        assert_eq!(
            again.as_ref(),
            Ok(&cache),
            "a parsed checkpoint round-trips"
        );
    }
    std::fs::write(dir.join("00000000000000000000.log"), segment).expect("write segment");
    std::fs::write(dir.join("leader-epoch-checkpoint"), checkpoint).expect("write checkpoint");
    let config = LogConfig {
        cache_bytes: 0,
        ..LogConfig::default()
    };
    let Ok(log) = PartitionLog::open(dir, config) else {
        return;
    };
    let entries = log.leader_epochs().entries();
    for pair in entries.windows(2) {
        assert!(pair[0].epoch < pair[1].epoch && pair[0].start_offset < pair[1].start_offset);
    }
    if let Some(first) = entries.first() {
        assert!(first.start_offset >= log.log_start_offset());
    }
    if let Some(last) = entries.last() {
        assert!(
            last.start_offset < log.log_end_offset(),
            "no epoch past the log end"
        );
    }
    let text = std::fs::read_to_string(dir.join("leader-epoch-checkpoint")).expect("saved");
    let on_disk = LeaderEpochCache::from_checkpoint(&text).expect("a checkpoint it can read");
    assert_eq!(on_disk.entries(), entries, "the open saved what it holds");
}

/// `data` as one record of `__consumer_offsets` (its first byte says how
/// many of the next bytes are the key, the rest is the value, none a
/// tombstone): it decodes or is refused, never panics or allocates by a
/// claimed length, and a decoded record written again reads back the same.
pub fn offsets_record(data: &[u8]) {
    let Some((&key_len, rest)) = data.split_first() else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(key_len).min(rest.len()));
    let value = (!value.is_empty()).then_some(value);
    let Ok(record) = crate::group::GroupRecord::decode(Some(key), value) else {
        return;
    };
    let again = crate::group::GroupRecord::decode(Some(&record.key()), record.value().as_deref())
        .expect("a decoded record, written again, decodes");
    assert_eq!(again, record, "a decoded record round-trips");
}

/// `data` as one command log entry: it decodes or is refused, and a
/// decoded command applied to a metadata image with a broker and a topic
/// either succeeds or leaves the image exactly as it was.
pub fn metadata_command(data: &[u8]) {
    let Ok(entry) = serde_json::from_slice::<LogEntry>(data) else {
        return;
    };
    let mut image = seeded_image();
    let before = image.clone();
    if image.apply(4, &entry.command).is_err() {
        assert_eq!(image, before, "a refused command changed the image");
    }
    // Whatever was applied, the image still encodes (snapshots must work).
    serde_json::to_vec(&image).expect("image encodes");
}

fn seeded_image() -> MetadataImage {
    let mut image = image_with_live_broker();
    let topic = Command::CreateTopic {
        name: "t".into(),
        topic_id: Uuid::from_u128(7),
        configs: BTreeMap::new(),
        assignments: vec![vec![0], vec![0]],
    };
    image.apply(3, &topic).expect("seed topic");
    image
}

/// A metadata image at index 2: broker 0 registered (index 1) and
/// unfenced (index 2), so topics can be placed on it.
pub fn image_with_live_broker() -> MetadataImage {
    let mut image = MetadataImage::new("test-cluster-id-00000A");
    let register = Command::RegisterBroker {
        broker_id: 0,
        incarnation_id: Uuid::from_u128(1),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
        }],
        rack: None,
        previous_broker_epoch: None,
    };
    image.apply(1, &register).expect("broker registered");
    let unfence = Command::UnfenceBroker {
        broker_id: 0,
        broker_epoch: 1,
    };
    image.apply(2, &unfence).expect("broker unfenced");
    image
}

/// Any bytes as a producer snapshot, as they are and with their CRC made
/// right (so the counts behind it are reached): a parse that succeeds
/// re-encodes to the same bytes, and as a file in a partition directory
/// the snapshot is taken or ignored, never a panic. Never an allocation
/// sized by a count in the file.
pub fn producer_snapshot(dir: &Path, data: &[u8]) {
    let mut sealed = data.to_vec();
    if sealed.len() >= 6 {
        let crc = crc32c::crc32c(&sealed[6..]);
        sealed[2..6].copy_from_slice(&crc.to_be_bytes());
    }
    let named = data
        .get(6..14)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i64::from_be_bytes);
    for bytes in [data, &sealed[..]] {
        if let Ok(snapshot) = ProducerSnapshot::decode(bytes, named) {
            assert_eq!(snapshot.encode(), bytes, "a parsed snapshot round-trips");
        }
    }
    let offset = named.max(0);
    std::fs::write(snapshot_path(dir, offset), &sealed).expect("write snapshot");
    if let Some(snapshot) = latest_valid_snapshot(dir, i64::MAX) {
        assert_eq!(snapshot.offset, offset);
    }
}
