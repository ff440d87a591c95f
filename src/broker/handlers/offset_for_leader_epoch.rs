//! OffsetForLeaderEpoch (API 23, v0–v4): for each partition, the largest
//! leader epoch at most the one asked for and the offset where it ended
//! (Kafka's `endOffsetFor`: the start of the next epoch, or the log end
//! for the current one; -1 and -1 when unknown). Followers used it for
//! KIP-101 truncation before Fetch carried `last_fetched_epoch`; consumers
//! use it to validate their position after a leader change (KIP-320).
//!
//! As in Kafka: ClusterAction on the cluster answers every partition, else
//! each topic needs Describe (TOPIC_AUTHORIZATION_FAILED); only the leader
//! answers (NOT_LEADER_OR_FOLLOWER), whoever asks; `current_leader_epoch`
//! older than the partition's is FENCED_LEADER_EPOCH, newer
//! UNKNOWN_LEADER_EPOCH.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::MetadataImage;
use crate::replication::fetch_check::leader_epoch_refusal;
use crate::security::acl::AclOperation as Operation;

/// Runs on the blocking pool: the lookups take each log's read lock.
pub fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = ctx.coordinator.image();
    let replica = access.allows_cluster(Operation::ClusterAction);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let allowed = replica || access.allows_topic(Operation::Describe, &topic.topic.0);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    let found = if allowed {
                        end_offset(ctx, &image, &topic.topic.0, p)
                    } else {
                        Err(ResponseError::TopicAuthorizationFailed)
                    };
                    match found {
                        Ok((epoch, end_offset)) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(error) => answer.with_error_code(error.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn end_offset(
    ctx: &BrokerContext,
    image: &MetadataImage,
    topic: &str,
    p: &OffsetForLeaderPartition,
) -> Result<(i32, i64), ResponseError> {
    let state = image
        .partition(topic, p.partition)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    // Kafka checks the epoch of a partition it hosts before its leadership.
    if ctx.partitions.get(topic, p.partition).is_some()
        && let Some(error) = leader_epoch_refusal(p.current_leader_epoch, state.leader_epoch)
    {
        return Err(error);
    }
    let partition = ctx.partitions.led(image, topic, p.partition)?;
    if partition.is_offline() {
        return Err(ResponseError::KafkaStorageError);
    }
    Ok(partition.end_offset_for_epoch(p.leader_epoch))
}
