//! Length-prefixed framing: every Kafka request and response is an `i32`
//! byte count followed by that many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{FetchResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use super::splice::{MIN_SPLICE, SplicingBuf};

/// Why a connection's byte stream cannot be framed. Either one closes the
/// connection: a peer that sends these is not speaking Kafka.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size {size} is negative")]
    NegativeSize { size: i32 },
    #[error("frame size {size} exceeds socket.request.max.bytes ({limit})")]
    Oversized { size: i32, limit: usize },
}

/// Takes one complete frame off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed — the normal case on a
/// stream. The size prefix is checked against `limit` before anything is
/// reserved, so a hostile 2 GB prefix costs nothing.
pub fn split_frame(buf: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    if size as usize > limit {
        return Err(FrameError::Oversized { size, limit });
    }
    let total = 4 + size as usize;
    if buf.len() < total {
        // Reserve only up to the validated size, never more.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size as usize).freeze()))
}

/// Appends a complete response frame (size, header, body) to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    body_version: i16,
) -> anyhow::Result<()> {
    let start = out.len();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(out, header_version)?;
    body.encode(out, body_version)?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// A complete response frame as buffers to write in order. A Fetch
/// response's record sets are among them as they came from the log, not
/// copied (see [`SplicingBuf`]); any other response is one buffer.
pub fn encode_response_parts(
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    body_version: i16,
) -> anyhow::Result<Vec<Bytes>> {
    let ResponseKind::Fetch(fetch) = body else {
        let mut out = BytesMut::new();
        encode_response(&mut out, correlation_id, header_version, body, body_version)?;
        return Ok(vec![out.freeze()]);
    };
    let mut buf = SplicingBuf::new(large_record_sets(fetch));
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)?;
    fetch.encode(&mut buf, body_version)?;
    let mut parts = buf.finish();
    let size: usize = parts.iter().map(Bytes::len).sum();
    parts.insert(0, Bytes::copy_from_slice(&(size as i32).to_be_bytes()));
    Ok(parts)
}

fn large_record_sets(fetch: &FetchResponse) -> Vec<Bytes> {
    fetch
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .filter_map(|partition| partition.records.clone())
        .filter(|records| records.len() >= MIN_SPLICE)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frame_needs_more_bytes() {
        let mut buf = BytesMut::from(&[0, 0, 0, 5, 1, 2][..]);
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[3, 4, 5]);
        let frame = split_frame(&mut buf, 100).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3, 4, 5]);
        assert!(buf.is_empty());
    }

    #[test]
    fn two_gigabyte_prefix_is_refused_without_allocating() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let err = split_frame(&mut buf, 100 * 1024 * 1024).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { .. }));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn negative_prefix_is_refused() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(FrameError::NegativeSize { size: -2 })
        );
    }
}
