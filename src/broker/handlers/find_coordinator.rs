//! FindCoordinator: Kafka's rule, the leader of the group's
//! `__consumer_offsets` partition (see `crate::group::ownership`). The
//! offsets topic is created on the first FindCoordinator, as Kafka does,
//! with `offsets.topic.replication.factor` replicas.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::metadata::advertised;
use super::str_bytes;
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::{CreateTopicRequest, MetadataImage};
use crate::group::ownership::{GroupOwner, OFFSETS_TOPIC, group_owner, offsets_topic_configs};
use crate::security::acl::{AclOperation as Operation, ResourceType};

/// How long FindCoordinator waits for a local load of the group's partition.
const LOAD_WAIT: Duration = Duration::from_secs(5);

/// The offsets topic's replication factor, or `None` while too few brokers
/// are alive for it. Kafka (since KIP-115) refuses to create the topic with
/// fewer live brokers than `offsets.topic.replication.factor`, so that a
/// cluster still starting up does not get an unreplicated one for good;
/// FindCoordinator answers COORDINATOR_NOT_AVAILABLE meanwhile. The single
/// node (its coordinator in-process) can never have another broker, so
/// there the factor is capped at 1, as Kafka's single-node
/// `server.properties` sets it.
fn offsets_replication_factor(ctx: &BrokerContext, image: &MetadataImage) -> Option<i16> {
    let wanted = ctx.settings.groups.offsets_topic_replication_factor;
    if ctx.settings.coordinator.is_none() {
        return Some(1);
    }
    let live = image.available_brokers().len();
    if live < usize::try_from(wanted).unwrap_or(usize::MAX) {
        tracing::warn!(
            live,
            required = wanted,
            "not creating {OFFSETS_TOPIC}: fewer live brokers than offsets.topic.replication.factor (normal while the cluster starts)"
        );
        return None;
    }
    Some(wanted)
}

/// Creates `__consumer_offsets` if the image lacks it, as Kafka does on the
/// first FindCoordinator (or Metadata naming it); a concurrent creation
/// elsewhere is fine. COORDINATOR_NOT_AVAILABLE when it cannot be created
/// now, as Kafka's `createInternalTopic` answers.
pub(super) async fn ensure_offsets_topic(ctx: &Arc<BrokerContext>) -> Result<(), ResponseError> {
    let image = ctx.coordinator.image();
    if image.topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let Some(replication_factor) = offsets_replication_factor(ctx, &image) else {
        return Err(ResponseError::CoordinatorNotAvailable);
    };
    let request = CreateTopicRequest {
        name: OFFSETS_TOPIC.to_owned(),
        partitions: ctx.settings.groups.offsets_topic_partitions,
        replication_factor,
        configs: offsets_topic_configs(),
        assignments: Vec::new(),
        validate_only: false,
    };
    match ctx.coordinator.create_topic(request).await {
        Ok(_) => {
            tracing::info!(
                topic = OFFSETS_TOPIC,
                replication_factor,
                "created the offsets topic"
            );
            // What the metadata follower does with each image, at once:
            // this broker's partitions of it start loading now.
            let image = ctx.coordinator.image();
            ctx.partitions.reconcile_off_workers(image.clone()).await;
            ctx.replicas.image_reconciled(image.clone());
            ctx.groups.image_reconciled(image);
            Ok(())
        }
        Err(error) if error.code().0 == ResponseError::TopicAlreadyExists.code() => Ok(()),
        Err(error) => {
            tracing::warn!(%error, "could not create the offsets topic");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Needs Describe on the group (on the transactional id for key type 1).
/// Answers with the broker leading the group's `__consumer_offsets`
/// partition, creating that topic first if needed.
pub async fn find_coordinator(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    listener: &str,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    } else {
        vec![request.key.to_string()]
    };
    if request.key_type == 0
        && keys
            .iter()
            .any(|k| access.allows_group(Operation::Describe, k))
    {
        // Failing, the answer below is COORDINATOR_NOT_AVAILABLE.
        let _ = ensure_offsets_topic(ctx).await;
        // A group this broker coordinates but is still loading (the topic
        // was just created, or leadership just moved here): answer once it
        // is loaded, so the client's next request does not meet
        // COORDINATOR_LOAD_IN_PROGRESS. The answer is the same either way.
        for key in &keys {
            if ctx.groups.refusal(&ctx.coordinator.image(), key)
                == Some(ResponseError::CoordinatorLoadInProgress)
            {
                ctx.groups.until_loaded(key, LOAD_WAIT).await;
            }
        }
    }
    let image = ctx.coordinator.image();
    let brokers = advertised(&image, listener);
    // Only group coordination (key type 0) is offered; transactions are
    // not supported.
    let answer = |key_type: i8, key: &str| -> Result<(i32, String, u16), ResponseError> {
        if key_type == 1 && !access.allows(Operation::Describe, ResourceType::TransactionalId, key)
        {
            return Err(ResponseError::TransactionalIdAuthorizationFailed);
        }
        if key_type != 0 {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        access.group(Operation::Describe, key)?;
        let GroupOwner::Broker(owner) = group_owner(&image, key) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        brokers
            .iter()
            .find(|(id, ..)| *id == owner)
            .map(|(id, host, port, _)| (*id, host.clone(), *port))
            .ok_or(ResponseError::CoordinatorNotAvailable)
    };
    let response = FindCoordinatorResponse::default();
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| match answer(request.key_type, &key) {
                Ok((id, host, port)) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(id))
                    .with_host(str_bytes(&host))
                    .with_port(i32::from(port)),
                Err(error) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(error.code()),
            })
            .collect();
        return response.with_coordinators(coordinators);
    }
    match answer(request.key_type, &request.key) {
        Ok((id, host, port)) => response
            .with_node_id(BrokerId(id))
            .with_host(str_bytes(&host))
            .with_port(i32::from(port)),
        Err(error) => response
            .with_error_code(error.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}
