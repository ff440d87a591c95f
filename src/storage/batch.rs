//! Reading the fixed header of Kafka v2 record batches. Records themselves are never decoded.

/// Size of the fixed v2 batch header, up to and including `recordCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength` (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format this log stores.
pub const MAGIC_V2: i8 = 2;
/// Offset of the first byte covered by the CRC (attributes).
const CRC_START: usize = 21;

/// The fixed fields of a v2 record batch, big-endian on the wire.
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

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&buf[at..at + N]);
    a
}

impl BatchHeader {
    /// Parses the header from the start of `buf`. Returns `None` if `buf` is shorter than
    /// [`BATCH_HEADER_LEN`]. No field is validated; see [`BatchHeader::check_structure`].
    pub fn parse(buf: &[u8]) -> Option<Self> {
        if buf.len() < BATCH_HEADER_LEN {
            return None;
        }
        Some(Self {
            base_offset: i64::from_be_bytes(be(buf, 0)),
            batch_length: i32::from_be_bytes(be(buf, 8)),
            partition_leader_epoch: i32::from_be_bytes(be(buf, 12)),
            magic: i8::from_be_bytes(be(buf, 16)),
            crc: u32::from_be_bytes(be(buf, 17)),
            attributes: i16::from_be_bytes(be(buf, 21)),
            last_offset_delta: i32::from_be_bytes(be(buf, 23)),
            base_timestamp: i64::from_be_bytes(be(buf, 27)),
            max_timestamp: i64::from_be_bytes(be(buf, 35)),
            producer_id: i64::from_be_bytes(be(buf, 43)),
            producer_epoch: i16::from_be_bytes(be(buf, 51)),
            base_sequence: i32::from_be_bytes(be(buf, 53)),
            record_count: i32::from_be_bytes(be(buf, 57)),
        })
    }

    /// Total size of the batch on disk, including baseOffset and batchLength.
    /// Only meaningful after [`BatchHeader::check_structure`] succeeded.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Checks everything that can be checked without the batch body: the length covers at least
    /// the header, magic is 2, and offsets/counts are not negative.
    pub fn check_structure(&self) -> Result<(), &'static str> {
        if (self.batch_length as i64) < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
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
}

/// True if the CRC-32C stored in the header of `batch` matches bytes `[21..]`.
/// `batch` must be one whole batch; shorter input than a header never matches.
pub fn crc_matches(batch: &[u8]) -> bool {
    match BatchHeader::parse(batch) {
        Some(h) => crc32c::crc32c(&batch[CRC_START..]) == h.crc,
        None => false,
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use bytes::{BufMut, Bytes, BytesMut};

    /// Builds a valid v2 batch with `count` records (opaque filler bytes of `payload` length),
    /// the given base offset and timestamps, and a correct CRC-32C.
    pub(crate) fn make_batch(base_offset: i64, count: i32, payload: usize, max_ts: i64) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i64(base_offset);
        b.put_i32(0); // patched below
        b.put_i32(0); // partition leader epoch
        b.put_i8(2);
        b.put_u32(0); // crc, patched below
        b.put_i16(0);
        b.put_i32(count - 1);
        b.put_i64(max_ts - 1);
        b.put_i64(max_ts);
        b.put_i64(-1);
        b.put_i16(-1);
        b.put_i32(-1);
        b.put_i32(count);
        for i in 0..payload {
            b.put_u8((i % 251) as u8);
        }
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::make_batch;
    use super::*;

    #[test]
    fn parses_header_fields_and_validates_crc() {
        let b = make_batch(42, 3, 10, 1_000);
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 44);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.max_timestamp, 1_000);
        assert_eq!(h.record_count, 3);
        assert!(h.check_structure().is_ok());
        assert!(crc_matches(&b));
        let mut bad = b.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(!crc_matches(&bad));
    }

    #[test]
    fn base_offset_is_not_covered_by_crc() {
        let b = make_batch(0, 1, 5, 1);
        let mut patched = b.to_vec();
        patched[0..8].copy_from_slice(&99i64.to_be_bytes());
        assert!(crc_matches(&patched));
    }

    #[test]
    fn short_buffer_has_no_header() {
        assert!(BatchHeader::parse(&[0u8; 60]).is_none());
    }
}
