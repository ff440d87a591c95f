//! The durable committed-offset store: Kafka's `__consumer_offsets`, kept
//! as an append-only log under `<data_dir>/__consumer_offsets/`.
//!
//! The log uses its own small framing rather than v2 record batches:
//! nobody fetches this log over the wire, and what it holds is a keyed map
//! (group, topic, partition) → offset, so a record is just a key and value
//! with a checksum. Each frame is
//!
//! ```text
//! u32 payload length | u32 crc32c(payload) | payload
//! ```
//!
//! and a payload is a kind byte followed by its fields (see [`Record`]).
//! Replay stops at the first frame that is short or fails its checksum —
//! the torn tail of a write cut off by a crash — and truncates it away.
//!
//! One writer thread owns the file. Appends queue up while it is in
//! `fsync`, and the next round writes all of them and syncs once (group
//! commit); a caller is answered only after its records are durable, and
//! readers see an offset only from then on. When the log holds far more
//! records than live entries it is rewritten: live entries to a new file,
//! `fsync`, rename over the old one.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

const LOG_FILE: &str = "offsets.log";
const COMPACT_FILE: &str = "offsets.log.compacting";
const FRAME_HEADER: usize = 8;
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

#[derive(Debug, thiserror::Error)]
pub enum OffsetStoreError {
    #[error("committed offsets are still being loaded")]
    Loading,
    #[error("cannot write {path}: {reason}")]
    WriteFailed { path: PathBuf, reason: String },
    #[error("cannot open {path}: {reason}")]
    OpenFailed { path: PathBuf, reason: String },
    #[error("the offset store has stopped")]
    Stopped,
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
    loaded: watch::Receiver<bool>,
    writer: Mutex<Option<mpsc::UnboundedSender<Append>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl OffsetStore {
    /// Starts loading `dir` in the background and returns at once; until
    /// the load finishes, appends fail with [`OffsetStoreError::Loading`]
    /// and [`OffsetStore::is_loaded`] is false.
    pub fn open(dir: &Path) -> Result<OffsetStore, OffsetStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| OffsetStoreError::OpenFailed {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let entries = Arc::new(RwLock::new(Entries::new()));
        let (loaded_tx, loaded) = watch::channel(false);
        let (writer, requests) = mpsc::unbounded_channel();
        let writer_thread = Writer {
            dir: dir.to_path_buf(),
            entries: entries.clone(),
            file: None,
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
        *self.loaded.borrow()
    }

    /// Resolves when the start-up load has finished.
    pub async fn wait_loaded(&self) {
        let mut loaded = self.loaded.clone();
        let _ = loaded.wait_for(|l| *l).await;
    }

    /// Logs `records` and applies them; resolves once they are durable.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), OffsetStoreError> {
        if !self.is_loaded() {
            return Err(OffsetStoreError::Loading);
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
    dir: PathBuf,
    entries: Arc<RwLock<Entries>>,
    file: Option<File>,
    records_in_file: usize,
}

impl Writer {
    fn run(mut self, loaded: watch::Sender<bool>, mut requests: mpsc::UnboundedReceiver<Append>) {
        if let Err(error) = self.load() {
            // Without the log no commit could be made durable; stay in
            // "loading" so clients keep retrying instead of losing commits.
            tracing::error!(%error, "cannot load committed offsets");
            return;
        }
        let _ = loaded.send(true);
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
                Err(reason) => {
                    tracing::error!(%reason, "cannot write committed offsets");
                    for append in batch {
                        let _ = append.done.send(Err(OffsetStoreError::WriteFailed {
                            path: self.path(),
                            reason: reason.clone(),
                        }));
                    }
                }
            }
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn write_entries(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replays the log into memory, cuts off a torn tail, and compacts.
    fn load(&mut self) -> Result<(), String> {
        let path = self.path();
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let (records, valid_len) = decode_all(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                valid = valid_len,
                dropped = bytes.len() - valid_len,
                "committed-offsets log has a torn tail; truncating it"
            );
        }
        self.records_in_file = records.len();
        apply_all(&mut self.write_entries(), records);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.set_len(valid_len as u64)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.file = Some(file);
        if self.records_in_file > self.live_count() {
            self.compact()?;
        }
        Ok(())
    }

    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        let mut buf = Vec::new();
        for record in records {
            encode_frame(record, &mut buf);
        }
        let file = self.file.as_mut().ok_or("the log is not open")?;
        file.write_all(&buf).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
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
    fn compact(&mut self) -> Result<(), String> {
        let mut buf = Vec::new();
        let mut count = 0;
        for (group, offsets) in self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for ((topic, partition), value) in offsets {
                encode_frame(
                    &Record::Commit {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: value.clone(),
                    },
                    &mut buf,
                );
                count += 1;
            }
        }
        let tmp = self.dir.join(COMPACT_FILE);
        let fail = |e: std::io::Error| format!("{}: {e}", tmp.display());
        let mut file = File::create(&tmp).map_err(fail)?;
        file.write_all(&buf).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, self.path()).map_err(fail)?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        let file = OpenOptions::new()
            .append(true)
            .open(self.path())
            .map_err(|e| e.to_string())?;
        tracing::debug!(
            before = self.records_in_file,
            after = count,
            "compacted committed offsets"
        );
        self.file = Some(file);
        self.records_in_file = count;
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

fn encode_frame(record: &Record, out: &mut Vec<u8>) {
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
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// Every whole, intact record, and the length of the prefix they fill.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= FRAME_HEADER {
        let length = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let crc = u32::from_be_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let start = at + FRAME_HEADER;
        let Some(end) = start
            .checked_add(length as usize)
            .filter(|e| *e <= bytes.len())
        else {
            break;
        };
        let payload = &bytes[start..end];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Some(record) = decode_payload(payload) else {
            break;
        };
        records.push(record);
        at = end;
    }
    (records, at)
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
