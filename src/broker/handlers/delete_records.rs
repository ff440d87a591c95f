//! DeleteRecords: moves partitions' log start offsets forward, as
//! `kafka-delete-records.sh`, `AdminClient.deleteRecords` and Kafka Streams
//! (purging repartition topics) ask.
//!
//! With one replica the request is complete once the leader's move is
//! durable, so `timeout_ms` is never waited on.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::security::acl::AclOperation as Operation;

/// Kafka's low watermark in a failed partition's answer.
const INVALID_LOW_WATERMARK: i64 = -1;

/// Blocking (each move fsyncs): run it on the blocking pool. Needs Delete
/// on each topic.
pub fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = ctx.coordinator.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let allowed = access.topic(Operation::Delete, &topic.name.0);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let moved = match ctx.partitions.led(&image, &topic.name.0, p.partition_index) {
                        _ if allowed.is_err() => Err(ResponseError::TopicAuthorizationFailed),
                        Err(error) => Err(error),
                        Ok(partition) => partition.delete_records(p.offset),
                    };
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match moved {
                        Ok(log_start) => result.with_low_watermark(log_start),
                        Err(error) => result
                            .with_low_watermark(INVALID_LOW_WATERMARK)
                            .with_error_code(error.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
