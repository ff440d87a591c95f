//! Routes a decoded request to its handler.
//!
//! `dispatch` runs synchronously on the connection's reader: whatever must
//! happen in request order (queuing produce batches onto partitions) is done
//! before it returns, and the rest is the returned future. OffsetCommit and
//! OffsetFetch also take their turn in the connection's [`OffsetRequestOrder`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;
use super::access::Access;
use super::connection::ConnectionInfo;
use super::handlers;
use super::offset_order::OffsetRequestOrder;
use crate::protocol::{DecodedRequest, api_versions_body};

/// Resolves to the response body, or to `None` when Kafka sends no
/// response at all (Produce with `acks=0`).
pub type ResponseFuture = Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send>>;

pub fn dispatch(
    ctx: &Arc<BrokerContext>,
    info: &ConnectionInfo,
    offset_order: &mut OffsetRequestOrder,
    request: DecodedRequest,
) -> Option<ResponseFuture> {
    let version = request.header.request_api_version;
    let access = Access::new(ctx, info);
    let ctx = ctx.clone();
    let future: ResponseFuture = match request.body {
        RequestKind::ApiVersions(_) => {
            Box::pin(async { Some(ResponseKind::ApiVersions(api_versions_body(0))) })
        }
        RequestKind::Produce(body) => {
            let silent = body.acks == 0;
            let queued = handlers::produce::enqueue(&ctx, &access, body, version);
            Box::pin(async move {
                let response = queued.await;
                (!silent).then_some(ResponseKind::Produce(response))
            })
        }
        RequestKind::Fetch(body) => Box::pin(async move {
            Some(ResponseKind::Fetch(
                handlers::fetch::handle(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::ListOffsets(body) => Box::pin(async move {
            let lookup = tokio::task::spawn_blocking(move || {
                handlers::list_offsets::handle(&ctx, &access, body, version)
            });
            match lookup.await {
                Ok(response) => Some(ResponseKind::ListOffsets(response)),
                Err(error) => {
                    tracing::error!(%error, "ListOffsets failed");
                    None
                }
            }
        }),
        RequestKind::DeleteRecords(body) => Box::pin(async move {
            let moved = tokio::task::spawn_blocking(move || {
                handlers::delete_records::handle(&ctx, &access, body)
            });
            match moved.await {
                Ok(response) => Some(ResponseKind::DeleteRecords(response)),
                Err(error) => {
                    tracing::error!(%error, "DeleteRecords failed");
                    None
                }
            }
        }),
        RequestKind::Metadata(body) => {
            let listener = info.listener.clone();
            Box::pin(async move {
                Some(ResponseKind::Metadata(
                    handlers::metadata::handle(&ctx, &access, &listener, body, version).await,
                ))
            })
        }
        RequestKind::CreateTopics(body) => Box::pin(async move {
            Some(ResponseKind::CreateTopics(
                handlers::topics::create(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::DeleteTopics(body) => Box::pin(async move {
            Some(ResponseKind::DeleteTopics(
                handlers::topics::delete(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::CreatePartitions(body) => Box::pin(async move {
            Some(ResponseKind::CreatePartitions(
                handlers::topics::create_partitions(&ctx, &access, body).await,
            ))
        }),
        RequestKind::DescribeConfigs(body) => Box::pin(async move {
            Some(ResponseKind::DescribeConfigs(handlers::configs::describe(
                &ctx, &access, body, version,
            )))
        }),
        RequestKind::AlterConfigs(body) => Box::pin(async move {
            Some(ResponseKind::AlterConfigs(
                handlers::configs::alter(&ctx, &access, body).await,
            ))
        }),
        RequestKind::IncrementalAlterConfigs(body) => Box::pin(async move {
            Some(ResponseKind::IncrementalAlterConfigs(
                handlers::configs::incremental_alter(&ctx, &access, body).await,
            ))
        }),
        RequestKind::InitProducerId(body) => Box::pin(async move {
            Some(ResponseKind::InitProducerId(
                handlers::producer_id::handle(&ctx, &access, body).await,
            ))
        }),
        RequestKind::DescribeCluster(body) => {
            let listener = info.listener.clone();
            Box::pin(async move {
                Some(ResponseKind::DescribeCluster(
                    handlers::metadata::describe_cluster(&ctx, &access, &listener, body),
                ))
            })
        }
        RequestKind::FindCoordinator(body) => {
            let listener = info.listener.clone();
            Box::pin(async move {
                Some(ResponseKind::FindCoordinator(
                    handlers::find_coordinator::find_coordinator(
                        &ctx, &access, &listener, body, version,
                    )
                    .await,
                ))
            })
        }
        RequestKind::JoinGroup(body) => {
            let caller = handlers::groups::Caller {
                client_id: request
                    .header
                    .client_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                client_host: format!("/{}", info.peer.ip()),
            };
            Box::pin(async move {
                Some(ResponseKind::JoinGroup(
                    handlers::groups::join(&ctx, &access, &caller, body, version).await,
                ))
            })
        }
        RequestKind::SyncGroup(body) => Box::pin(async move {
            Some(ResponseKind::SyncGroup(
                handlers::groups::sync(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::Heartbeat(body) => Box::pin(async move {
            Some(ResponseKind::Heartbeat(
                handlers::groups::heartbeat(&ctx, &access, body).await,
            ))
        }),
        RequestKind::LeaveGroup(body) => Box::pin(async move {
            Some(ResponseKind::LeaveGroup(
                handlers::groups::leave(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::OffsetCommit(body) => {
            let (previous, turn) = offset_order.take_turn();
            Box::pin(async move {
                previous.finished().await;
                let response = handlers::groups::offset_commit(&ctx, &access, body, version).await;
                drop(turn);
                Some(ResponseKind::OffsetCommit(response))
            })
        }
        RequestKind::OffsetFetch(body) => {
            let (previous, turn) = offset_order.take_turn();
            Box::pin(async move {
                previous.finished().await;
                let response = handlers::groups::offset_fetch(&ctx, &access, body, version);
                drop(turn);
                Some(ResponseKind::OffsetFetch(response))
            })
        }
        RequestKind::DescribeGroups(body) => Box::pin(async move {
            Some(ResponseKind::DescribeGroups(
                handlers::groups::describe(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::ListGroups(body) => Box::pin(async move {
            Some(ResponseKind::ListGroups(
                handlers::groups::list(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::DeleteGroups(body) => Box::pin(async move {
            Some(ResponseKind::DeleteGroups(
                handlers::groups::delete(&ctx, &access, body).await,
            ))
        }),
        RequestKind::CreateAcls(body) => Box::pin(async move {
            Some(ResponseKind::CreateAcls(
                handlers::acls::create(&ctx, &access, body).await,
            ))
        }),
        RequestKind::DescribeAcls(body) => Box::pin(async move {
            Some(ResponseKind::DescribeAcls(handlers::acls::describe(
                &ctx, &access, body,
            )))
        }),
        RequestKind::DeleteAcls(body) => Box::pin(async move {
            Some(ResponseKind::DeleteAcls(
                handlers::acls::delete(&ctx, &access, body).await,
            ))
        }),
        // SASL: on a SASL listener the authenticator answers these; here
        // they reach a listener without SASL, or a client already
        // authenticated that sends SaslAuthenticate again.
        RequestKind::SaslHandshake(_) => Box::pin(async {
            Some(ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code()),
            ))
        }),
        RequestKind::SaslAuthenticate(_) => Box::pin(async {
            Some(ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate request received after successful authentication",
                    ))),
            ))
        }),
        RequestKind::DescribeUserScramCredentials(body) => Box::pin(async move {
            Some(ResponseKind::DescribeUserScramCredentials(
                handlers::scram_credentials::describe(&ctx, &access, body),
            ))
        }),
        RequestKind::AlterUserScramCredentials(body) => Box::pin(async move {
            Some(ResponseKind::AlterUserScramCredentials(
                handlers::scram_credentials::alter(&ctx, &access, body).await,
            ))
        }),
        // decode_request refuses every API outside the supported table, so
        // this is reached only if the table and this match disagree.
        _ => {
            tracing::error!(api_key = ?request.api_key, "no handler for a supported API");
            return None;
        }
    };
    Some(future)
}
