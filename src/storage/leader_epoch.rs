//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`):
//! for every leader epoch that wrote to the log, the offset of its first
//! batch. The end of an epoch is the start of the next one (or the log end
//! for the latest), which is what OffsetForLeaderEpoch answers and what a
//! follower's fetch is checked against to find where its log diverges from
//! its leader's (KIP-101, KIP-279, KIP-595).
//!
//! Persisted as `leader-epoch-checkpoint` in the partition's directory, in
//! Kafka's text format: a version line (`0`), a count line, then one
//! `epoch start_offset` line per entry. The file is never trusted: a count
//! that disagrees with the lines, a line that does not parse, or entries
//! that are not strictly increasing make the log rebuild the cache from its
//! batches' headers. Nothing here allocates by a number read from the file.
//!
//! Pure logic: the log does the file I/O.

use std::fmt::Write as _;

/// The file name in a partition's directory.
pub(super) const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// The only format version Kafka has written.
const VERSION: &str = "0";
/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One leader epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache's entries: epochs and start offsets both strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

/// Why a checkpoint file was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CHECKPOINT_FILE} line {line}: {reason}")]
pub struct CheckpointError {
    pub line: usize,
    pub reason: &'static str,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|entry| entry.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (a batch of a new epoch
    /// was appended there, or this broker became leader at that log end).
    /// Entries this one contradicts — an epoch at least as large, or a start
    /// at least as late — go first, so the entries stay monotonic. Negative
    /// epochs (batches from before stamping, clients' -1) are not recorded.
    /// Returns whether anything changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .latest()
            .is_none_or(|latest| latest.epoch != epoch || start_offset < latest.start_offset);
        if !needed {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// [`assign`](Self::assign) only for an epoch newer than every one
    /// known: what recovery does with the batches it replays, whose older
    /// epochs the checkpoint already holds.
    pub fn assign_if_newer(&mut self, epoch: i32, start_offset: i64) -> bool {
        if self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        self.assign(epoch, start_offset)
    }

    /// The log was cut back to end at `end_offset`: epochs starting there or
    /// later are gone. Returns whether anything changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        while self
            .entries
            .last()
            .is_some_and(|e| end_offset >= 0 && e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
        self.entries.len() != before
    }

    /// The log now starts at `start_offset`: epochs that started before it
    /// go, except the last of them, which now starts there. Returns whether
    /// anything changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if below == 0 {
            return false;
        }
        let kept = EpochEntry {
            epoch: self.entries[below - 1].epoch,
            start_offset,
        };
        let changed = below > 1 || self.entries[0] != kept;
        self.entries.drain(..below - 1);
        self.entries[0] = kept;
        changed
    }

    /// Kafka's `endOffsetFor`: the largest epoch at most `requested` and
    /// where it ended (the start of the next epoch, or `log_end_offset` for
    /// the latest). A requested epoch older than every known one answers
    /// itself and the first known start; one newer than every known one,
    /// or [`UNDEFINED_EPOCH`], answers undefined (-1, -1).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|floor| self.entries[floor]) {
            Some(floor) => (floor.epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// The epoch that wrote `offset`, if known (ListOffsets answers it).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let floor = self.entries.partition_point(|e| e.start_offset <= offset);
        floor.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Where a follower cuts its log when its leader answers a fetch with
    /// `diverging_epoch` {`epoch`, `end_offset`} (Kafka's fetcher,
    /// `getOffsetTruncationState`): at the end of that epoch here or
    /// there, whichever is first. A follower that does not know the epoch
    /// cuts to the end of its largest epoch below it, and the next fetch
    /// (with that epoch as `last_fetched_epoch`) goes on from there; one
    /// that knows no epoch at or below it trusts the leader's end. Never
    /// past `log_end_offset`.
    pub fn truncation_offset(&self, epoch: i32, end_offset: i64, log_end_offset: i64) -> i64 {
        let (own_epoch, own_end) = self.end_offset_for(epoch, log_end_offset);
        let cut = if own_end == UNDEFINED_EPOCH_OFFSET {
            end_offset
        } else if own_epoch != epoch {
            own_end
        } else {
            own_end.min(end_offset)
        };
        cut.min(log_end_offset)
    }

    /// The checkpoint file's text.
    pub fn to_checkpoint(&self) -> String {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            let _ = writeln!(text, "{} {}", e.epoch, e.start_offset);
        }
        text
    }

    /// Reads a checkpoint file's text; every line is checked, and the
    /// entries must be strictly increasing in epoch and start offset.
    pub fn from_checkpoint(text: &str) -> Result<Self, CheckpointError> {
        let error = |line, reason| CheckpointError { line, reason };
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(VERSION) {
            return Err(error(1, "not format version 0"));
        }
        let count: usize = lines
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or(error(2, "no entry count"))?;
        let mut cache = LeaderEpochCache::default();
        for (i, line) in lines.enumerate() {
            let number = i + 3;
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(error(number, "not two fields"));
            };
            let (Ok(epoch), Ok(start_offset)) = (epoch.parse::<i32>(), start.parse::<i64>()) else {
                return Err(error(number, "not an epoch and an offset"));
            };
            if epoch < 0 || start_offset < 0 {
                return Err(error(number, "negative epoch or offset"));
            }
            if cache
                .latest()
                .is_some_and(|last| epoch <= last.epoch || start_offset <= last.start_offset)
            {
                return Err(error(number, "entries not strictly increasing"));
            }
            if cache.entries.len() == count {
                return Err(error(number, "more entries than the count says"));
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        if cache.entries.len() != count {
            return Err(error(2, "fewer entries than the count says"));
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            assert!(cache.assign(epoch, start));
        }
        cache
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_records_each_new_epoch_once_and_drops_what_it_contradicts() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(2, 15), "the same epoch later is nothing new");
        assert!(!c.assign(-1, 20), "unstamped batches are not recorded");
        assert!(c.assign(3, 20));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (3, 20)]);
        // A follower appending its new leader's epoch 3 from offset 12
        // forgets what it had written from 12 on under other epochs.
        assert!(c.assign(3, 12));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (3, 12)]);
        // An older epoch after a newer one contradicts it.
        assert!(c.assign(1, 30));
        assert_eq!(pairs(&c), vec![(0, 0), (1, 30)]);
    }

    #[test]
    fn recovery_only_adds_epochs_newer_than_the_checkpoint_knows() {
        let mut c = cache(&[(0, 0), (3, 100)]);
        assert!(!c.assign_if_newer(0, 50));
        assert!(!c.assign_if_newer(3, 120));
        assert!(c.assign_if_newer(4, 130));
        assert_eq!(pairs(&c), vec![(0, 0), (3, 100), (4, 130)]);
    }

    #[test]
    fn end_offset_for_is_kafkas() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        let log_end = 25;
        assert_eq!(c.end_offset_for(5, log_end), (5, 25), "latest: the log end");
        assert_eq!(
            c.end_offset_for(3, log_end),
            (3, 20),
            "the next epoch's start"
        );
        assert_eq!(
            c.end_offset_for(4, log_end),
            (3, 20),
            "unknown: the largest below"
        );
        assert_eq!(c.end_offset_for(1, log_end), (1, 10));
        assert_eq!(
            c.end_offset_for(0, log_end),
            (0, 0),
            "older than all: first start"
        );
        assert_eq!(c.end_offset_for(6, log_end), (-1, -1), "newer than all");
        assert_eq!(c.end_offset_for(-1, log_end), (-1, -1));
        assert_eq!(
            LeaderEpochCache::default().end_offset_for(0, log_end),
            (-1, -1)
        );
    }

    #[test]
    fn truncation_keeps_the_entries_monotonic_at_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), vec![(3, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(c.truncate_from_end(5));
        assert!(c.is_empty());

        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(10));
        assert_eq!(pairs(&c), vec![(3, 10)], "an epoch starting there stays");
    }

    #[test]
    fn epoch_for_offset_finds_the_epoch_that_wrote_it() {
        let c = cache(&[(1, 5), (3, 10)]);
        assert_eq!(c.epoch_for_offset(4), None);
        assert_eq!(c.epoch_for_offset(5), Some(1));
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(3));
        assert_eq!(c.epoch_for_offset(1_000), Some(3));
    }

    #[test]
    fn a_follower_cuts_where_its_log_and_the_leaders_part() {
        // Both know epoch 3; the leader's ended at 15, this one's at 20.
        let c = cache(&[(1, 0), (3, 10), (4, 20)]);
        assert_eq!(c.truncation_offset(3, 15, 30), 15);
        // This one's epoch 3 ended first: nothing of the leader's is cut.
        assert_eq!(c.truncation_offset(3, 25, 30), 20);
        // The leader names epoch 2, unknown here: cut to the end of epoch
        // 1 here, and the next fetch finds out more.
        assert_eq!(c.truncation_offset(2, 12, 30), 10);
        // Older than anything here: the leader's end.
        let late = cache(&[(5, 100)]);
        assert_eq!(late.truncation_offset(3, 40, 120), 40);
        // Never past this log's end.
        assert_eq!(c.truncation_offset(4, 50, 30), 30);
        assert_eq!(LeaderEpochCache::default().truncation_offset(3, 7, 30), 7);
    }

    #[test]
    fn checkpoint_text_is_kafkas_and_round_trips() {
        let c = cache(&[(0, 0), (4, 150)]);
        assert_eq!(c.to_checkpoint(), "0\n2\n0 0\n4 150\n");
        assert_eq!(LeaderEpochCache::from_checkpoint(&c.to_checkpoint()), Ok(c));
        assert_eq!(
            LeaderEpochCache::from_checkpoint("0\n0\n"),
            Ok(LeaderEpochCache::default())
        );
    }

    #[test]
    fn hostile_checkpoints_are_refused_without_allocating_by_their_count() {
        let refused = [
            "",
            "1\n0\n",
            "0\n",
            "0\nmany\n",
            // A count that lies either way; the huge one must not be
            // taken as a capacity.
            "0\n18446744073709551615\n0 0\n",
            "0\n3\n0 0\n1 5\n",
            "0\n1\n0 0\n1 5\n",
            "0\n1\n0\n",
            "0\n1\n0 0 0\n",
            "0\n1\nx 0\n",
            "0\n1\n0 y\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 -5\n",
            "0\n1\n99999999999 0\n",
            // Not strictly increasing.
            "0\n2\n3 10\n3 20\n",
            "0\n2\n3 10\n4 10\n",
            "0\n2\n4 10\n3 20\n",
        ];
        for text in refused {
            assert!(
                LeaderEpochCache::from_checkpoint(text).is_err(),
                "accepted {text:?}"
            );
        }
    }
}
