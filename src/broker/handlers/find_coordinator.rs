//! FindCoordinator, and which groups this broker coordinates: Kafka's
//! rule, the leader of the group's `__consumer_offsets` partition (see
//! `crate::group::ownership`). The offsets topic is created on the first
//! FindCoordinator, as Kafka does.

use std::sync::Arc;

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

/// Whether this broker coordinates `group`. Before the offsets topic
/// exists (it is created by the first FindCoordinator), a broker that is
/// the only available one owns every group, as a single broker always did.
pub(super) fn owns(ctx: &BrokerContext, image: &MetadataImage, group: &str) -> bool {
    let this = ctx.settings.broker_id;
    match group_owner(image, group) {
        GroupOwner::Broker(owner) => owner == this,
        GroupOwner::Offline => false,
        GroupOwner::NoOffsetsTopic => image.available_brokers() == [this],
    }
}

/// Creates `__consumer_offsets` if the image lacks it, as Kafka does on the
/// first FindCoordinator. Its replication factor is 1 until partitions
/// replicate; a concurrent creation elsewhere is fine.
async fn ensure_offsets_topic(ctx: &Arc<BrokerContext>) {
    if ctx.coordinator.image().topic(OFFSETS_TOPIC).is_some() {
        return;
    }
    let request = CreateTopicRequest {
        name: OFFSETS_TOPIC.to_owned(),
        partitions: ctx.settings.groups.offsets_topic_partitions,
        replication_factor: 1,
        configs: offsets_topic_configs(),
        assignments: Vec::new(),
        validate_only: false,
    };
    match ctx.coordinator.create_topic(request).await {
        Ok(_) => {
            tracing::info!(topic = OFFSETS_TOPIC, "created the offsets topic");
            ctx.partitions
                .reconcile_off_workers(ctx.coordinator.image())
                .await;
        }
        Err(error) if error.code().0 == ResponseError::TopicAlreadyExists.code() => {}
        Err(error) => tracing::warn!(%error, "could not create the offsets topic"),
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
        ensure_offsets_topic(ctx).await;
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
        let this = ctx.settings.broker_id;
        let owner = match group_owner(&image, key) {
            GroupOwner::Broker(owner) => owner,
            // The offsets topic could not be created (say, a partition
            // limit): a lone broker still coordinates every group.
            GroupOwner::NoOffsetsTopic if image.available_brokers() == [this] => this,
            _ => return Err(ResponseError::CoordinatorNotAvailable),
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
