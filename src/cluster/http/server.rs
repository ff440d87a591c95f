//! `gregor coordinator`: the coordinator as its own process, serving
//! brokers and tools over HTTP/JSON (hyper).
//!
//! The metadata itself is the same [`EmbeddedCoordinator`] a broker runs in
//! combined mode — one implementation of proposing, logging and applying.
//! This module adds what only a separate process needs: the HTTP routes,
//! broker leases (fencing brokers that stop heartbeating), the long poll
//! brokers pull the log with, and a graceful stop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::lease::{Leases, SESSION_TIMEOUT, decide_heartbeat};
use super::settings::CoordinatorSettings;
use super::wire::AlterScramCredentialRequest;
use super::wire::{
    AclBindingsRequest, AllocateProducerIdsRequest, AllocateProducerIdsResponse,
    AlterConfigsRequest, BrokerHeartbeatRequest, BrokerRegistrationRequest,
    BrokerRegistrationResponse, ClusterView, CreatableTopic, CreatePartitionsRequest,
    CreateTopicResponse, DeleteTopicResponse, ErrorBody, LogBatch, MetadataLogResponse,
    WriteResponse,
};
use crate::accept::Acceptor;
use crate::cluster::embedded::LogRead;
use crate::cluster::policy::check_producer_id_count;
use crate::cluster::{
    ApplyOutcome, ClusterCoordinator, ClusterError, Command, CreateTopicRequest,
    EmbeddedCoordinator, KafkaCode,
};

/// Largest request body accepted; metadata requests are small.
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Most entries one log pull returns.
const MAX_LOG_ENTRIES: usize = 1000;
/// Longest long poll a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often leases are checked; well below the session timeout.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long open connections get to finish after a stop is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("cannot listen on {address}: {reason}")]
    Bind { address: SocketAddr, reason: String },
    #[error("data directory {}: {reason}", path.display())]
    DataDir { path: PathBuf, reason: String },
    #[error("cluster metadata: {0}")]
    Cluster(#[from] ClusterError),
}

/// The coordinator's state shared by every connection.
struct Service {
    metadata: EmbeddedCoordinator,
    leases: StdMutex<Leases>,
    registering: tokio::sync::Mutex<()>,
    address: SocketAddr,
    requests: AtomicU64,
    fenced_by_lease: AtomicU64,
    connections: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Deadline for a request's headers, and another for its body.
    request_timeout: Duration,
}

/// Runs the coordinator until `shutdown` turns true.
pub async fn run(
    settings: CoordinatorSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), CoordinatorError> {
    // Bound first, so a second start on a busy port fails without touching
    // the data directory.
    let listener = bind(settings.listen).await?;
    run_on(listener, settings, shutdown).await
}

/// [`run`] on a socket the caller bound (tests bind port 0); ignores
/// `settings.listen`.
pub async fn run_on(
    listener: TcpListener,
    settings: CoordinatorSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), CoordinatorError> {
    let address = listener.local_addr().unwrap_or(settings.listen);
    crate::security::warn_if_exposed_without_authentication("the coordinator", address);
    let data_dir = settings.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|e| CoordinatorError::DataDir {
        path: data_dir.clone(),
        reason: e.to_string(),
    })?;
    let metadata =
        tokio::task::spawn_blocking(move || EmbeddedCoordinator::open(&data_dir, settings.node_id))
            .await
            .map_err(|e| CoordinatorError::DataDir {
                path: settings.data_dir.clone(),
                reason: format!("opening the metadata log failed: {e}"),
            })??
            .with_partition_limits(settings.partition_limits);
    let mut leases = Leases::new(SESSION_TIMEOUT);
    // A coordinator that just started cannot know who was silent before.
    leases.reset(&metadata.image(), Instant::now());
    let service = Arc::new(Service {
        metadata,
        leases: StdMutex::new(leases),
        registering: tokio::sync::Mutex::new(()),
        address,
        requests: AtomicU64::new(0),
        fenced_by_lease: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        shutdown: shutdown.clone(),
        request_timeout: settings.request_timeout,
    });
    serve(service, listener, settings.max_client_connections).await;
    Ok(())
}

pub async fn bind(address: SocketAddr) -> Result<TcpListener, CoordinatorError> {
    TcpListener::bind(address)
        .await
        .map_err(|e| CoordinatorError::Bind {
            address,
            reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                "address already in use (is another coordinator running?)".to_owned()
            } else {
                e.to_string()
            },
        })
}

async fn serve(service: Arc<Service>, listener: TcpListener, max_connections: Option<usize>) {
    let image = service.metadata.image();
    tracing::info!(
        address = %service.address,
        cluster_id = %image.cluster_id,
        metadata_offset = image.last_applied,
        brokers = image.brokers.len(),
        topics = image.topics.len(),
        "coordinator started"
    );
    let limit = max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let mut shutdown = service.shutdown.clone();
    let mut tasks = JoinSet::new();
    tasks.spawn(expire_leases(Arc::clone(&service)));
    let mut connections = JoinSet::new();
    let mut acceptor = Acceptor::new(listener, "coordinator");
    loop {
        tokio::select! {
            (stream, peer) = acceptor.accept() => {
                let permit = match &limit {
                    Some(limit) => match Arc::clone(limit).try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => {
                            tracing::warn!(%peer, "too many connections (maxClientCnxns); closing");
                            continue;
                        }
                    },
                    None => None,
                };
                let service = Arc::clone(&service);
                connections.spawn(async move {
                    service.connections.fetch_add(1, Ordering::Relaxed);
                    serve_connection(Arc::clone(&service), stream).await;
                    service.connections.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    tracing::info!("coordinator stopping: draining connections");
    drop(acceptor);
    tasks.abort_all();
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        connections.abort_all();
    }
    tracing::info!("coordinator stopped cleanly");
}

async fn serve_connection(service: Arc<Service>, stream: tokio::net::TcpStream) {
    let mut shutdown = service.shutdown.clone();
    let handler = Arc::clone(&service);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(service.request_timeout)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| respond(Arc::clone(&handler), request)),
        );
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = shutdown.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Proposes `FenceBroker` for every broker whose lease ran out.
async fn expire_leases(service: Arc<Service>) {
    let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let image = service.metadata.image();
        let expired = match service.leases.lock() {
            Ok(leases) => leases.expired(&image, Instant::now()),
            Err(_) => return,
        };
        for command in expired {
            let Command::FenceBroker {
                broker_id,
                broker_epoch,
            } = command
            else {
                continue;
            };
            match service.metadata.propose(command).await {
                Ok(_) => {
                    service.fenced_by_lease.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        broker_id,
                        broker_epoch,
                        "fenced broker: no heartbeat for {}s",
                        SESSION_TIMEOUT.as_secs()
                    );
                }
                // It re-registered or heartbeated in the meantime.
                Err(error) => tracing::debug!(broker_id, %error, "lease fence not applied"),
            }
        }
    }
}

type HttpResponse = Response<Full<Bytes>>;

/// A handler's failure: the Kafka code and message for the body.
struct Failure(ErrorBody);

impl From<crate::cluster::Rejection> for Failure {
    fn from(rejection: crate::cluster::Rejection) -> Self {
        Failure(ErrorBody::new(rejection.code, rejection.message))
    }
}

impl From<ClusterError> for Failure {
    fn from(error: ClusterError) -> Self {
        if !matches!(error, ClusterError::Rejected { .. }) {
            tracing::error!(%error, "coordinator request failed");
        }
        Failure(ErrorBody::from_error(&error))
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure(ErrorBody::new(KafkaCode::INVALID_REQUEST, message))
}

async fn respond(
    service: Arc<Service>,
    request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    service.requests.fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"] | ["readyz"]) => return Ok(text(StatusCode::OK, "ok\n")),
        (&Method::GET, ["metrics"]) => return Ok(text(StatusCode::OK, &service.render_metrics())),
        (&Method::GET, ["v1", "cluster"]) => json(&ClusterView::of(&service.metadata.image())),
        (&Method::GET, ["v1", "metadata", "log"]) => service.read_log(&query).await,
        (&Method::POST, ["v1", "brokers", "register"]) => match body(&service, request).await {
            Ok(req) => service.register(req).await,
            Err(failure) => Err(failure),
        },
        (&Method::POST, ["v1", "brokers", "heartbeat"]) => match body(&service, request).await {
            Ok(req) => service.heartbeat(req).await,
            Err(failure) => Err(failure),
        },
        (&Method::POST, ["v1", "topics"]) => match body(&service, request).await {
            Ok(req) => service.create_topic(req).await,
            Err(failure) => Err(failure),
        },
        (&Method::DELETE, ["v1", "topics", name]) => service.delete_topic(name).await,
        (&Method::POST, ["v1", "topics", name, "partitions"]) => {
            let name = (*name).to_owned();
            match body(&service, request).await {
                Ok(req) => service.create_partitions(&name, req).await,
                Err(failure) => Err(failure),
            }
        }
        (&Method::PUT, ["v1", "configs", "topic", name]) => {
            let name = (*name).to_owned();
            match body(&service, request).await {
                Ok(req) => service.alter_configs(&name, req).await,
                Err(failure) => Err(failure),
            }
        }
        (&Method::POST, ["v1", "scram-credentials"]) => match body(&service, request).await {
            Ok(req) => service.alter_scram_credential(req).await,
            Err(failure) => Err(failure),
        },
        (&Method::POST, ["v1", "acls"]) => match body(&service, request).await {
            Ok(req) => service.create_acls(req).await,
            Err(failure) => Err(failure),
        },
        (&Method::POST, ["v1", "acls", "delete"]) => match body(&service, request).await {
            Ok(req) => service.delete_acls(req).await,
            Err(failure) => Err(failure),
        },
        (&Method::POST, ["v1", "producer-ids"]) => match body(&service, request).await {
            Ok(req) => service.allocate_producer_ids(req).await,
            Err(failure) => Err(failure),
        },
        _ => {
            return Ok(error_response(
                StatusCode::NOT_FOUND,
                &ErrorBody::new(
                    KafkaCode::INVALID_REQUEST,
                    format!("no route for {method} {path}"),
                ),
            ));
        }
    };
    Ok(match result {
        Ok(response) => response,
        Err(Failure(error)) => error_response(status_of(error.error_code), &error),
    })
}

impl Service {
    async fn register(&self, req: BrokerRegistrationRequest) -> Result<HttpResponse, Failure> {
        // One at a time, so two brokers starting together cannot both pass
        // the check before either is registered.
        let _registering = self.registering.lock().await;
        let decided = match self.leases.lock() {
            Ok(leases) => leases.decide_registration(&self.metadata.image(), &req, Instant::now()),
            Err(_) => Ok(()),
        };
        if let Err(rejection) = decided {
            tracing::warn!(broker_id = req.broker_id, %rejection, "broker registration refused");
            return Err(rejection.into());
        }
        let outcome = self
            .metadata
            .propose(Command::RegisterBroker {
                broker_id: req.broker_id,
                incarnation_id: req.incarnation_id,
                listeners: req.listeners.clone(),
                rack: req.rack.clone(),
            })
            .await?;
        let ApplyOutcome::BrokerRegistered { broker_epoch } = outcome else {
            return Err(Failure(ErrorBody::new(
                KafkaCode::UNKNOWN_SERVER_ERROR,
                format!("unexpected outcome {outcome:?}"),
            )));
        };
        if let Ok(mut leases) = self.leases.lock() {
            leases.register(&req, Instant::now());
        }
        tracing::info!(
            broker_id = req.broker_id,
            broker_epoch,
            incarnation_id = %req.incarnation_id,
            "broker registered (fenced until it catches up)"
        );
        json(&BrokerRegistrationResponse {
            error: ErrorBody::none(),
            broker_epoch,
        })
    }

    async fn heartbeat(&self, req: BrokerHeartbeatRequest) -> Result<HttpResponse, Failure> {
        let decision = decide_heartbeat(&self.metadata.image(), &req);
        if decision.response.error.error_code != KafkaCode::NONE.0 {
            return Err(Failure(decision.response.error));
        }
        self.renew(req.broker_id);
        if let Some(command) = decision.command {
            let unfence = matches!(command, Command::UnfenceBroker { .. });
            self.metadata.propose(command).await?;
            tracing::info!(
                broker_id = req.broker_id,
                broker_epoch = req.broker_epoch,
                metadata_offset = req.current_metadata_offset,
                "broker {}",
                if unfence {
                    "caught up; unfenced"
                } else {
                    "asked to be fenced"
                }
            );
        }
        json(&decision.response)
    }

    fn renew(&self, broker_id: i32) {
        if let Ok(mut leases) = self.leases.lock() {
            leases.renew(broker_id, Instant::now());
        }
    }

    async fn create_topic(&self, req: CreatableTopic) -> Result<HttpResponse, Failure> {
        let created = self
            .metadata
            .create_topic(CreateTopicRequest {
                name: req.name,
                partitions: req.num_partitions,
                replication_factor: req.replication_factor,
                configs: req.configs,
                assignments: req.assignments,
                validate_only: req.validate_only,
            })
            .await?;
        json(&CreateTopicResponse {
            error: ErrorBody::none(),
            name: created.name,
            topic_id: created.id,
            num_partitions: created.partitions,
            replication_factor: created.replication_factor,
            metadata_offset: self.metadata_offset(),
        })
    }

    async fn delete_topic(&self, name: &str) -> Result<HttpResponse, Failure> {
        let topic_id = self.metadata.delete_topic(name).await?;
        json(&DeleteTopicResponse {
            error: ErrorBody::none(),
            name: name.to_owned(),
            topic_id,
            metadata_offset: self.metadata_offset(),
        })
    }

    async fn create_partitions(
        &self,
        name: &str,
        req: CreatePartitionsRequest,
    ) -> Result<HttpResponse, Failure> {
        self.metadata
            .create_partitions(name, req.count, req.assignments, req.validate_only)
            .await?;
        self.written()
    }

    async fn alter_configs(
        &self,
        name: &str,
        req: AlterConfigsRequest,
    ) -> Result<HttpResponse, Failure> {
        self.metadata
            .alter_topic_configs(name, req.set, req.delete)
            .await?;
        self.written()
    }

    async fn alter_scram_credential(
        &self,
        req: AlterScramCredentialRequest,
    ) -> Result<HttpResponse, Failure> {
        self.metadata
            .alter_scram_credential(&req.user, req.mechanism, req.credential)
            .await?;
        self.written()
    }

    async fn create_acls(&self, req: AclBindingsRequest) -> Result<HttpResponse, Failure> {
        self.metadata.create_acls(req.bindings).await?;
        self.written()
    }

    async fn delete_acls(&self, req: AclBindingsRequest) -> Result<HttpResponse, Failure> {
        self.metadata.delete_acls(req.bindings).await?;
        self.written()
    }

    async fn allocate_producer_ids(
        &self,
        req: AllocateProducerIdsRequest,
    ) -> Result<HttpResponse, Failure> {
        check_producer_id_count(req.count)?;
        let range = self.metadata.allocate_producer_ids(req.broker_id).await?;
        json(&AllocateProducerIdsResponse {
            error: ErrorBody::none(),
            producer_id_start: range.start,
            producer_id_len: range.end - range.start,
            metadata_offset: self.metadata_offset(),
        })
    }

    /// The committed index after a write returned: the write's own index or
    /// a later one, which is what a broker must wait for.
    fn metadata_offset(&self) -> u64 {
        self.metadata.image().last_applied
    }

    fn written(&self) -> Result<HttpResponse, Failure> {
        json(&WriteResponse {
            error: ErrorBody::none(),
            metadata_offset: self.metadata_offset(),
        })
    }

    /// The long poll: answers at once when there are entries from `from`
    /// (or a snapshot is due), otherwise when one is committed or `wait_ms`
    /// passes, whichever is first.
    async fn read_log(&self, query: &str) -> Result<HttpResponse, Failure> {
        let mut from = None;
        let mut wait = Duration::ZERO;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "from" => {
                    from = Some(value.parse::<u64>().map_err(|_| {
                        invalid(format!("from must be a log index, got {value:?}"))
                    })?);
                }
                "wait_ms" => {
                    let ms = value.parse::<u64>().map_err(|_| {
                        invalid(format!("wait_ms must be milliseconds, got {value:?}"))
                    })?;
                    wait = Duration::from_millis(ms).min(MAX_WAIT);
                }
                _ => {}
            }
        }
        let from = from.ok_or_else(|| invalid("missing from=IDX"))?;
        let mut read = self.metadata.read_log(from, MAX_LOG_ENTRIES).await;
        if matches!(&read, LogRead::Entries(entries) if entries.is_empty()) && !wait.is_zero() {
            let mut images = self.metadata.watch();
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = tokio::time::timeout(wait, images.wait_for(|image| image.last_applied >= from)) => {}
                _ = shutdown.changed() => {}
            }
            read = self.metadata.read_log(from, MAX_LOG_ENTRIES).await;
        }
        let image = self.metadata.image();
        let batch = match read {
            LogRead::Entries(entries) => LogBatch::Entries(entries),
            LogRead::Snapshot(snapshot) => LogBatch::Snapshot(Box::new((*snapshot).clone())),
        };
        json(&MetadataLogResponse {
            cluster_id: image.cluster_id.clone(),
            last_index: image.last_applied,
            batch,
        })
    }

    fn render_metrics(&self) -> String {
        let image = self.metadata.image();
        let fenced = image.brokers().filter(|b| b.fenced).count();
        let partitions: usize = image.topics().map(|t| t.partitions.len()).sum();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        metric(
            "gregor_coordinator_metadata_offset",
            "gauge",
            "Index of the last committed metadata command.",
            &[("", image.last_applied)],
        );
        metric(
            "gregor_coordinator_brokers",
            "gauge",
            "Registered brokers by state.",
            &[
                ("{state=\"fenced\"}", fenced as u64),
                (
                    "{state=\"unfenced\"}",
                    (image.brokers.len() - fenced) as u64,
                ),
            ],
        );
        metric(
            "gregor_coordinator_topics",
            "gauge",
            "Topics.",
            &[("", image.topics.len() as u64)],
        );
        metric(
            "gregor_coordinator_partitions",
            "gauge",
            "Partitions over all topics.",
            &[("", partitions as u64)],
        );
        metric(
            "gregor_coordinator_http_requests_total",
            "counter",
            "HTTP requests received.",
            &[("", self.requests.load(Ordering::Relaxed))],
        );
        metric(
            "gregor_coordinator_lease_fences_total",
            "counter",
            "Brokers fenced for missing heartbeats.",
            &[("", self.fenced_by_lease.load(Ordering::Relaxed))],
        );
        metric(
            "gregor_coordinator_connections",
            "gauge",
            "Open client connections.",
            &[("", self.connections.load(Ordering::Relaxed))],
        );
        out
    }
}

/// Reads a JSON body of at most [`MAX_REQUEST_BYTES`] within the request
/// timeout; a body trickled slower than that is refused and, being left
/// unread, makes hyper close the connection.
async fn body<T: DeserializeOwned>(
    service: &Service,
    request: Request<Incoming>,
) -> Result<T, Failure> {
    let read = Limited::new(request.into_body(), MAX_REQUEST_BYTES).collect();
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
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("invalid JSON body: {e}")))
}

fn json<T: Serialize>(value: &T) -> Result<HttpResponse, Failure> {
    let bytes = serde_json::to_vec(value).map_err(|e| {
        Failure(ErrorBody::new(
            KafkaCode::UNKNOWN_SERVER_ERROR,
            format!("cannot encode the response: {e}"),
        ))
    })?;
    Ok(with_body(StatusCode::OK, "application/json", bytes))
}

fn error_response(status: StatusCode, error: &ErrorBody) -> HttpResponse {
    let bytes = serde_json::to_vec(error).unwrap_or_default();
    with_body(status, "application/json", bytes)
}

fn text(status: StatusCode, body: &str) -> HttpResponse {
    with_body(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn with_body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The HTTP status for a Kafka error code; the body carries the code itself.
fn status_of(code: i16) -> StatusCode {
    match KafkaCode(code) {
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION | KafkaCode::BROKER_NOT_AVAILABLE => {
            StatusCode::NOT_FOUND
        }
        KafkaCode::TOPIC_ALREADY_EXISTS | KafkaCode::STALE_BROKER_EPOCH => StatusCode::CONFLICT,
        KafkaCode::UNKNOWN_SERVER_ERROR => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}
