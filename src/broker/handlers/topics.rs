//! CreateTopics, DeleteTopics and CreatePartitions: validated here, decided
//! by the cluster coordinator, then reflected in the hosted partitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use uuid::Uuid;

use super::{since, str_bytes, topic_name};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::{ClusterError, CreateTopicRequest, ReplicaAssignment};
use crate::config::{TopicConfig, describe_topic_configs};
use crate::security::acl::AclOperation as Operation;

fn rejected(code: ResponseError, message: impl Into<String>) -> ClusterError {
    ClusterError::Rejected {
        code: crate::cluster::KafkaCode(code.code()),
        message: message.into(),
    }
}

fn not_authorized(operation: Operation) -> ClusterError {
    rejected(
        ResponseError::TopicAuthorizationFailed,
        format!("{operation} on the topic is not allowed"),
    )
}

/// Needs Create on the cluster or on the topic.
pub async fn create(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let assignments: Vec<ReplicaAssignment> = topic
            .assignments
            .iter()
            .map(|a| ReplicaAssignment {
                partition_index: a.partition_index,
                broker_ids: a.broker_ids.iter().map(|b| b.0).collect(),
            })
            .collect();
        // -1 means "the broker's default" (v4+), and is the only value
        // allowed next to a manual assignment.
        let partitions = if topic.num_partitions == -1 {
            ctx.settings.num_partitions
        } else {
            topic.num_partitions
        };
        let replication_factor = if topic.replication_factor == -1 {
            ctx.settings.default_replication_factor
        } else {
            topic.replication_factor
        };
        let allowed = access.allows_cluster(Operation::Create)
            || access.allows_topic(Operation::Create, &name);
        let outcome = match TopicConfig::from_pairs(configs.clone(), &ctx.settings.log) {
            _ if !allowed => Err(not_authorized(Operation::Create)),
            Err(error) => Err(rejected(ResponseError::InvalidConfig, error.to_string())),
            Ok(_) if !assignments.is_empty() && topic.replication_factor != -1 => Err(rejected(
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but replication factor was not \
                 set to -1.",
            )),
            Ok(_) if !assignments.is_empty() && topic.num_partitions != -1 => Err(rejected(
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but numPartitions was not set \
                 to -1.",
            )),
            Ok(_) => {
                ctx.coordinator
                    .create_topic(CreateTopicRequest {
                        name: name.clone(),
                        partitions,
                        replication_factor,
                        configs: configs.clone(),
                        assignments,
                        validate_only: request.validate_only,
                    })
                    .await
            }
        };
        let result = CreatableTopicResult::default().with_name(topic_name(&name));
        results.push(match outcome {
            Ok(summary) => {
                if !request.validate_only {
                    tracing::info!(topic = %name, partitions = summary.partitions, "created topic");
                }
                result
                    .with_topic_id(since(version, 7, summary.id, Uuid::nil()))
                    .with_num_partitions(since(version, 5, summary.partitions, -1))
                    .with_replication_factor(since(version, 5, summary.replication_factor, -1))
                    .with_configs(since(
                        version,
                        5,
                        Some(created_configs(ctx, &configs)),
                        None,
                    ))
            }
            Err(error) => result
                .with_error_code(error.code().0)
                .with_error_message(since(version, 1, Some(str_bytes(&error.message())), None)),
        });
    }
    ctx.partitions
        .reconcile_off_workers(ctx.coordinator.image())
        .await;
    CreateTopicsResponse::default().with_topics(results)
}

/// The configs a new topic has, as Kafka returns them in CreateTopics v5+
/// (so a client need not describe it): every topic key with its source.
fn created_configs(
    ctx: &BrokerContext,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    describe_topic_configs(&ctx.settings.origins, &ctx.settings.log, overrides)
        .into_iter()
        .map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(&entry.name))
                .with_value(entry.value.as_deref().map(str_bytes))
                .with_read_only(entry.read_only)
                .with_config_source(entry.source.id())
                .with_is_sensitive(entry.sensitive)
        })
        .collect()
}

/// Needs Delete on the topic.
pub async fn delete(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v0–v5 name topics in `topic_names`; v6 in `topics`, by name or id.
    let image = ctx.coordinator.image();
    let mut targets: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), Uuid::nil()))
        .collect();
    for state in &request.topics {
        let name = match &state.name {
            Some(name) => Some(name.0.to_string()),
            None => image.topic_by_id(state.topic_id).map(|t| t.name.clone()),
        };
        targets.push((name, state.topic_id));
    }
    let mut responses = Vec::with_capacity(targets.len());
    for (name, topic_id) in targets {
        let outcome = match &name {
            None => Err(rejected(ResponseError::UnknownTopicId, "unknown topic id")),
            Some(name) if !access.allows_topic(Operation::Delete, name) => {
                Err(not_authorized(Operation::Delete))
            }
            Some(_) if !ctx.settings.delete_topic_enable => Err(rejected(
                ResponseError::TopicDeletionDisabled,
                "delete.topic.enable is false",
            )),
            Some(name) => ctx.coordinator.delete_topic(name).await,
        };
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(since(version, 6, topic_id, Uuid::nil()));
        responses.push(match outcome {
            Ok(id) => {
                tracing::info!(topic = ?name, "deleted topic");
                result.with_topic_id(since(version, 6, id, Uuid::nil()))
            }
            Err(error) => result
                .with_error_code(error.code().0)
                .with_error_message(since(version, 5, Some(str_bytes(&error.message())), None)),
        });
    }
    ctx.partitions
        .reconcile_off_workers(ctx.coordinator.image())
        .await;
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Needs Alter on the topic.
pub async fn create_partitions(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let assignments = topic.assignments.as_ref().map(|assignments| {
            assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = if access.allows_topic(Operation::Alter, &name) {
            ctx.coordinator
                .create_partitions(&name, topic.count, assignments, request.validate_only)
                .await
        } else {
            Err(not_authorized(Operation::Alter))
        };
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => result,
            Err(error) => result
                .with_error_code(error.code().0)
                .with_error_message(Some(str_bytes(&error.message()))),
        });
    }
    ctx.partitions
        .reconcile_off_workers(ctx.coordinator.image())
        .await;
    CreatePartitionsResponse::default().with_results(results)
}
