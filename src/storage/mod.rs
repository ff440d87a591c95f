//! Per-partition append-only log storage.
//!
//! This module knows Kafka v2 record batches and offsets, nothing else: records are never
//! decoded, and nothing here is async. The broker owns one [`PartitionLog`] per partition.
//!
//! # On-disk layout of one partition directory (e.g. `data/topic-0/`)
//!
//! - `<base>.log`: concatenated record batches whose first batch has base offset `<base>`
//!   (zero-padded to 20 digits, as Kafka names them).
//! - `<base>.index`: sparse offset index, 8-byte entries `relative offset u32 BE, file position u32 BE`.
//! - `<base>.timeindex`: sparse time index, 12-byte entries `max timestamp so far i64 BE,
//!   relative base offset u32 BE`.
//! - `recovery-point`: decimal offset below which all data is known to be fsynced.
//! - `log-start-offset`: decimal log start offset (survives retention and DeleteRecords).
//! - `cleaner-offset-checkpoint`: decimal offset where the log cleaner's last clean ended.
//! - `leader-epoch-checkpoint`: where each leader epoch starts, in Kafka's format (see the
//!   `leader_epoch` module); rebuilt from the batches when missing or unusable.
//! - `<offset>.snapshot`: producer state after the batches below `<offset>`, written at segment
//!   roll and clean shutdown (see the `producer_snapshot` module); deleted with the segments
//!   below it and when the log is cut back past it.
//! - `<base>.log.cleaned`, `<base>.log.swap`: a compacted segment on its way in (see
//!   the `cleaner` module); recovery deletes the first and finishes the second.
//!
//! Offsets within and between segments may have gaps once a compacted log was cleaned.
//! - `.clean_shutdown`: written by [`PartitionLog::close`], deleted by [`PartitionLog::open`].
//!
//! Indexes are kept in memory and appended to their files on roll, flush and close. They are
//! validated on open and rebuilt from the segment whenever missing or inconsistent, so they are
//! never the source of truth.

mod batch;
mod cache;
mod cleaner;
mod epochs;
mod index;
mod leader_epoch;
mod log;
mod page_cache;
mod producer_snapshot;
mod recovery;
mod retention;
mod segment;
#[cfg(test)]
mod tests;
mod truncate;

use std::path::PathBuf;

#[cfg(test)]
pub(crate) use batch::test_util;
pub use batch::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, MAGIC_V2, crc_matches};
pub use cleaner::{CleanError, CleanStats, Cleanable, Cleaner};
pub use leader_epoch::{EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use log::{AppendError, AppendInfo, LogConfig, PartitionLog, SyncTicket};
pub use page_cache::cached_only;
pub use producer_snapshot::{
    ProducerSnapshot, SnapshotBatch, SnapshotError, SnapshotProducer, latest_valid_snapshot,
    snapshot_path, write_snapshot,
};

use bytes::{Bytes, BytesMut};

/// The header fields the log writes over a batch's own as it stores it:
/// the base offset (bytes 0..8) and the partition leader epoch (bytes
/// 12..16). Neither is covered by the batch's CRC-32C, which starts at the
/// attributes (byte 21), so stamping them never touches the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStamp {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
}

impl BatchStamp {
    /// The first 16 bytes of `batch` once stamped: base offset, the batch's
    /// own length field, partition leader epoch.
    pub(crate) fn header(&self, batch: &[u8]) -> [u8; 16] {
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&self.base_offset.to_be_bytes());
        header[8..12].copy_from_slice(&batch[8..12]);
        header[12..].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        header
    }
}

/// A batch on its way into the log: `bytes` as the client sent it, whose
/// base offset and partition leader epoch are replaced by `stamp`'s when
/// written. Appending never copies the batch to stamp it.
#[derive(Debug, Clone)]
pub struct PendingBatch {
    pub stamp: BatchStamp,
    pub bytes: Bytes,
}

impl PendingBatch {
    /// A batch written exactly as it is (a follower copying its leader).
    /// `None` when `bytes` is shorter than a v2 header.
    pub fn verbatim(bytes: Bytes) -> Option<Self> {
        let header = BatchHeader::parse(&bytes)?;
        Some(PendingBatch {
            stamp: BatchStamp {
                base_offset: header.base_offset,
                partition_leader_epoch: header.partition_leader_epoch,
            },
            bytes,
        })
    }
}

/// Bytes read from the log, ready to send once `stamp` (if any) is written
/// over its fields: a batch the cache holds as the client sent it carries
/// the offset and leader epoch it was given here; a span read from a
/// segment file (one or more whole batches) is exact and carries `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stamp: Option<BatchStamp>,
    pub bytes: Bytes,
}

impl LogChunk {
    /// An exact span of whole batches.
    pub fn exact(bytes: Bytes) -> Self {
        LogChunk { stamp: None, bytes }
    }

    /// The base offset of the chunk's first batch.
    pub fn base_offset(&self) -> Option<i64> {
        match self.stamp {
            Some(stamp) => Some(stamp.base_offset),
            None => BatchHeader::parse(&self.bytes).map(|h| h.base_offset),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends the exact bytes to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        match self.stamp {
            Some(stamp) => {
                out.extend_from_slice(&stamp.header(&self.bytes));
                out.extend_from_slice(&self.bytes[16..]);
            }
            None => out.extend_from_slice(&self.bytes),
        }
    }

    /// The exact bytes; a copy only when the stamp must be written.
    pub fn into_bytes(self) -> Bytes {
        match self.stamp {
            None => self.bytes,
            Some(_) => {
                let mut out = BytesMut::with_capacity(self.bytes.len());
                self.write_to(&mut out);
                out.freeze()
            }
        }
    }
}

/// The exact bytes of `chunks`, copied only when there is more than one
/// chunk or an offset to set.
pub fn concat_chunks(mut chunks: Vec<LogChunk>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().map(LogChunk::into_bytes).unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(chunks.iter().map(LogChunk::len).sum());
    for chunk in &chunks {
        chunk.write_to(&mut out);
    }
    out.freeze()
}

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Reading, writing, syncing or deleting a segment or index file failed.
    #[error("I/O error on segment file {path}: {source}")]
    SegmentIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing a checkpoint/marker file or the log directory itself failed.
    #[error("I/O error on log metadata {path}: {source}")]
    LogDirIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A batch stored on disk did not pass validation where it was expected to be intact.
    #[error("corrupt batch at offset {offset}: {reason}")]
    CorruptBatch { offset: i64, reason: String },
    /// A batch handed to `append` is not a well-formed v2 batch.
    #[error("malformed batch passed to append: {reason}")]
    MalformedBatch { reason: String },
    /// A batch handed to `append` does not start at the next offset of the log.
    #[error("batch base offset {found} does not continue the log at {expected}")]
    NonConsecutiveOffset { expected: i64, found: i64 },
    /// A flush of this log failed earlier, so it serves nothing until it is
    /// recovered from disk at the next start.
    #[error("log is offline after a failed flush; restart to recover it")]
    Offline,
    /// The requested offset is outside `[log_start, log_end]`.
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
}

/// Maps an `io::Error` on a segment/index file to [`StorageError::SegmentIo`].
pub(crate) fn segment_io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::SegmentIo { path, source }
}

/// Maps an `io::Error` on a metadata file or the directory to [`StorageError::LogDirIo`].
pub(crate) fn log_dir_io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::LogDirIo { path, source }
}
