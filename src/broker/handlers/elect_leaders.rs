//! ElectLeaders (KIP-183, KIP-460): an operator moves leadership back to
//! the preferred replicas, or gives leaderless partitions an unclean
//! leader. Decided and committed by the controller; needs Alter on the
//! cluster, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use super::{since, str_bytes, topic_name};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::{ElectionResult, ElectionTopic, ElectionType, KafkaCode, PartitionElection};
use crate::security::acl::AclOperation;

pub async fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let asked: Option<Vec<ElectionTopic>> = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .map(|topic| ElectionTopic {
                topic: topic.topic.0.to_string(),
                partitions: topic.partitions,
            })
            .collect()
    });
    // v0 has no election type field: its default, 0, is a preferred election.
    let kind = if access.allows_cluster(AclOperation::Alter) {
        ElectionType::from_wire(request.election_type).ok_or_else(|| {
            (
                KafkaCode::INVALID_REQUEST,
                format!("unknown election type {}", request.election_type),
            )
        })
    } else {
        Err((
            KafkaCode::CLUSTER_AUTHORIZATION_FAILED,
            "Alter on the cluster is not allowed".to_owned(),
        ))
    };
    let (code, message) = match kind {
        Ok(election_type) => {
            let request = crate::cluster::ElectLeadersRequest {
                election_type,
                topic_partitions: asked.clone(),
            };
            match ctx.coordinator.elect_leaders(request).await {
                Ok(results) => return response(version, KafkaCode::NONE, results),
                Err(error) => {
                    tracing::warn!(%error, "ElectLeaders failed");
                    (error.code(), error.message())
                }
            }
        }
        Err(refusal) => refusal,
    };
    // Every partition asked for gets the refusal or failure (v0 has no
    // top-level code); with all of them asked for, there is nothing to list.
    let results = asked
        .unwrap_or_default()
        .into_iter()
        .map(|topic| ElectionResult {
            partitions: topic
                .partitions
                .into_iter()
                .map(|partition| PartitionElection {
                    partition,
                    error_code: code,
                    error_message: Some(message.clone()),
                })
                .collect(),
            topic: topic.topic,
        })
        .collect();
    response(version, code, results)
}

fn response(version: i16, code: KafkaCode, results: Vec<ElectionResult>) -> ElectLeadersResponse {
    let results = results
        .into_iter()
        .map(|topic| {
            ReplicaElectionResult::default()
                .with_topic(topic_name(&topic.topic))
                .with_partition_result(
                    topic
                        .partitions
                        .into_iter()
                        .map(|p| {
                            PartitionResult::default()
                                .with_partition_id(p.partition)
                                .with_error_code(p.error_code.0)
                                .with_error_message(p.error_message.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(since(version, 1, code.0, 0))
        .with_replica_election_results(results)
}
