//! DescribeTopicPartitions (API 75, KIP-966): Metadata's partitions plus
//! the eligible leader replicas and last known ELR, paged by a cursor so a
//! topic with many partitions takes several requests.
//!
//! The ELR fields are null while `eligible.leader.replicas.version` is 0,
//! so a tool can tell "none eligible" from "not tracked".

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};

use super::topic_name;
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::MetadataImage;
use crate::group::ownership::is_internal_topic;
use crate::security::acl::{AclOperation as Operation, ResourceType};

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one response holds whatever the request asks.
const MAX_PARTITIONS_PER_RESPONSE: usize = 2000;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = ctx.coordinator.image();
    // An empty list asks for every topic the caller may describe.
    let mut names: Vec<String> = if request.topics.is_empty() {
        image
            .topics()
            .map(|t| t.name.clone())
            .filter(|name| access.allows_topic(Operation::Describe, name))
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = request.cursor.as_ref().map_or((None, 0), |c| {
        (Some(c.topic_name.0.to_string()), c.partition_index.max(0))
    });
    let limit = usize::try_from(request.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut budget = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if cursor_topic.as_ref().is_some_and(|start| name < *start) {
            continue;
        }
        let first = if cursor_topic.as_ref() == Some(&name) {
            usize::try_from(cursor_partition).unwrap_or(0)
        } else {
            0
        };
        if budget == 0 {
            next_cursor = Some(cursor(&name, 0));
            break;
        }
        let (topic, stopped_at) = describe(&image, access, &name, first, &mut budget);
        topics.push(topic);
        if let Some(partition) = stopped_at {
            next_cursor = Some(cursor(&name, partition));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(topic))
        .with_partition_index(partition)
}

/// One topic from partition `first`, spending `budget`; the partition to
/// continue from when the budget ran out before the topic's end.
fn describe(
    image: &MetadataImage,
    access: &Access,
    name: &str,
    first: usize,
    budget: &mut usize,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let response =
        DescribeTopicPartitionsResponseTopic::default().with_name(Some(topic_name(name)));
    if !access.allows_topic(Operation::Describe, name) {
        let code = ResponseError::TopicAuthorizationFailed.code();
        return (response.with_error_code(code), None);
    }
    let Some(topic) = image.topic(name) else {
        let code = ResponseError::UnknownTopicOrPartition.code();
        return (response.with_error_code(code), None);
    };
    let elr_tracked = image.eligible_leader_replicas.enabled();
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let mut partitions = Vec::new();
    let mut stopped_at = None;
    for (index, p) in topic.partitions.iter().enumerate().skip(first) {
        if *budget == 0 {
            stopped_at = Some(i32::try_from(index).unwrap_or(i32::MAX));
            break;
        }
        *budget -= 1;
        let offline: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|id| image.broker(*id).is_none_or(|b| b.fenced))
            .collect();
        let error = if p.leader < 0 {
            ResponseError::LeaderNotAvailable.code()
        } else {
            0
        };
        partitions.push(
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(i32::try_from(index).unwrap_or(i32::MAX))
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(brokers(&p.replicas))
                .with_isr_nodes(brokers(&p.isr))
                .with_eligible_leader_replicas(elr_tracked.then(|| brokers(&p.elr)))
                .with_last_known_elr(elr_tracked.then(|| brokers(&p.last_known_elr)))
                .with_offline_replicas(brokers(&offline)),
        );
    }
    let response = response
        .with_topic_id(topic.id)
        .with_is_internal(is_internal_topic(name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(access.authorized_operations(ResourceType::Topic, name));
    (response, stopped_at)
}
