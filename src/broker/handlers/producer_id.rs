//! InitProducerId for idempotent producers. Ids come from blocks the
//! cluster coordinator allocates, so they stay unique across restarts.
//! Transactions are not supported: a transactional id is refused.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::security::acl::AclOperation as Operation;

/// An idempotent producer needs IdempotentWrite on the cluster or, since
/// KIP-679, Write on any topic; otherwise CLUSTER_AUTHORIZATION_FAILED.
pub async fn handle(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !access.allows_cluster(Operation::IdempotentWrite) && !access.may_write_any_topic() {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // An idempotent producer re-initialising (KIP-360) keeps its id and
    // bumps its epoch.
    if request.producer_id.0 >= 0 && request.producer_epoch >= 0 {
        let epoch = request.producer_epoch.checked_add(1);
        return match epoch {
            Some(epoch) => response
                .with_producer_id(request.producer_id)
                .with_producer_epoch(epoch),
            None => response.with_error_code(ResponseError::InvalidProducerEpoch.code()),
        };
    }
    let mut ids = ctx.producer_ids.lock().await;
    if ids.is_empty() {
        match ctx
            .coordinator
            .allocate_producer_ids(ctx.settings.broker_id)
            .await
        {
            Ok(block) => *ids = block,
            Err(error) => {
                tracing::error!(%error, "could not allocate producer ids");
                // Kafka's answer while no id block is at hand (KAFKA-14694):
                // clients retry InitProducerId as it is. COORDINATOR_NOT_AVAILABLE
                // would send an idempotent kafka-python producer to look up a
                // transaction coordinator with a null key, a request that
                // cannot be parsed.
                return response.with_error_code(ResponseError::CoordinatorLoadInProgress.code());
            }
        }
    }
    let id = ids.start;
    ids.start += 1;
    response
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(0)
}
