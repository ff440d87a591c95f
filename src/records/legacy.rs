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

fn legacy_error(reason: impl std::fmt::Display) -> RecordError {
    RecordError::LegacyFormat {
        reason: reason.to_string(),
    }
}

/// Converts a legacy message set into one uncompressed v2 batch with
/// offsets 0..n (the broker assigns real ones on append).
pub fn up_convert(records: &Bytes) -> Result<Bytes, RecordError> {
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
pub fn down_convert(batches: &[Bytes], magic: i8) -> Result<Bytes, RecordError> {
    let options = RecordEncodeOptions {
        version: magic,
        compression: Compression::None,
    };
    let mut out = BytesMut::new();
    for batch in batches {
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

/// The first record at or after `timestamp` in a stored v2 batch, as
/// (offset, timestamp). ListOffsets by time needs record precision, which
/// the batch header alone cannot give; this is off the hot path.
pub fn find_by_timestamp(batch: &Bytes, timestamp: i64) -> Result<Option<(i64, i64)>, RecordError> {
    let mut input = batch.clone();
    let set = RecordBatchDecoder::decode(&mut input).map_err(legacy_error)?;
    Ok(set
        .records
        .iter()
        .filter(|r| !r.control)
        .find(|r| r.timestamp >= timestamp)
        .map(|r| (r.offset, r.timestamp)))
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

        let v2 = up_convert(&legacy.freeze()).unwrap();
        let batches = split_batches(&v2).unwrap();
        assert_eq!(batches[0].0.record_count, 2);

        let mut stored = BytesMut::new();
        assign_offsets(&mut stored, &v2, 10, None);
        let back = down_convert(&[stored.freeze()], 1).unwrap();
        let decoded = decode_all(back);
        let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![10, 11]);
        assert_eq!(decoded[1].value.as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn down_conversion_to_magic_zero_keeps_values() {
        let back = down_convert(&[v2_batch(&["a", "b", "c"])], 0).unwrap();
        let decoded = decode_all(back);
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[2].value.as_deref(), Some(&b"c"[..]));
    }
}
