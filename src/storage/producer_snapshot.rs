//! Producer-state snapshots: `<offset>.snapshot` files holding what the
//! idempotent-producer bookkeeping knew of every producer id after the
//! batches below `<offset>` (Kafka's `ProducerStateManager` snapshots).
//! Recovery loads the newest valid one and replays only the log after it.
//!
//! The storage layer keeps them because they live and die with the log:
//! written atomically, deleted with the segments below them and when the
//! log is cut back past them. What they mean is the broker's business.
//!
//! # Format (all big-endian), modeled on Kafka's
//!
//! ```text
//! version    i16   = 1
//! crc        u32   CRC-32C of every byte after this field
//! offset     i64   the offset in the file name
//! count      i32   producers
//! count × { producer_id i64, epoch i16, batches i8,
//!           batches × { first_sequence i32, last_sequence i32, base_offset i64 } }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use super::recovery::sync_dir;
use super::{StorageError, log_dir_io};

const VERSION: i16 = 1;
const SUFFIX: &str = ".snapshot";
/// version, crc, offset, count.
const HEADER_LEN: usize = 2 + 4 + 8 + 4;
/// producer id, epoch, batch count.
const PRODUCER_LEN: usize = 8 + 2 + 1;
const BATCH_LEN: usize = 4 + 4 + 8;

/// One batch a producer wrote, as deduplication needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

/// One producer id's state: its epoch and its last batches, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: Vec<SnapshotBatch>,
}

/// The producer state after every batch below `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub producers: Vec<SnapshotProducer>,
}

/// Why a snapshot file was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is {len} bytes, shorter than its header")]
    Truncated { len: usize },
    #[error("unknown snapshot version {version}")]
    UnknownVersion { version: i16 },
    #[error("snapshot CRC {stored:#010x} does not match its contents ({computed:#010x})")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("snapshot says offset {inside}, its file name {named}")]
    OffsetMismatch { inside: i64, named: i64 },
    #[error("snapshot counts disagree with its {len} bytes: {reason}")]
    BadLength { len: usize, reason: &'static str },
}

impl ProducerSnapshot {
    pub fn encode(&self) -> Vec<u8> {
        let batches: usize = self.producers.iter().map(|p| p.batches.len()).sum();
        let mut out = Vec::with_capacity(
            HEADER_LEN + self.producers.len() * PRODUCER_LEN + batches * BATCH_LEN,
        );
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.offset.to_be_bytes());
        let count = i32::try_from(self.producers.len()).unwrap_or(i32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for producer in self.producers.iter().take(count as usize) {
            out.extend_from_slice(&producer.producer_id.to_be_bytes());
            out.extend_from_slice(&producer.epoch.to_be_bytes());
            let kept = producer.batches.len().min(i8::MAX as usize);
            out.push(kept as u8);
            for batch in &producer.batches[producer.batches.len() - kept..] {
                out.extend_from_slice(&batch.first_sequence.to_be_bytes());
                out.extend_from_slice(&batch.last_sequence.to_be_bytes());
                out.extend_from_slice(&batch.base_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[6..]);
        out[2..6].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot file's bytes; `named` is the offset in its file
    /// name. Every count is checked against the bytes left before anything
    /// is allocated for it.
    pub fn decode(bytes: &[u8], named: i64) -> Result<Self, SnapshotError> {
        let len = bytes.len();
        if len < HEADER_LEN {
            return Err(SnapshotError::Truncated { len });
        }
        let mut reader = Reader { bytes, pos: 0 };
        let version = reader.i16();
        if version != VERSION {
            return Err(SnapshotError::UnknownVersion { version });
        }
        let stored = reader.u32();
        let computed = crc32c::crc32c(&bytes[6..]);
        if stored != computed {
            return Err(SnapshotError::CrcMismatch { stored, computed });
        }
        let offset = reader.i64();
        if offset != named {
            return Err(SnapshotError::OffsetMismatch {
                inside: offset,
                named,
            });
        }
        let count = reader.i32();
        let bad = |reason| SnapshotError::BadLength { len, reason };
        let count = usize::try_from(count).map_err(|_| bad("negative producer count"))?;
        if count > reader.left() / PRODUCER_LEN {
            return Err(bad("more producers than bytes"));
        }
        let mut producers = Vec::with_capacity(count);
        for _ in 0..count {
            if reader.left() < PRODUCER_LEN {
                return Err(bad("producer cut short"));
            }
            let producer_id = reader.i64();
            let epoch = reader.i16();
            let batch_count =
                usize::try_from(reader.i8()).map_err(|_| bad("negative batch count"))?;
            if batch_count * BATCH_LEN > reader.left() {
                return Err(bad("more batches than bytes"));
            }
            let batches = (0..batch_count)
                .map(|_| SnapshotBatch {
                    first_sequence: reader.i32(),
                    last_sequence: reader.i32(),
                    base_offset: reader.i64(),
                })
                .collect();
            producers.push(SnapshotProducer {
                producer_id,
                epoch,
                batches,
            });
        }
        if reader.left() != 0 {
            return Err(bad("bytes after the last producer"));
        }
        Ok(ProducerSnapshot { offset, producers })
    }
}

/// Reads big-endian fields; callers check the length first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[self.pos..self.pos + N]);
        self.pos += N;
        out
    }
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn i8(&mut self) -> i8 {
        i8::from_be_bytes(self.take())
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

/// `<dir>/<offset, 20 digits>.snapshot`, as Kafka names them.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

/// Writes `snapshot` atomically and durably: a temporary file, fsynced,
/// then renamed over the final name and the directory fsynced. Blocking.
pub fn write_snapshot(dir: &Path, snapshot: &ProducerSnapshot) -> Result<(), StorageError> {
    let path = snapshot_path(dir, snapshot.offset);
    let tmp = path.with_extension("snapshot.tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(&snapshot.encode())?;
        file.sync_all()
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(log_dir_io(&tmp)(error));
    }
    std::fs::rename(&tmp, &path).map_err(log_dir_io(&path))?;
    sync_dir(dir)
}

/// The offsets of the snapshot files in `dir`, ascending.
pub fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(log_dir_io(dir))? {
        let entry = entry.map_err(log_dir_io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SUFFIX)
            && stem.len() == 20
            && let Ok(offset) = stem.parse::<i64>()
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Deletes every snapshot whose offset `doomed` picks. Blocking.
pub fn delete_snapshots(dir: &Path, doomed: impl Fn(i64) -> bool) -> Result<(), StorageError> {
    let mut deleted = false;
    for offset in snapshot_offsets(dir)?.into_iter().filter(|&o| doomed(o)) {
        let path = snapshot_path(dir, offset);
        match std::fs::remove_file(&path) {
            Ok(()) => deleted = true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(log_dir_io(&path)(error)),
        }
    }
    if deleted {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The newest snapshot in `dir` that is valid for a log ending at
/// `log_end_offset`: one past the end (it describes batches a crash
/// took), or one that does not parse, is deleted with a warning and the
/// next older one is tried. Blocking.
///
/// Only while nothing else writes snapshots to `dir` (at open, or on the
/// partition's writer): temporary files left by a crash mid-write go too.
pub fn latest_valid_snapshot(dir: &Path, log_end_offset: i64) -> Option<ProducerSnapshot> {
    remove_unfinished(dir);
    let offsets = match snapshot_offsets(dir) {
        Ok(offsets) => offsets,
        Err(error) => {
            tracing::warn!(%error, "cannot list producer snapshots; rebuilding from the log");
            return None;
        }
    };
    for offset in offsets.into_iter().rev() {
        let path = snapshot_path(dir, offset);
        let why = if offset > log_end_offset {
            format!("offset past the log end {log_end_offset}")
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => match ProducerSnapshot::decode(&bytes, offset) {
                    Ok(snapshot) => return Some(snapshot),
                    Err(error) => error.to_string(),
                },
                Err(error) => error.to_string(),
            }
        };
        tracing::warn!(path = %path.display(), reason = %why, "ignoring producer snapshot");
        let _ = std::fs::remove_file(&path);
    }
    None
}

/// Removes the temporary files of snapshot writes a crash interrupted.
fn remove_unfinished(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(".snapshot.tmp")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset: i64) -> ProducerSnapshot {
        ProducerSnapshot {
            offset,
            producers: vec![
                SnapshotProducer {
                    producer_id: 7,
                    epoch: 2,
                    batches: vec![
                        SnapshotBatch {
                            first_sequence: 0,
                            last_sequence: 4,
                            base_offset: 10,
                        },
                        SnapshotBatch {
                            first_sequence: 5,
                            last_sequence: 5,
                            base_offset: 40,
                        },
                    ],
                },
                SnapshotProducer {
                    producer_id: 1 << 40,
                    epoch: 0,
                    batches: vec![],
                },
            ],
        }
    }

    #[test]
    fn snapshot_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), &sample(50)).unwrap();
        write_snapshot(dir.path(), &sample(20)).unwrap();
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![20, 50]);
        assert_eq!(latest_valid_snapshot(dir.path(), 50), Some(sample(50)));
        let empty = ProducerSnapshot::default();
        assert_eq!(ProducerSnapshot::decode(&empty.encode(), 0), Ok(empty));
    }

    #[test]
    fn corrupt_or_torn_snapshot_is_ignored_for_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), &sample(20)).unwrap();
        write_snapshot(dir.path(), &sample(50)).unwrap();
        let path = snapshot_path(dir.path(), 50);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(latest_valid_snapshot(dir.path(), 60), Some(sample(20)));
        assert!(!path.exists(), "the corrupt snapshot is deleted");

        write_snapshot(dir.path(), &sample(50)).unwrap();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        assert_eq!(latest_valid_snapshot(dir.path(), 60), Some(sample(20)));
    }

    #[test]
    fn snapshot_past_the_log_end_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), &sample(20)).unwrap();
        write_snapshot(dir.path(), &sample(50)).unwrap();
        assert_eq!(latest_valid_snapshot(dir.path(), 49), Some(sample(20)));
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![20]);
        assert_eq!(latest_valid_snapshot(dir.path(), 19), None);
    }

    #[test]
    fn snapshot_named_for_another_offset_is_refused() {
        let bytes = sample(50).encode();
        assert_eq!(
            ProducerSnapshot::decode(&bytes, 51),
            Err(SnapshotError::OffsetMismatch {
                inside: 50,
                named: 51
            })
        );
    }

    #[test]
    fn claimed_counts_larger_than_the_file_are_refused_before_allocating() {
        let mut bytes = sample(50).encode();
        bytes[14..18].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[6..]);
        bytes[2..6].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            ProducerSnapshot::decode(&bytes, 50),
            Err(SnapshotError::BadLength { .. })
        ));
        for cut in 0..bytes.len() {
            assert!(ProducerSnapshot::decode(&bytes[..cut], 50).is_err());
        }
    }

    #[test]
    fn delete_snapshots_removes_only_those_picked_and_loading_the_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [10, 20, 30] {
            write_snapshot(dir.path(), &sample(offset)).unwrap();
        }
        let unfinished = dir.path().join("00000000000000000040.snapshot.tmp");
        std::fs::write(&unfinished, b"x").unwrap();
        delete_snapshots(dir.path(), |offset| offset < 20).unwrap();
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![20, 30]);
        // A write may be under way: only loading removes unfinished files.
        assert!(unfinished.exists());
        assert_eq!(latest_valid_snapshot(dir.path(), 30), Some(sample(30)));
        assert!(!unfinished.exists());
    }
}
