//! Sparse offset and time indexes of one segment.
//!
//! Both indexes live in memory (a few bytes per `index_interval_bytes` of log) and are appended
//! to their files on roll, flush and close. Only entries not yet on disk are written, so a
//! flush costs O(new entries). On open they are loaded and validated against the segment; any
//! inconsistency makes the caller rebuild them by scanning the segment.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One fixed-size on-disk index entry.
pub(super) trait IndexEntry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    /// `buf` is exactly `SIZE` bytes.
    fn decode(buf: &[u8]) -> Self;
}

/// `.index` entry: the batch starting at relative offset `rel` begins at byte `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

/// `.timeindex` entry: every batch up to and including the one starting at relative offset
/// `rel` has a max timestamp `<= ts`, and `ts` is reached at or before that batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TimeEntry {
    pub ts: i64,
    pub rel: u32,
}

fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&buf[at..at + N]);
    a
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel.to_be_bytes());
        out.extend_from_slice(&self.pos.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        Self {
            rel: u32::from_be_bytes(array(buf, 0)),
            pos: u32::from_be_bytes(array(buf, 4)),
        }
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ts.to_be_bytes());
        out.extend_from_slice(&self.rel.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        Self {
            ts: i64::from_be_bytes(array(buf, 0)),
            rel: u32::from_be_bytes(array(buf, 8)),
        }
    }
}

/// In-memory sparse index with incremental persistence.
#[derive(Debug)]
pub(super) struct Index<E> {
    entries: Vec<E>,
    /// Number of leading entries known to be in the file; `None` means the file must be
    /// rewritten from scratch (new or rebuilt index).
    persisted: Option<usize>,
    /// The file content was fsynced after the last write.
    synced: bool,
}

pub(super) type OffsetIndex = Index<OffsetEntry>;
pub(super) type TimeIndex = Index<TimeEntry>;

impl<E: IndexEntry> Index<E> {
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            persisted: None,
            synced: false,
        }
    }

    /// An index whose entries were just read from its file.
    pub fn loaded(entries: Vec<E>) -> Self {
        let n = entries.len();
        Self {
            entries,
            persisted: Some(n),
            synced: true,
        }
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    pub fn push(&mut self, e: E) {
        self.entries.push(e);
    }

    /// Reads all entries of an index file. `Ok(None)` if the file is missing or its length is
    /// not a whole number of entries (the caller then rebuilds).
    pub fn read_file(path: &Path) -> std::io::Result<Option<Vec<E>>> {
        let mut buf = Vec::new();
        match std::fs::File::open(path) {
            Ok(mut f) => f.read_to_end(&mut buf)?,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if buf.len() % E::SIZE != 0 {
            return Ok(None);
        }
        Ok(Some(buf.chunks_exact(E::SIZE).map(E::decode).collect()))
    }

    /// Forgets what is on disk so the next persist rewrites the whole file.
    pub fn force_rewrite(&mut self) {
        self.persisted = None;
    }

    /// Writes entries not yet on disk to `path` (the whole index if it was never persisted),
    /// and fsyncs the file if `sync` and anything was written since the last fsync.
    pub fn persist(&mut self, path: &Path, sync: bool) -> std::io::Result<()> {
        let up_to_date = self.persisted == Some(self.entries.len());
        if up_to_date && (!sync || self.synced) {
            return Ok(());
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(self.persisted.is_none())
            .open(path)?;
        if !up_to_date {
            let from = self.persisted.unwrap_or(0);
            let mut buf = Vec::with_capacity((self.entries.len() - from) * E::SIZE);
            for e in &self.entries[from..] {
                e.encode(&mut buf);
            }
            file.write_all_at(&buf, (from * E::SIZE) as u64)?;
            // A previous incarnation may have left a longer file; cut it to what we own.
            file.set_len((self.entries.len() * E::SIZE) as u64)?;
            self.persisted = Some(self.entries.len());
            self.synced = false;
        }
        if sync {
            file.sync_data()?;
            self.synced = true;
        }
        Ok(())
    }
}

impl OffsetIndex {
    /// Largest entry whose relative offset is `<= rel`.
    pub fn floor(&self, rel: u32) -> Option<OffsetEntry> {
        let i = self.entries.partition_point(|e| e.rel <= rel);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Entries strictly increase in both offset and position and stay inside the segment.
    pub fn is_consistent(entries: &[OffsetEntry], segment_size: u64) -> bool {
        entries
            .windows(2)
            .all(|w| w[0].rel < w[1].rel && w[0].pos < w[1].pos)
            && entries.iter().all(|e| u64::from(e.pos) < segment_size)
    }
}

impl TimeIndex {
    /// Last entry whose timestamp is strictly below `ts`: every batch up to that entry's batch
    /// is older than `ts`, so a search for `ts` may start there.
    pub fn last_below(&self, ts: i64) -> Option<TimeEntry> {
        let i = self.entries.partition_point(|e| e.ts < ts);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Timestamps and offsets never decrease.
    pub fn is_consistent(entries: &[TimeEntry], max_rel: u32) -> bool {
        entries
            .windows(2)
            .all(|w| w[0].ts <= w[1].ts && w[0].rel <= w[1].rel)
            && entries.iter().all(|e| e.rel <= max_rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_floor_finds_largest_entry_not_above_target() {
        let mut idx = OffsetIndex::new();
        idx.push(OffsetEntry { rel: 10, pos: 100 });
        idx.push(OffsetEntry { rel: 20, pos: 200 });
        assert_eq!(idx.floor(5), None);
        assert_eq!(idx.floor(10), Some(OffsetEntry { rel: 10, pos: 100 }));
        assert_eq!(idx.floor(19), Some(OffsetEntry { rel: 10, pos: 100 }));
        assert_eq!(idx.floor(99), Some(OffsetEntry { rel: 20, pos: 200 }));
    }

    #[test]
    fn persist_appends_incrementally_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.timeindex");
        let mut idx = TimeIndex::new();
        idx.push(TimeEntry { ts: 5, rel: 0 });
        idx.persist(&path, false).expect("persist");
        idx.push(TimeEntry { ts: 9, rel: 3 });
        idx.persist(&path, true).expect("persist");
        let back = TimeIndex::read_file(&path).expect("read").expect("present");
        assert_eq!(back, idx.entries());
        assert_eq!(idx.last_below(9), Some(TimeEntry { ts: 5, rel: 0 }));
        assert!(TimeIndex::is_consistent(&back, 3));
        assert!(!TimeIndex::is_consistent(&back, 2));
    }

    #[test]
    fn torn_index_file_reads_as_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.index");
        std::fs::write(&path, [0u8; 7]).expect("write");
        assert!(OffsetIndex::read_file(&path).expect("read").is_none());
        assert!(
            OffsetIndex::read_file(&dir.path().join("nope"))
                .expect("read")
                .is_none()
        );
    }
}
