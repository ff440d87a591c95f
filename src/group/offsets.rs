//! The durable committed-offset store: Kafka's `__consumer_offsets`, kept
//! as an append-only log under `<data_dir>/__consumer_offsets/`.
//!
//! The file is a [`RecordLog`] rather than v2 record batches: nobody
//! fetches this log over the wire, and what it holds is a keyed map
//! (group, topic, partition) → offset, so a record is just a key and value
//! with a checksum. A payload is a kind byte followed by its fields (see
//! [`Record`]). Recovery is the record log's: a torn tail is cut off; a
//! damaged record with intact ones after it stops the load (and the broker's
//! start) with the file and byte position, because replaying only the part
//! before it would move committed offsets backwards without a word.
//!
//! One writer thread owns the file, so no tokio worker blocks on it.
//! Appends queue up while it is in `fsync`, and the next round writes all of
//! them and syncs once (group commit); a caller is answered only after its
//! records are durable, and readers see an offset only from then on. A
//! failed write is cut back by the record log and changes nothing in
//! memory. When the log holds far more records than live entries it is
//! rewritten through [`RecordLog::rewrite`] (temporary file, `fsync`,
//! rename).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::record_log::{FileWrapper, RecordLog, RecordLogError};

const LOG_FILE: &str = "offsets.log";
/// Rewrite the log once it holds this many records more than live ones
/// and at least twice as many.
const COMPACT_MIN_GARBAGE: usize = 10_000;

const KIND_COMMIT: u8 = 1;
const KIND_DELETE_OFFSET: u8 = 2;
const KIND_DELETE_GROUP: u8 = 3;

/// A committed offset, with what Kafka keeps alongside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Milliseconds since the epoch, when the commit was stored.
    pub commit_timestamp: i64,
}

/// One change to the store, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: CommittedOffset,
    },
    /// An expired offset.
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// DeleteGroups: every offset of the group goes.
    DeleteGroup { group: String },
}

/// Cloneable: one failed group-commit round answers every caller in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OffsetStoreError {
    #[error("committed offsets are still being loaded")]
    Loading,
    #[error("cannot write committed offsets: {0}")]
    WriteFailed(Arc<RecordLogError>),
    #[error("cannot open {path}: {reason}")]
    OpenFailed { path: PathBuf, reason: String },
    #[error("cannot load committed offsets: {0}")]
    LoadFailed(Arc<RecordLogError>),
    #[error(
        "cannot load committed offsets: {} holds an intact but undecodable record at byte {position}",
        path.display()
    )]
    UndecodableRecord { path: PathBuf, position: u64 },
    #[error("the offset store has stopped")]
    Stopped,
}

/// Where the start-up load stands.
#[derive(Debug, Clone)]
enum LoadState {
    Loading,
    Loaded,
    Failed(OffsetStoreError),
}

type GroupOffsets = HashMap<(String, i32), CommittedOffset>;
type Entries = HashMap<String, GroupOffsets>;

struct Append {
    records: Vec<Record>,
    done: oneshot::Sender<Result<(), OffsetStoreError>>,
}

/// The cloneable front of the writer thread; reads are served from memory.
pub struct OffsetStore {
    entries: Arc<RwLock<Entries>>,
    loaded: watch::Receiver<LoadState>,
    writer: Mutex<Option<mpsc::UnboundedSender<Append>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl OffsetStore {
    /// Starts loading `dir` on the writer thread and returns at once; until
    /// the load finishes, appends fail with [`OffsetStoreError::Loading`]
    /// and [`OffsetStore::is_loaded`] is false. [`OffsetStore::wait_loaded`]
    /// tells how the load ended.
    pub fn open(dir: &Path) -> Result<OffsetStore, OffsetStoreError> {
        Self::open_wrapped(dir, Arc::new(|file| Box::new(file)))
    }

    /// [`OffsetStore::open`], with the log writing through `wrapper`'s files
    /// (the seam tests inject write failures through).
    pub fn open_wrapped(dir: &Path, wrapper: FileWrapper) -> Result<OffsetStore, OffsetStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| OffsetStoreError::OpenFailed {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let entries = Arc::new(RwLock::new(Entries::new()));
        let (loaded_tx, loaded) = watch::channel(LoadState::Loading);
        let (writer, requests) = mpsc::unbounded_channel();
        let writer_thread = Writer {
            path: dir.join(LOG_FILE),
            entries: entries.clone(),
            wrapper,
            log: None,
            records_in_file: 0,
        };
        let thread = std::thread::Builder::new()
            .name("offsets-writer".into())
            .spawn(move || writer_thread.run(loaded_tx, requests))
            .map_err(|e| OffsetStoreError::OpenFailed {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(OffsetStore {
            entries,
            loaded,
            writer: Mutex::new(Some(writer)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn is_loaded(&self) -> bool {
        matches!(*self.loaded.borrow(), LoadState::Loaded)
    }

    /// Resolves when the start-up load has finished, with why it failed if
    /// it did (a corrupt log: the broker must not start on it).
    pub async fn wait_loaded(&self) -> Result<(), OffsetStoreError> {
        let mut loaded = self.loaded.clone();
        let state = loaded
            .wait_for(|l| !matches!(l, LoadState::Loading))
            .await
            .map(|state| state.clone());
        match state {
            Ok(LoadState::Loaded) => Ok(()),
            Ok(LoadState::Failed(error)) => Err(error),
            Ok(LoadState::Loading) | Err(_) => Err(OffsetStoreError::Stopped),
        }
    }

    /// Logs `records` and, once they are durable, applies them; a failed
    /// write changes nothing that readers see.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), OffsetStoreError> {
        match &*self.loaded.borrow() {
            LoadState::Loaded => {}
            LoadState::Loading => return Err(OffsetStoreError::Loading),
            LoadState::Failed(error) => return Err(error.clone()),
        }
        let (done, result) = oneshot::channel();
        {
            let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let writer = writer.as_ref().ok_or(OffsetStoreError::Stopped)?;
            writer
                .send(Append { records, done })
                .map_err(|_| OffsetStoreError::Stopped)?;
        }
        result.await.map_err(|_| OffsetStoreError::Stopped)?
    }

    /// The committed offset of one partition.
    pub fn offset(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.read()
            .get(group)?
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Every committed offset of `group`, sorted by topic and partition.
    pub fn group_offsets(&self, group: &str) -> Vec<(String, i32, CommittedOffset)> {
        let mut all: Vec<_> = self
            .read()
            .get(group)
            .map(|offsets| {
                offsets
                    .iter()
                    .map(|((t, p), v)| (t.clone(), *p, v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }

    pub fn groups(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.read().contains_key(group)
    }

    /// Deletes the offsets of groups not in `active` whose commit is older
    /// than `retention` (Kafka 2.1+: offsets of a group with members never
    /// expire).
    pub async fn expire(
        &self,
        now_ms: i64,
        retention: Duration,
        active: &HashSet<String>,
    ) -> Result<usize, OffsetStoreError> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let expired: Vec<Record> = self
            .read()
            .iter()
            .filter(|(group, _)| !active.contains(*group))
            .flat_map(|(group, offsets)| {
                offsets
                    .iter()
                    .filter(|(_, v)| now_ms.saturating_sub(v.commit_timestamp) > retention_ms)
                    .map(|((topic, partition), _)| Record::DeleteOffset {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    })
            })
            .collect();
        let count = expired.len();
        if count > 0 {
            self.append(expired).await?;
        }
        Ok(count)
    }

    /// Stops the writer thread after the appends already queued.
    pub fn close(&self) {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for OffsetStore {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    path: PathBuf,
    entries: Arc<RwLock<Entries>>,
    wrapper: FileWrapper,
    /// Set by a successful [`Writer::load`].
    log: Option<RecordLog>,
    records_in_file: usize,
}

impl Writer {
    fn run(
        mut self,
        loaded: watch::Sender<LoadState>,
        mut requests: mpsc::UnboundedReceiver<Append>,
    ) {
        if let Err(error) = self.load() {
            tracing::error!(%error, "cannot load committed offsets");
            let _ = loaded.send(LoadState::Failed(error));
            return;
        }
        let _ = loaded.send(LoadState::Loaded);
        while let Some(first) = requests.blocking_recv() {
            let mut batch = vec![first];
            while let Ok(next) = requests.try_recv() {
                batch.push(next);
            }
            let records: Vec<Record> = batch.iter().flat_map(|a| a.records.clone()).collect();
            match self.write(&records) {
                Ok(()) => {
                    apply_all(&mut self.write_entries(), records);
                    for append in batch {
                        let _ = append.done.send(Ok(()));
                    }
                    self.maybe_compact();
                }
                Err(error) => {
                    tracing::error!(%error, "cannot write committed offsets");
                    for append in batch {
                        let _ = append.done.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    fn write_entries(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Recovers the log, replays it into memory, and compacts it when it
    /// holds superseded records.
    fn load(&mut self) -> Result<(), OffsetStoreError> {
        let recovered = RecordLog::open_wrapped(&self.path, self.wrapper.clone())
            .map_err(|e| OffsetStoreError::LoadFailed(Arc::new(e)))?;
        let records = recovered
            .records
            .iter()
            .map(|stored| {
                decode_payload(&stored.payload).ok_or_else(|| OffsetStoreError::UndecodableRecord {
                    path: self.path.clone(),
                    position: stored.position,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.records_in_file = records.len();
        apply_all(&mut self.write_entries(), records);
        self.log = Some(recovered.log);
        if self.records_in_file > self.live_count()
            && let Err(error) = self.compact()
        {
            // The log as recovered is intact; it just stays longer.
            tracing::warn!(%error, "could not compact the committed-offsets log");
        }
        Ok(())
    }

    fn write(&mut self, records: &[Record]) -> Result<(), OffsetStoreError> {
        let payloads: Vec<Vec<u8>> = records.iter().map(encode_payload).collect();
        let log = self.log.as_mut().ok_or(OffsetStoreError::Stopped)?;
        log.append(&payloads)
            .map_err(|e| OffsetStoreError::WriteFailed(Arc::new(e)))?;
        self.records_in_file += records.len();
        Ok(())
    }

    fn live_count(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(HashMap::len)
            .sum()
    }

    fn maybe_compact(&mut self) {
        let live = self.live_count();
        if self.records_in_file >= live + COMPACT_MIN_GARBAGE
            && self.records_in_file >= 2 * live
            && let Err(error) = self.compact()
        {
            tracing::warn!(%error, "could not compact the committed-offsets log");
        }
    }

    /// Rewrites the log with only the live entries.
    fn compact(&mut self) -> Result<(), RecordLogError> {
        let payloads: Vec<Vec<u8>> = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|(group, offsets)| {
                offsets.iter().map(|((topic, partition), value)| {
                    encode_payload(&Record::Commit {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: value.clone(),
                    })
                })
            })
            .collect();
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        log.rewrite(&payloads)?;
        tracing::debug!(
            before = self.records_in_file,
            after = payloads.len(),
            "compacted committed offsets"
        );
        self.records_in_file = payloads.len();
        Ok(())
    }
}

fn apply_all(entries: &mut Entries, records: Vec<Record>) {
    for record in records {
        match record {
            Record::Commit {
                group,
                topic,
                partition,
                value,
            } => {
                entries
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), value);
            }
            Record::DeleteOffset {
                group,
                topic,
                partition,
            } => {
                if let Some(offsets) = entries.get_mut(&group) {
                    offsets.remove(&(topic, partition));
                    if offsets.is_empty() {
                        entries.remove(&group);
                    }
                }
            }
            Record::DeleteGroup { group } => {
                entries.remove(&group);
            }
        }
    }
}

/// A record as the payload of one record-log frame.
fn encode_payload(record: &Record) -> Vec<u8> {
    let mut payload = Vec::new();
    match record {
        Record::Commit {
            group,
            topic,
            partition,
            value,
        } => {
            payload.push(KIND_COMMIT);
            put_str(&mut payload, group);
            put_str(&mut payload, topic);
            payload.extend_from_slice(&partition.to_be_bytes());
            payload.extend_from_slice(&value.offset.to_be_bytes());
            payload.extend_from_slice(&value.leader_epoch.to_be_bytes());
            payload.extend_from_slice(&value.commit_timestamp.to_be_bytes());
            match &value.metadata {
                None => payload.push(0),
                Some(metadata) => {
                    payload.push(1);
                    put_str(&mut payload, metadata);
                }
            }
        }
        Record::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            payload.push(KIND_DELETE_OFFSET);
            put_str(&mut payload, group);
            put_str(&mut payload, topic);
            payload.extend_from_slice(&partition.to_be_bytes());
        }
        Record::DeleteGroup { group } => {
            payload.push(KIND_DELETE_GROUP);
            put_str(&mut payload, group);
        }
    }
    payload
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let length = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        String::from_utf8(self.take(length as usize)?.to_vec()).ok()
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor(payload);
    let record = match c.u8()? {
        KIND_COMMIT => {
            let group = c.str()?;
            let topic = c.str()?;
            let partition = c.i32()?;
            let offset = c.i64()?;
            let leader_epoch = c.i32()?;
            let commit_timestamp = c.i64()?;
            let metadata = match c.u8()? {
                0 => None,
                _ => Some(c.str()?),
            };
            Record::Commit {
                group,
                topic,
                partition,
                value: CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp,
                },
            }
        }
        KIND_DELETE_OFFSET => Record::DeleteOffset {
            group: c.str()?,
            topic: c.str()?,
            partition: c.i32()?,
        },
        KIND_DELETE_GROUP => Record::DeleteGroup { group: c.str()? },
        _ => return None,
    };
    c.0.is_empty().then_some(record)
}

#[cfg(test)]
mod tests;
