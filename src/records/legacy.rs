//! Legacy message sets (magic 0 and 1), which old clients — kafka-python
//! with `api_version=(0,10,1)` among them — still send and expect back.
//!
//! gregor's log holds only v2 batches: a legacy produce is converted up once
//! on arrival, and a fetch at a version that cannot read v2 (Fetch v0–v3)
//! is converted down. Both paths decode records and are therefore kept off
//! the hot path; modern clients never reach them.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use super::RecordError;
use super::batch::{BATCH_HEADER_LEN, BatchHeader};
use super::walk::decompressed_len;

fn legacy_error(reason: impl std::fmt::Display) -> RecordError {
    RecordError::LegacyFormat {
        reason: reason.to_string(),
    }
}

/// Converts a legacy message set into one uncompressed v2 batch with
/// offsets 0..n (the broker assigns real ones on append). Compressed
/// wrapper messages may expand to `max_decompressed` bytes in all.
pub fn up_convert(records: &Bytes, max_decompressed: usize) -> Result<Bytes, RecordError> {
    check_wrapper_sizes(records, max_decompressed)?;
    let mut input = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut input).map_err(legacy_error)?;
    let mut all: Vec<Record> = sets.into_iter().flat_map(|set| set.records).collect();
    if all.is_empty() {
        return Err(RecordError::Empty);
    }
    for (index, record) in all.iter_mut().enumerate() {
        record.offset = index as i64;
        record.producer_id = -1;
        record.producer_epoch = -1;
        // The encoder starts a new batch whenever offset - sequence changes;
        // this keeps one batch and yields Kafka's "no sequence" (-1) base.
        record.sequence = index as i32 - 1;
    }
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &all, &options).map_err(legacy_error)?;
    Ok(out.freeze())
}

/// Converts stored v2 batches into an uncompressed message set of the given
/// legacy `magic`, keeping every record's offset. Control records are
/// dropped and headers are lost, as in Kafka's own down-conversion.
///
/// Compressed batches are first streamed through `max_decompressed` (they
/// passed that cap at produce; a lowered cap or an older log may not).
pub fn down_convert(
    batches: &[Bytes],
    magic: i8,
    max_decompressed: usize,
) -> Result<Bytes, RecordError> {
    let options = RecordEncodeOptions {
        version: magic,
        compression: Compression::None,
    };
    let mut out = BytesMut::new();
    for batch in batches {
        if let Some(header) = BatchHeader::parse(batch).filter(BatchHeader::is_compressed) {
            let body = &batch[BATCH_HEADER_LEN.min(batch.len())..];
            check_fits(
                header.compression_codec(),
                body,
                max_decompressed,
                header.base_offset,
            )?;
        }
        let mut input = batch.clone();
        let set = RecordBatchDecoder::decode(&mut input).map_err(legacy_error)?;
        for mut record in set.records {
            if record.control {
                continue;
            }
            record.transactional = false;
            record.headers.clear();
            let start = out.len();
            RecordBatchEncoder::encode(&mut out, std::iter::once(&record), &options)
                .map_err(legacy_error)?;
            // The encoder writes offset 0; the offset lies outside the
            // message CRC, so it can be set afterwards.
            let mut offset = BytesMut::with_capacity(8);
            offset.put_i64(record.offset);
            out[start..start + 8].copy_from_slice(&offset);
        }
    }
    Ok(out.freeze())
}

/// Refuses a legacy message set whose compressed wrapper messages expand
/// past `cap` bytes together, before the decoder materialises them.
fn check_wrapper_sizes(records: &[u8], cap: usize) -> Result<(), RecordError> {
    const LOG_OVERHEAD: usize = 12;
    let mut position = 0;
    let mut left = cap;
    while let Some(size) = records.get(position + 8..position + LOG_OVERHEAD) {
        let size = i32::from_be_bytes(size.try_into().unwrap_or_default());
        let start = position + LOG_OVERHEAD;
        let Some(message) = usize::try_from(size)
            .ok()
            .and_then(|size| records.get(start..start.checked_add(size)?))
        else {
            // A partial trailing message: the decoder refuses or ignores it.
            return Ok(());
        };
        position = start + message.len();
        // crc i32, magic i8, attributes i8, [timestamp i64 from magic 1]
        let (Some(&magic), Some(&attributes)) = (message.get(4), message.get(5)) else {
            continue;
        };
        let codec = i16::from(attributes & 0x07);
        if codec == 0 {
            continue;
        }
        let key_at = if magic >= 1 { 14 } else { 6 };
        let Some(value) = length_prefixed(message, key_at)
            .and_then(|(_, after_key)| length_prefixed(message, after_key))
            .map(|(value, _)| value)
        else {
            return Err(legacy_error("compressed wrapper message is truncated"));
        };
        let expanded = check_fits(codec, value, left, -1)?;
        // The cap is for the set as a whole.
        left -= expanded;
    }
    Ok(())
}

/// The bytes of the i32-length-prefixed field at `at` and the position
/// after it; a null (-1) field is empty.
fn length_prefixed(message: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = i32::from_be_bytes(message.get(at..at + 4)?.try_into().ok()?);
    let start = at + 4;
    let len = usize::try_from(len).unwrap_or(0);
    Some((message.get(start..start.checked_add(len)?)?, start + len))
}

/// The decompressed length of `body`, refused past `cap`.
fn check_fits(codec: i16, body: &[u8], cap: usize, base_offset: i64) -> Result<usize, RecordError> {
    match decompressed_len(codec, body, cap) {
        // At most `cap`, so it fits a usize.
        Ok(Some(len)) => Ok(len as usize),
        Ok(None) => Err(RecordError::DecompressedTooLarge {
            base_offset,
            limit: cap,
        }),
        Err(error) => Err(legacy_error(format!("cannot decompress: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::tests::{record, v2_batch};
    use super::super::{assign_offsets, split_batches};
    use super::*;

    fn decode_all(mut set: Bytes) -> Vec<Record> {
        RecordBatchDecoder::decode_all(&mut set)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.records)
            .collect()
    }

    #[test]
    fn legacy_set_round_trips_through_v2() {
        let records = vec![record(0, "one"), record(1, "two")];
        let mut legacy = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 1,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut legacy, &records, &options).unwrap();

        let v2 = up_convert(&legacy.freeze(), 1 << 20).unwrap();
        let batches = split_batches(&v2).unwrap();
        assert_eq!(batches[0].0.record_count, 2);

        let mut stored = BytesMut::new();
        assign_offsets(&mut stored, &v2, 10, None);
        let back = down_convert(&[stored.freeze()], 1, 1 << 20).unwrap();
        let decoded = decode_all(back);
        let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![10, 11]);
        assert_eq!(decoded[1].value.as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn down_conversion_to_magic_zero_keeps_values() {
        let back = down_convert(&[v2_batch(&["a", "b", "c"])], 0, 1 << 20).unwrap();
        let decoded = decode_all(back);
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[2].value.as_deref(), Some(&b"c"[..]));
    }

    /// A compacted batch's first timestamp can be its delete horizon, far
    /// from its records' own: deltas past 2^31 ms (24.8 days) are varlongs,
    /// as Kafka writes them (patches/kafka-protocol reads them so).
    #[test]
    fn down_conversion_reads_timestamp_deltas_past_32_bits() {
        const FORTY_DAYS_MS: i64 = 40 * 24 * 3600 * 1000;
        let mut old = record(0, "old");
        old.timestamp = 1_700_000_000_000;
        let mut new = record(1, "new");
        new.timestamp = old.timestamp + FORTY_DAYS_MS;
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut batch, &[old, new], &options).unwrap();
        let back = down_convert(&[batch.freeze()], 1, 1 << 20).unwrap();
        let timestamps: Vec<i64> = decode_all(back).iter().map(|r| r.timestamp).collect();
        assert_eq!(
            timestamps,
            vec![1_700_000_000_000, 1_700_000_000_000 + FORTY_DAYS_MS]
        );
    }
}
