//! Fetch: whole batches from each requested partition within the request's
//! byte limits, parked up to `max_wait_ms` until `min_bytes` are available.
//! Batches go out as stored; only clients too old to read v2 batches
//! (Fetch v0–v3) get them converted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::since;
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::broker::blocking::off_the_workers;
use crate::broker::partition::Partition;
use crate::records::{down_convert, whole_batches};
use crate::security::acl::AclOperation as Operation;
use crate::storage;
use crate::storage::{LogChunk, StorageError, concat_chunks};

struct Wanted {
    topic: TopicName,
    partition_index: i32,
    fetch_offset: i64,
    partition_max_bytes: usize,
    /// The partition if this broker leads it and Read on the topic is
    /// allowed, else the partition's error.
    partition: Result<Arc<Partition>, ResponseError>,
}

/// Needs Read on each topic.
pub async fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: FetchRequest,
    version: i16,
) -> FetchResponse {
    let image = ctx.coordinator.image();
    let image = &*image;
    let wanted: Arc<Vec<Wanted>> = request
        .topics
        .iter()
        .flat_map(|topic| {
            let refused = !access.allows_topic(Operation::Read, &topic.topic.0);
            topic.partitions.iter().map(move |p| Wanted {
                topic: topic.topic.clone(),
                partition_index: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                partition: if refused {
                    Err(ResponseError::TopicAuthorizationFailed)
                } else {
                    ctx.partitions.led(image, &topic.topic.0, p.partition)
                },
            })
        })
        .collect::<Vec<_>>()
        .into();
    // Fetch v0–v2 had no response-wide limit of their own: the broker's
    // `fetch.max.bytes` bounds every version, as in Kafka.
    let requested = if version >= 3 {
        request.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let reader = Reader {
        wanted: wanted.clone(),
        max_bytes: requested.min(ctx.settings.fetch_max_bytes),
        version,
        max_decompressed: ctx.settings.message_max_decompressed_bytes,
    };
    let min_bytes = request.min_bytes.max(0) as usize;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    loop {
        // Register for wake-ups before reading, so an append between the
        // read and the wait is not missed.
        let mut waits: Vec<_> = wanted
            .iter()
            .filter_map(|w| w.partition.as_ref().ok())
            .map(|p| Box::pin(p.appended().notified()))
            .collect();
        for wait in &mut waits {
            wait.as_mut().enable();
        }
        let (response, bytes, has_error) = reader.read();
        let now = tokio::time::Instant::now();
        if bytes >= min_bytes || has_error || now >= deadline || waits.is_empty() {
            ctx.metrics.bytes_fetched(bytes);
            return response;
        }
        let any_append = std::future::poll_fn(|cx| {
            for wait in waits.iter_mut() {
                if Pin::as_mut(wait).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        if tokio::time::timeout_at(deadline, any_append).await.is_err() {
            let (response, bytes, _) = reader.read();
            ctx.metrics.bytes_fetched(bytes);
            return response;
        }
    }
}

/// One fetch request's reads, repeated while it waits for data.
#[derive(Clone)]
struct Reader {
    wanted: Arc<Vec<Wanted>>,
    max_bytes: usize,
    version: i16,
    max_decompressed: usize,
}

impl Reader {
    /// [`read_all`], on the async worker when every partition is served
    /// from memory (the common case of consumers at the log end), else off
    /// the workers: reading segment files, and down-converting for Fetch
    /// v0–v3 (which decompresses and re-encodes records).
    fn read(&self) -> (FetchResponse, usize, bool) {
        let in_memory = self.wanted.iter().all(|w| {
            w.partition
                .as_ref()
                .map_or(true, |p| p.reads_from_memory(w.fetch_offset))
        });
        if self.version >= 4 && in_memory {
            return read_all(self);
        }
        // Segment bytes in the page cache are read here without waiting
        // (see `storage::cached_only`); down-conversion always moves.
        if self.version >= 4
            && let Some(read) = storage::cached_only(|| read_all(self))
        {
            return read;
        }
        off_the_workers(|| read_all(self))
    }
}

/// Reads every wanted partition once. Returns the response, the record
/// bytes in it, and whether any partition carries an error.
fn read_all(reader: &Reader) -> (FetchResponse, usize, bool) {
    let Reader {
        wanted,
        max_bytes,
        version,
        max_decompressed,
    } = reader;
    let (max_bytes, version) = (*max_bytes, *version);
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut remaining = max_bytes;
    let mut total = 0;
    let mut has_error = false;
    for w in wanted.iter() {
        let data = match &w.partition {
            Err(error) => {
                has_error = true;
                error_data(w.partition_index, *error)
            }
            Ok(partition) => {
                // The first batch of the response is always whole, even past
                // the limits, so a consumer can never get stuck behind it.
                let limit = if total == 0 {
                    w.partition_max_bytes.min(remaining).max(1)
                } else {
                    w.partition_max_bytes.min(remaining)
                };
                let at = Position {
                    offset: w.fetch_offset,
                    limit,
                    first: total == 0,
                };
                match read_partition(partition, at, version, *max_decompressed) {
                    Ok(records) => {
                        total += records.len();
                        remaining = remaining.saturating_sub(records.len());
                        PartitionData::default()
                            .with_partition_index(w.partition_index)
                            .with_high_watermark(partition.high_watermark())
                            .with_last_stable_offset(since(
                                version,
                                4,
                                partition.high_watermark(),
                                -1,
                            ))
                            .with_log_start_offset(since(
                                version,
                                5,
                                partition.log_start_offset(),
                                -1,
                            ))
                            .with_aborted_transactions(since(version, 4, Some(Vec::new()), None))
                            .with_records(Some(records))
                    }
                    Err(error) => {
                        has_error = true;
                        error_data(w.partition_index, error)
                            .with_high_watermark(partition.high_watermark())
                            .with_log_start_offset(since(
                                version,
                                5,
                                partition.log_start_offset(),
                                -1,
                            ))
                    }
                }
            }
        };
        match topics.last_mut() {
            Some(last) if last.topic == w.topic => last.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(w.topic.clone())
                    .with_partitions(vec![data]),
            ),
        }
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        has_error,
    )
}

/// Where one partition's read starts and how much it may take.
struct Position {
    offset: i64,
    limit: usize,
    /// The response's first data: at least one whole batch, past the limit.
    first: bool,
}

fn read_partition(
    partition: &Partition,
    at: Position,
    version: i16,
    max_decompressed: usize,
) -> Result<Bytes, ResponseError> {
    let Position {
        offset,
        limit,
        first,
    } = at;
    if limit == 0 && !first {
        return Ok(Bytes::new());
    }
    let chunks = partition
        .read_chunks(offset, limit)
        .map_err(|error| match error {
            StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            other => {
                tracing::error!(error = %other, topic = %partition.topic, "read failed");
                ResponseError::KafkaStorageError
            }
        })?;
    if version < 4 {
        // Old clients need legacy message sets: convert batch by batch.
        let batches: Vec<Bytes> = chunks
            .into_iter()
            .flat_map(|chunk| whole_batches(chunk.into_bytes()))
            .collect();
        let batches = within_limit(batches, limit, first);
        let magic = if version < 2 { 0 } else { 1 };
        return down_convert(&batches, magic, max_decompressed).map_err(|error| {
            tracing::error!(%error, "down-conversion failed");
            ResponseError::CorruptMessage
        });
    }
    let records = concat_chunks(chunks);
    if first || records.len() <= limit {
        return Ok(records);
    }
    // A later partition must not overshoot the response limit.
    let batches = within_limit(whole_batches(records), limit, false);
    Ok(concat_chunks(
        batches
            .into_iter()
            .map(|bytes| LogChunk {
                base_offset: None,
                bytes,
            })
            .collect(),
    ))
}

/// The leading batches that fit in `limit` (at least one when `first`).
fn within_limit(batches: Vec<Bytes>, limit: usize, first: bool) -> Vec<Bytes> {
    let mut used = 0;
    batches
        .into_iter()
        .enumerate()
        .take_while(|(i, b)| {
            used += b.len();
            used <= limit || (first && *i == 0)
        })
        .map(|(_, b)| b)
        .collect()
}

fn error_data(index: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_records(Some(Bytes::new()))
}
