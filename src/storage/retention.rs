//! Retention: deleting whole old segments and moving the log start offset.

use super::log::{PartitionLog, millis};
use super::producer_snapshot::delete_snapshots;
use super::recovery::{self, LOG_START_FILE};
use super::segment::Segment;
use super::{StorageError, log_dir_io};

impl PartitionLog {
    /// Deletes closed segments that are entirely below the log start offset, past retention
    /// time (segment's largest timestamp older than `now_ms - retention`, or file mtime if it
    /// has no timestamps) or beyond retention size (while total size minus the oldest segment
    /// stays `>= retention_bytes`). Only a prefix of the log is ever deleted. The active segment
    /// is never deleted, but when it and everything before it is expired by time and it is not
    /// empty, it is rolled first so it can go too. Moves and persists the log start offset.
    /// Returns the number of segments deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        let mut deleted = 0;
        let log_start = self.log_start;
        deleted += self.delete_oldest_while(|seg, _| seg.next_offset <= log_start)?;
        // A compacted topic keeps its records by key, not by age or size,
        // unless its cleanup.policy also says delete.
        let retention = self.config.retention.filter(|_| self.config.delete);
        let retention_bytes = self.config.retention_bytes.filter(|_| self.config.delete);
        if let Some(retention) = retention {
            let cutoff = now_ms.saturating_sub(millis(retention));
            let all_expired = self.segments().all(|s| s.is_empty() || expired(s, cutoff));
            if all_expired && !self.active.is_empty() {
                self.roll(now_ms)?;
            }
            deleted += self.delete_oldest_while(|seg, _| expired(seg, cutoff))?;
        }
        if let Some(limit) = retention_bytes {
            deleted += self.delete_oldest_while(|seg, total| total - seg.size >= limit)?;
        }
        if deleted > 0 {
            let first_base = self
                .closed
                .keys()
                .next()
                .copied()
                .unwrap_or(self.active.base_offset);
            if first_base > self.log_start {
                self.set_log_start(first_base)?;
            }
            // Snapshots go with their segments; the one taken when the first
            // remaining segment was rolled into is at or past its base.
            if let Err(error) = delete_snapshots(&self.dir, |offset| offset < first_base) {
                tracing::warn!(%error, "could not delete producer snapshots of deleted segments");
            }
            tracing::info!(
                dir = %self.dir.display(), deleted, log_start = self.log_start,
                "deleted segments by retention"
            );
        }
        Ok(deleted)
    }

    /// Moves the log start offset forward to `offset` (DeleteRecords). Offsets below it become
    /// unreadable at once; whole segments below it are deleted by the next
    /// [`PartitionLog::enforce_retention`]. A lower offset than the current start is a no-op.
    /// Durable on return: the data below `offset` is fsynced first, so no crash can recover
    /// a log ending below its own start and hand those offsets out again.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        let log_end = self.log_end_offset();
        if offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start,
                log_end,
            });
        }
        if offset > self.log_start {
            self.commit()?;
            self.set_log_start(offset)?;
        }
        Ok(())
    }

    fn set_log_start(&mut self, offset: i64) -> Result<(), StorageError> {
        // Durable: after DeleteRecords, deleted offsets must not come back after a crash.
        recovery::write_checkpoint(&self.dir, LOG_START_FILE, offset, true)?;
        self.log_start = offset;
        self.cache.evict_before(offset);
        self.leader_epochs_from_start(offset);
        Ok(())
    }

    /// Deletes closed segments from the oldest on while `pred(segment, total log size)` holds.
    fn delete_oldest_while(
        &mut self,
        pred: impl Fn(&Segment, u64) -> bool,
    ) -> Result<usize, StorageError> {
        let mut deleted = 0;
        while let Some(entry) = self.closed.first_entry() {
            if !pred(entry.get(), self.size_bytes) {
                break;
            }
            let seg = entry.remove();
            self.size_bytes -= seg.size;
            seg.delete_files()?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// Whether every batch of `seg` is older than `cutoff_ms`.
fn expired(seg: &Segment, cutoff_ms: i64) -> bool {
    if seg.max_timestamp >= 0 {
        return seg.max_timestamp < cutoff_ms;
    }
    // No timestamps in the batches: fall back to the file's modification time, as Kafka does.
    let path = seg.log_path();
    match std::fs::metadata(&path).and_then(|m| m.modified()) {
        Ok(t) => t
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|d| millis(d) < cutoff_ms),
        Err(e) => {
            tracing::warn!(error = %log_dir_io(&path)(e), "cannot stat segment for retention");
            false
        }
    }
}
