//! The v2 record batch header (magic 2), read in place.
//!
//! Layout (big-endian): baseOffset i64 @0, batchLength i32 @8,
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17 (CRC-32C of
//! everything from @21 on), attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
//! producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the first record of a v2 batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part `batchLength` counts (baseOffset, batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format the log stores.
pub const MAGIC_V2: i8 = 2;
/// Bytes of a legacy message or batch before its magic byte is known:
/// offset (8) + size (4) + crc/partitionLeaderEpoch (4) + magic (1).
const MAGIC_OFFSET: usize = 16;
const CRC_START: usize = 21;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
pub(super) const COMPRESSION_MASK: i16 = 0x07;

/// Why a produced record set is refused (Kafka's CORRUPT_MESSAGE or
/// INVALID_RECORD for the partition; the connection stays open).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error(
        "record set truncated: {needed} bytes needed at position {position}, {available} present"
    )]
    Truncated {
        position: usize,
        needed: usize,
        available: usize,
    },
    #[error("batch at position {position} has invalid length {length}")]
    InvalidLength { position: usize, length: i32 },
    #[error("batch at position {position} has magic {magic}; expected 2")]
    UnexpectedMagic { position: usize, magic: i8 },
    #[error(
        "batch at position {position} fails its CRC-32C check (stored {stored:#010x}, computed {computed:#010x})"
    )]
    CrcMismatch {
        position: usize,
        stored: u32,
        computed: u32,
    },
    #[error(
        "batch at position {position} claims {record_count} records but its offsets span {span}"
    )]
    CountMismatch {
        position: usize,
        record_count: i32,
        span: i64,
    },
    #[error("batch at offset {base_offset} disagrees with its records: {reason}")]
    RecordsDisagree { base_offset: i64, reason: String },
    #[error("batch at offset {base_offset} decompresses past the {limit}-byte cap")]
    DecompressedTooLarge { base_offset: i64, limit: usize },
    #[error("legacy message set cannot be read: {reason}")]
    LegacyFormat { reason: String },
    #[error("record set is empty")]
    Empty,
}

/// The fixed fields of a v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

impl BatchHeader {
    /// Reads the header at the start of `bytes`; `None` when fewer than
    /// [`BATCH_HEADER_LEN`] bytes are given. Nothing is validated here: see
    /// [`BatchHeader::check_structure`] and [`crc_matches`].
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < BATCH_HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: be_i32(bytes, 12),
            magic: bytes[MAGIC_OFFSET] as i8,
            crc: be_i32(bytes, 17) as u32,
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            record_count: be_i32(bytes, 57),
        })
    }

    /// Size of the whole batch, including baseOffset and batchLength. Only
    /// meaningful once [`BatchHeader::check_structure`] has passed.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// What can be checked without the body: the length covers at least
    /// the header, magic is 2, offsets and counts are not negative.
    pub fn check_structure(&self) -> Result<(), &'static str> {
        if i64::from(self.batch_length) < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err("batch length shorter than the v2 header");
        }
        if self.magic != MAGIC_V2 {
            return Err("magic is not 2");
        }
        if self.base_offset < 0 {
            return Err("negative base offset");
        }
        if self.last_offset_delta < 0 {
            return Err("negative last offset delta");
        }
        if self.record_count < 0 {
            return Err("negative record count");
        }
        Ok(())
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_compressed(&self) -> bool {
        self.attributes & COMPRESSION_MASK != 0
    }
    /// Kafka's codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression_codec(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence number of the last record, wrapping as Kafka's does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// True if the CRC-32C in the header of `batch` (one whole batch) matches
/// its bytes from the attributes on; input shorter than a header never does.
pub fn crc_matches(batch: &[u8]) -> bool {
    BatchHeader::parse(batch).is_some_and(|h| crc32c::crc32c(&batch[CRC_START..]) == h.crc)
}

/// Magic byte of the first entry in a record set, if there are enough bytes.
pub fn first_magic(records: &[u8]) -> Option<i8> {
    records.get(MAGIC_OFFSET).map(|&b| b as i8)
}

/// Splits a produced v2 record set into whole batches, checking each
/// batch's length, magic, CRC-32C and offset span. The returned `Bytes`
/// share the request's buffer; nothing is copied.
pub fn split_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, RecordError> {
    if records.is_empty() {
        return Err(RecordError::Empty);
    }
    let mut batches = Vec::with_capacity(1);
    let mut position = 0;
    while position < records.len() {
        let rest = &records[position..];
        if rest.len() < BATCH_HEADER_LEN {
            return Err(RecordError::Truncated {
                position,
                needed: BATCH_HEADER_LEN,
                available: rest.len(),
            });
        }
        let magic = rest[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(RecordError::UnexpectedMagic { position, magic });
        }
        let length = be_i32(rest, 8);
        let total = 12usize.saturating_add(length.max(0) as usize);
        if length < (BATCH_HEADER_LEN - 12) as i32 {
            return Err(RecordError::InvalidLength { position, length });
        }
        if rest.len() < total {
            return Err(RecordError::Truncated {
                position,
                needed: total,
                available: rest.len(),
            });
        }
        let Some(header) = BatchHeader::parse(rest) else {
            return Err(RecordError::Truncated {
                position,
                needed: BATCH_HEADER_LEN,
                available: rest.len(),
            });
        };
        let computed = crc32c::crc32c(&rest[CRC_START..total]);
        if header.crc != computed {
            return Err(RecordError::CrcMismatch {
                position,
                stored: header.crc,
                computed,
            });
        }
        let span = i64::from(header.last_offset_delta) + 1;
        if header.record_count <= 0 || span != i64::from(header.record_count) {
            return Err(RecordError::CountMismatch {
                position,
                record_count: header.record_count,
                span,
            });
        }
        batches.push((header, records.slice(position..position + total)));
        position += total;
    }
    Ok(batches)
}

/// Splits a buffer that starts at a batch boundary into whole-batch slices (no copy),
/// dropping a trailing partial batch.
pub fn whole_batches(buf: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p + LOG_OVERHEAD <= buf.len() {
        let mut len = [0u8; 4];
        len.copy_from_slice(&buf[p + 8..p + 12]);
        let total = LOG_OVERHEAD + i32::from_be_bytes(len).max(0) as usize;
        if p + total > buf.len() || total < BATCH_HEADER_LEN {
            break;
        }
        out.push(buf.slice(p..p + total));
        p += total;
    }
    out
}

/// Appends `batch` to `out` with its base offset set to `base_offset`.
///
/// The base offset lies outside the CRC, so the rest is copied verbatim.
/// With `log_append_time`, the timestamp type bit and max timestamp are set
/// as Kafka does for `message.timestamp.type=LogAppendTime`, and the CRC is
/// recomputed — the only case where the batch body changes.
pub fn assign_offsets(
    out: &mut BytesMut,
    batch: &[u8],
    base_offset: i64,
    log_append_time: Option<i64>,
) {
    let start = out.len();
    out.put_i64(base_offset);
    out.extend_from_slice(&batch[8..]);
    if let Some(now) = log_append_time {
        let b = &mut out[start..];
        let attributes = be_i16(b, 21) | TIMESTAMP_TYPE_BIT;
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        b[35..43].copy_from_slice(&now.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    pub(crate) fn record(offset: i64, value: &str) -> Record {
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32 - 1,
            timestamp: 1_700_000_000_000 + offset,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
        }
    }

    pub(crate) fn v2_batch(values: &[&str]) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| record(i as i64, v))
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.freeze()
    }

    #[test]
    fn valid_batch_is_split_without_copying() {
        let set = v2_batch(&["a", "b", "c"]);
        let batches = split_batches(&set).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].0.record_count, 3);
        assert_eq!(batches[0].1.as_ptr(), set.as_ptr());
    }

    #[test]
    fn flipped_byte_fails_the_crc() {
        let mut set = BytesMut::from(&v2_batch(&["hello"])[..]);
        let last = set.len() - 1;
        set[last] ^= 0xff;
        let err = split_batches(&set.freeze()).unwrap_err();
        assert!(matches!(err, RecordError::CrcMismatch { .. }));
    }

    #[test]
    fn truncated_batch_is_refused() {
        let set = v2_batch(&["hello"]);
        let err = split_batches(&set.slice(..set.len() - 2)).unwrap_err();
        assert!(matches!(err, RecordError::Truncated { .. }));
    }

    #[test]
    fn assigned_offset_keeps_the_crc_valid() {
        let set = v2_batch(&["x", "y"]);
        let mut out = BytesMut::new();
        assign_offsets(&mut out, &set, 42, None);
        assign_offsets(&mut out, &set, 44, Some(1_800_000_000_000));
        let batches = split_batches(&out.freeze()).unwrap();
        assert_eq!(batches[0].0.base_offset, 42);
        assert_eq!(batches[1].0.base_offset, 44);
        assert_eq!(batches[1].0.max_timestamp, 1_800_000_000_000);
    }
}
