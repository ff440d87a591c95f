//! The frame format and the recovery scan: bytes in, decisions out, no I/O.
//!
//! ```text
//! u32 payload length (big-endian) | u32 crc32c(payload) (big-endian) | payload
//! ```
//!
//! A payload is never empty, so zero-filled space (a file grown by a crash
//! before its data landed) is never an intact frame.

use std::fmt;
use std::ops::Range;

/// Bytes before each payload: its length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;

/// The largest payload a frame can carry.
pub const MAX_PAYLOAD_LEN: usize = u32::MAX as usize;

/// Why the bytes at some position are not an intact frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameDefect {
    /// Fewer than [`FRAME_HEADER_LEN`] bytes remain.
    HeaderCut {
        available: usize,
    },
    /// The length field claims more bytes than the file holds.
    PayloadCut {
        length: u32,
        available: usize,
    },
    /// A zero length, which no append writes.
    EmptyPayload,
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
}

impl fmt::Display for FrameDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderCut { available } => write!(
                f,
                "only {available} of the {FRAME_HEADER_LEN} frame header bytes are present"
            ),
            Self::PayloadCut { length, available } => write!(
                f,
                "the frame claims {length} payload bytes but only {available} follow"
            ),
            Self::EmptyPayload => write!(f, "the frame has a zero length"),
            Self::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum {stored:#010x} stored, {computed:#010x} computed"
            ),
        }
    }
}

/// Appends one frame holding `payload` to `out`. The caller has checked
/// that `payload` is 1 to [`MAX_PAYLOAD_LEN`] bytes long.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_PAYLOAD_LEN);
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The payload range of the intact frame starting at `at`, or why there is
/// none. Nothing is allocated: the length is checked against what is there.
pub fn frame_at(bytes: &[u8], at: usize) -> Result<Range<usize>, FrameDefect> {
    let rest = bytes.get(at..).unwrap_or_default();
    let Some((header, after)) = rest.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(FrameDefect::HeaderCut {
            available: rest.len(),
        });
    };
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let stored = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if length == 0 {
        return Err(FrameDefect::EmptyPayload);
    }
    let Some(payload) = after.get(..length as usize) else {
        return Err(FrameDefect::PayloadCut {
            length,
            available: after.len(),
        });
    };
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(FrameDefect::ChecksumMismatch { stored, computed });
    }
    let start = at + FRAME_HEADER_LEN;
    Ok(start..start + payload.len())
}

/// What recovery makes of a file's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Position of each intact frame and its payload range, in file order.
    pub frames: Vec<(u64, Range<usize>)>,
    /// Length of the prefix the intact frames fill; the rest is a torn tail.
    pub valid_len: u64,
    /// Why the bytes at `valid_len` are not a frame, when there are any.
    pub tail_defect: Option<FrameDefect>,
}

/// A damaged frame with intact frames after it: not a torn tail, because
/// an append that was cut off leaves nothing intact behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MidLogCorruption {
    pub position: u64,
    pub defect: FrameDefect,
    /// Where the first intact frame after the damage starts.
    pub next_intact: u64,
}

/// Reads frames from the start of `bytes` until the end or the first
/// defect. A defect with no intact frame anywhere after it is a torn tail;
/// one with an intact frame after it is [`MidLogCorruption`].
pub fn scan(bytes: &[u8]) -> Result<Scan, MidLogCorruption> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match frame_at(bytes, at) {
            Ok(payload) => {
                frames.push((at as u64, payload.clone()));
                at = payload.end;
            }
            Err(defect) => {
                if let Some(next) = (at + 1..bytes.len()).find(|&n| frame_at(bytes, n).is_ok()) {
                    return Err(MidLogCorruption {
                        position: at as u64,
                        defect,
                        next_intact: next as u64,
                    });
                }
                return Ok(Scan {
                    frames,
                    valid_len: at as u64,
                    tail_defect: Some(defect),
                });
            }
        }
    }
    Ok(Scan {
        frames,
        valid_len: at as u64,
        tail_defect: None,
    })
}
