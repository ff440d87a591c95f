//! The leader's checks of a fetch, as pure functions: the handler and the
//! replication simulation both call them.
//!
//! `current_leader_epoch` older than the partition's is answered
//! FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH (KIP-320). A fetch
//! naming its `last_fetched_epoch` (v12+: followers) is checked against the
//! leader-epoch cache (KIP-595): where that epoch ends here before the
//! fetch offset, or only an older one is known, the logs diverge. A
//! follower may join the ISR only while the image has it registered under
//! the broker epoch its fetch stated (KIP-903).

use kafka_protocol::error::ResponseError;

use crate::cluster::MetadataImage;

/// Whether `replica`, fetching at `broker_epoch` (-1: a follower too old
/// to say), may join an ISR as `image` sees it: registered under that
/// epoch, not fenced, not shutting down (Kafka's `isReplicaIsrEligible`).
pub fn isr_eligible(image: &MetadataImage, replica: i32, broker_epoch: i64) -> bool {
    image.broker(replica).is_some_and(|registered| {
        registered.is_available() && (broker_epoch < 0 || broker_epoch == registered.epoch)
    })
}

/// How a fetch's `last_fetched_epoch` and offset compare with this log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// In step (or the fetch names no epoch): read as asked.
    InStep,
    /// The fetching log holds batches this one does not: it should end at
    /// `end_offset` of `epoch`.
    Diverging { epoch: i32, end_offset: i64 },
    /// The epoch's end is unknown here, or the offset is below the log
    /// start: OFFSET_OUT_OF_RANGE, as Kafka answers.
    OutOfRange,
}

/// Kafka's leader check of a fetch with a last fetched epoch:
/// `epoch_end` is this log's (largest epoch at most `last_fetched_epoch`,
/// where it ends).
pub fn divergence(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    epoch_end: (i32, i64),
    log_start_offset: i64,
) -> Divergence {
    if last_fetched_epoch < 0 {
        return Divergence::InStep;
    }
    let (epoch, end_offset) = epoch_end;
    if epoch < 0 || end_offset < 0 || fetch_offset < log_start_offset {
        Divergence::OutOfRange
    } else if epoch < last_fetched_epoch || end_offset < fetch_offset {
        Divergence::Diverging { epoch, end_offset }
    } else {
        Divergence::InStep
    }
}

/// The refusal of a request that names a leader epoch other than the
/// partition's (-1: the client names none).
pub fn leader_epoch_refusal(requested: i32, current: i32) -> Option<ResponseError> {
    if requested < 0 || requested == current {
        None
    } else if requested < current {
        Some(ResponseError::FencedLeaderEpoch)
    } else {
        Some(ResponseError::UnknownLeaderEpoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_whose_last_epoch_ends_earlier_here_diverges_as_kafka_decides() {
        use Divergence::*;
        // No epoch named: nothing to check.
        assert_eq!(divergence(-1, 50, (-1, -1), 0), InStep);
        // Epoch 3 ends here at 40: a fetch from 40 is in step, one from 45
        // holds what this log does not.
        assert_eq!(divergence(3, 40, (3, 40), 0), InStep);
        assert_eq!(
            divergence(3, 45, (3, 40), 0),
            Diverging {
                epoch: 3,
                end_offset: 40
            }
        );
        // Epoch 4 never wrote here; epoch 2 is the largest below it.
        assert_eq!(
            divergence(4, 30, (2, 35), 0),
            Diverging {
                epoch: 2,
                end_offset: 35
            }
        );
        // Unknown here, or below the log start.
        assert_eq!(divergence(9, 30, (-1, -1), 0), OutOfRange);
        assert_eq!(divergence(3, 5, (3, 40), 10), OutOfRange);
    }

    #[test]
    fn a_fetch_names_a_stale_or_future_leader_epoch_as_kafka_does() {
        assert_eq!(leader_epoch_refusal(-1, 5), None);
        assert_eq!(leader_epoch_refusal(5, 5), None);
        assert_eq!(
            leader_epoch_refusal(4, 5),
            Some(ResponseError::FencedLeaderEpoch)
        );
        assert_eq!(
            leader_epoch_refusal(6, 5),
            Some(ResponseError::UnknownLeaderEpoch)
        );
    }
}
