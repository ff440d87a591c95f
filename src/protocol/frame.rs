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
    /// What a TLS client's first bytes look like to a plaintext listener.
    #[error(
        "the first bytes look like a TLS handshake; is an SSL client connecting to a PLAINTEXT listener?"
    )]
    TlsHandshake,
}

/// The size prefix of the frame at the front of `buf`, once all four bytes
/// are there, checked against `limit` and never trusted further.
pub fn frame_size(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let size = i32::from_be_bytes(*prefix);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    if size as usize > limit {
        // A TLS record: content type 22 (handshake), version 3.x.
        if let [0x16, 0x03, 0x00..=0x04, _] = prefix {
            return Err(FrameError::TlsHandshake);
        }
        return Err(FrameError::Oversized { size, limit });
    }
    Ok(Some(size as usize))
}

/// Takes one complete frame off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed — the normal case on a
/// stream. The size prefix is checked against `limit`, and nothing is
/// reserved for the rest of the frame: memory follows the bytes that
/// arrive (see [`FrameReader`]), so a hostile size prefix costs nothing.
pub fn split_frame(buf: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(size) = frame_size(buf, limit)? else {
        return Ok(None);
    };
    if buf.len() < 4 + size {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

/// The read side of a connection: bytes as they arrive, and the frames in
/// them.
///
/// Memory follows the bytes received, not the sizes claimed: the buffer
/// grows geometrically as a frame arrives (at most twice what it holds,
/// never past the frame's declared end), so a client
/// that claims 100 MiB and sends 4 KiB costs at most
/// [`FrameReader::FIRST_STEP`] of address space, of which only the 4 KiB is touched. An emptied buffer is
/// dropped, so an idle connection holds no buffer at all and a finished
/// large request does not stay pinned by its connection.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    limit: usize,
}

impl FrameReader {
    /// The smallest read offered to the socket.
    pub const MIN_READ: usize = 16 * 1024;
    /// How much of a frame's declared size is provided for in one step
    /// once its prefix has arrived: a typical produce request (up to
    /// `message.max.bytes`, about 1 MiB) is read without regrowing.
    pub const FIRST_STEP: usize = 1024 * 1024;

    /// `limit` is `socket.request.max.bytes`.
    pub fn new(limit: usize) -> Self {
        FrameReader {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// The declared size of the front frame, once its prefix has arrived.
    pub fn front_size(&self) -> Result<Option<usize>, FrameError> {
        frame_size(&self.buf, self.limit)
    }

    /// Takes the front frame if it has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let frame = split_frame(&mut self.buf, self.limit)?;
        if self.buf.is_empty() {
            // Drop the rest of the allocation instead of keeping it (and
            // through it the frame just taken) alive.
            self.buf = BytesMut::new();
        }
        Ok(frame)
    }

    /// Bytes received that are not yet part of a taken frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Makes room for the next read and returns the buffer to read into.
    pub fn read_space(&mut self) -> &mut BytesMut {
        let len = self.buf.len();
        let wanted = match self.still_needed() {
            0 => Self::MIN_READ,
            missing => missing.min(Self::MIN_READ),
        };
        if self.buf.capacity() - len >= wanted {
            return &mut self.buf;
        }
        let frame_end = match self.front_size() {
            Ok(Some(size)) if 4 + size > len => 4 + size,
            _ => 0,
        };
        let doubled = (len * 2).max(len + Self::MIN_READ);
        let target = if frame_end > 0 {
            // Never past the frame's end, but a first step of up to
            // FIRST_STEP of it at once.
            doubled.max(Self::FIRST_STEP.min(frame_end)).min(frame_end)
        } else {
            doubled
        };
        let mut grown = BytesMut::with_capacity(target);
        grown.extend_from_slice(&self.buf);
        self.buf = grown;
        &mut self.buf
    }

    /// Bytes still missing from the front frame (0 when unknown).
    fn still_needed(&self) -> usize {
        match self.front_size() {
            Ok(Some(size)) => (4 + size).saturating_sub(self.buf.len()),
            _ => 0,
        }
    }
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

    /// Feeds `bytes` to the reader the way a socket would: into the space
    /// it offers, at most `chunk` at a time.
    fn feed(reader: &mut FrameReader, mut bytes: &[u8], chunk: usize) {
        while !bytes.is_empty() {
            let space = reader.read_space();
            let n = chunk.min(bytes.len()).min(space.capacity() - space.len());
            assert!(n > 0, "read_space offered no room");
            space.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
    }

    fn frame_of(size: usize) -> Vec<u8> {
        let mut frame = (size as i32).to_be_bytes().to_vec();
        frame.extend((0..size).map(|i| (i % 251) as u8));
        frame
    }

    #[test]
    fn a_claimed_size_costs_nothing_until_bytes_arrive() {
        let mut reader = FrameReader::new(200 * 1024 * 1024);
        feed(&mut reader, &(100 * 1024 * 1024_i32).to_be_bytes(), 4);
        feed(&mut reader, &[7; 4096], 4096);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(reader.buffered(), 4 + 4096);
        assert!(
            reader.capacity() <= FrameReader::FIRST_STEP,
            "{} bytes held for 4100 received",
            reader.capacity()
        );
    }

    #[test]
    fn buffer_grows_with_the_bytes_received_and_stops_at_the_frame_end() {
        let size = 10 * 1024 * 1024 + 123;
        let frame = frame_of(size);
        let mut reader = FrameReader::new(size);
        let mut received = 0;
        for piece in frame.chunks(64 * 1024) {
            feed(&mut reader, piece, 64 * 1024);
            received += piece.len();
            // At most twice what arrived (or the first step), never past
            // the declared end.
            assert!(reader.capacity() <= (2 * received).max(FrameReader::FIRST_STEP));
            assert!(reader.capacity() <= frame.len());
            if received < frame.len() {
                assert_eq!(reader.next_frame(), Ok(None));
            }
        }
        let taken = reader.next_frame().unwrap().unwrap();
        assert_eq!(&taken[..], &frame[4..]);
        // The emptied reader gives its memory back.
        assert_eq!((reader.buffered(), reader.capacity()), (0, 0));
    }

    #[test]
    fn pipelined_frames_in_one_read_come_out_in_order() {
        let mut bytes = frame_of(10);
        bytes.extend(frame_of(0));
        bytes.extend(frame_of(3000));
        bytes.extend(&frame_of(50)[..20]);
        let mut reader = FrameReader::new(1 << 20);
        feed(&mut reader, &bytes, bytes.len());
        let sizes: Vec<usize> = std::iter::from_fn(|| reader.next_frame().unwrap())
            .map(|f| f.len())
            .collect();
        assert_eq!(sizes, [10, 0, 3000]);
        assert_eq!(reader.front_size(), Ok(Some(50)));
        assert_eq!(reader.buffered(), 20);
        feed(&mut reader, &frame_of(50)[20..], 1);
        assert_eq!(reader.next_frame().unwrap().unwrap().len(), 50);
    }

    #[test]
    fn oversized_prefix_is_refused_before_growing() {
        let mut reader = FrameReader::new(1000);
        feed(&mut reader, &1001_i32.to_be_bytes(), 4);
        assert_eq!(
            reader.next_frame(),
            Err(FrameError::Oversized {
                size: 1001,
                limit: 1000
            })
        );
        assert!(reader.capacity() <= FrameReader::MIN_READ);
    }

    #[test]
    fn negative_prefix_is_refused() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(FrameError::NegativeSize { size: -2 })
        );
    }

    #[test]
    fn a_tls_client_hello_on_a_plaintext_listener_is_named() {
        // A ClientHello's record header, as a TLS client sends it first.
        assert_eq!(
            frame_size(&[0x16, 0x03, 0x01, 0x02, 0x00], 1 << 20),
            Err(FrameError::TlsHandshake)
        );
    }
}
