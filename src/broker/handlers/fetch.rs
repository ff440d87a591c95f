//! Fetch: whole batches from each requested partition within the request's
//! byte limits, parked up to `max_wait_ms` until `min_bytes` are available.
//! Batches go out as stored; only clients too old to read v2 batches
//! (Fetch v0–v3) get them converted.
//!
//! Consumers (`replica_id` -1) read up to the high watermark. A follower
//! (`replica_id` = its broker id, with ClusterAction on the cluster, as
//! Kafka asks; from v15 `replica_state`, with its broker epoch) reads up
//! to the log end, and its fetch offset tells the leader how far its log
//! reaches, which may move the high watermark. From v13 topics are named
//! by id (KIP-516): an id this broker does not know is answered
//! UNKNOWN_TOPIC_ID.
//! `current_leader_epoch` older than the partition's is answered
//! FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH, as in KIP-320.
//!
//! A fetch naming its `last_fetched_epoch` (v12+: followers) is checked
//! against the leader-epoch cache first, as Kafka's leader does (KIP-595):
//! where that epoch ends here before the fetch offset, or only an older one
//! is known, the logs diverge, and the partition is answered with
//! `diverging_epoch` {epoch, end offset} and no records; the follower cuts
//! its log there and fetches again. Such a fetch offset is not taken as
//! the follower's log end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use uuid::Uuid;

use super::{since, topic_name};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::broker::blocking::off_the_workers;
use crate::broker::partition::Partition;
use crate::records::{BatchHeader, down_convert, whole_batches};
use crate::replication::fetch_check::{Divergence, divergence, isr_eligible, leader_epoch_refusal};
use crate::replication::state::FollowerFetch;
use crate::security::acl::AclOperation as Operation;
use crate::storage;
use crate::storage::{LogChunk, StorageError, concat_chunks};

struct Wanted {
    /// Empty where a v13+ fetch named an unknown topic id.
    topic: TopicName,
    topic_id: Uuid,
    partition_index: i32,
    fetch_offset: i64,
    /// -1: not named (consumers, Fetch before v12).
    last_fetched_epoch: i32,
    partition_max_bytes: usize,
    /// The partition if this broker leads it and Read on the topic is
    /// allowed, else the partition's error.
    partition: Result<Arc<Partition>, ResponseError>,
    /// Whether the fetching log agrees with this one so far.
    divergence: Divergence,
    /// The epoch the fetch names (-1: none) and the partition's when the
    /// fetch came: a fetch held while leadership moves is answered as one
    /// that came after the move.
    current_leader_epoch: i32,
    leader_epoch: i32,
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
    let (replica_id, broker_epoch) = if version >= 15 {
        let state = &request.replica_state;
        (state.replica_id.0, state.replica_epoch)
    } else {
        (request.replica_id.0, -1)
    };
    let follower = (replica_id >= 0).then_some(replica_id);
    let replica_refused = follower.is_some() && !access.allows_cluster(Operation::ClusterAction);
    if let Some(replica) = follower.filter(|_| replica_refused) {
        ctx.replicas
            .refused_replica_fetch(replica, access.principal());
    }
    let wanted: Arc<Vec<Wanted>> = request
        .topics
        .iter()
        .flat_map(|topic| {
            let (name, topic_id) = if version >= 13 {
                let name = image
                    .topic_by_id(topic.topic_id)
                    .map(|t| topic_name(&t.name));
                (name, topic.topic_id)
            } else {
                // Before v13 the answer carries names only.
                (Some(topic.topic.clone()), Uuid::nil())
            };
            let known = name.is_some();
            let name = name.unwrap_or_default();
            let refused = known && !access.allows_topic(Operation::Read, &name.0);
            topic.partitions.iter().map(move |p| Wanted {
                topic: name.clone(),
                topic_id,
                partition_index: p.partition,
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: p.last_fetched_epoch,
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                divergence: Divergence::InStep,
                current_leader_epoch: p.current_leader_epoch,
                leader_epoch: image
                    .partition(&name.0, p.partition)
                    .map_or(-1, |state| state.leader_epoch),
                partition: if replica_refused {
                    Err(ResponseError::ClusterAuthorizationFailed)
                } else if !known {
                    Err(ResponseError::UnknownTopicId)
                } else if refused {
                    Err(ResponseError::TopicAuthorizationFailed)
                } else {
                    ctx.partitions
                        .led(image, &name.0, p.partition)
                        .and_then(|partition| {
                            let current = image
                                .partition(&name.0, p.partition)
                                .map_or(-1, |state| state.leader_epoch);
                            match leader_epoch_refusal(p.current_leader_epoch, current) {
                                Some(error) => Err(error),
                                None => Ok(partition),
                            }
                        })
                },
            })
        })
        .map(|mut wanted| {
            if let Ok(partition) = &wanted.partition
                && wanted.last_fetched_epoch >= 0
            {
                wanted.divergence = divergence(
                    wanted.last_fetched_epoch,
                    wanted.fetch_offset,
                    partition.end_offset_for_epoch(wanted.last_fetched_epoch),
                    partition.log_start_offset(),
                );
            }
            wanted
        })
        .collect::<Vec<_>>()
        .into();
    if let Some(replica) = follower {
        record_follower_fetch(ctx, image, replica, broker_epoch, &wanted);
    }
    // Fetch v0–v2 had no response-wide limit of their own: the broker's
    // `fetch.max.bytes` bounds every version, as in Kafka.
    let requested = if version >= 3 {
        request.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut images = ctx.coordinator.watch();
    images.borrow_and_update();
    let mut reader = Reader {
        wanted: wanted.clone(),
        max_bytes: requested.min(ctx.settings.fetch_max_bytes),
        version,
        max_decompressed: ctx.settings.message_max_decompressed_bytes,
        follower: follower.is_some(),
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
        let woken = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                () = any_append => {}
                // A moved leader answers now, not with stale data later.
                Ok(()) = images.changed() => {
                    let image = images.borrow_and_update().clone();
                    if let Some(moved) = moved_on(ctx, &image, &reader.wanted) {
                        reader.wanted = moved;
                    }
                }
            }
        });
        if woken.await.is_err() {
            let (response, bytes, _) = reader.read();
            ctx.metrics.bytes_fetched(bytes);
            return response;
        }
    }
}

/// The wanted partitions again if `image` moved any of them on since the
/// fetch came: NOT_LEADER_OR_FOLLOWER where this broker no longer leads,
/// FENCED_LEADER_EPOCH where it leads under a newer epoch than the one the
/// fetch named (Kafka's delayed fetch completes on both). None: nothing
/// moved.
fn moved_on(
    ctx: &BrokerContext,
    image: &crate::cluster::MetadataImage,
    wanted: &[Wanted],
) -> Option<Arc<Vec<Wanted>>> {
    let refusal = |w: &Wanted| {
        w.partition.as_ref().ok()?;
        let topic = &w.topic.0;
        if ctx.partitions.led(image, topic, w.partition_index).is_err() {
            return Some(ResponseError::NotLeaderOrFollower);
        }
        let epoch = image
            .partition(topic, w.partition_index)
            .map_or(-1, |state| state.leader_epoch);
        (epoch != w.leader_epoch && w.current_leader_epoch >= 0)
            .then_some(ResponseError::FencedLeaderEpoch)
    };
    if !wanted.iter().any(|w| refusal(w).is_some()) {
        return None;
    }
    let moved = wanted
        .iter()
        .map(|w| Wanted {
            topic: w.topic.clone(),
            topic_id: w.topic_id,
            partition: match refusal(w) {
                Some(error) => Err(error),
                None => w.partition.clone(),
            },
            ..*w
        })
        .collect();
    Some(Arc::new(moved))
}

/// One fetch request's reads, repeated while it waits for data.
#[derive(Clone)]
struct Reader {
    wanted: Arc<Vec<Wanted>>,
    max_bytes: usize,
    version: i16,
    max_decompressed: usize,
    /// A follower reads up to the log end, a consumer to the high watermark.
    follower: bool,
}

/// A follower's fetch offsets are how far its log reaches: the leader's
/// replication state takes them in, which may move the high watermark
/// (waking `acks=all` produces and consumers) or grow the ISR: only while
/// the image has the replica registered under the broker epoch it fetched
/// with (-1: a follower too old to say), unfenced and not shutting down.
fn record_follower_fetch(
    ctx: &BrokerContext,
    image: &crate::cluster::MetadataImage,
    replica: i32,
    broker_epoch: i64,
    wanted: &[Wanted],
) {
    let now = crate::broker::partition::now_ms();
    let isr_eligible = isr_eligible(image, replica, broker_epoch);
    for w in wanted {
        let Ok(partition) = &w.partition else {
            continue;
        };
        if w.divergence != Divergence::InStep {
            continue;
        }
        let fetch = FollowerFetch {
            replica,
            broker_epoch,
            isr_eligible,
            fetch_offset: w.fetch_offset,
        };
        let outcome =
            partition
                .replication
                .follower_fetched(fetch, partition.log_end_offset(), now);
        if outcome.high_watermark_moved {
            partition.appended().notify_waiters();
        }
        if let Some(alter) = outcome.alter {
            ctx.replicas
                .alter_isr(&w.topic.0, partition.clone(), alter, image);
        }
    }
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
        follower,
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
            Ok(partition) if w.divergence != Divergence::InStep => {
                // Answered at once: the follower has to cut its log first.
                has_error = true;
                diverging_data(w, partition, version)
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
                    up_to: (!follower).then(|| partition.high_watermark()),
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
            Some(last) if last.topic == w.topic && last.topic_id == w.topic_id => {
                last.partitions.push(data)
            }
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(w.topic.clone())
                    .with_topic_id(w.topic_id)
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
    /// The high watermark, for a consumer: no batch at or past it.
    up_to: Option<i64>,
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
        up_to,
    } = at;
    if limit == 0 && !first {
        return Ok(Bytes::new());
    }
    // Between the high watermark and the log end a consumer waits: nothing
    // there is committed yet, but the offset is not out of range either.
    if let Some(high_watermark) = up_to
        && offset >= high_watermark
        && offset <= partition.log_end_offset()
        && offset >= partition.log_start_offset()
    {
        return Ok(Bytes::new());
    }
    let mut chunks = partition
        .read_chunks(offset, limit)
        .map_err(|error| match error {
            StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            other => {
                tracing::error!(error = %other, topic = %partition.topic, "read failed");
                ResponseError::KafkaStorageError
            }
        })?;
    if let Some(high_watermark) = up_to
        && high_watermark < partition.log_end_offset()
    {
        chunks = below(chunks, high_watermark);
    }
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
        batches.into_iter().map(LogChunk::exact).collect(),
    ))
}

/// The batches of `chunks` that end below `high_watermark`. Only fetches
/// with uncommitted data behind them pay for the walk over batch headers.
fn below(chunks: Vec<LogChunk>, high_watermark: i64) -> Vec<LogChunk> {
    let mut kept = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        match chunk.stamp {
            Some(stamp) => {
                if stamp.base_offset >= high_watermark {
                    break;
                }
                kept.push(chunk);
            }
            None => {
                // A span of whole batches read from a segment file.
                let mut length = 0;
                let mut reached = false;
                while let Some(header) = BatchHeader::parse(&chunk.bytes[length..]) {
                    if header.base_offset >= high_watermark {
                        reached = true;
                        break;
                    }
                    if length + header.total_len() > chunk.bytes.len() {
                        break;
                    }
                    length += header.total_len();
                }
                if length > 0 {
                    kept.push(LogChunk::exact(chunk.bytes.slice(..length)));
                }
                if reached {
                    break;
                }
            }
        }
    }
    kept
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

/// A partition whose fetcher's log diverges from this one (or cannot be
/// placed in it): no records, and where to cut.
fn diverging_data(w: &Wanted, partition: &Partition, version: i16) -> PartitionData {
    let data = match w.divergence {
        Divergence::Diverging { epoch, end_offset } => PartitionData::default()
            .with_partition_index(w.partition_index)
            .with_diverging_epoch(
                EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset),
            )
            .with_records(Some(Bytes::new())),
        _ => error_data(w.partition_index, ResponseError::OffsetOutOfRange),
    };
    data.with_high_watermark(partition.high_watermark())
        .with_last_stable_offset(since(version, 4, partition.high_watermark(), -1))
        .with_log_start_offset(since(version, 5, partition.log_start_offset(), -1))
}

fn error_data(index: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_records(Some(Bytes::new()))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    /// A two-record batch whose base offset is `offset`.
    fn batch_at(offset: i64) -> Bytes {
        let mut batch = BytesMut::from(&crate::records::v2_batch(&["a", "b"])[..]);
        batch[..8].copy_from_slice(&offset.to_be_bytes());
        batch.freeze()
    }

    #[test]
    fn a_consumer_read_stops_before_the_first_batch_at_the_high_watermark() {
        let one = batch_at(0).len();
        let span = Bytes::from([batch_at(0), batch_at(2), batch_at(4)].concat());
        let cached = LogChunk {
            stamp: Some(storage::BatchStamp {
                base_offset: 6,
                partition_leader_epoch: 0,
            }),
            bytes: batch_at(0),
        };
        let chunks = vec![LogChunk::exact(span.clone()), cached.clone()];
        assert_eq!(
            below(chunks.clone(), 4),
            vec![LogChunk::exact(span.slice(..2 * one))]
        );
        assert_eq!(below(chunks.clone(), 6).len(), 1);
        assert_eq!(below(chunks.clone(), 8), chunks);
        assert!(below(chunks, 0).is_empty());
    }
}
