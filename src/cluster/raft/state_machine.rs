//! The metadata image as openraft's state machine.
//!
//! Applying is [`MetadataImage::apply`], deterministic, with the command
//! index counted here: each accepted [`Command`](super::Command) takes the
//! next one, while blank, membership and cluster-id entries take none. A
//! refused command leaves the image unchanged on every member, and its
//! refusal is the proposer's answer.
//!
//! A snapshot is the image serialized as JSON; openraft's snapshot metadata
//! (last raft log id, membership) travels beside it. The newest snapshot is
//! kept in `snapshot` in the member's raft directory (a record log of two
//! records, metadata then image, replaced atomically), because the log
//! before it is purged: at start the image is rebuilt from it, and openraft
//! applies the committed entries after it.

// openraft's storage traits return its `StorageError`, large as it is; the
// helpers here return the same so `?` carries it through unchanged.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use tokio::sync::watch;

use super::{Applied, Member, MemberId, Proposal, TypeConfig};
use crate::cluster::command_log::LogEntry;
use crate::cluster::embedded::{LOG_TAIL_ENTRIES, LogRead, read_tail};
use crate::cluster::metadata::MetadataImage;
use crate::fs;
use crate::record_log::RecordLog;

const SNAPSHOT_FILE: &str = "snapshot";

type StoreResult<T> = Result<T, StorageError<MemberId>>;

/// The applied state.
struct Machine {
    image: Arc<MetadataImage>,
    /// The newest accepted commands, ending at `image`, for brokers pulling
    /// the command log.
    tail: VecDeque<LogEntry>,
    last_applied_log: Option<LogId<MemberId>>,
    membership: StoredMembership<MemberId, Member>,
    /// The newest snapshot: its metadata and the serialized image.
    snapshot: Option<(SnapshotMeta<MemberId, Member>, Vec<u8>)>,
    /// Makes snapshot ids unique within this process.
    snapshots_built: u64,
}

/// What the state machine and the coordinator on the same member share.
struct Shared {
    machine: Mutex<Machine>,
    images: watch::Sender<Arc<MetadataImage>>,
    snapshot_path: PathBuf,
}

/// Read access to the applied state, for the coordinator on this member.
#[derive(Clone)]
pub struct StateMachineHandle {
    shared: Arc<Shared>,
}

impl StateMachineHandle {
    /// The image after the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.shared.images.borrow())
    }

    /// Wakes on every newly applied image.
    pub fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.images.subscribe()
    }

    /// The accepted commands from command index `from` on, or the image.
    pub fn read_log(&self, from: u64, max: usize) -> LogRead {
        let machine = lock(&self.shared);
        read_tail(&machine.image, &machine.tail, from, max)
    }

    /// The raft log id of the last applied entry.
    pub fn last_applied_log(&self) -> Option<LogId<MemberId>> {
        lock(&self.shared).last_applied_log
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Machine> {
    // Every update of `Machine` is made whole before the guard drops.
    shared.machine.lock().unwrap_or_else(|p| p.into_inner())
}

/// openraft's state machine; [`StateMachine::handle`] reads it.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Rebuilds the state from the snapshot in `dir`, if there is one.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let mut machine = Machine {
            image: Arc::new(MetadataImage::default()),
            tail: VecDeque::new(),
            last_applied_log: None,
            membership: StoredMembership::default(),
            snapshot: None,
            snapshots_built: 0,
        };
        if let Some((meta, data)) = read_snapshot_file(&snapshot_path)? {
            machine.image = Arc::new(decode_image(&meta, &data)?);
            machine.last_applied_log = meta.last_log_id;
            machine.membership = meta.last_membership.clone();
            machine.snapshot = Some((meta, data));
        }
        let (images, _) = watch::channel(Arc::clone(&machine.image));
        Ok(Self {
            shared: Arc::new(Shared {
                machine: Mutex::new(machine),
                images,
                snapshot_path,
            }),
        })
    }

    pub fn handle(&self) -> StateMachineHandle {
        StateMachineHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Persists a snapshot and makes it the current one; the image is
    /// replaced by `image` when given (an installed snapshot).
    async fn store_snapshot(
        &self,
        meta: SnapshotMeta<MemberId, Member>,
        data: Vec<u8>,
        image: Option<MetadataImage>,
    ) -> StoreResult<()> {
        let signature = Some(meta.signature());
        let meta_bytes = serde_json::to_vec(&meta)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        let path = self.shared.snapshot_path.clone();
        let records = [meta_bytes, data.clone()];
        fs::blocking(move || RecordLog::create(&path, &records))
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        let mut machine = lock(&self.shared);
        if let Some(image) = image {
            machine.image = Arc::new(image);
            machine.tail.clear();
            machine.last_applied_log = meta.last_log_id;
            machine.membership = meta.last_membership.clone();
            self.shared.images.send_replace(Arc::clone(&machine.image));
        }
        machine.snapshot = Some((meta, data));
        Ok(())
    }
}

fn decode_image(meta: &SnapshotMeta<MemberId, Member>, data: &[u8]) -> StoreResult<MetadataImage> {
    serde_json::from_slice(data)
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e).into())
}

type StoredSnapshot = (SnapshotMeta<MemberId, Member>, Vec<u8>);

fn read_snapshot_file(path: &Path) -> StoreResult<Option<StoredSnapshot>> {
    if !fs::exists(path) {
        return Ok(None);
    }
    let recovered = RecordLog::open(path).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
    let [meta, data] = recovered.records.as_slice() else {
        let reason = format!(
            "{} holds {} records, not 2",
            path.display(),
            recovered.records.len()
        );
        return Err(StorageIOError::read_snapshot(None, &std::io::Error::other(reason)).into());
    };
    let meta: SnapshotMeta<MemberId, Member> = serde_json::from_slice(&meta.payload)
        .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
    Ok(Some((meta, data.payload.to_vec())))
}

/// Applies one entry to `machine`; the answer for its proposer.
fn apply_entry(machine: &mut Machine, entry: Entry<TypeConfig>) -> Applied {
    machine.last_applied_log = Some(entry.log_id);
    match entry.payload {
        EntryPayload::Blank => Applied::NotACommand,
        EntryPayload::Membership(membership) => {
            machine.membership = StoredMembership::new(Some(entry.log_id), membership);
            Applied::NotACommand
        }
        EntryPayload::Normal(Proposal::ClusterId { cluster_id }) => {
            if machine.image.cluster_id.is_empty() {
                Arc::make_mut(&mut machine.image).cluster_id = cluster_id;
            }
            Applied::NotACommand
        }
        EntryPayload::Normal(Proposal::VoterRemoved { member_id }) => {
            Arc::make_mut(&mut machine.image)
                .removed_controllers
                .insert(member_id);
            Applied::NotACommand
        }
        EntryPayload::Normal(Proposal::Command { command }) => {
            let index = machine.image.last_applied + 1;
            match Arc::make_mut(&mut machine.image).apply(index, &command) {
                Ok(outcome) => {
                    if machine.tail.len() >= LOG_TAIL_ENTRIES {
                        machine.tail.pop_front();
                    }
                    machine.tail.push_back(LogEntry { index, command });
                    Applied::Accepted { index, outcome }
                }
                Err(rejection) => Applied::Refused(rejection),
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let (meta, data) = {
            let mut machine = lock(&self.shared);
            machine.snapshots_built += 1;
            let data = serde_json::to_vec(machine.image.as_ref())
                .map_err(|e| StorageIOError::read_state_machine(&e))?;
            let last = machine.last_applied_log;
            let snapshot_id = match last {
                Some(log_id) => format!(
                    "{}-{}-{}",
                    log_id.leader_id, log_id.index, machine.snapshots_built
                ),
                None => format!("none-{}", machine.snapshots_built),
            };
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: machine.membership.clone(),
                snapshot_id,
            };
            (meta, data)
        };
        self.store_snapshot(meta.clone(), data.clone(), None)
            .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<MemberId>>, StoredMembership<MemberId, Member>)> {
        let machine = lock(&self.shared);
        Ok((machine.last_applied_log, machine.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut machine = lock(&self.shared);
        let before = Arc::clone(&machine.image);
        let answers: Vec<Applied> = entries
            .into_iter()
            .map(|entry| apply_entry(&mut machine, entry))
            .collect();
        // `make_mut` copied the image if it changed, as `before` shares it.
        if !Arc::ptr_eq(&before, &machine.image) {
            self.shared.images.send_replace(Arc::clone(&machine.image));
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let data = snapshot.into_inner();
        let image = decode_image(meta, &data)?;
        self.store_snapshot(meta.clone(), data, Some(image)).await
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let machine = lock(&self.shared);
        Ok(machine.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
