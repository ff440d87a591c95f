//! The committed offsets of gregor before `__consumer_offsets` was a real
//! topic: a private [`RecordLog`] (`<data_dir>/__consumer_offsets/offsets.log`)
//! of this broker's commits. A data directory that still has one is
//! migrated, once: when this broker loads an offsets partition, the old
//! file's commits of the groups in that partition are written into it, and
//! then dropped from the file (rewritten through [`RecordLog::rewrite`]);
//! the file goes once it holds nothing.
//!
//! Reading it keeps the old guarantees: a torn tail is cut off; a damaged
//! record with intact ones after it stops the broker's start with the file
//! and byte position, since dropping what follows would move committed
//! offsets back without a word.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::records::CommittedOffset;
use crate::record_log::{RecordLog, RecordLogError};

/// The old store's file, under `<data_dir>/__consumer_offsets/`.
pub const LEGACY_DIR: &str = "__consumer_offsets";
pub const LEGACY_FILE: &str = "offsets.log";

const KIND_COMMIT: u8 = 1;
const KIND_DELETE_OFFSET: u8 = 2;
const KIND_DELETE_GROUP: u8 = 3;

/// Why the old file cannot be read; the broker does not start on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LegacyOffsetsError {
    #[error("cannot load committed offsets: {0}")]
    LoadFailed(Arc<RecordLogError>),
    #[error(
        "cannot load committed offsets: {} holds an intact but undecodable record at byte {position}",
        path.display()
    )]
    UndecodableRecord { path: PathBuf, position: u64 },
}

/// One change to the old store, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LegacyRecord {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: CommittedOffset,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    DeleteGroup {
        group: String,
    },
}

/// A group's offsets, by (topic, partition).
pub type LegacyGroup = BTreeMap<(String, i32), CommittedOffset>;

/// What the old file still holds, replayed; its groups leave as they are
/// migrated.
pub struct LegacyOffsets {
    log: RecordLog,
    groups: HashMap<String, LegacyGroup>,
}

impl LegacyOffsets {
    /// Reads `<data_dir>/__consumer_offsets/offsets.log`, if there is one.
    /// Blocking.
    pub fn open(data_dir: &Path) -> Result<Option<LegacyOffsets>, LegacyOffsetsError> {
        let path = data_dir.join(LEGACY_DIR).join(LEGACY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let recovered =
            RecordLog::open(&path).map_err(|e| LegacyOffsetsError::LoadFailed(Arc::new(e)))?;
        let mut groups: HashMap<String, LegacyGroup> = HashMap::new();
        for stored in &recovered.records {
            let record = decode_payload(&stored.payload).ok_or_else(|| {
                LegacyOffsetsError::UndecodableRecord {
                    path: path.clone(),
                    position: stored.position,
                }
            })?;
            apply(&mut groups, record);
        }
        let legacy = LegacyOffsets {
            log: recovered.log,
            groups,
        };
        if legacy.groups.is_empty() {
            legacy.remove_file();
            return Ok(None);
        }
        tracing::info!(
            path = %path.display(),
            groups = legacy.groups.len(),
            "committed offsets from before __consumer_offsets was replicated: each group moves into its partition when this broker loads it"
        );
        Ok(Some(legacy))
    }

    /// The groups (and their offsets) that `belongs` picks, still to be
    /// migrated.
    pub fn groups_where(&self, belongs: impl Fn(&str) -> bool) -> Vec<(String, LegacyGroup)> {
        let mut picked: Vec<(String, LegacyGroup)> = self
            .groups
            .iter()
            .filter(|(group, _)| belongs(group))
            .map(|(group, offsets)| (group.clone(), offsets.clone()))
            .collect();
        picked.sort_by(|a, b| a.0.cmp(&b.0));
        picked
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Drops `migrated` groups from the file (a rewrite); the file goes
    /// once none is left. Blocking. On error the file is unchanged, so the
    /// groups would be written into their partition again, harmlessly
    /// (the same offsets), at the next load.
    pub fn forget(&mut self, migrated: &[String]) -> Result<(), RecordLogError> {
        let mut remaining = self.groups.clone();
        for group in migrated {
            remaining.remove(group);
        }
        if remaining.is_empty() {
            self.groups = remaining;
            self.remove_file();
            return Ok(());
        }
        let payloads: Vec<Vec<u8>> = remaining
            .iter()
            .flat_map(|(group, offsets)| {
                offsets.iter().map(|((topic, partition), value)| {
                    encode_payload(&LegacyRecord::Commit {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: value.clone(),
                    })
                })
            })
            .collect();
        self.log.rewrite(&payloads)?;
        self.groups = remaining;
        Ok(())
    }

    fn remove_file(&self) {
        let path = self.log.path();
        match std::fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "every committed offset of the old store is migrated; removed it")
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not remove the migrated offsets log")
            }
        }
        if let Some(dir) = path.parent() {
            // Only if empty: anything else in it is left alone.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn apply(groups: &mut HashMap<String, LegacyGroup>, record: LegacyRecord) {
    match record {
        LegacyRecord::Commit {
            group,
            topic,
            partition,
            value,
        } => {
            groups
                .entry(group)
                .or_default()
                .insert((topic, partition), value);
        }
        LegacyRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            if let Some(offsets) = groups.get_mut(&group) {
                offsets.remove(&(topic, partition));
                if offsets.is_empty() {
                    groups.remove(&group);
                }
            }
        }
        LegacyRecord::DeleteGroup { group } => {
            groups.remove(&group);
        }
    }
}

/// A record as the payload of one record-log frame: a kind byte, then
/// u32-length strings and big-endian integers.
pub(crate) fn encode_payload(record: &LegacyRecord) -> Vec<u8> {
    let mut payload = Vec::new();
    match record {
        LegacyRecord::Commit {
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
        LegacyRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            payload.push(KIND_DELETE_OFFSET);
            put_str(&mut payload, group);
            put_str(&mut payload, topic);
            payload.extend_from_slice(&partition.to_be_bytes());
        }
        LegacyRecord::DeleteGroup { group } => {
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
        String::from_utf8(self.take(usize::try_from(length).ok()?)?.to_vec()).ok()
    }
}

pub(crate) fn decode_payload(payload: &[u8]) -> Option<LegacyRecord> {
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
            LegacyRecord::Commit {
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
        KIND_DELETE_OFFSET => LegacyRecord::DeleteOffset {
            group: c.str()?,
            topic: c.str()?,
            partition: c.i32()?,
        },
        KIND_DELETE_GROUP => LegacyRecord::DeleteGroup { group: c.str()? },
        _ => return None,
    };
    c.0.is_empty().then_some(record)
}

#[cfg(test)]
mod tests;
