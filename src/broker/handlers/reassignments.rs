//! AlterPartitionReassignments (API 45) and ListPartitionReassignments
//! (API 46), KIP-455: an operator moves partitions between brokers. The
//! controller decides and commits each move; the list is read from the
//! committed metadata image. Alter needs Alter on the cluster, list
//! Describe on the cluster, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::{str_bytes, topic_name};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::{
    KafkaCode, MetadataImage, PartitionOutcome, PartitionReassignment, ReassignmentResult,
    ReassignmentTopic, TopicState,
};
use crate::security::acl::AclOperation;

pub async fn alter(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let asked: Vec<ReassignmentTopic> = request
        .topics
        .into_iter()
        .map(|topic| ReassignmentTopic {
            topic: topic.name.0.to_string(),
            partitions: topic
                .partitions
                .into_iter()
                .map(|p| PartitionReassignment {
                    partition: p.partition_index,
                    target_replicas: p
                        .replicas
                        .map(|replicas| replicas.into_iter().map(|id| id.0).collect()),
                })
                .collect(),
        })
        .collect();
    let (code, message) = if !access.allows_cluster(AclOperation::Alter) {
        (
            KafkaCode::CLUSTER_AUTHORIZATION_FAILED,
            "Alter on the cluster is not allowed".to_owned(),
        )
    } else {
        match ctx
            .coordinator
            .alter_partition_reassignments(asked.clone())
            .await
        {
            Ok(results) => return alter_response(KafkaCode::NONE, None, results),
            Err(error) => {
                tracing::warn!(%error, "AlterPartitionReassignments failed");
                (error.code(), error.message())
            }
        }
    };
    // As Kafka's error response: every partition asked about gets the
    // top-level error too.
    let results = asked
        .into_iter()
        .map(|topic| ReassignmentResult {
            partitions: topic
                .partitions
                .into_iter()
                .map(|p| PartitionOutcome {
                    partition: p.partition,
                    error_code: code,
                    error_message: Some(message.clone()),
                })
                .collect(),
            topic: topic.topic,
        })
        .collect();
    alter_response(code, Some(message), results)
}

fn alter_response(
    code: KafkaCode,
    message: Option<String>,
    results: Vec<ReassignmentResult>,
) -> AlterPartitionReassignmentsResponse {
    let responses = results
        .into_iter()
        .map(|topic| {
            ReassignableTopicResponse::default()
                .with_name(topic_name(&topic.topic))
                .with_partitions(
                    topic
                        .partitions
                        .into_iter()
                        .map(|p| {
                            ReassignablePartitionResponse::default()
                                .with_partition_index(p.partition)
                                .with_error_code(p.error_code.0)
                                .with_error_message(p.error_message.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_error_code(code.0)
        .with_error_message(message.as_deref().map(str_bytes))
        .with_responses(responses)
}

pub fn list(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !access.allows_cluster(AclOperation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(KafkaCode::CLUSTER_AUTHORIZATION_FAILED.0)
            .with_error_message(Some(str_bytes("Describe on the cluster is not allowed")));
    }
    let image = ctx.coordinator.image();
    let topics = match request.topics {
        // Kafka skips topics and partitions that do not exist.
        Some(asked) => asked
            .into_iter()
            .filter_map(|topic| {
                let state = image.topic(topic.name.0.as_str())?;
                ongoing(state, Some(&topic.partition_indexes))
            })
            .collect(),
        None => all_ongoing(&image),
    };
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

fn all_ongoing(image: &MetadataImage) -> Vec<OngoingTopicReassignment> {
    image
        .topics()
        .filter_map(|topic| ongoing(topic, None))
        .collect()
}

/// The moves in progress among `topic`'s partitions (`wanted` ones, or
/// all); `None` when there are none.
fn ongoing(topic: &TopicState, wanted: Option<&[i32]>) -> Option<OngoingTopicReassignment> {
    let broker_ids = |ids: &[i32]| ids.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let partitions: Vec<OngoingPartitionReassignment> = topic
        .partitions
        .iter()
        .enumerate()
        .filter_map(|(index, state)| {
            let index = i32::try_from(index).ok()?;
            let asked = wanted.is_none_or(|wanted| wanted.contains(&index));
            (asked && state.is_reassigning()).then(|| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(index)
                    .with_replicas(broker_ids(&state.replicas))
                    .with_adding_replicas(broker_ids(&state.adding_replicas))
                    .with_removing_replicas(broker_ids(&state.removing_replicas))
            })
        })
        .collect();
    (!partitions.is_empty()).then(|| {
        OngoingTopicReassignment::default()
            .with_name(topic_name(&topic.name))
            .with_partitions(partitions)
    })
}
