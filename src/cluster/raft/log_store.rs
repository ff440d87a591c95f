//! The raft log and vote, durable on the CRC-framed record log.
//!
//! Files, in the member's raft directory:
//! - `raft.log` — a [`RecordLog`]: JSON records, each a `LogRecord`: a raft
//!   entry, or the id of the last entry purged (compacted into a snapshot).
//!   Appends are one write and one `fdatasync` before openraft hears they
//!   are flushed. Truncation (a leader overwriting an uncommitted suffix) and
//!   purging rewrite the file atomically with the entries that remain, which
//!   snapshots keep short. A torn tail is cut off at open, as the record log
//!   recovers it; an entry torn mid-append was never acknowledged.
//! - `vote` — one record: the vote, replaced atomically (temporary file,
//!   fsync, rename, directory fsync) before a vote is acknowledged.
//!
//! The entries stay in memory as well: the log is bounded by the snapshot
//! policy, and reads never touch the disk.

// openraft's storage traits return its `StorageError`, large as it is; the
// helpers here return the same so `?` carries it through unchanged.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::{MemberId, TypeConfig};
use crate::fs;
use crate::record_log::RecordLog;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";

/// One record of `raft.log`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LogRecord {
    Entry(Entry<TypeConfig>),
    Purged(LogId<MemberId>),
}

type StoreResult<T> = Result<T, StorageError<MemberId>>;

/// What readers and the writer share: the entries in memory.
#[derive(Default)]
struct Entries {
    by_index: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<MemberId>>,
}

/// The raft log store; [`LogStore::open`] recovers it from its directory.
/// Clones share the same log (openraft's log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    entries: Arc<Mutex<Entries>>,
    /// Only blocking threads lock it, for the duration of a write.
    file: Arc<Mutex<RecordLog>>,
    vote_path: PathBuf,
}

impl LogStore {
    /// Opens (creating) the log and vote files in `dir`, which must exist.
    pub fn open(dir: &Path) -> Result<Self, StorageError<MemberId>> {
        let recovered =
            RecordLog::open(&dir.join(LOG_FILE)).map_err(|e| StorageIOError::read_logs(&e))?;
        let mut entries = Entries::default();
        for record in &recovered.records {
            match serde_json::from_slice(&record.payload)
                .map_err(|e| StorageIOError::read_logs(&e))?
            {
                LogRecord::Entry(entry) => {
                    entries.by_index.insert(entry.log_id.index, entry);
                }
                LogRecord::Purged(log_id) => {
                    entries.last_purged = Some(log_id);
                    entries.by_index = entries.by_index.split_off(&(log_id.index + 1));
                }
            }
        }
        Ok(Self {
            entries: Arc::new(Mutex::new(entries)),
            file: Arc::new(Mutex::new(recovered.log)),
            vote_path: dir.join(VOTE_FILE),
        })
    }

    /// The id of every entry held, oldest first (the simulation's checker
    /// reads the logs through it).
    #[cfg(test)]
    pub(crate) fn log_ids(&self) -> Vec<LogId<MemberId>> {
        self.entries().by_index.values().map(|e| e.log_id).collect()
    }

    /// The entry at `index`, if held.
    #[cfg(test)]
    pub(crate) fn entry(&self, index: u64) -> Option<Entry<TypeConfig>> {
        self.entries().by_index.get(&index).cloned()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding it leaves only in-memory maps, each updated
        // by one call; the data in them is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `write` on the log file on a blocking thread.
    async fn with_file<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut RecordLog) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let file = Arc::clone(&self.file);
        fs::blocking(move || {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            write(&mut file)
        })
        .await
        .map_err(|e| format!("log write task failed: {e}"))?
    }

    /// Replaces the file's content with `last_purged` and `kept`, then
    /// publishes them in memory.
    async fn rewrite(
        &self,
        last_purged: Option<LogId<MemberId>>,
        kept: BTreeMap<u64, Entry<TypeConfig>>,
    ) -> StoreResult<()> {
        let mut records = Vec::with_capacity(kept.len() + 1);
        let encode =
            |r: &LogRecord| serde_json::to_vec(r).map_err(|e| StorageIOError::write_logs(&e));
        if let Some(log_id) = last_purged {
            records.push(encode(&LogRecord::Purged(log_id))?);
        }
        for entry in kept.values() {
            records.push(encode(&LogRecord::Entry(entry.clone()))?);
        }
        self.with_file(move |file| file.rewrite(&records).map_err(|e| e.to_string()))
            .await
            .map_err(|e| StorageIOError::write_logs(&std::io::Error::other(e)))?;
        let mut entries = self.entries();
        entries.last_purged = last_purged;
        entries.by_index = kept;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(i),
            Bound::Excluded(&i) => Bound::Excluded(i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(i),
            Bound::Excluded(&i) => Bound::Excluded(i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let entries = self.entries();
        Ok(entries
            .by_index
            .range((start, end))
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let entries = self.entries();
        let last_log_id = entries
            .by_index
            .last_key_value()
            .map(|(_, entry)| entry.log_id)
            .or(entries.last_purged);
        Ok(LogState {
            last_purged_log_id: entries.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> StoreResult<()> {
        let bytes = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let path = self.vote_path.clone();
        fs::blocking(move || RecordLog::create(&path, &[bytes]))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<MemberId>>> {
        let path = self.vote_path.clone();
        let read = fs::blocking(move || read_vote_file(&path))
            .await
            .map_err(|e| StorageIOError::read_vote(&e))?;
        read.map_err(|e| StorageIOError::read_vote(&std::io::Error::other(e)).into())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            let record = LogRecord::Entry(entry.clone());
            records.push(serde_json::to_vec(&record).map_err(|e| StorageIOError::write_logs(&e))?);
        }
        let written = self
            .with_file(move |file| file.append(&records).map_err(|e| e.to_string()))
            .await;
        match written {
            Ok(()) => {
                let mut held = self.entries();
                for entry in entries {
                    held.by_index.insert(entry.log_id.index, entry);
                }
                drop(held);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                let io = std::io::Error::other(error.clone());
                callback.log_io_completed(Err(io));
                Err(StorageIOError::write_logs(&std::io::Error::other(error)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<MemberId>) -> StoreResult<()> {
        let (last_purged, kept) = {
            let entries = self.entries();
            let kept: BTreeMap<_, _> = entries
                .by_index
                .range(..log_id.index)
                .map(|(i, e)| (*i, e.clone()))
                .collect();
            (entries.last_purged, kept)
        };
        self.rewrite(last_purged, kept).await
    }

    async fn purge(&mut self, log_id: LogId<MemberId>) -> StoreResult<()> {
        let kept = {
            let entries = self.entries();
            entries
                .by_index
                .range(log_id.index + 1..)
                .map(|(i, e)| (*i, e.clone()))
                .collect()
        };
        self.rewrite(Some(log_id), kept).await
    }
}

/// The vote in `path`, `None` when no vote was ever saved.
fn read_vote_file(path: &Path) -> Result<Option<Vote<MemberId>>, String> {
    if !fs::exists(path) {
        return Ok(None);
    }
    let recovered = RecordLog::open(path).map_err(|e| e.to_string())?;
    match recovered.records.last() {
        None => Ok(None),
        Some(record) => serde_json::from_slice(&record.payload)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
    }
}
