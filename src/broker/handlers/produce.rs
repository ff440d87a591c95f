//! Produce: validate each partition's record set by its batch headers, queue
//! it on the partition's writer, and answer once every partition is done.

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tokio::sync::oneshot;

use super::configs::produce_refusal;
use super::{since, str_bytes};
use crate::broker::BrokerContext;
use crate::broker::partition::{Appended, refusal};
use crate::records::{RecordError, first_magic, split_batches, up_convert, verify_records};

type Queued = oneshot::Receiver<Result<Appended, ResponseError>>;

enum PartitionOutcome {
    Queued(Queued),
    Failed(ResponseError, Option<String>),
}

/// Queues every partition's batches now (in request order) and returns the
/// future that builds the response.
pub fn enqueue(
    ctx: &Arc<BrokerContext>,
    request: ProduceRequest,
    version: i16,
) -> impl Future<Output = ProduceResponse> + Send + use<> {
    let mut topics = Vec::with_capacity(request.topic_data.len());
    let acks = request.acks;
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let outcome = queue_partition(ctx, &name, data.index, data.records, version, acks);
            partitions.push((data.index, outcome));
        }
        topics.push((topic.name, partitions));
    }
    async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, partitions) in topics {
            let mut partition_responses = Vec::with_capacity(partitions.len());
            for (index, outcome) in partitions {
                let result = match outcome {
                    PartitionOutcome::Queued(done) => match done.await {
                        Ok(Ok(appended)) => Ok(appended),
                        Ok(Err(error)) => Err((error, None)),
                        Err(_) => Err((ResponseError::NotLeaderOrFollower, None)),
                    },
                    PartitionOutcome::Failed(error, message) => Err((error, message)),
                };
                partition_responses.push(partition_response(index, result, version));
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partition_responses),
            );
        }
        ProduceResponse::default().with_responses(responses)
    }
}

fn queue_partition(
    ctx: &BrokerContext,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
    version: i16,
    acks: i16,
) -> PartitionOutcome {
    let Some(partition) = ctx.partitions.get(topic, index) else {
        return PartitionOutcome::Failed(ResponseError::UnknownTopicOrPartition, None);
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return PartitionOutcome::Failed(ResponseError::CorruptMessage, Some("no records".into()));
    };
    if let Some((error, message)) = produce_refusal(ctx, topic, index, records.len(), acks) {
        return PartitionOutcome::Failed(error, Some(message));
    }
    let cap = ctx.settings.message_max_decompressed_bytes;
    let validated = match first_magic(&records) {
        Some(magic) if magic < 2 && version <= 2 => {
            up_convert(&records, cap).and_then(|converted| split_batches(&converted))
        }
        Some(magic) if magic < 2 => Err(RecordError::UnexpectedMagic { position: 0, magic }),
        _ => split_batches(&records),
    };
    // Uncompressed records are checked here, a walk over bytes already in
    // memory; compressed ones by the partition's writer, off the workers.
    let validated = validated.and_then(|batches| {
        let mut compressed = false;
        for (header, batch) in &batches {
            if header.is_compressed() {
                compressed = true;
            } else {
                verify_records(batch, header, cap)?;
            }
        }
        Ok((batches, compressed.then_some(cap)))
    });
    match validated {
        Ok((batches, decompress_cap)) => {
            ctx.metrics
                .records_in(batches.iter().map(|(h, _)| h.record_count as u64).sum());
            PartitionOutcome::Queued(partition.append(batches, decompress_cap))
        }
        Err(error) => {
            tracing::debug!(%topic, partition = index, %error, "refused produce");
            PartitionOutcome::Failed(refusal(&error), Some(error.to_string()))
        }
    }
}

fn partition_response(
    index: i32,
    result: Result<Appended, (ResponseError, Option<String>)>,
    version: i16,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(appended) => response
            .with_base_offset(appended.base_offset)
            .with_log_append_time_ms(since(version, 2, appended.log_append_time, -1))
            .with_log_start_offset(since(version, 5, appended.log_start_offset, -1)),
        Err((error, message)) => response
            .with_error_code(error.code())
            .with_base_offset(-1)
            .with_error_message(since(version, 8, message.map(|m| str_bytes(&m)), None)),
    }
}
