//! Reading keys out of stored batches and rewriting a batch without some of
//! its records: what the log cleaner does to a compacted topic.
//!
//! A rewritten batch keeps everything Kafka keeps: its base offset and last
//! offset delta (so offsets never move, and the gaps left by removed records
//! are visible to readers as in Kafka), producer id, epoch and base
//! sequence, partition leader epoch and codec. Its record count, max
//! timestamp (CreateTime), length and CRC are recomputed.
//!
//! Tombstones (records with a null value) follow KIP-534: the first time the
//! cleaner rewrites a batch that keeps a tombstone, the batch gets a delete
//! horizon (`now + delete.retention.ms`) in its base timestamp, flagged by
//! attribute bit 6, and its records' timestamp deltas are rewritten so every
//! record keeps its timestamp. A later clean after the horizon drops the
//! tombstones.

use std::io::Read;

use super::batch::{BATCH_HEADER_LEN, BatchHeader, COMPRESSION_MASK, RecordError};
use super::compression::compress_into;
use super::walk::decompressed;

/// Attribute bit saying the base timestamp is the batch's delete horizon.
pub const DELETE_HORIZON_BIT: i16 = 0x40;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;

/// One record of a batch, borrowed from the (decompressed) records.
struct RecordRef<'a> {
    /// The whole record, its length prefix included.
    whole: &'a [u8],
    attributes: u8,
    timestamp_delta: i64,
    /// Everything after the timestamp delta: offset delta, key, value, headers.
    after_timestamp: &'a [u8],
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    is_tombstone: bool,
}

/// How tombstones are treated by [`filter_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TombstoneRules {
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
}

/// What became of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtered {
    /// Every record stays and nothing needs rewriting: copy the batch as is.
    Unchanged,
    /// No record stays: the batch disappears.
    Removed,
    /// The batch, rewritten, was appended to the output.
    Rewritten,
}

/// The outcome of [`filter_batch`]: what became of the batch, and when the
/// tombstones it keeps may go (the next clean worth doing for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterOutcome {
    pub filtered: Filtered,
    pub delete_horizon: Option<i64>,
    pub records_removed: u32,
}

/// Buffers reused from batch to batch, so filtering allocates per batch at
/// most (and only while a buffer grows), never per record.
#[derive(Debug, Default)]
pub struct FilterScratch {
    records: Vec<u8>,
    kept: Vec<u8>,
    keep: Vec<bool>,
}

/// Calls `visit(key, offset)` for each keyed record of a stored batch, in
/// offset order. Control batches hold no keys a compacted topic dedupes.
pub fn for_each_key(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed: usize,
    scratch: &mut FilterScratch,
    mut visit: impl FnMut(&[u8], i64),
) -> Result<(), RecordError> {
    if header.is_control() {
        return Ok(());
    }
    let records = std::mem::take(&mut scratch.records);
    let records = load_records(batch, header, max_decompressed, records)?;
    let result = each_record(&records, header, |r| {
        if let Some(key) = r.key {
            visit(key, header.base_offset + i64::from(r.offset_delta));
        }
    });
    scratch.records = records;
    result
}

/// Calls `visit(key, value, offset)` for each record of a stored batch, in
/// offset order (`None`: a null key or value). Control batches are skipped.
/// What `visit` is lent lives in `scratch` and is reused for the next batch.
pub fn for_each_record(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed: usize,
    scratch: &mut FilterScratch,
    mut visit: impl FnMut(Option<&[u8]>, Option<&[u8]>, i64),
) -> Result<(), RecordError> {
    if header.is_control() {
        return Ok(());
    }
    let records = std::mem::take(&mut scratch.records);
    let records = load_records(batch, header, max_decompressed, records)?;
    let result = each_record(&records, header, |r| {
        visit(
            r.key,
            r.value,
            header.base_offset + i64::from(r.offset_delta),
        );
    });
    scratch.records = records;
    result
}

/// Filters the records of a stored batch: a keyed record stays if
/// `latest(key, offset)` says it is the latest of its key (a tombstone only
/// until its batch's delete horizon has passed); a record without a key
/// never stays. A rewritten batch is appended to `out`.
pub fn filter_batch(
    batch: &[u8],
    header: &BatchHeader,
    rules: TombstoneRules,
    max_decompressed: usize,
    scratch: &mut FilterScratch,
    out: &mut Vec<u8>,
    mut latest: impl FnMut(&[u8], i64) -> bool,
) -> Result<FilterOutcome, RecordError> {
    if header.is_control() {
        return Ok(FilterOutcome {
            filtered: Filtered::Unchanged,
            delete_horizon: None,
            records_removed: 0,
        });
    }
    let records = std::mem::take(&mut scratch.records);
    let records = load_records(batch, header, max_decompressed, records)?;
    let result = filter_loaded(&records, header, rules, scratch, out, &mut latest);
    scratch.records = records;
    result
}

fn filter_loaded(
    records: &[u8],
    header: &BatchHeader,
    rules: TombstoneRules,
    scratch: &mut FilterScratch,
    out: &mut Vec<u8>,
    latest: &mut impl FnMut(&[u8], i64) -> bool,
) -> Result<FilterOutcome, RecordError> {
    let horizon = (header.attributes & DELETE_HORIZON_BIT != 0).then_some(header.base_timestamp);
    let tombstones_expired = horizon.is_some_and(|h| h <= rules.now_ms);
    // Once a horizon is set, record deltas are relative to it.
    let base_timestamp = header.base_timestamp;
    scratch.keep.clear();
    let (mut kept, mut kept_tombstone, mut max_timestamp) = (0u32, false, i64::MIN);
    each_record(records, header, |r| {
        let offset = header.base_offset + i64::from(r.offset_delta);
        let stays = match r.key {
            Some(key) => latest(key, offset) && !(r.is_tombstone && tombstones_expired),
            None => false,
        };
        if stays {
            kept += 1;
            kept_tombstone |= r.is_tombstone;
            max_timestamp = max_timestamp.max(base_timestamp.saturating_add(r.timestamp_delta));
        }
        scratch.keep.push(stays);
    })?;
    let total = scratch.keep.len() as u32;
    let set_horizon = kept_tombstone && horizon.is_none();
    let delete_horizon = if set_horizon {
        Some(rules.now_ms.saturating_add(rules.delete_retention_ms))
    } else if kept_tombstone {
        horizon
    } else {
        None
    };
    let outcome = |filtered| FilterOutcome {
        filtered,
        delete_horizon,
        records_removed: total - kept,
    };
    if kept == 0 {
        return Ok(outcome(Filtered::Removed));
    }
    if kept == total && !set_horizon {
        return Ok(outcome(Filtered::Unchanged));
    }
    let new_base = delete_horizon
        .filter(|_| set_horizon)
        .unwrap_or(base_timestamp);
    scratch.kept.clear();
    let mut index = 0;
    let keep = std::mem::take(&mut scratch.keep);
    each_record(records, header, |r| {
        if keep[index] {
            if new_base == base_timestamp {
                scratch.kept.extend_from_slice(r.whole);
            } else {
                let at = base_timestamp.saturating_add(r.timestamp_delta);
                write_record(&mut scratch.kept, &r, at.saturating_sub(new_base));
            }
        }
        index += 1;
    })?;
    scratch.keep = keep;
    let log_append_time = header.attributes & TIMESTAMP_TYPE_BIT != 0;
    let mut rewritten = *header;
    if set_horizon {
        rewritten.attributes |= DELETE_HORIZON_BIT;
    }
    rewritten.base_timestamp = new_base;
    rewritten.record_count = kept as i32;
    if !log_append_time {
        rewritten.max_timestamp = max_timestamp;
    }
    write_batch(&rewritten, &scratch.kept, out)?;
    Ok(outcome(Filtered::Rewritten))
}

/// Appends a batch with `header`'s fields (length and CRC computed) and
/// `records`, compressed with the header's codec.
fn write_batch(header: &BatchHeader, records: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
    let start = out.len();
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // batch length, below
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(header.magic as u8);
    out.extend_from_slice(&[0; 4]); // crc, below
    out.extend_from_slice(&header.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&header.record_count.to_be_bytes());
    match header.attributes & COMPRESSION_MASK {
        0 => out.extend_from_slice(records),
        codec => compress_into(codec, records, out).map_err(|error| {
            out.truncate(start);
            RecordError::RecordsDisagree {
                base_offset: header.base_offset,
                reason: format!("cannot compress cleaned records: {error}"),
            }
        })?,
    }
    let length = (out.len() - start - super::batch::LOG_OVERHEAD) as i32;
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + 21..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Appends `r` with a new timestamp delta (its length prefix recomputed).
fn write_record(out: &mut Vec<u8>, r: &RecordRef<'_>, timestamp_delta: i64) {
    let mut delta = [0u8; 10];
    let delta_len = put_varlong(&mut delta, timestamp_delta);
    let body = 1 + delta_len + r.after_timestamp.len();
    let mut length = [0u8; 10];
    let length_len = put_varlong(&mut length, body as i64);
    out.extend_from_slice(&length[..length_len]);
    out.push(r.attributes);
    out.extend_from_slice(&delta[..delta_len]);
    out.extend_from_slice(r.after_timestamp);
}

/// The records of a batch: its body, or the body decompressed into `buf`
/// (at most `max_decompressed` bytes).
fn load_records(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed: usize,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, RecordError> {
    let body = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    buf.clear();
    match header.attributes & COMPRESSION_MASK {
        0 => buf.extend_from_slice(body),
        codec => {
            let read = decompressed(codec, body, max_decompressed)
                .and_then(|mut reader| reader.read_to_end(&mut buf));
            if let Err(error) = read {
                return Err(if error.kind() == std::io::ErrorKind::FileTooLarge {
                    RecordError::DecompressedTooLarge {
                        base_offset: header.base_offset,
                        limit: max_decompressed,
                    }
                } else {
                    RecordError::RecordsDisagree {
                        base_offset: header.base_offset,
                        reason: format!("cannot decompress: {error}"),
                    }
                });
            }
        }
    }
    Ok(buf)
}

/// Calls `visit` for each of the `record_count` records in `records`.
fn each_record<'a>(
    records: &'a [u8],
    header: &BatchHeader,
    mut visit: impl FnMut(RecordRef<'a>),
) -> Result<(), RecordError> {
    let mut rest = records;
    for index in 0..header.record_count {
        let record = next_record(&mut rest).map_err(|reason| RecordError::RecordsDisagree {
            base_offset: header.base_offset,
            reason: format!("record {index}: {reason}"),
        })?;
        visit(record);
    }
    Ok(())
}

/// Reads the record at the start of `rest` and moves `rest` past it.
fn next_record<'a>(rest: &mut &'a [u8]) -> Result<RecordRef<'a>, &'static str> {
    let start = *rest;
    let length = varlong(rest)?;
    let length = usize::try_from(length).map_err(|_| "negative length")?;
    let prefix = start.len() - rest.len();
    let body = rest.get(..length).ok_or("truncated")?;
    let whole = &start[..prefix + length];
    *rest = &rest[length..];
    let mut fields = body;
    let (&attributes, tail) = fields.split_first().ok_or("truncated")?;
    fields = tail;
    let timestamp_delta = varlong(&mut fields)?;
    let after_timestamp = fields;
    let offset_delta = i32::try_from(varlong(&mut fields)?).map_err(|_| "offset delta")?;
    let key = bytes_field(&mut fields)?;
    let value = bytes_field(&mut fields)?;
    Ok(RecordRef {
        whole,
        attributes,
        timestamp_delta,
        after_timestamp,
        offset_delta,
        key,
        value,
        is_tombstone: value.is_none(),
    })
}

/// A varint-length-prefixed byte field; `None` for length -1.
fn bytes_field<'a>(rest: &mut &'a [u8]) -> Result<Option<&'a [u8]>, &'static str> {
    let length = varlong(rest)?;
    if length < 0 {
        return Ok(None);
    }
    let length = usize::try_from(length).map_err(|_| "length")?;
    let field = rest.get(..length).ok_or("truncated field")?;
    *rest = &rest[length..];
    Ok(Some(field))
}

/// A zigzag varint (Kafka's record encoding).
fn varlong(rest: &mut &[u8]) -> Result<i64, &'static str> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, tail) = rest.split_first().ok_or("truncated varint")?;
        *rest = tail;
        if shift == 63 && byte > 1 {
            break;
        }
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err("varint longer than 64 bits")
}

/// Writes `value` zigzag-encoded into `buf`; returns the bytes used.
fn put_varlong(buf: &mut [u8; 10], value: i64) -> usize {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 0;
    loop {
        if raw < 0x80 {
            buf[n] = raw as u8;
            return n + 1;
        }
        buf[n] = (raw as u8 & 0x7f) | 0x80;
        raw >>= 7;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    };

    use super::*;
    use crate::records::batch::tests::record;
    use crate::records::crc_matches;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// A batch at `base` of `(key, value)` records; `None` value = tombstone.
    fn batch(base: i64, records: &[(&str, Option<&str>)], compression: Compression) -> Bytes {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                producer_id: 7,
                producer_epoch: 1,
                ..record(base + i as i64, "")
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.freeze()
    }

    fn decode(bytes: &[u8]) -> Vec<Record> {
        let mut buf = Bytes::copy_from_slice(bytes);
        RecordBatchDecoder::decode(&mut buf).unwrap().records
    }

    // Close to the records' timestamps: the kafka-protocol crate these tests
    // decode with reads timestamp deltas as 32-bit (Kafka's are varlongs).
    const RULES: TombstoneRules = TombstoneRules {
        now_ms: 1_700_000_010_000,
        delete_retention_ms: 1000,
    };

    #[test]
    fn keys_are_read_from_every_codec() {
        for compression in ALL {
            let b = batch(10, &[("a", Some("1")), ("b", None)], compression);
            let h = BatchHeader::parse(&b).unwrap();
            let mut seen = Vec::new();
            for_each_key(&b, &h, 1 << 20, &mut FilterScratch::default(), |k, o| {
                seen.push((k.to_vec(), o))
            })
            .unwrap();
            assert_eq!(seen, vec![(b"a".to_vec(), 10), (b"b".to_vec(), 11)]);
        }
    }

    #[test]
    fn keys_and_values_are_read_from_every_codec() {
        for compression in ALL {
            let b = batch(10, &[("a", Some("1")), ("b", None)], compression);
            let h = BatchHeader::parse(&b).unwrap();
            let mut seen = Vec::new();
            for_each_record(&b, &h, 1 << 20, &mut FilterScratch::default(), |k, v, o| {
                seen.push((k.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec), o))
            })
            .unwrap();
            assert_eq!(
                seen,
                vec![
                    (Some(b"a".to_vec()), Some(b"1".to_vec()), 10),
                    (Some(b"b".to_vec()), None, 11)
                ]
            );
        }
    }

    #[test]
    fn superseded_records_go_and_the_rest_keep_offsets_producer_and_codec() {
        for compression in ALL {
            let b = batch(
                100,
                &[("a", Some("1")), ("b", Some("2")), ("a", Some("3"))],
                compression,
            );
            let h = BatchHeader::parse(&b).unwrap();
            let mut out = Vec::new();
            let outcome = filter_batch(
                &b,
                &h,
                RULES,
                1 << 20,
                &mut FilterScratch::default(),
                &mut out,
                |k, o| !(k == b"a" && o == 100),
            )
            .unwrap();
            assert_eq!(outcome.filtered, Filtered::Rewritten, "{compression:?}");
            assert_eq!(outcome.records_removed, 1);
            assert!(crc_matches(&out));
            let nh = BatchHeader::parse(&out).unwrap();
            assert_eq!(nh.total_len(), out.len());
            assert_eq!((nh.base_offset, nh.last_offset()), (100, 102));
            assert_eq!((nh.record_count, nh.producer_id), (2, 7));
            assert_eq!(nh.base_sequence, h.base_sequence);
            assert_eq!(nh.compression_codec(), h.compression_codec());
            let records = decode(&out);
            let got: Vec<(i64, Option<Bytes>, i64)> = records
                .iter()
                .map(|r| (r.offset, r.value.clone(), r.timestamp))
                .collect();
            assert_eq!(
                got,
                vec![
                    (101, Some(Bytes::from("2")), 1_700_000_000_101),
                    (102, Some(Bytes::from("3")), 1_700_000_000_102)
                ]
            );
            crate::records::verify_records(&out, &nh, 1 << 20)
                .expect_err("offset deltas have a gap, as Kafka's do");
        }
    }

    #[test]
    fn a_batch_whose_records_all_stay_is_unchanged_and_one_with_none_is_removed() {
        let b = batch(0, &[("a", Some("1")), ("b", Some("2"))], Compression::None);
        let h = BatchHeader::parse(&b).unwrap();
        let mut scratch = FilterScratch::default();
        let mut out = Vec::new();
        let all = filter_batch(&b, &h, RULES, 1 << 20, &mut scratch, &mut out, |_, _| true);
        assert_eq!(all.unwrap().filtered, Filtered::Unchanged);
        let none = filter_batch(&b, &h, RULES, 1 << 20, &mut scratch, &mut out, |_, _| false);
        assert_eq!(none.unwrap().filtered, Filtered::Removed);
        assert!(out.is_empty());
    }

    #[test]
    fn tombstones_get_a_delete_horizon_then_go_after_it() {
        for compression in ALL {
            let b = batch(5, &[("a", None), ("b", Some("x"))], compression);
            let h = BatchHeader::parse(&b).unwrap();
            let mut scratch = FilterScratch::default();
            let mut first = Vec::new();
            let outcome = filter_batch(&b, &h, RULES, 1 << 20, &mut scratch, &mut first, |_, _| {
                true
            })
            .unwrap();
            assert_eq!(outcome.filtered, Filtered::Rewritten);
            assert_eq!(outcome.delete_horizon, Some(RULES.now_ms + 1000));
            let fh = BatchHeader::parse(&first).unwrap();
            assert_ne!(fh.attributes & DELETE_HORIZON_BIT, 0);
            assert_eq!(fh.base_timestamp, RULES.now_ms + 1000);
            let timestamps: Vec<i64> = decode(&first).iter().map(|r| r.timestamp).collect();
            assert_eq!(timestamps, vec![1_700_000_000_005, 1_700_000_000_006]);

            // Before the horizon the batch stays as it is.
            let again = filter_batch(
                &first,
                &fh,
                RULES,
                1 << 20,
                &mut scratch,
                &mut Vec::new(),
                |_, _| true,
            );
            assert_eq!(again.unwrap().filtered, Filtered::Unchanged);

            let later = TombstoneRules {
                now_ms: RULES.now_ms + 1000,
                ..RULES
            };
            let mut second = Vec::new();
            let outcome = filter_batch(
                &first,
                &fh,
                later,
                1 << 20,
                &mut scratch,
                &mut second,
                |_, _| true,
            )
            .unwrap();
            assert_eq!(outcome.filtered, Filtered::Rewritten);
            assert_eq!(outcome.delete_horizon, None);
            let records = decode(&second);
            assert_eq!(records.len(), 1, "{compression:?}");
            assert_eq!(records[0].offset, 6);
            assert_eq!(records[0].timestamp, 1_700_000_000_006);
        }
    }

    #[test]
    fn varlongs_round_trip() {
        for value in [0, 1, -1, 63, -64, 64, 1 << 40, i64::MIN, i64::MAX] {
            let mut buf = [0u8; 10];
            let n = put_varlong(&mut buf, value);
            let mut rest = &buf[..n];
            assert_eq!(varlong(&mut rest), Ok(value));
            assert!(rest.is_empty());
        }
    }
}
