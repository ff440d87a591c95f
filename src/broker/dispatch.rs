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
    ProduceResponse, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::BrokerContext;
use super::access::Access;
use super::connection::ConnectionInfo;
use super::handlers;
use super::offset_order::OffsetRequestOrder;
use crate::protocol::{DecodedRequest, api_versions_body};

/// What the connection does once a request has been handled.
// As large as the `Option<ResponseKind>` it replaces; boxing the response
// would add an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// Write this response.
    Respond(ResponseKind),
    /// Write nothing: a Produce with `acks=0` that succeeded.
    Nothing,
    /// Close the connection after the responses before this one: a
    /// Produce with `acks=0` that failed (Kafka's way of telling such a
    /// producer to refresh its metadata), or a handler that failed.
    Close,
}

/// Resolves to what the connection does with the request.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

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
            Box::pin(async { Reply::Respond(ResponseKind::ApiVersions(api_versions_body(0))) })
        }
        RequestKind::Produce(body) => {
            let silent = body.acks == 0;
            let queued = handlers::produce::enqueue(&ctx, &access, body, version);
            Box::pin(async move {
                let response = queued.await;
                match silent {
                    false => Reply::Respond(ResponseKind::Produce(response)),
                    true if produce_failed(&response) => Reply::Close,
                    true => Reply::Nothing,
                }
            })
        }
        RequestKind::Fetch(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::Fetch(
                handlers::fetch::handle(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::ListOffsets(body) => Box::pin(async move {
            let lookup = tokio::task::spawn_blocking(move || {
                handlers::list_offsets::handle(&ctx, &access, body, version)
            });
            match lookup.await {
                Ok(response) => Reply::Respond(ResponseKind::ListOffsets(response)),
                Err(error) => {
                    tracing::error!(%error, "ListOffsets failed");
                    Reply::Close
                }
            }
        }),
        RequestKind::OffsetForLeaderEpoch(body) => Box::pin(async move {
            let lookup = tokio::task::spawn_blocking(move || {
                handlers::offset_for_leader_epoch::handle(&ctx, &access, body)
            });
            match lookup.await {
                Ok(response) => Reply::Respond(ResponseKind::OffsetForLeaderEpoch(response)),
                Err(error) => {
                    tracing::error!(%error, "OffsetForLeaderEpoch failed");
                    Reply::Close
                }
            }
        }),
        RequestKind::DeleteRecords(body) => Box::pin(async move {
            let moved = tokio::task::spawn_blocking(move || {
                handlers::delete_records::handle(&ctx, &access, body)
            });
            match moved.await {
                Ok(response) => Reply::Respond(ResponseKind::DeleteRecords(response)),
                Err(error) => {
                    tracing::error!(%error, "DeleteRecords failed");
                    Reply::Close
                }
            }
        }),
        RequestKind::Metadata(body) => {
            let listener = info.listener.clone();
            Box::pin(async move {
                Reply::Respond(ResponseKind::Metadata(
                    handlers::metadata::handle(&ctx, &access, &listener, body, version).await,
                ))
            })
        }
        RequestKind::CreateTopics(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::CreateTopics(
                handlers::topics::create(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::DeleteTopics(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DeleteTopics(
                handlers::topics::delete(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::CreatePartitions(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::CreatePartitions(
                handlers::topics::create_partitions(&ctx, &access, body).await,
            ))
        }),
        RequestKind::DescribeTopicPartitions(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DescribeTopicPartitions(
                handlers::describe_topic_partitions::handle(&ctx, &access, body),
            ))
        }),
        RequestKind::ElectLeaders(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::ElectLeaders(
                handlers::elect_leaders::handle(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::AlterPartitionReassignments(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::AlterPartitionReassignments(
                handlers::reassignments::alter(&ctx, &access, body).await,
            ))
        }),
        RequestKind::ListPartitionReassignments(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::ListPartitionReassignments(
                handlers::reassignments::list(&ctx, &access, body),
            ))
        }),
        RequestKind::DescribeConfigs(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DescribeConfigs(handlers::configs::describe(
                &ctx, &access, body, version,
            )))
        }),
        RequestKind::AlterConfigs(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::AlterConfigs(
                handlers::configs::alter(&ctx, &access, body).await,
            ))
        }),
        RequestKind::IncrementalAlterConfigs(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::IncrementalAlterConfigs(
                handlers::configs::incremental_alter(&ctx, &access, body).await,
            ))
        }),
        RequestKind::InitProducerId(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::InitProducerId(
                handlers::producer_id::handle(&ctx, &access, body).await,
            ))
        }),
        RequestKind::DescribeCluster(body) => {
            let listener = info.listener.clone();
            Box::pin(async move {
                Reply::Respond(ResponseKind::DescribeCluster(
                    handlers::metadata::describe_cluster(&ctx, &access, &listener, body),
                ))
            })
        }
        RequestKind::FindCoordinator(body) => {
            let listener = info.listener.clone();
            Box::pin(async move {
                Reply::Respond(ResponseKind::FindCoordinator(
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
                Reply::Respond(ResponseKind::JoinGroup(
                    handlers::groups::join(&ctx, &access, &caller, body, version).await,
                ))
            })
        }
        RequestKind::SyncGroup(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::SyncGroup(
                handlers::groups::sync(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::Heartbeat(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::Heartbeat(
                handlers::groups::heartbeat(&ctx, &access, body).await,
            ))
        }),
        RequestKind::LeaveGroup(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::LeaveGroup(
                handlers::groups::leave(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::OffsetCommit(body) => {
            let (previous, turn) = offset_order.take_turn();
            Box::pin(async move {
                previous.finished().await;
                let response = handlers::groups::offset_commit(&ctx, &access, body, version).await;
                drop(turn);
                Reply::Respond(ResponseKind::OffsetCommit(response))
            })
        }
        RequestKind::OffsetFetch(body) => {
            let (previous, turn) = offset_order.take_turn();
            Box::pin(async move {
                previous.finished().await;
                let response = handlers::groups::offset_fetch(&ctx, &access, body, version);
                drop(turn);
                Reply::Respond(ResponseKind::OffsetFetch(response))
            })
        }
        RequestKind::DescribeGroups(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DescribeGroups(
                handlers::groups::describe(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::ListGroups(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::ListGroups(
                handlers::groups::list(&ctx, &access, body, version).await,
            ))
        }),
        RequestKind::DeleteGroups(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DeleteGroups(
                handlers::groups::delete(&ctx, &access, body).await,
            ))
        }),
        RequestKind::CreateAcls(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::CreateAcls(
                handlers::acls::create(&ctx, &access, body).await,
            ))
        }),
        RequestKind::DescribeAcls(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DescribeAcls(handlers::acls::describe(
                &ctx, &access, body,
            )))
        }),
        RequestKind::DeleteAcls(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DeleteAcls(
                handlers::acls::delete(&ctx, &access, body).await,
            ))
        }),
        // SASL: on a SASL listener the authenticator answers these; here
        // they reach a listener without SASL, or a client already
        // authenticated that sends SaslAuthenticate again.
        RequestKind::SaslHandshake(_) => Box::pin(async {
            Reply::Respond(ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code()),
            ))
        }),
        RequestKind::SaslAuthenticate(_) => Box::pin(async {
            Reply::Respond(ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate request received after successful authentication",
                    ))),
            ))
        }),
        RequestKind::DescribeUserScramCredentials(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::DescribeUserScramCredentials(
                handlers::scram_credentials::describe(&ctx, &access, body),
            ))
        }),
        RequestKind::AlterUserScramCredentials(body) => Box::pin(async move {
            Reply::Respond(ResponseKind::AlterUserScramCredentials(
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

/// Whether any partition of a Produce response carries an error.
/// Whether an acks=0 Produce failed; logged, as Kafka does, since the
/// closed connection is all its producer learns.
fn produce_failed(response: &ProduceResponse) -> bool {
    let mut failed = false;
    for topic in &response.responses {
        for partition in topic
            .partition_responses
            .iter()
            .filter(|p| p.error_code != 0)
        {
            failed = true;
            tracing::info!(
                topic = %topic.name.0,
                partition = partition.index,
                error = ?ResponseError::try_from_code(partition.error_code),
                "closing the connection of an acks=0 producer whose records were refused"
            );
        }
    }
    failed
}
