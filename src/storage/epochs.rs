//! The log's side of its [`LeaderEpochCache`]: loading the checkpoint at
//! open (rebuilding it from the batches' headers when it is missing or
//! cannot be trusted), keeping it in step with appends and with both ends
//! of the log, and saving it.
//!
//! What is on disk never misses an epoch below the recovery point: an
//! append that starts a new epoch saves the checkpoint (fsynced) before it
//! returns, and the recovery-point checkpoint does not move while a save
//! is owed. Batches above the recovery point are replayed at open, and the
//! epochs they start are added then. Cutting either end of the log saves
//! without an fsync: a stale checkpoint is cut again at the next open.

use std::io::Read;
use std::path::Path;

use super::leader_epoch::{CHECKPOINT_FILE, LeaderEpochCache};
use super::log::PartitionLog;
use super::recovery;
use super::{StorageError, log_dir_io};

/// A checkpoint larger than this is not read (some 50 000 epochs); the
/// cache is rebuilt from the log instead.
const MAX_CHECKPOINT_BYTES: u64 = 1 << 20;

/// What was found in a partition directory.
enum Found {
    Checkpoint(LeaderEpochCache),
    Missing,
    Unusable(String),
}

fn read_checkpoint(dir: &Path) -> Result<Found, StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(error) => return Err(log_dir_io(&path)(error)),
    };
    let mut text = String::new();
    match file
        .take(MAX_CHECKPOINT_BYTES + 1)
        .read_to_string(&mut text)
    {
        Ok(read) if read as u64 > MAX_CHECKPOINT_BYTES => {
            return Ok(Found::Unusable("larger than any real checkpoint".into()));
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            return Ok(Found::Unusable("not text".into()));
        }
        Err(error) => return Err(log_dir_io(&path)(error)),
    }
    Ok(match LeaderEpochCache::from_checkpoint(&text) {
        Ok(cache) => Found::Checkpoint(cache),
        Err(error) => Found::Unusable(error.to_string()),
    })
}

impl PartitionLog {
    /// The leader-epoch cache for a log just recovered: the checkpoint,
    /// cut to the log's ends, plus the epochs `replayed` batches started;
    /// or, without a usable checkpoint, rebuilt from every batch's header.
    /// Saved when it differs from what was on disk.
    pub(super) fn load_leader_epochs(
        &mut self,
        replayed: &[(i32, i64)],
    ) -> Result<(), StorageError> {
        let (mut cache, mut changed) = match read_checkpoint(&self.dir)? {
            Found::Checkpoint(cache) => (cache, false),
            Found::Missing if self.log_start == self.log_end_offset() => {
                (LeaderEpochCache::default(), false)
            }
            Found::Missing => (self.scan_leader_epochs()?, true),
            Found::Unusable(reason) => {
                tracing::warn!(
                    dir = %self.dir.display(), %reason,
                    "leader-epoch checkpoint not usable; rebuilding it from the log"
                );
                (self.scan_leader_epochs()?, true)
            }
        };
        changed |= cache.truncate_from_end(self.log_end_offset());
        for &(epoch, start) in replayed {
            changed |= cache.assign_if_newer(epoch, start);
        }
        changed |= cache.truncate_from_start(self.log_start);
        self.leader_epochs = cache;
        if changed {
            self.save_leader_epochs(true)?;
        }
        Ok(())
    }

    /// Every batch's header from the first segment on, keeping each epoch
    /// newer than the ones before it. Blocking: reads the whole log's
    /// headers.
    fn scan_leader_epochs(&self) -> Result<LeaderEpochCache, StorageError> {
        let mut cache = LeaderEpochCache::default();
        for segment in self.segments() {
            let mut position = 0;
            while position < segment.size {
                let header = segment.read_header(position)?;
                cache.assign_if_newer(header.partition_leader_epoch, header.base_offset);
                position += header.total_len() as u64;
            }
        }
        Ok(cache)
    }

    /// Writes the checkpoint; fsynced (file and directory) with `durable`.
    /// On failure the save stays owed, and flushes try again.
    pub(super) fn save_leader_epochs(&mut self, durable: bool) -> Result<(), StorageError> {
        let text = self.leader_epochs.to_checkpoint();
        match recovery::write_checkpoint_text(&self.dir, CHECKPOINT_FILE, &text, durable) {
            Ok(()) => {
                self.epochs_unsaved = false;
                Ok(())
            }
            Err(error) => {
                self.epochs_unsaved = true;
                Err(error)
            }
        }
    }

    /// Saves the checkpoint if an earlier save failed: before the recovery
    /// point moves past the epochs it holds.
    pub(super) fn save_owed_leader_epochs(&mut self) -> Result<(), StorageError> {
        if self.epochs_unsaved {
            self.save_leader_epochs(true)?;
        }
        Ok(())
    }

    /// Batches starting at the offsets in `starts` were written with these
    /// leader epochs: record the new ones, saving durably if any.
    pub(super) fn note_appended_epochs(&mut self, starts: impl Iterator<Item = (i32, i64)>) {
        let mut changed = false;
        for (epoch, start) in starts {
            changed |= self.leader_epochs.assign(epoch, start);
        }
        if changed && let Err(error) = self.save_leader_epochs(true) {
            tracing::warn!(
                dir = %self.dir.display(), %error,
                "could not save the leader-epoch checkpoint; a flush will try again"
            );
        }
    }

    /// The log start moved up: so does the first epoch's start.
    pub(super) fn leader_epochs_from_start(&mut self, start: i64) {
        if self.leader_epochs.truncate_from_start(start)
            && let Err(error) = self.save_leader_epochs(false)
        {
            tracing::warn!(dir = %self.dir.display(), %error, "could not save the leader-epoch checkpoint");
        }
    }

    /// The partition's leader-epoch cache.
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.leader_epochs
    }

    /// The newest leader epoch that wrote to the log (or that this broker
    /// leads under), if any.
    pub fn latest_leader_epoch(&self) -> Option<i32> {
        self.leader_epochs.latest_epoch()
    }

    /// Kafka's `endOffsetForEpoch` (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.leader_epochs
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// This broker became leader under `epoch`: it starts at the log end,
    /// as Kafka records it when a replica becomes leader, so the epoch is
    /// known before its first batch. (Any larger epoch in the cache can
    /// only come from batches stamped by clients before gregor stamped
    /// them, and goes.) Blocking (a durable save when new).
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        if self.leader_epochs.assign(epoch, self.log_end_offset()) {
            self.save_leader_epochs(true)?;
        }
        Ok(())
    }
}
