//! Metadata and DescribeCluster: answered from the cluster metadata image,
//! with each broker's address as advertised on the listener the client
//! connected to. Unknown topics are created here when auto-creation is on.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
};

use super::find_coordinator::ensure_offsets_topic;
use super::{since, str_bytes, topic_name};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::{CreateTopicRequest, MetadataImage, TopicState, validate_topic_name};
use crate::group::ownership::{OFFSETS_TOPIC, is_internal_topic};
use crate::security::acl::{AclOperation as Operation, CLUSTER_NAME, ResourceType};

/// Lists only the topics the caller may Describe; a named topic it may not
/// describe gets TOPIC_AUTHORIZATION_FAILED whether or not it exists, and
/// auto-creation needs Create on the cluster or on the topic.
pub async fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    listener: &str,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0 asks for all topics with an empty list; v1+ with null.
    let requested: Option<Vec<String>> = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    // Before v4 there was no flag and brokers always auto-created.
    let allow_auto_create =
        ctx.settings.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);

    let mut errors: Vec<(String, ResponseError)> = Vec::new();
    if let Some(names) = &requested {
        let image = ctx.coordinator.image();
        for name in names {
            if !access.allows_topic(Operation::Describe, name) {
                errors.push((name.clone(), ResponseError::TopicAuthorizationFailed));
                continue;
            }
            if image.topic(name).is_some() {
                continue;
            }
            if name == OFFSETS_TOPIC {
                // Kafka creates its internal topic as FindCoordinator does,
                // whatever the auto-creation settings.
                if let Err(error) = ensure_offsets_topic(ctx).await {
                    errors.push((name.clone(), error));
                }
            } else if validate_topic_name(name).is_err() {
                errors.push((name.clone(), ResponseError::InvalidTopicException));
            } else if !allow_auto_create {
                errors.push((name.clone(), ResponseError::UnknownTopicOrPartition));
            } else if !access.allows_cluster(Operation::Create)
                && !access.allows_topic(Operation::Create, name)
            {
                errors.push((name.clone(), ResponseError::TopicAuthorizationFailed));
            } else if let Err(error) = auto_create(ctx, name).await {
                errors.push((name.clone(), error));
            }
        }
    }

    let image = ctx.coordinator.image();
    // Advertise leadership only of partitions already open here.
    ctx.partitions.open_led(&image).await;
    let mut topics: Vec<MetadataResponseTopic> = match &requested {
        None => image
            .topics()
            .filter(|t| access.allows_topic(Operation::Describe, &t.name))
            .map(|t| topic_metadata(t, version))
            .collect(),
        Some(names) => names
            .iter()
            .filter(|name| access.allows_topic(Operation::Describe, name))
            .filter_map(|name| image.topic(name))
            .map(|t| topic_metadata(t, version))
            .collect(),
    };
    if version >= 8 && request.include_topic_authorized_operations {
        for topic in &mut topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.0.to_string())
                .unwrap_or_default();
            topic.topic_authorized_operations =
                access.authorized_operations(ResourceType::Topic, &name);
        }
    }
    for (name, error) in errors {
        topics.push(
            MetadataResponseTopic::default()
                .with_name(Some(topic_name(&name)))
                .with_error_code(error.code()),
        );
    }
    MetadataResponse::default()
        .with_brokers(brokers(&image, listener, version))
        .with_cluster_id(since(version, 2, Some(str_bytes(&image.cluster_id)), None))
        .with_controller_id(BrokerId(since(version, 1, ctx.settings.broker_id, -1)))
        .with_topics(topics)
        .with_cluster_authorized_operations(
            if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
                access.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
            } else {
                i32::MIN
            },
        )
}

async fn auto_create(ctx: &Arc<BrokerContext>, name: &str) -> Result<(), ResponseError> {
    let request = CreateTopicRequest {
        assignments: Vec::new(),
        name: name.to_string(),
        partitions: ctx.settings.num_partitions,
        replication_factor: ctx.settings.default_replication_factor,
        configs: Default::default(),
        validate_only: false,
    };
    match ctx.coordinator.create_topic(request).await {
        Ok(_) => {
            tracing::info!(topic = name, "auto-created topic");
            ctx.partitions
                .reconcile_off_workers(ctx.coordinator.image())
                .await;
            Ok(())
        }
        // Another request created it first: fine.
        Err(error) if error.code().0 == ResponseError::TopicAlreadyExists.code() => Ok(()),
        Err(error) => {
            tracing::warn!(topic = name, %error, "auto-creation failed");
            Err(ResponseError::try_from_code(error.code().0)
                .unwrap_or(ResponseError::UnknownServerError))
        }
    }
}

fn topic_metadata(topic: &TopicState, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let error = if p.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(since(version, 7, p.leader_epoch, -1))
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(since(version, 10, topic.id, Default::default()))
        .with_is_internal(since(version, 1, is_internal_topic(&topic.name), false))
        .with_partitions(partitions)
}

/// Each unfenced broker's address on `listener` (clients must reconnect
/// through the same listener they came in on).
pub(crate) fn advertised(
    image: &MetadataImage,
    listener: &str,
) -> Vec<(i32, String, u16, Option<String>)> {
    image
        .brokers()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b
                .listeners
                .iter()
                .find(|l| l.name == listener)
                .or_else(|| b.listeners.first())?;
            Some((b.id, endpoint.host.clone(), endpoint.port, b.rack.clone()))
        })
        .collect()
}

fn brokers(image: &MetadataImage, listener: &str, version: i16) -> Vec<MetadataResponseBroker> {
    advertised(image, listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(&host))
                .with_port(i32::from(port))
                .with_rack(since(version, 1, rack.as_deref().map(str_bytes), None))
        })
        .collect()
}

/// Needs Describe on the cluster.
pub fn describe_cluster(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    listener: &str,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if let Err(error) = access.cluster(Operation::Describe) {
        return DescribeClusterResponse::default().with_error_code(error.code());
    }
    let image = ctx.coordinator.image();
    let brokers = advertised(&image, listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(str_bytes(&host))
                .with_port(i32::from(port))
                .with_rack(rack.as_deref().map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(ctx.settings.broker_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            access.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            i32::MIN
        })
}
