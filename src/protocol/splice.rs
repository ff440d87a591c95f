//! An encoder output that takes record sets by reference.
//!
//! The codec writes a Fetch response's records with one `put_slice` of the
//! record bytes it was given. [`SplicingBuf`] recognises those slices (same
//! address, same length as a `Bytes` registered beforehand) and keeps the
//! `Bytes` itself as one part of the output instead of copying it, so a
//! response goes out as a few small encoded parts around the records read
//! from the log, in one vectored write.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Record sets shorter than this are copied: a part of their own would cost
/// more than the copy.
pub const MIN_SPLICE: usize = 16 * 1024;

pub struct SplicingBuf {
    /// Finished parts, in order.
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    parts_len: usize,
    /// Where small writes go.
    current: BytesMut,
    /// Buffers to take by reference when the encoder writes them.
    splices: Vec<Bytes>,
    /// Length of the shortest of `splices` (`usize::MAX` when none).
    shortest_splice: usize,
}

impl SplicingBuf {
    pub fn new(splices: Vec<Bytes>) -> Self {
        Self {
            parts: Vec::new(),
            parts_len: 0,
            current: BytesMut::with_capacity(256),
            shortest_splice: splices.iter().map(Bytes::len).min().unwrap_or(usize::MAX),
            splices,
        }
    }

    /// The encoded bytes, as parts to write in order.
    pub fn finish(mut self) -> Vec<Bytes> {
        self.close_current();
        self.parts
    }

    fn close_current(&mut self) {
        if !self.current.is_empty() {
            let part = self.current.split().freeze();
            self.parts_len += part.len();
            self.parts.push(part);
        }
    }

    /// Copies every part back into `current`: for the rare access (a length
    /// patched after the fact) that reaches into a finished part.
    fn flatten(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.parts_len + self.current.len());
        for part in self.parts.drain(..) {
            all.extend_from_slice(&part);
        }
        all.extend_from_slice(&self.current);
        self.current = all;
        self.parts_len = 0;
    }
}

// SAFETY: every method hands over to `current`, a `BytesMut`, whose own
// implementation upholds the trait's contract.
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which is
        // `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        // Every field shorter than the shortest registered buffer (all the
        // small ones the codec writes) skips the search.
        let registered = (src.len() >= self.shortest_splice)
            .then(|| {
                self.splices
                    .iter()
                    .position(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            })
            .flatten();
        match registered {
            Some(i) => {
                let part = self.splices.swap_remove(i);
                self.close_current();
                self.parts_len += part.len();
                self.parts.push(part);
            }
            None => self.current.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.parts_len + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.parts_len {
            self.flatten();
        }
        self.current.resize(offset - self.parts_len, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.parts_len {
            self.flatten();
        }
        let base = self.parts_len;
        &mut self.current[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(parts: &[Bytes]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn registered_bytes_become_parts_and_others_are_copied() {
        let records = Bytes::from(vec![7u8; 100]);
        let other = vec![9u8; 100];
        let mut buf = SplicingBuf::new(vec![records.clone()]);
        buf.put_i32(5);
        buf.put_slice(&records);
        buf.put_slice(&other);
        buf.put_u8(1);
        let parts = buf.finish();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].as_ptr(), records.as_ptr(), "not copied");
        let mut expected = vec![0, 0, 0, 5];
        expected.extend_from_slice(&records);
        expected.extend_from_slice(&other);
        expected.push(1);
        assert_eq!(joined(&parts), expected);
    }

    #[test]
    fn a_copy_of_the_same_content_is_not_mistaken_for_the_registered_bytes() {
        let records = Bytes::from(vec![7u8; 100]);
        let copy = records.to_vec();
        let mut buf = SplicingBuf::new(vec![records]);
        buf.put_slice(&copy);
        assert_eq!(buf.finish().len(), 1);
    }

    #[test]
    fn patching_before_a_spliced_part_still_lands_in_place() {
        let records = Bytes::from(vec![7u8; 8]);
        let mut buf = SplicingBuf::new(vec![records.clone()]);
        let gap = buf.put_gap(4);
        buf.put_slice(&records);
        buf.gap_buf(gap).copy_from_slice(&[1, 2, 3, 4]);
        buf.put_u8(0xff);
        assert_eq!(buf.offset(), 13);
        let mut expected = vec![1, 2, 3, 4];
        expected.extend_from_slice(&records);
        expected.push(0xff);
        assert_eq!(joined(&buf.finish()), expected);
    }
}
