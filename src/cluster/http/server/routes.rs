//! The coordinator's HTTP surface: each route, what it must be authorized
//! for, and how answers and failures are encoded.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::access::{self, Operation, Peer, Resource};
use super::super::wire::{ClusterView, CreatableTopic, ErrorBody};
use super::{Service, quorum};
use crate::cluster::raft::network::RaftRpc;
use crate::cluster::{ClusterCoordinator, ClusterError, KafkaCode};

/// Largest request body accepted; metadata requests are small.
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest raft RPC accepted: a batch of entries (openraft sends at most
/// 300) or one snapshot chunk.
const MAX_RAFT_REQUEST_BYTES: usize = 64 << 20;

pub(super) type HttpResponse = Response<Full<Bytes>>;

/// A handler's failure: the Kafka code and message for the body.
pub(super) struct Failure(pub(super) ErrorBody);

impl From<crate::cluster::Rejection> for Failure {
    fn from(rejection: crate::cluster::Rejection) -> Self {
        Failure(ErrorBody::new(rejection.code, rejection.message))
    }
}

impl From<ClusterError> for Failure {
    fn from(error: ClusterError) -> Self {
        if !matches!(
            error,
            ClusterError::Rejected { .. } | ClusterError::NotController { .. }
        ) {
            tracing::error!(%error, "coordinator request failed");
        }
        Failure(ErrorBody::from_error(&error))
    }
}

pub(super) fn invalid(message: impl Into<String>) -> Failure {
    Failure(ErrorBody::new(KafkaCode::INVALID_REQUEST, message))
}

pub(super) async fn respond(
    service: Arc<Service>,
    peer: Arc<Peer>,
    request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    service.requests.fetch_add(1, Ordering::Relaxed);
    Ok(match route(&service, &peer, request).await {
        Ok(response) => response,
        Err(Failure(error)) => error_response(status_of(error.error_code), &error),
    })
}

/// Each route checks what Kafka's matching API needs before it reads on.
async fn route(
    service: &Service,
    peer: &Peer,
    request: Request<Incoming>,
) -> Result<HttpResponse, Failure> {
    use Operation::{Alter, AlterConfigs, ClusterAction, Create, Delete, Describe};
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let cluster_action = [(ClusterAction, Resource::Cluster)];
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"] | ["readyz"]) => Ok(text(StatusCode::OK, "ok\n")),
        (&Method::GET, ["metrics"]) => Ok(text(StatusCode::OK, &service.render_metrics())),
        // Brokers and their addresses, as Kafka's Metadata tells anyone, and
        // the topics the peer may describe, as Metadata lists them.
        (&Method::GET, ["v1", "cluster"]) => {
            // On a quorum, only the leader knows its view is the latest.
            service.metadata.ensure_fresh().await?;
            let image = service.metadata.image();
            let mut view = ClusterView::of(&image);
            view.topics.retain(|topic| {
                let topic = Resource::Topic(&topic.name);
                service
                    .authorizer
                    .authorize(&image.acls, peer, Describe, topic)
            });
            json(&view)
        }
        // The log holds SCRAM salts and keys: only brokers (ClusterAction,
        // which KRaft's metadata fetch needs too) may read it.
        (&Method::GET, ["v1", "metadata", "log"]) => {
            service.check(peer, &cluster_action)?;
            service.read_log(&query).await
        }
        (&Method::GET, ["v1", "quorum"]) => match quorum::view(service) {
            Some(view) => json(&view),
            None => Err(invalid("this coordinator is not a quorum member")),
        },
        // Kafka's AddRaftVoter and RemoveRaftVoter need Alter on the cluster.
        (&Method::POST, ["v1", "quorum", "voters"]) => {
            service.check(peer, &[(Alter, Resource::Cluster)])?;
            quorum::add_voter(service, body(service, request).await?).await
        }
        (&Method::DELETE, ["v1", "quorum", "voters", id]) => {
            service.check(peer, &[(Alter, Resource::Cluster)])?;
            let id = id
                .parse()
                .map_err(|_| invalid(format!("'{id}' is not a controller id")))?;
            quorum::remove_voter(service, id).await
        }
        // Raft RPCs from the other members, as brokers are authorized.
        (&Method::POST, ["v1", "raft", rpc]) => {
            service.check(peer, &cluster_action)?;
            let rpc = RaftRpc::from_segment(rpc)
                .ok_or_else(|| invalid(format!("no raft RPC '{rpc}'")))?;
            let node = service
                .metadata
                .quorum()
                .ok_or_else(|| invalid("this coordinator is not a quorum member"))?;
            let request = raw_body(service, request, MAX_RAFT_REQUEST_BYTES).await?;
            let answer = node
                .serve_rpc(rpc, &request)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            Ok(with_body(StatusCode::OK, "application/json", answer))
        }
        (&Method::POST, ["v1", "brokers", "register"]) => {
            service.check(peer, &cluster_action)?;
            quorum::require_leader(service)?;
            service.register(peer, body(service, request).await?).await
        }
        (&Method::POST, ["v1", "brokers", "heartbeat"]) => {
            service.check(peer, &cluster_action)?;
            quorum::require_leader(service)?;
            service.heartbeat(peer, body(service, request).await?).await
        }
        (&Method::POST, ["v1", "topics"]) => {
            let req: CreatableTopic = body(service, request).await?;
            service.check(
                peer,
                &[
                    (Create, Resource::Cluster),
                    (Create, Resource::Topic(&req.name)),
                ],
            )?;
            service.create_topic(req).await
        }
        (&Method::DELETE, ["v1", "topics", name]) => {
            service.check(peer, &[(Delete, Resource::Topic(name))])?;
            service.delete_topic(name).await
        }
        (&Method::POST, ["v1", "topics", name, "partitions"]) => {
            service.check(peer, &[(Alter, Resource::Topic(name))])?;
            let name = (*name).to_owned();
            service
                .create_partitions(&name, body(service, request).await?)
                .await
        }
        (&Method::PUT, ["v1", "configs", "topic", name]) => {
            service.check(peer, &[(AlterConfigs, Resource::Topic(name))])?;
            let name = (*name).to_owned();
            service
                .alter_configs(&name, body(service, request).await?)
                .await
        }
        // Kafka's AlterUserScramCredentials, CreateAcls and DeleteAcls need
        // Alter on the cluster.
        (&Method::POST, ["v1", "scram-credentials"]) => {
            service.check(peer, &[(Alter, Resource::Cluster)])?;
            service
                .alter_scram_credential(body(service, request).await?)
                .await
        }
        (&Method::POST, ["v1", "acls"]) => {
            service.check(peer, &[(Alter, Resource::Cluster)])?;
            service.create_acls(body(service, request).await?).await
        }
        (&Method::POST, ["v1", "acls", "delete"]) => {
            service.check(peer, &[(Alter, Resource::Cluster)])?;
            service.delete_acls(body(service, request).await?).await
        }
        // Kafka's ElectLeaders needs Alter on the cluster.
        (&Method::POST, ["v1", "partitions", "elect"]) => {
            service.check(peer, &[(Alter, Resource::Cluster)])?;
            service.elect_leaders(body(service, request).await?).await
        }
        // Kafka's AlterPartitionReassignments needs Alter on the cluster.
        (&Method::POST, ["v1", "partitions", "reassign"]) => {
            service.check(peer, &[(Alter, Resource::Cluster)])?;
            service
                .reassign_partitions(body(service, request).await?)
                .await
        }
        // Kafka's AlterPartition needs ClusterAction, as inter-broker APIs do.
        (&Method::POST, ["v1", "partitions", "alter"]) => {
            service.check(peer, &cluster_action)?;
            service.alter_partition(body(service, request).await?).await
        }
        (&Method::POST, ["v1", "producer-ids"]) => {
            service.check(peer, &cluster_action)?;
            service
                .allocate_producer_ids(body(service, request).await?)
                .await
        }
        _ => Ok(error_response(
            StatusCode::NOT_FOUND,
            &ErrorBody::new(
                KafkaCode::INVALID_REQUEST,
                format!("no route for {method} {path}"),
            ),
        )),
    }
}

/// Reads a JSON body of at most [`MAX_REQUEST_BYTES`] within the request
/// timeout; a body trickled slower than that is refused and, being left
/// unread, makes hyper close the connection.
pub(super) async fn body<T: DeserializeOwned>(
    service: &Service,
    request: Request<Incoming>,
) -> Result<T, Failure> {
    let bytes = raw_body(service, request, MAX_REQUEST_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("invalid JSON body: {e}")))
}

/// The body's bytes, at most `limit` of them, within the request timeout.
async fn raw_body(
    service: &Service,
    request: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Failure> {
    let read = Limited::new(request.into_body(), limit).collect();
    let bytes = tokio::time::timeout(service.request_timeout, read)
        .await
        .map_err(|_| {
            invalid(format!(
                "request body not received within {:?}",
                service.request_timeout
            ))
        })?
        .map_err(|e| invalid(format!("cannot read the request body: {e}")))?
        .to_bytes();
    Ok(bytes)
}

pub(super) fn json<T: Serialize>(value: &T) -> Result<HttpResponse, Failure> {
    let bytes = serde_json::to_vec(value).map_err(|e| {
        Failure(ErrorBody::new(
            KafkaCode::UNKNOWN_SERVER_ERROR,
            format!("cannot encode the response: {e}"),
        ))
    })?;
    Ok(with_body(StatusCode::OK, "application/json", bytes))
}

pub(super) fn error_response(status: StatusCode, error: &ErrorBody) -> HttpResponse {
    let bytes = serde_json::to_vec(error).unwrap_or_default();
    with_body(status, "application/json", bytes)
}

pub(super) fn text(status: StatusCode, body: &str) -> HttpResponse {
    with_body(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

pub(super) fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The HTTP status for a Kafka error code; the body carries the code itself.
pub(super) fn status_of(code: i16) -> StatusCode {
    match KafkaCode(code) {
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION | KafkaCode::BROKER_NOT_AVAILABLE => {
            StatusCode::NOT_FOUND
        }
        KafkaCode::TOPIC_ALREADY_EXISTS | KafkaCode::STALE_BROKER_EPOCH => StatusCode::CONFLICT,
        access::TOPIC_AUTHORIZATION_FAILED | access::CLUSTER_AUTHORIZATION_FAILED => {
            StatusCode::FORBIDDEN
        }
        KafkaCode::UNKNOWN_SERVER_ERROR => StatusCode::INTERNAL_SERVER_ERROR,
        // A follower of the quorum: the body names the leader.
        KafkaCode::NOT_CONTROLLER => StatusCode::MISDIRECTED_REQUEST,
        KafkaCode::REQUEST_TIMED_OUT => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}
