//! ListOffsets: earliest (-2), latest (-1: the high watermark) or the first
//! offset at or after a timestamp (below the high watermark), per
//! partition. `current_leader_epoch` is checked as Fetch checks it. From v4
//! the answer names the leader epoch of the offset, as Kafka's does: the
//! partition's current epoch for latest, else the epoch that wrote the
//! offset (-1 when unknown), which consumers keep with their position to
//! validate it after a leader change (KIP-320).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::since;
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::broker::partition::Partition;
use crate::records::{BatchHeader, find_by_timestamp};
use crate::replication::fetch_check::leader_epoch_refusal;
use crate::security::acl::AclOperation as Operation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// Runs on the blocking pool: a lookup by time reads segment files and may
/// decompress a batch.
pub fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let max_decompressed = ctx.settings.message_max_decompressed_bytes;
    let image = ctx.coordinator.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let allowed = access.topic(Operation::Describe, &topic.name.0);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let current_epoch = image
                        .partition(&topic.name.0, p.partition_index)
                        .map_or(-1, |state| state.leader_epoch);
                    let stale = leader_epoch_refusal(p.current_leader_epoch, current_epoch);
                    let led = ctx.partitions.led(&image, &topic.name.0, p.partition_index);
                    let result = match (led, stale) {
                        _ if allowed.is_err() => Err(ResponseError::TopicAuthorizationFailed),
                        (Err(error), _) | (Ok(_), Some(error)) => Err(error),
                        (Ok(partition), None) => lookup(&partition, p.timestamp, max_decompressed)
                            .map(|found| {
                                let epoch = match (p.timestamp, found.0) {
                                    (LATEST, _) => current_epoch,
                                    (_, offset) if offset < 0 => -1,
                                    (_, offset) => partition.epoch_for_offset(offset).unwrap_or(-1),
                                };
                                (found, epoch)
                            }),
                    };
                    match result {
                        Ok(((offset, _), _)) if version == 0 => {
                            let offsets = if offset >= 0 {
                                vec![offset]
                            } else {
                                Vec::new()
                            };
                            response.with_old_style_offsets(offsets)
                        }
                        Ok(((offset, timestamp), epoch)) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(since(version, 4, epoch, -1)),
                        Err(error) => response.with_error_code(error.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets target; (-1, -1) when no record
/// has a timestamp at or after the one asked for, as Kafka answers.
fn lookup(
    partition: &Partition,
    target: i64,
    max_decompressed: usize,
) -> Result<(i64, i64), ResponseError> {
    match target {
        LATEST => Ok((partition.high_watermark(), -1)),
        EARLIEST => Ok((partition.log_start_offset(), -1)),
        timestamp if timestamp >= 0 => by_timestamp(partition, timestamp, max_decompressed)
            // As Kafka: a record not yet committed is not found by time either.
            .map(|found| {
                if found.0 >= partition.high_watermark() {
                    (-1, -1)
                } else {
                    found
                }
            })
            .map_err(|error| {
                tracing::error!(%error, "timestamp lookup failed");
                ResponseError::KafkaStorageError
            }),
        _ => Err(ResponseError::InvalidRequest),
    }
}

/// The log finds the first batch whose max timestamp reaches `timestamp`;
/// the exact record is then found inside that batch. Records below the log
/// start do not count (as in Kafka): when they are the only ones of a batch
/// straddling it that reach the timestamp, the search goes on after it.
fn by_timestamp(
    partition: &Partition,
    timestamp: i64,
    max_decompressed: usize,
) -> Result<(i64, i64), String> {
    let mut from = 0;
    loop {
        let Some((batch_offset, _)) = partition
            .offset_for_timestamp(timestamp, from)
            .map_err(|e| e.to_string())?
        else {
            return Ok((-1, -1));
        };
        let batches = partition.read(batch_offset, 1).map_err(|e| e.to_string())?;
        let Some(batch) = batches.first() else {
            return Ok((-1, -1));
        };
        let found = find_by_timestamp(batch, timestamp, batch_offset, max_decompressed)
            .map_err(|e| e.to_string())?;
        if let Some(found) = found {
            return Ok(found);
        }
        match BatchHeader::parse(batch) {
            Some(header) => from = header.last_offset() + 1,
            None => return Ok((-1, -1)),
        }
    }
}
