//! Walking the records inside a v2 batch without decoding them into values:
//! each record's length prefix, attributes, timestamp delta and offset delta
//! are read, the rest skipped. Compressed batches are decompressed as a
//! stream through a cap, so a small batch that expands to gigabytes is
//! refused after the cap's worth of work and a fixed amount of memory.
//!
//! This is how a produced batch is checked against its header (Kafka's
//! LogValidator refuses a batch whose records disagree with `record_count`)
//! and how a timestamp is found inside a batch. Nothing here allocates per
//! record.

use std::io::{self, BufRead, BufReader, Read};
use std::ops::ControlFlow;

use super::batch::{BATCH_HEADER_LEN, BatchHeader, COMPRESSION_MASK, RecordError};

/// What snappy-java (the Java client's codec) writes before its blocks.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;
/// Largest zstd window accepted: zstd's own default limit. The window never
/// needs to be larger than the decompressed batch, which the cap bounds.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// What is known of one record without decoding its key, value or headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    /// Whether the record has a key (a compacted topic refuses records without one).
    pub has_key: bool,
}

/// Checks that the records of `batch` (one whole v2 batch whose header is
/// `header`) number exactly `record_count`, carry offset deltas 0, 1, 2, …
/// and fill the batch exactly; compressed ones may decompress to at most
/// `max_decompressed` bytes.
pub fn verify_records(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed: usize,
) -> Result<(), RecordError> {
    let mut expected = 0i32;
    let walked = walk_records(batch, header, max_decompressed, |record| {
        if record.offset_delta != expected {
            return ControlFlow::Break(record.offset_delta);
        }
        expected += 1;
        ControlFlow::Continue(())
    })?;
    match walked {
        Walked::Stopped(found) => Err(RecordError::RecordsDisagree {
            base_offset: header.base_offset,
            reason: format!("record {expected} has offset delta {found}"),
        }),
        Walked::All => Ok(()),
    }
}

/// The first record at or after `timestamp` (and at or after `from_offset`,
/// the log start) in a stored v2 batch, as (offset, timestamp):
/// ListOffsets by time needs record precision, which
/// the batch header alone cannot give. Control batches hold no records a
/// consumer sees; with LogAppendTime every record has the batch's time.
pub fn find_by_timestamp(
    batch: &[u8],
    timestamp: i64,
    from_offset: i64,
    max_decompressed: usize,
) -> Result<Option<(i64, i64)>, RecordError> {
    let header = BatchHeader::parse(batch).ok_or(RecordError::Truncated {
        position: 0,
        needed: BATCH_HEADER_LEN,
        available: batch.len(),
    })?;
    if header.is_control() || header.max_timestamp < timestamp || header.last_offset() < from_offset
    {
        return Ok(None);
    }
    if header.is_log_append_time() {
        return Ok(Some((
            header.base_offset.max(from_offset),
            header.max_timestamp,
        )));
    }
    let walked = walk_records(batch, &header, max_decompressed, |record| {
        let at = header.base_timestamp.saturating_add(record.timestamp_delta);
        let offset = header.base_offset + i64::from(record.offset_delta);
        if at >= timestamp && offset >= from_offset {
            ControlFlow::Break((offset, at))
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(match walked {
        Walked::Stopped(found) => Some(found),
        Walked::All => None,
    })
}

/// Whether [`walk_records`] saw every record or was stopped by its callback
/// (with the value it stopped with).
#[derive(Debug, PartialEq, Eq)]
pub enum Walked<T> {
    All,
    Stopped(T),
}

/// Calls `visit` for each record of `batch` in order, until it breaks.
/// Fails if the records are malformed, fewer or more than `record_count`,
/// or decompress past `max_decompressed` bytes.
pub fn walk_records<T>(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed: usize,
    visit: impl FnMut(RecordInfo) -> ControlFlow<T>,
) -> Result<Walked<T>, RecordError> {
    let body = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    let disagree = |reason: String| RecordError::RecordsDisagree {
        base_offset: header.base_offset,
        reason,
    };
    let count = header.record_count;
    match header.attributes & COMPRESSION_MASK {
        0 => walk(&mut SliceSource { rest: body }, count, visit),
        codec => decompressed(codec, body, max_decompressed)
            .map_err(WalkError::from)
            .and_then(|reader| walk(&mut StreamSource::new(reader), count, visit)),
    }
    .map_err(|error| match error {
        WalkError::Records(reason) => disagree(reason),
        WalkError::TooLarge => RecordError::DecompressedTooLarge {
            base_offset: header.base_offset,
            limit: max_decompressed,
        },
    })
}

/// `body` compressed with Kafka's `codec` (1 gzip, 2 snappy, 3 lz4, 4 zstd),
/// as a stream that fails with `FileTooLarge` past `cap` bytes.
pub(super) fn decompressed<'a>(
    codec: i16,
    body: &'a [u8],
    cap: usize,
) -> io::Result<Box<dyn Read + 'a>> {
    let capped =
        |inner: Box<dyn Read + 'a>| -> Box<dyn Read + 'a> { Box::new(Capped { inner, left: cap }) };
    Ok(match codec {
        1 => capped(Box::new(flate2::bufread::MultiGzDecoder::new(body))),
        2 => Box::new(SnappyBlocks {
            framed: body.starts_with(XERIAL_MAGIC),
            rest: body,
            started: false,
            block: Vec::new(),
            at: 0,
            left: cap,
        }),
        3 => capped(Box::new(lz4::Decoder::new(body)?)),
        4 => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(body)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            capped(Box::new(decoder))
        }
        codec => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown compression codec {codec}"),
            ));
        }
    })
}

/// What `body`, compressed with `codec`, expands to if that is at most
/// `cap` bytes (`None` beyond); found by streaming it through a fixed buffer.
pub(super) fn decompressed_len(codec: i16, body: &[u8], cap: usize) -> io::Result<Option<u64>> {
    match decompressed(codec, body, cap).and_then(|mut r| io::copy(&mut r, &mut io::sink())) {
        Ok(len) => Ok(Some(len)),
        Err(error) if error.kind() == io::ErrorKind::FileTooLarge => Ok(None),
        Err(error) => Err(error),
    }
}

enum WalkError {
    Records(String),
    TooLarge,
}

impl From<io::Error> for WalkError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::FileTooLarge {
            WalkError::TooLarge
        } else {
            WalkError::Records(format!("cannot decompress: {error}"))
        }
    }
}

fn walk<T>(
    source: &mut impl Source,
    count: i32,
    mut visit: impl FnMut(RecordInfo) -> ControlFlow<T>,
) -> Result<Walked<T>, WalkError> {
    for index in 0..count {
        let truncated = || WalkError::Records(format!("record {index} of {count} is truncated"));
        let length = source.varint()?.ok_or_else(truncated)?;
        let length = usize::try_from(length)
            .map_err(|_| WalkError::Records(format!("record {index} has length {length}")))?;
        let before = source.consumed();
        source.byte()?.ok_or_else(truncated)?; // attributes
        let timestamp_delta = source.varlong()?.ok_or_else(truncated)?;
        let offset_delta = source.varint()?.ok_or_else(truncated)?;
        let key_length = source.varint()?.ok_or_else(truncated)?;
        let read = source.consumed() - before;
        if read > length {
            return Err(WalkError::Records(format!(
                "record {index} is shorter than its fields"
            )));
        }
        if !source.skip(length - read)? {
            return Err(truncated());
        }
        if let ControlFlow::Break(value) = visit(RecordInfo {
            offset_delta,
            timestamp_delta,
            has_key: key_length >= 0,
        }) {
            return Ok(Walked::Stopped(value));
        }
    }
    if !source.at_end()? {
        return Err(WalkError::Records(format!(
            "bytes remain after the {count} records the header declares"
        )));
    }
    Ok(Walked::All)
}

/// Where [`walk`] reads records from: the batch itself, or a decompressor.
trait Source {
    fn byte(&mut self) -> io::Result<Option<u8>>;
    /// Skips `n` bytes; false if fewer remain.
    fn skip(&mut self, n: usize) -> io::Result<bool>;
    fn at_end(&mut self) -> io::Result<bool>;
    /// Bytes read so far (only differences are used).
    fn consumed(&self) -> usize;

    /// A zigzag varint as Kafka's records use, `None` at the end of input.
    fn varlong(&mut self) -> Result<Option<i64>, WalkError> {
        let mut raw = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(byte) = self.byte()? else {
                return Ok(None);
            };
            if shift == 63 && byte > 1 {
                break;
            }
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(Some((raw >> 1) as i64 ^ -((raw & 1) as i64)));
            }
        }
        Err(WalkError::Records("varint longer than 64 bits".into()))
    }

    fn varint(&mut self) -> Result<Option<i32>, WalkError> {
        match self.varlong()? {
            Some(value) => i32::try_from(value)
                .map(Some)
                .map_err(|_| WalkError::Records(format!("varint {value} exceeds 32 bits"))),
            None => Ok(None),
        }
    }
}

struct SliceSource<'a> {
    rest: &'a [u8],
}

impl Source for SliceSource<'_> {
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let Some((&first, rest)) = self.rest.split_first() else {
            return Ok(None);
        };
        self.rest = rest;
        Ok(Some(first))
    }
    fn skip(&mut self, n: usize) -> io::Result<bool> {
        match self.rest.get(n..) {
            Some(rest) => {
                self.rest = rest;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.rest.is_empty())
    }
    fn consumed(&self) -> usize {
        // Only differences matter: count down from the end.
        usize::MAX - self.rest.len()
    }
}

/// Decompressed records through one buffer per batch, never per record.
struct StreamSource<R> {
    reader: BufReader<R>,
    consumed: usize,
}

impl<R: Read> StreamSource<R> {
    fn new(inner: R) -> Self {
        StreamSource {
            reader: BufReader::new(inner),
            consumed: 0,
        }
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let buf = self.reader.fill_buf()?;
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        self.reader.consume(1);
        self.consumed += 1;
        Ok(Some(first))
    }
    fn skip(&mut self, mut n: usize) -> io::Result<bool> {
        while n > 0 {
            let available = self.reader.fill_buf()?.len();
            if available == 0 {
                return Ok(false);
            }
            let step = available.min(n);
            self.reader.consume(step);
            self.consumed += step;
            n -= step;
        }
        Ok(true)
    }
    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.reader.fill_buf()?.is_empty())
    }
    fn consumed(&self) -> usize {
        self.consumed
    }
}

/// A reader that fails with `FileTooLarge` once more than `left` bytes
/// would come out of it.
struct Capped<R> {
    inner: R,
    left: usize,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte beyond the cap, so reaching it exactly is allowed
        // and going past it is seen.
        let want = buf.len().min(self.left.saturating_add(1));
        let n = self.inner.read(&mut buf[..want])?;
        if n > self.left {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "decompressed past the cap",
            ));
        }
        self.left -= n;
        Ok(n)
    }
}

/// Raw snappy blocks, one at a time, as a reader.
struct SnappyBlocks<'a> {
    framed: bool,
    rest: &'a [u8],
    started: bool,
    block: Vec<u8>,
    at: usize,
    left: usize,
}

impl<'a> SnappyBlocks<'a> {
    fn invalid(reason: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("snappy: {reason}"))
    }

    /// The next compressed block, `None` at the end.
    fn next_compressed(&mut self) -> io::Result<Option<&'a [u8]>> {
        if !self.framed {
            if self.started {
                return Ok(None);
            }
            self.started = true;
            return Ok(Some(std::mem::take(&mut self.rest)));
        }
        if !self.started {
            self.started = true;
            self.rest = self
                .rest
                .get(XERIAL_HEADER_LEN..)
                .ok_or_else(|| Self::invalid("short framing header"))?;
        }
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (len, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or_else(|| Self::invalid("short block length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = rest
            .get(..len)
            .ok_or_else(|| Self::invalid("block beyond the batch"))?;
        self.rest = &rest[len..];
        Ok(Some(block))
    }
}

impl Read for SnappyBlocks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            let Some(compressed) = self.next_compressed()? else {
                return Ok(0);
            };
            let len =
                snap::raw::decompress_len(compressed).map_err(|e| Self::invalid(&e.to_string()))?;
            if len > self.left {
                return Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "decompressed past the cap",
                ));
            }
            self.left -= len;
            let mut block = std::mem::take(&mut self.block);
            block.resize(len, 0);
            snap::raw::Decoder::new()
                .decompress(compressed, &mut block)
                .map_err(|e| Self::invalid(&e.to_string()))?;
            self.block = block;
            self.at = 0;
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

    use crate::records::batch::tests::record;

    fn encode(values: &[&str], compression: Compression) -> Bytes {
        let records: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| record(i as i64, v))
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.freeze()
    }

    /// Rewrites the header's count and last offset delta, with a valid CRC.
    fn forge(batch: &[u8], record_count: i32) -> Vec<u8> {
        let mut forged = batch.to_vec();
        forged[23..27].copy_from_slice(&(record_count - 1).to_be_bytes());
        forged[57..61].copy_from_slice(&record_count.to_be_bytes());
        let crc = crc32c::crc32c(&forged[21..]);
        forged[17..21].copy_from_slice(&crc.to_be_bytes());
        forged
    }

    fn verify(batch: &[u8], cap: usize) -> Result<(), RecordError> {
        verify_records(batch, &BatchHeader::parse(batch).unwrap(), cap)
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn batches_of_every_codec_agree_with_their_headers() {
        for compression in ALL {
            let batch = encode(&["a", "bb", "ccc"], compression);
            assert_eq!(verify(&batch, 1 << 20), Ok(()), "{compression:?}");
        }
    }

    #[test]
    fn a_claimed_count_beyond_the_records_is_refused_for_every_codec() {
        for compression in ALL {
            let batch = forge(&encode(&["a", "bb", "ccc"], compression), 4);
            let error = verify(&batch, 1 << 20).unwrap_err();
            assert!(
                matches!(error, RecordError::RecordsDisagree { .. }),
                "{compression:?}: {error}"
            );
            let batch = forge(&encode(&["a", "bb", "ccc"], compression), 2);
            assert!(verify(&batch, 1 << 20).is_err(), "{compression:?}");
        }
    }

    #[test]
    fn an_empty_batch_claiming_two_billion_records_is_refused() {
        let header_only = forge(
            &encode(&["a"], Compression::None)[..BATCH_HEADER_LEN],
            i32::MAX,
        );
        let mut batch = header_only;
        batch[8..12].copy_from_slice(&((BATCH_HEADER_LEN - 12) as i32).to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            verify(&batch, 1 << 20),
            Err(RecordError::RecordsDisagree { .. })
        ));
    }

    #[test]
    fn a_batch_decompressing_past_the_cap_is_refused() {
        let big = "x".repeat(200_000);
        for compression in &ALL[1..] {
            let batch = encode(&[&big, &big], *compression);
            assert_eq!(verify(&batch, 1 << 20), Ok(()), "{compression:?}");
            let error = verify(&batch, 300_000).unwrap_err();
            assert!(
                matches!(error, RecordError::DecompressedTooLarge { .. }),
                "{compression:?}: {error}"
            );
        }
    }

    #[test]
    fn timestamps_are_seen_record_by_record() {
        let batch = encode(&["a", "b", "c"], Compression::Zstd);
        let header = BatchHeader::parse(&batch).unwrap();
        let found = walk_records(&batch, &header, 1 << 20, |r| {
            if r.offset_delta == 2 {
                ControlFlow::Break(r.timestamp_delta)
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(found.unwrap(), Walked::Stopped(2));
    }
}
