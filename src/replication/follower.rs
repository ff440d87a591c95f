//! A follower's decisions on its leader's fetch answers, as pure
//! functions: the fetcher carries them out on the partition, the
//! replication simulation on its replicas' logs.
//!
//! Truncation is KIP-595's: a `diverging_epoch` {epoch, end offset} cuts
//! the log where that epoch ends here or there, whichever is first, and
//! never below the high watermark (that is committed: a leader asking for
//! it lost committed records, an unclean election, and is refused). An
//! OFFSET_OUT_OF_RANGE answer either restarts an empty log at the leader's
//! log start (this replica is behind it) or cuts back to the high
//! watermark (a log without epochs, Kafka's rule before KIP-101). A log
//! with no leader epochs at all is cut to its high watermark before it
//! follows a new leader epoch.

use kafka_protocol::error::ResponseError;

/// The follower's log as an answer finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerLog {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    /// The newest leader epoch in the log (-1: none).
    pub latest_epoch: i32,
}

/// One partition of the leader's answer, as far as the follower's
/// decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchedPartition {
    pub error_code: i16,
    /// `diverging_epoch` {epoch, end offset}, (-1, -1) when absent.
    pub diverging_epoch: (i32, i64),
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The base offset of the first batch answered, if any.
    pub first_base_offset: Option<i64>,
}

/// Where a partition's fetch began: the leader epoch it followed and its
/// log end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    pub leader_epoch: i32,
    pub fetch_offset: i64,
}

/// Whether an answer to a fetch sent at `sent` still concerns the
/// partition as it is `now` (`None`: it no longer follows the broker that
/// answered). Kafka's fetcher drops it otherwise (`processFetchRequest`
/// applies an answer only while the partition's fetch offset is the one
/// asked for). A leader deposed while it held a fetch answers it from its
/// own follower log, OFFSET_OUT_OF_RANGE with its own high watermark:
/// applied, that cut records the new leader had committed from a log that
/// already followed it (simulation seed 2996).
pub fn answer_is_current(sent: FetchPosition, now: Option<FetchPosition>) -> bool {
    now == Some(sent)
}

/// What the follower does with one partition's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerStep {
    /// The logs diverge: cut this one to `offset`.
    TruncateDiverging { offset: i64 },
    /// The leader would have this replica cut committed records (below
    /// its high watermark): refused, the replica stays out of sync.
    RefuseBelowHighWatermark { offset: i64 },
    /// This replica is behind the leader's log start: start again, empty,
    /// at `offset`.
    RestartAt { offset: i64 },
    /// The leader has nothing at this log end, which is past the high
    /// watermark: cut back to `offset`.
    TruncateTo { offset: i64 },
    /// The leader has nothing at this log end and this replica cannot
    /// move it: pause and ask again.
    NoDataAtLogEnd,
    /// Another error (the metadata is probably about to change): pause.
    Pause { error: Option<ResponseError> },
    /// Append the answer's batches; an empty log first restarts at
    /// `restart_at` (the batch holding the leader's log start begins
    /// before it). Then the leader's high watermark and log start apply.
    Append { restart_at: Option<i64> },
}

/// Decides on one partition's answer. `truncation_offset(epoch, end)` is
/// the log's own answer to where it ends relative to that epoch
/// (`LeaderEpochCache::truncation_offset`).
pub fn next_step(
    log: FollowerLog,
    data: &FetchedPartition,
    truncation_offset: impl FnOnce(i32, i64) -> i64,
) -> FollowerStep {
    let (epoch, end_offset) = data.diverging_epoch;
    if data.error_code == 0 && epoch >= 0 && end_offset >= 0 {
        let offset = truncation_offset(epoch, end_offset);
        return if offset < log.high_watermark {
            FollowerStep::RefuseBelowHighWatermark { offset }
        } else {
            FollowerStep::TruncateDiverging { offset }
        };
    }
    if data.error_code != 0 {
        let error = ResponseError::try_from_code(data.error_code);
        if error != Some(ResponseError::OffsetOutOfRange) {
            return FollowerStep::Pause { error };
        }
        return if data.log_start_offset > log.log_end_offset {
            FollowerStep::RestartAt {
                offset: data.log_start_offset,
            }
        } else if data.high_watermark >= 0
            && data.high_watermark.max(log.high_watermark) < log.log_end_offset
        {
            FollowerStep::TruncateTo {
                offset: data.high_watermark.max(log.high_watermark),
            }
        } else {
            FollowerStep::NoDataAtLogEnd
        };
    }
    let restart_at = data
        .first_base_offset
        .filter(|base| *base < log.log_end_offset && log.log_start_offset == log.log_end_offset);
    FollowerStep::Append { restart_at }
}

/// Before following a new leader epoch: where a log without leader epochs
/// is cut (its high watermark; what lies above may never have been
/// committed). A log with epochs is left for the leader's
/// `diverging_epoch` to judge.
pub fn cut_before_following(log: FollowerLog) -> Option<i64> {
    (log.latest_epoch < 0 && log.high_watermark < log.log_end_offset).then_some(log.high_watermark)
}

/// Whether a diverging cut changed anything (else the same answer would
/// come again at once: the fetcher pauses first).
pub fn cut_changed(before: FollowerLog, end_after: i64, latest_epoch_after: i32) -> bool {
    end_after < before.log_end_offset || latest_epoch_after != before.latest_epoch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(start: i64, end: i64, high_watermark: i64, epoch: i32) -> FollowerLog {
        FollowerLog {
            log_start_offset: start,
            log_end_offset: end,
            high_watermark,
            latest_epoch: epoch,
        }
    }

    fn answer(error_code: i16, diverging: (i32, i64), high_watermark: i64) -> FetchedPartition {
        FetchedPartition {
            error_code,
            diverging_epoch: diverging,
            high_watermark,
            log_start_offset: 0,
            first_base_offset: None,
        }
    }

    /// Seed 2996: b3 fetched at 107 from b2 at epoch 1; b2 held the fetch,
    /// lost the lead to b1 (epoch 2), and answered from its own follower
    /// log: OFFSET_OUT_OF_RANGE, high watermark 103. b3, by then following
    /// b1 with 104 records committed, would have cut its log to 103.
    #[test]
    fn an_answer_for_a_partition_that_moved_on_is_dropped() {
        let sent = FetchPosition {
            leader_epoch: 1,
            fetch_offset: 107,
        };
        let stale = answer(ResponseError::OffsetOutOfRange.code(), (-1, -1), 103);
        // Taken at face value, the answer cuts committed records.
        assert_eq!(
            next_step(log(0, 104, 103, 2), &stale, |_, end| end),
            FollowerStep::TruncateTo { offset: 103 }
        );
        // So it only applies to the partition as it was asked for.
        assert!(!answer_is_current(sent, None));
        let following_b1 = FetchPosition {
            leader_epoch: 2,
            fetch_offset: 104,
        };
        assert!(!answer_is_current(sent, Some(following_b1)));
        let log_end_moved = FetchPosition {
            leader_epoch: 1,
            fetch_offset: 104,
        };
        assert!(!answer_is_current(sent, Some(log_end_moved)));
        assert!(answer_is_current(sent, Some(sent)));
    }

    #[test]
    fn a_diverging_answer_cuts_but_never_below_the_high_watermark() {
        let here = log(0, 20, 10, 3);
        assert_eq!(
            next_step(here, &answer(0, (3, 15), 10), |_, end| end),
            FollowerStep::TruncateDiverging { offset: 15 }
        );
        assert_eq!(
            next_step(here, &answer(0, (2, 8), 10), |_, end| end),
            FollowerStep::RefuseBelowHighWatermark { offset: 8 }
        );
    }

    #[test]
    fn out_of_range_restarts_behind_the_log_start_or_cuts_to_the_high_watermark() {
        let out = ResponseError::OffsetOutOfRange.code();
        let mut behind = answer(out, (-1, -1), 50);
        behind.log_start_offset = 40;
        assert_eq!(
            next_step(log(0, 30, 30, 1), &behind, |_, e| e),
            FollowerStep::RestartAt { offset: 40 }
        );
        assert_eq!(
            next_step(log(0, 30, 12, -1), &answer(out, (-1, -1), 10), |_, e| e),
            FollowerStep::TruncateTo { offset: 12 }
        );
        assert_eq!(
            next_step(log(0, 30, 30, -1), &answer(out, (-1, -1), 10), |_, e| e),
            FollowerStep::NoDataAtLogEnd
        );
    }

    #[test]
    fn an_empty_log_restarts_at_the_batch_holding_the_leaders_log_start() {
        let mut data = answer(0, (-1, -1), 10);
        data.first_base_offset = Some(5);
        assert_eq!(
            next_step(log(7, 7, 7, -1), &data, |_, e| e),
            FollowerStep::Append {
                restart_at: Some(5)
            }
        );
        assert_eq!(
            next_step(log(0, 7, 7, -1), &data, |_, e| e),
            FollowerStep::Append { restart_at: None }
        );
    }

    #[test]
    fn only_a_log_without_epochs_is_cut_before_following() {
        assert_eq!(cut_before_following(log(0, 20, 10, -1)), Some(10));
        assert_eq!(cut_before_following(log(0, 20, 10, 2)), None);
        assert_eq!(cut_before_following(log(0, 10, 10, -1)), None);
    }
}
