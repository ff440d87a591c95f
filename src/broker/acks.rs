//! `acks=all`: waiting until the in-sync replicas have an append. Produce
//! waits here for its batches, and the group coordinator for its commits to
//! `__consumer_offsets` (Kafka's delayed produce, for both).

use kafka_protocol::error::ResponseError;

use super::partition::Partition;

/// Waits until the high watermark reaches `end_offset`: every ISR member
/// has the batches below it. If the ISR has meanwhile shrunk below
/// `min_insync_replicas`, NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): the
/// batches are written but not on enough replicas, as Kafka answers.
/// REQUEST_TIMED_OUT at `deadline`, as Kafka's produce purgatory answers;
/// NOT_LEADER_OR_FOLLOWER once this broker no longer leads with followers
/// and the batches are not committed. A partition without followers has
/// its high watermark at its log end, so this returns at once.
pub async fn await_high_watermark(
    partition: &Partition,
    end_offset: i64,
    min_insync_replicas: usize,
    deadline: tokio::time::Instant,
) -> Result<(), ResponseError> {
    loop {
        let woken = partition.appended().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let replication = &partition.replication;
        if let Some(answer) = acks_all_answer(
            replication.high_watermark(),
            end_offset,
            replication.isr_len(),
            replication.waits_for_followers(),
            min_insync_replicas,
        ) {
            return answer;
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            return Err(ResponseError::RequestTimedOut);
        }
    }
}

/// The answer to an `acks=all` produce whose batches end at `end_offset`,
/// once there is one (`None`: keep waiting). Pure, for the replication
/// simulation too.
pub fn acks_all_answer(
    high_watermark: i64,
    end_offset: i64,
    isr_len: Option<usize>,
    waits_for_followers: bool,
    min_insync_replicas: usize,
) -> Option<Result<(), ResponseError>> {
    if high_watermark >= end_offset {
        if isr_len.unwrap_or(1) < min_insync_replicas {
            return Some(Err(ResponseError::NotEnoughReplicasAfterAppend));
        }
        return Some(Ok(()));
    }
    if !waits_for_followers {
        return Some(Err(ResponseError::NotLeaderOrFollower));
    }
    None
}
