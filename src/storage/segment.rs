//! One segment: a `.log` file of whole batches plus its in-memory sparse indexes.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::PendingBatch;
use super::batch::{BATCH_HEADER_LEN, BatchHeader};
use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::page_cache;
use super::{StorageError, segment_io};
use crate::records::whole_batches;

/// Path stem `dir/<base offset, 20 digits>` shared by a segment's files.
pub(super) fn file_stem(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}"))
}

pub(super) fn log_path(dir: &Path, base: i64) -> PathBuf {
    file_stem(dir, base).with_extension("log")
}
pub(super) fn index_path(dir: &Path, base: i64) -> PathBuf {
    file_stem(dir, base).with_extension("index")
}
pub(super) fn time_index_path(dir: &Path, base: i64) -> PathBuf {
    file_stem(dir, base).with_extension("timeindex")
}

/// A segment of the log. Invariants: `size` bytes of `file` are whole, consecutive batches
/// covering `[base_offset, next_offset)`; every index entry points at one of them.
#[derive(Debug)]
pub(super) struct Segment {
    pub dir: PathBuf,
    pub base_offset: i64,
    /// Last offset + 1 of the last batch; `base_offset` while empty.
    pub next_offset: i64,
    /// Bytes of valid batches (the file is never trusted beyond this).
    pub size: u64,
    /// Largest batch max timestamp seen, -1 while empty.
    pub max_timestamp: i64,
    /// Max timestamp of the first batch; drives time-based rolling as in Kafka.
    pub first_batch_timestamp: Option<i64>,
    /// Wall-clock time the segment was created or opened; roll fallback without timestamps.
    pub created_ms: i64,
    /// Data written since the last fsync.
    pub needs_sync: bool,
    /// Shared so a durable commit can fdatasync it without holding the log.
    pub file: Arc<File>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index: u64,
}

impl Segment {
    /// Creates a new, empty segment (truncating any stale file of that name).
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, StorageError> {
        let path = log_path(dir, base_offset);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(segment_io(&path))?;
        Ok(Self::with_file(dir, base_offset, file, now_ms))
    }

    /// An empty in-memory state around an opened file; recovery then replays its batches.
    pub fn with_file(dir: &Path, base_offset: i64, file: File, now_ms: i64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            first_batch_timestamp: None,
            created_ms: now_ms,
            needs_sync: false,
            file: Arc::new(file),
            offset_index: OffsetIndex::new(),
            time_index: TimeIndex::new(),
            bytes_since_index: 0,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        log_path(&self.dir, self.base_offset)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Offset relative to the base, as stored in indexes. Callers keep offsets in range
    /// (the log rolls before a relative offset would overflow u32).
    fn rel(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Seeds state from indexes loaded from disk, before replaying the tail after `from_pos`.
    pub fn seed_from_indexes(&mut self, offsets: OffsetIndex, times: TimeIndex) {
        if let Some(t) = times.last() {
            self.max_timestamp = t.ts;
        }
        if let Some(e) = offsets.last() {
            self.size = u64::from(e.pos);
            self.next_offset = self.base_offset + i64::from(e.rel);
        }
        self.offset_index = offsets;
        self.time_index = times;
        self.bytes_since_index = 0;
    }

    /// Resets to empty in-memory state (keeps the file) so a full rescan can rebuild it.
    pub fn reset(&mut self) {
        self.next_offset = self.base_offset;
        self.size = 0;
        self.max_timestamp = -1;
        self.first_batch_timestamp = None;
        self.offset_index = OffsetIndex::new();
        self.time_index = TimeIndex::new();
        self.bytes_since_index = 0;
    }

    /// Records that the batch `h` now occupies `[pos, pos + total_len)` of the file and
    /// maintains the sparse indexes. `pos` must equal the current size.
    pub fn note_batch(&mut self, pos: u64, h: &BatchHeader, index_interval: u64) {
        let rel = self.rel(h.base_offset);
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        if self.bytes_since_index >= index_interval && pos > 0 {
            // The guard keeps a replay from duplicating the entry it started from.
            if self.offset_index.last().is_none_or(|e| e.rel < rel) {
                self.offset_index.push(OffsetEntry {
                    rel,
                    pos: pos.min(u64::from(u32::MAX)) as u32,
                });
                if self
                    .time_index
                    .last()
                    .is_none_or(|t| t.ts < self.max_timestamp)
                {
                    self.time_index.push(TimeEntry {
                        ts: self.max_timestamp,
                        rel,
                    });
                }
            }
            self.bytes_since_index = 0;
        }
        if self.first_batch_timestamp.is_none() && pos == 0 {
            self.first_batch_timestamp = Some(h.max_timestamp);
        }
        let len = h.total_len() as u64;
        self.bytes_since_index += len;
        self.size = pos + len;
        self.next_offset = h.last_offset() + 1;
    }

    /// Writes batches at the end of the file with vectored positioned writes, each with its
    /// stamp (base offset, partition leader epoch) over its own. On failure the file is cut
    /// back so no partial batch stays behind the valid size.
    pub fn write_batches_at_end(&mut self, batches: &[PendingBatch]) -> Result<(), StorageError> {
        let headers: Vec<[u8; 16]> = batches.iter().map(|b| b.stamp.header(&b.bytes)).collect();
        let mut slices: Vec<&[u8]> = Vec::with_capacity(batches.len() * 2);
        for (batch, header) in batches.iter().zip(&headers) {
            slices.push(header);
            slices.push(&batch.bytes[16..]);
        }
        if let Err(e) = pwrite_all_vectored(&self.file, &slices, self.size) {
            let _ = self.file.set_len(self.size);
            return Err(segment_io(&self.log_path())(e));
        }
        self.needs_sync = true;
        Ok(())
    }

    /// Reads the batch header at `pos`, which must be a batch boundary within `size`.
    pub fn read_header(&self, pos: u64) -> Result<BatchHeader, StorageError> {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        if pos + BATCH_HEADER_LEN as u64 > self.size {
            return Err(self.corrupt(pos, "batch header beyond segment end"));
        }
        page_cache::read_exact_at(&self.file, &mut buf, pos)
            .map_err(segment_io(&self.log_path()))?;
        let h = BatchHeader::parse(&buf).ok_or_else(|| self.corrupt(pos, "short header"))?;
        h.check_structure().map_err(|r| self.corrupt(pos, r))?;
        if pos + h.total_len() as u64 > self.size {
            return Err(self.corrupt(pos, "batch extends beyond segment end"));
        }
        Ok(h)
    }

    fn corrupt(&self, pos: u64, reason: &str) -> StorageError {
        StorageError::CorruptBatch {
            offset: self.base_offset,
            reason: format!("{} at position {pos}: {reason}", self.log_path().display()),
        }
    }

    /// Where a forward scan guided by index `entry` starts. Only the last entry is checked on
    /// open, so an entry that does not point at its batch falls back to the segment start:
    /// slower, but never wrong.
    /// A failed read is returned, not taken for a bad entry: scanning from
    /// the start would only fail again, with a misleading warning first.
    fn scan_start(&self, entry: Option<OffsetEntry>) -> Result<u64, StorageError> {
        let Some(e) = entry else { return Ok(0) };
        let pos = u64::from(e.pos);
        match self.read_header(pos) {
            Ok(h) if h.base_offset == self.base_offset + i64::from(e.rel) => Ok(pos),
            Err(error @ StorageError::SegmentIo { .. }) => Err(error),
            _ => {
                tracing::warn!(path = %self.log_path().display(), position = pos,
                    "offset index entry does not point at its batch; scanning from start");
                Ok(0)
            }
        }
    }

    /// Position and header of the batch containing `offset`, scanning forward from the
    /// nearest index entry. `None` if no batch of this segment contains it.
    pub(super) fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let mut pos = self.scan_start(self.offset_index.floor(self.rel(offset)))?;
        while pos < self.size {
            let h = self.read_header(pos)?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` total except that the
    /// first batch is always returned whole, as one buffer trimmed to whole batches. `None` if
    /// this segment does not contain `offset`.
    pub fn read_span(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>, StorageError> {
        let Some((pos, first)) = self.locate(offset)? else {
            return Ok(None);
        };
        let available = (self.size - pos) as usize;
        let want = first.total_len().max(max_bytes.min(available));
        let buf =
            pread_exact_uninit(&self.file, want, pos).map_err(segment_io(&self.log_path()))?;
        let buf = Bytes::from(buf);
        let whole: usize = whole_batches(buf.clone()).iter().map(Bytes::len).sum();
        Ok(Some(buf.slice(..whole)))
    }

    /// First batch ending at or after `min_offset` whose max timestamp is `>= ts`, as
    /// `(base offset, max timestamp)`.
    pub fn find_timestamp(
        &self,
        ts: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp < ts {
            return Ok(None);
        }
        let entry = self
            .time_index
            .last_below(ts)
            .and_then(|t| self.offset_index.floor(t.rel));
        let mut pos = self.scan_start(entry)?;
        while pos < self.size {
            let h = self.read_header(pos)?;
            if h.max_timestamp >= ts && h.last_offset() >= min_offset {
                return Ok(Some((h.base_offset, h.max_timestamp)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Writes pending index entries; with `sync`, also fsyncs data and indexes.
    pub fn persist(&mut self, sync: bool) -> Result<(), StorageError> {
        if sync && self.needs_sync {
            self.file
                .sync_data()
                .map_err(segment_io(&self.log_path()))?;
            self.needs_sync = false;
        }
        let ip = index_path(&self.dir, self.base_offset);
        self.offset_index
            .persist(&ip, sync)
            .map_err(segment_io(&ip))?;
        let tp = time_index_path(&self.dir, self.base_offset);
        self.time_index
            .persist(&tp, sync)
            .map_err(segment_io(&tp))?;
        Ok(())
    }

    /// Cuts the file to `size` bytes (recovery found garbage after it).
    pub fn truncate_file(&mut self) -> Result<(), StorageError> {
        self.file
            .set_len(self.size)
            .map_err(segment_io(&self.log_path()))?;
        self.needs_sync = true;
        Ok(())
    }

    /// Removes the segment's files. Missing index files are fine.
    pub fn delete_files(self) -> Result<(), StorageError> {
        let log = self.log_path();
        drop(self.file);
        remove_if_exists(&log)?;
        remove_if_exists(&index_path(&self.dir, self.base_offset))?;
        remove_if_exists(&time_index_path(&self.dir, self.base_offset))
    }
}

pub(super) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(segment_io(path)(e)),
        _ => Ok(()),
    }
}

/// Reads `len` bytes at `position` into a new buffer that is never zeroed
/// first: zeroing a fetch-sized buffer only to overwrite it cost 7 % of the
/// broker's CPU while serving consumers.
fn pread_exact_uninit(file: &File, len: usize, mut position: u64) -> std::io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        let spare = &mut buf.spare_capacity_mut()[..len - filled];
        // SAFETY: `spare` is memory this Vec owns, writable for its length.
        let read = match unsafe {
            page_cache::pread(file, spare.as_mut_ptr().cast(), spare.len(), position)
        } {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        // SAFETY: the read initialized the next `read` bytes.
        unsafe { buf.set_len(filled + read) };
        position += read as u64;
    }
    Ok(buf)
}

/// Writes every slice at `position` onwards, in order, with as few `pwritev` calls as the
/// kernel allows (at most 1024 slices per call).
fn pwrite_all_vectored(file: &File, slices: &[&[u8]], mut position: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const MAX_IOV: usize = 1024;
    let mut first = 0;
    let mut skip = 0; // bytes of slices[first] already written
    while first < slices.len() {
        let iov: Vec<libc::iovec> = slices[first..]
            .iter()
            .take(MAX_IOV)
            .enumerate()
            .map(|(i, s)| {
                let s = if i == 0 { &s[skip..] } else { s };
                libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: s.len(),
                }
            })
            .collect();
        // SAFETY: every iovec points into a slice borrowed for this whole call, with its
        // exact length; the kernel only reads from them. The descriptor is owned by `file`.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                position as libc::off_t,
            )
        };
        if written < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut written = written as usize;
        position += written as u64;
        while written > 0 {
            let left = slices[first].len() - skip;
            if written >= left {
                written -= left;
                first += 1;
                skip = 0;
            } else {
                skip += written;
                written = 0;
            }
        }
    }
    Ok(())
}
