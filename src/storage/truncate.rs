//! Cutting a log back (a follower dropping what its new leader may not
//! have; Kafka's `Log.truncateTo`).

use super::leader_epoch::LeaderEpochCache;
use super::log::PartitionLog;
use super::producer_snapshot::delete_snapshots;
use super::recovery::{self, LOG_START_FILE, RECOVERY_POINT_FILE};
use super::segment::{self, remove_if_exists};
use super::{StorageError, segment_io};

impl PartitionLog {
    /// Removes the batch holding `offset` and everything after it, so the
    /// log ends at or before `offset` (never below the log start). The cut
    /// is made on disk first; the log is then reopened through recovery,
    /// which rebuilds the cut segment's indexes and cuts the leader-epoch
    /// cache to the new end, and the batch cache starts empty. Blocking. On error the log must be taken offline: its files
    /// may be cut while this value still describes them uncut.
    ///
    /// At or past the log end nothing is cut but an epoch recorded at the
    /// log end with no batch of its own (a leader that appended nothing
    /// before the next one was elected), as Kafka's `truncateTo` does, so
    /// the next fetch names the epoch the log's last batch holds.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset() {
            if self.leader_epochs.truncate_from_end(self.log_end_offset()) {
                self.save_leader_epochs(true)?;
            }
            return Ok(());
        }
        let offset = offset.max(self.log_start);
        self.flush()?;
        // Snapshots past the cut describe batches that are going.
        delete_snapshots(&self.dir, |snapshot| snapshot > offset)?;
        let mut bases: Vec<i64> = self.closed.keys().copied().collect();
        bases.push(self.active.base_offset);
        let cut = bases.iter().copied().filter(|base| *base < offset).max();
        // Whole segments at or after the offset go, newest first, so a
        // crash half-way leaves a log whose offsets still follow.
        for base in bases.iter().rev().filter(|base| **base >= offset) {
            if Some(*base) == cut {
                continue;
            }
            remove_if_exists(&segment::log_path(&self.dir, *base))?;
            remove_if_exists(&segment::index_path(&self.dir, *base))?;
            remove_if_exists(&segment::time_index_path(&self.dir, *base))?;
        }
        let mut recovery_point = offset;
        if let Some(base) = cut {
            let segment = if base == self.active.base_offset {
                &self.active
            } else {
                &self.closed[&base]
            };
            if let Some((position, _)) = segment.locate(offset)? {
                let path = segment.log_path();
                segment
                    .file
                    .set_len(position)
                    .and_then(|()| segment.file.sync_all())
                    .map_err(segment_io(&path))?;
                remove_if_exists(&segment::index_path(&self.dir, base))?;
                remove_if_exists(&segment::time_index_path(&self.dir, base))?;
            }
            recovery_point = base;
        }
        // Recovery scans from here, so the cut segment's indexes are rebuilt.
        recovery::write_checkpoint(&self.dir, RECOVERY_POINT_FILE, recovery_point, true)?;
        recovery::sync_dir(&self.dir)?;
        let reopened = PartitionLog::open(&self.dir, self.config.clone())?;
        *self = reopened;
        let end = self.log_end_offset();
        delete_snapshots(&self.dir, |snapshot| snapshot > end)
    }

    /// Empties the log and starts it again, empty, at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose log ends before its
    /// leader's log start can only continue from there. Blocking; on error
    /// the log must be taken offline, as for [`truncate_to`](Self::truncate_to).
    pub fn restart_at(&mut self, offset: i64) -> Result<(), StorageError> {
        // First, so no snapshot of the old batches can pass for one of the new log.
        delete_snapshots(&self.dir, |_| true)?;
        let mut bases: Vec<i64> = self.closed.keys().copied().collect();
        bases.push(self.active.base_offset);
        for base in bases.iter().rev() {
            remove_if_exists(&segment::log_path(&self.dir, *base))?;
            remove_if_exists(&segment::index_path(&self.dir, *base))?;
            remove_if_exists(&segment::time_index_path(&self.dir, *base))?;
        }
        // Kafka's `truncateFullyAndStartAt` forgets every epoch.
        self.leader_epochs = LeaderEpochCache::default();
        self.save_leader_epochs(true)?;
        recovery::write_checkpoint(&self.dir, LOG_START_FILE, offset, true)?;
        recovery::write_checkpoint(&self.dir, RECOVERY_POINT_FILE, offset, true)?;
        let reopened = PartitionLog::open(&self.dir, self.config.clone())?;
        *self = reopened;
        Ok(())
    }
}
