//! Produce: validate each partition's record set by its batch headers, queue
//! it on the partition's writer, and answer once every partition is done.
//!
//! With `acks=all` on a partition with followers, "done" is when the high
//! watermark passes the request's last batch (the followers' fetches move
//! it and wake the waiting produce), or REQUEST_TIMED_OUT after the
//! request's `timeout_ms`. A single-replica partition's high watermark is
//! its log end, so it answers as soon as its write is done, as before.

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tokio::sync::oneshot;

use super::configs::produce_refusal;
use super::{since, str_bytes};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::broker::acks::await_high_watermark;
use crate::broker::blocking::off_the_workers;
use crate::broker::partition::{Appended, Partition, refusal};
use crate::cluster::MetadataImage;
use crate::config::ProduceLimits;
use crate::group::ownership::is_internal_topic;
use crate::records::{
    BatchHeader, RecordError, Walked, first_magic, split_batches, up_convert, verify_records,
    walk_records,
};
use crate::security::acl::{AclOperation as Operation, ResourceType};

type Queued = oneshot::Receiver<Result<Appended, ResponseError>>;

/// An `acks=all` produce waiting for a partition's followers.
struct AwaitingFollowers {
    partition: Arc<Partition>,
    /// The topic's `min.insync.replicas`.
    min_insync_replicas: usize,
}

enum PartitionOutcome {
    /// With the partition when the answer waits for its followers.
    Queued(Queued, Option<AwaitingFollowers>),
    Failed(ResponseError, Option<String>),
    /// Refused for some of its records (KIP-467): each as (index in its
    /// batch, why).
    RecordsRefused(String, Vec<(i32, String)>),
}

/// How a produce to one partition failed, as the response carries it.
struct Failure {
    error: ResponseError,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
}

impl Failure {
    fn of(error: ResponseError, message: Option<String>) -> Self {
        Failure {
            error,
            message,
            record_errors: Vec::new(),
        }
    }
}

/// Queues every partition's batches now (in request order) and returns the
/// future that builds the response.
///
/// Needs Write on each topic: a refused topic's partitions answer
/// TOPIC_AUTHORIZATION_FAILED and are not queued. A transactional produce
/// also needs Write on its transactional id (every partition answers
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise, as in Kafka).
pub fn enqueue(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: ProduceRequest,
    version: i16,
) -> impl Future<Output = ProduceResponse> + Send + use<> {
    let mut topics = Vec::with_capacity(request.topic_data.len());
    let acks = request.acks;
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let image = ctx.coordinator.image();
    let transaction_refused = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !access.allows(Operation::Write, ResourceType::TransactionalId, id));
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let refusal = if transaction_refused {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !access.allows_topic(Operation::Write, &name) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let outcome = match refusal {
                None => {
                    let target = (name.as_str(), data.index);
                    queue_partition(ctx, &image, target, data.records, version, acks)
                }
                Some(error) => PartitionOutcome::Failed(error, None),
            };
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
                    PartitionOutcome::Queued(done, waits) => match done.await {
                        Ok(Ok(appended)) => match waits {
                            Some(waiting) => committed(&waiting, appended, deadline).await,
                            None => Ok(appended),
                        },
                        Ok(Err(error)) => Err(Failure::of(error, None)),
                        Err(_) => Err(Failure::of(ResponseError::NotLeaderOrFollower, None)),
                    },
                    PartitionOutcome::Failed(error, message) => Err(Failure::of(error, message)),
                    PartitionOutcome::RecordsRefused(message, record_errors) => Err(Failure {
                        error: ResponseError::InvalidRecord,
                        message: Some(message),
                        record_errors,
                    }),
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

/// Validates and queues one partition's records, if this broker leads it.
fn queue_partition(
    ctx: &BrokerContext,
    image: &MetadataImage,
    (topic, index): (&str, i32),
    records: Option<bytes::Bytes>,
    version: i16,
    acks: i16,
) -> PartitionOutcome {
    // Only the group coordinator writes there (Kafka's ReplicaManager
    // refuses clients the same way), so its loader reads only its records.
    if is_internal_topic(topic) {
        return PartitionOutcome::Failed(
            ResponseError::InvalidTopicException,
            Some(format!("Cannot append to internal topic {topic}")),
        );
    }
    let partition = match ctx.partitions.led(image, topic, index) {
        Ok(partition) => partition,
        Err(error) => return PartitionOutcome::Failed(error, None),
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
    if let Ok((batches, decompress_cap)) = &validated
        && partition.is_compacted()
    {
        let keyless = match decompress_cap {
            // Compressed batches are decompressed to find their keys.
            Some(_) => off_the_workers(|| records_without_key(batches, cap)),
            None => records_without_key(batches, cap),
        };
        match keyless {
            Ok(indexes) if indexes.is_empty() => {}
            Ok(indexes) => return keyless_refusal(topic, index, &indexes),
            Err(error) => {
                return PartitionOutcome::Failed(refusal(&error), Some(error.to_string()));
            }
        }
    }
    match validated {
        Ok((batches, decompress_cap)) => {
            ctx.metrics
                .records_in(batches.iter().map(|(h, _)| h.record_count as u64).sum());
            let waits = (acks == -1 && partition.replication.waits_for_followers()).then(|| {
                let configs = image
                    .topic(topic)
                    .map(|t| t.configs.clone())
                    .unwrap_or_default();
                let limits = ProduceLimits::of_topic(&ctx.settings.log, &configs);
                AwaitingFollowers {
                    partition: partition.clone(),
                    min_insync_replicas: usize::try_from(limits.min_insync_replicas).unwrap_or(1),
                }
            });
            let leader_epoch = image
                .partition(topic, index)
                .map_or(-1, |state| state.leader_epoch);
            let queued = partition.append(batches, decompress_cap, leader_epoch);
            PartitionOutcome::Queued(queued, waits)
        }
        Err(error) => {
            tracing::debug!(%topic, partition = index, %error, "refused produce");
            PartitionOutcome::Failed(refusal(&error), Some(error.to_string()))
        }
    }
}

/// Waits until the followers have `appended` (see [`await_high_watermark`]).
async fn committed(
    waiting: &AwaitingFollowers,
    appended: Appended,
    deadline: tokio::time::Instant,
) -> Result<Appended, Failure> {
    await_high_watermark(
        &waiting.partition,
        appended.end_offset,
        waiting.min_insync_replicas,
        deadline,
    )
    .await
    .map(|()| appended)
    .map_err(|error| Failure::of(error, None))
}

/// The records without a key, each by its index within its batch (Kafka's
/// `batch_index`; clients send one batch per partition). A walk over each
/// batch's records that allocates nothing per record.
fn records_without_key(
    batches: &[(BatchHeader, bytes::Bytes)],
    cap: usize,
) -> Result<Vec<i32>, RecordError> {
    let mut keyless = Vec::new();
    for (header, batch) in batches {
        if header.is_control() {
            continue;
        }
        let mut index = 0;
        let walked = walk_records(batch, header, cap, |record| {
            if !record.has_key {
                keyless.push(index);
            }
            index += 1;
            std::ops::ControlFlow::<()>::Continue(())
        })?;
        debug_assert_eq!(walked, Walked::All);
    }
    Ok(keyless)
}

/// Kafka's answer to records without a key on a compacted topic: the
/// whole partition's produce is refused with INVALID_RECORD, one record
/// error per keyless record and a summary naming the first three.
fn keyless_refusal(topic: &str, index: i32, keyless: &[i32]) -> PartitionOutcome {
    let why = format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{index}."
    );
    let errors: Vec<(i32, String)> = keyless.iter().map(|&i| (i, why.clone())).collect();
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
        .collect();
    let message = format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    );
    tracing::debug!(%topic, partition = index, records = errors.len(), "refused records without a key");
    PartitionOutcome::RecordsRefused(message, errors)
}

fn partition_response(
    index: i32,
    result: Result<Appended, Failure>,
    version: i16,
) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(appended) => response
            .with_base_offset(appended.base_offset)
            .with_log_append_time_ms(since(version, 2, appended.log_append_time, -1))
            .with_log_start_offset(since(version, 5, appended.log_start_offset, -1)),
        Err(failure) => {
            let record_errors = failure
                .record_errors
                .iter()
                .map(|(batch_index, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(*batch_index)
                        .with_batch_index_error_message(Some(str_bytes(message)))
                })
                .collect();
            response
                .with_error_code(failure.error.code())
                .with_base_offset(-1)
                .with_record_errors(since(version, 8, record_errors, Vec::new()))
                .with_error_message(since(
                    version,
                    8,
                    failure.message.map(|m| str_bytes(&m)),
                    None,
                ))
        }
    }
}
