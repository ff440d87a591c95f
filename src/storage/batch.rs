//! Batches as the log sees them. The header reader and the CRC check are
//! the records module's; the log adds nothing but the test helper below.

pub use crate::records::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, MAGIC_V2, crc_matches};

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
