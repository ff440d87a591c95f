//! [`RemoteCoordinator`]: the [`ClusterCoordinator`] a broker uses when a
//! coordinator process is configured (`zookeeper.connect` /
//! `coordinator.connect`).
//!
//! Three things run against the coordinator:
//! - the **pull loop** long-polls `/v1/metadata/log` from the local image's
//!   next index, applies what comes back ([`RemoteImage`]) and publishes
//!   each new image on the watch the broker follows;
//! - the **heartbeat loop**, started by the first registration, renews the
//!   broker's lease every 2 s (more often while fenced, so it is unfenced
//!   as soon as it has caught up) and registers again if the coordinator
//!   no longer knows this broker's epoch;
//! - writes are single requests; each answers with the log index it
//!   committed at, and returns only once the local image has reached it,
//!   so a handler that reads the image next sees its own change.
//!
//! A coordinator that is down is waited for, never fatal: registration
//! retries every second with one log line per attempt, and the broker keeps
//! serving its last image until the coordinator is back.

use std::collections::BTreeMap;
use std::ops::Range;

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::watch;
use uuid::Uuid;

use super::client_tls::CoordinatorTls;
use super::lease::HEARTBEAT_INTERVAL;
use super::members::Members;
use super::wire::AlterScramCredentialRequest;
use super::wire::{
    AclBindingsRequest, AllocateProducerIdsRequest, AllocateProducerIdsResponse,
    AlterConfigsRequest, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
    BrokerRegistrationRequest, BrokerRegistrationResponse, CreatableTopic, CreatePartitionsRequest,
    CreateTopicResponse, DeleteTopicResponse, ErrorBody, MetadataLogResponse, WriteResponse,
};
use crate::cluster::policy::PRODUCER_ID_BLOCK_SIZE;
use crate::cluster::remote_image::RemoteImage;
use crate::cluster::{
    BoxFuture, BrokerRegistration, ClusterCoordinator, ClusterError, CreateTopicRequest, KafkaCode,
    MetadataImage, TopicSummary,
};
use crate::security::sasl::{ScramCredential, ScramMechanism};
use crate::task::OwnedTask;

/// How long one long poll waits for new entries.
const LONG_POLL: Duration = Duration::from_secs(10);
/// Added to a request's own wait before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Wait before pulling again from a quorum member behind this broker.
const BEHIND_DELAY: Duration = Duration::from_millis(200);
/// Heartbeat period while fenced: being unfenced waits on it.
const FENCED_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// How long a write waits for the local image to catch up with it.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted (a snapshot of a big cluster).
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// Kafka's REQUEST_TIMED_OUT: what clients get for a write while the
/// coordinator is unreachable; they retry it.
const REQUEST_TIMED_OUT: KafkaCode = KafkaCode(7);

/// A failed call to the coordinator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No answer: refused, reset, timed out. Worth retrying.
    #[error("{reason}")]
    Unreachable { reason: String },
    /// An answer carrying a Kafka error, or one that could not be read.
    #[error(transparent)]
    Refused(#[from] ClusterError),
}

/// Sends JSON requests to one coordinator address, a connection each.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    address: String,
    /// `zookeeper.ssl.*`: TLS to the coordinator's `secureClientPort`.
    tls: Option<CoordinatorTls>,
}

impl HttpClient {
    pub(crate) fn new(address: String, tls: Option<CoordinatorTls>) -> Self {
        Self { address, tls }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        wait: Duration,
    ) -> Result<T, CallError> {
        self.call_within(method, path, body, wait + REQUEST_TIMEOUT)
            .await
    }

    /// [`HttpClient::call`] that gives up after `timeout` in all.
    pub(crate) async fn call_within<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let body = match body {
            Some(body) => serde_json::to_vec(body).map_err(|e| refused(format!("encode: {e}")))?,
            None => Vec::new(),
        };
        let (status, bytes) = tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| CallError::Unreachable {
                reason: "no answer in time".to_owned(),
            })??;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| refused(format!("unreadable answer to {path}: {e}")));
        }
        let error: ErrorBody = serde_json::from_slice(&bytes)
            .map_err(|_| refused(format!("HTTP {status} from {path}")))?;
        Err(match error.into_result() {
            Err(error) => CallError::Refused(error),
            Ok(()) => refused(format!("HTTP {status} from {path}")),
        })
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => self.send(stream, method, path, body).await,
            Some(tls) => {
                let stream = tls.connect(&self.address, stream).await.map_err(|e| {
                    CallError::Unreachable {
                        reason: format!("TLS handshake failed: {e}"),
                    }
                })?;
                self.send(stream, method, path, body).await
            }
        }
    }

    async fn send<S>(
        &self,
        stream: S,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), CallError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Unreachable {
                reason: e.to_string(),
            })?;
        // Owned: an early return (a lost peer) stops it too.
        let _connection = OwnedTask::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.address.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| refused(format!("bad request {path}: {e}")))?;
        let lost = |e: &dyn std::fmt::Display| CallError::Unreachable {
            reason: e.to_string(),
        };
        let response = sender.send_request(request).await.map_err(|e| lost(&e))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| lost(&e))?
            .to_bytes();
        Ok((status, bytes))
    }
}

fn refused(message: String) -> CallError {
    CallError::Refused(ClusterError::Rejected {
        code: KafkaCode::UNKNOWN_SERVER_ERROR,
        message,
    })
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn unreachable(error: &std::io::Error) -> CallError {
    use std::io::ErrorKind;
    let reason = match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::TimedOut => "timed out".to_owned(),
        ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        _ => error.to_string(),
    };
    CallError::Unreachable { reason }
}

/// This broker's current registration.
#[derive(Clone, Debug)]
struct Session {
    registration: BrokerRegistration,
    broker_epoch: i64,
}

/// What the coordinator handle and its background loops share.
struct Shared {
    members: Members,
    images: watch::Sender<Arc<MetadataImage>>,
    session: StdMutex<Option<Session>>,
    shutdown: watch::Receiver<bool>,
}

/// The coordinator over HTTP; see the module docs.
pub struct RemoteCoordinator {
    shared: Arc<Shared>,
    /// The loops below stop with this handle (and on shutdown).
    _pulling: OwnedTask<()>,
    heartbeating: StdMutex<Option<OwnedTask<()>>>,
}

impl RemoteCoordinator {
    /// Starts pulling the metadata log from the coordinator at `address`
    /// (`host:port`, or a quorum's members comma separated); the loops stop
    /// when `shutdown` turns true.
    pub fn start(address: &str, shutdown: watch::Receiver<bool>) -> Self {
        Self::start_with_tls(address, None, shutdown)
    }

    /// [`RemoteCoordinator::start`], over TLS when `tls` is given.
    pub fn start_with_tls(
        address: &str,
        tls: Option<CoordinatorTls>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (images, _) = watch::channel(Arc::new(MetadataImage::default()));
        let shared = Arc::new(Shared {
            members: Members::new(address, tls),
            images,
            session: StdMutex::new(None),
            shutdown,
        });
        Self {
            _pulling: OwnedTask::spawn(pull_log(Arc::clone(&shared))),
            shared,
            heartbeating: StdMutex::new(None),
        }
    }

    fn address(&self) -> String {
        self.shared.members.address()
    }

    async fn register(&self, registration: BrokerRegistration) -> Result<i64, ClusterError> {
        let broker_id = registration.broker_id;
        let broker_epoch = register_until_answered(&self.shared, &registration).await?;
        if let Ok(mut session) = self.shared.session.lock() {
            *session = Some(Session {
                registration,
                broker_epoch,
            });
        }
        if let Ok(mut heartbeating) = self.heartbeating.lock() {
            heartbeating
                .get_or_insert_with(|| OwnedTask::spawn(heartbeat(Arc::clone(&self.shared))));
        }
        tracing::info!(
            coordinator = %self.address(),
            broker_id,
            broker_epoch,
            "registered; waiting to be unfenced"
        );
        let mut images = self.shared.images.subscribe();
        loop {
            let unfenced = images.wait_for(|image| {
                image
                    .broker(broker_id)
                    .is_some_and(|b| b.epoch == broker_epoch && !b.fenced)
            });
            match tokio::time::timeout(Duration::from_secs(10), unfenced).await {
                Ok(Ok(_)) => break,
                Ok(Err(_)) => return Err(gone()),
                Err(_) => tracing::warn!(
                    coordinator = %self.address(),
                    broker_id,
                    broker_epoch,
                    "still fenced: waiting to catch up with the metadata log"
                ),
            }
        }
        Ok(broker_epoch)
    }

    /// Creates or deletes (by `path`) exactly these ACL bindings.
    async fn write_acls(
        &self,
        path: &'static str,
        bindings: Vec<crate::security::acl::AclBinding>,
    ) -> Result<(), ClusterError> {
        let body = AclBindingsRequest { bindings };
        self.write(Method::POST, path, Some(&body), |r: &WriteResponse| {
            r.metadata_offset
        })
        .await?;
        Ok(())
    }

    /// Sends one write and waits until the local image includes it.
    async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        offset_of: impl Fn(&T) -> u64,
    ) -> Result<T, ClusterError> {
        let answer: T = self
            .shared
            .members
            .call(method, path, body, Duration::ZERO)
            .await
            .map_err(|error| match error {
                CallError::Refused(error) => error,
                CallError::Unreachable { reason } => ClusterError::Rejected {
                    code: REQUEST_TIMED_OUT,
                    message: format!("coordinator {} not reachable: {reason}", self.address()),
                },
            })?;
        let offset = offset_of(&answer);
        let mut images = self.shared.images.subscribe();
        let caught_up = images.wait_for(|image| image.last_applied >= offset);
        if tokio::time::timeout(CATCH_UP_TIMEOUT, caught_up)
            .await
            .is_err()
        {
            tracing::warn!(
                coordinator = %self.address(),
                metadata_offset = offset,
                "the local metadata image has not caught up with a write yet"
            );
        }
        Ok(answer)
    }
}

/// Percent-encodes all but the characters legal in topic names, so any
/// name makes a valid path; an illegal one then just names no topic.
fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn gone() -> ClusterError {
    ClusterError::Rejected {
        code: KafkaCode::UNKNOWN_SERVER_ERROR,
        message: "the broker is shutting down".to_owned(),
    }
}

/// Registers, retrying every second while the coordinator does not answer.
async fn register_until_answered(
    shared: &Shared,
    registration: &BrokerRegistration,
) -> Result<i64, ClusterError> {
    let request = BrokerRegistrationRequest {
        broker_id: registration.broker_id,
        incarnation_id: registration.incarnation_id,
        listeners: registration.listeners.clone(),
        rack: registration.rack.clone(),
        directory_id: registration.directory_id,
    };
    loop {
        let answer = shared
            .members
            .call::<BrokerRegistrationResponse>(
                Method::POST,
                "/v1/brokers/register",
                Some(&request),
                Duration::ZERO,
            )
            .await;
        match answer {
            Ok(answer) => {
                answer.error.into_result()?;
                return Ok(answer.broker_epoch);
            }
            // A quorum between leaders: wait for the next one.
            Err(CallError::Refused(
                error @ (ClusterError::NotController { .. }
                | ClusterError::QuorumUnavailable { .. }),
            )) => {
                tracing::warn!(%error, "coordinator quorum has no leader yet; retrying in {}s", RETRY_DELAY.as_secs());
                if sleep_or_shutdown(shared, RETRY_DELAY).await {
                    return Err(gone());
                }
            }
            Err(CallError::Refused(error)) => return Err(error),
            Err(CallError::Unreachable { reason }) => {
                tracing::warn!(
                    "coordinator {} not reachable yet ({reason}); retrying in {}s",
                    shared.members.address(),
                    RETRY_DELAY.as_secs()
                );
                if sleep_or_shutdown(shared, RETRY_DELAY).await {
                    return Err(gone());
                }
            }
        }
    }
}

/// Sleeps for `delay`; true when shutdown was requested instead.
async fn sleep_or_shutdown(shared: &Shared, delay: Duration) -> bool {
    let mut shutdown = shared.shutdown.clone();
    if *shutdown.borrow_and_update() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.changed() => true,
    }
}

/// The pull loop (see the module docs).
async fn pull_log(shared: Arc<Shared>) {
    let mut image = RemoteImage::new();
    let mut reachable = true;
    loop {
        let path = format!(
            "/v1/metadata/log?from={}&wait_ms={}",
            image.next_from(),
            LONG_POLL.as_millis()
        );
        let mut shutdown = shared.shutdown.clone();
        let answer = tokio::select! {
            answer = shared.members.call::<MetadataLogResponse>(Method::GET, &path, None::<&()>, LONG_POLL) => answer,
            _ = shutdown.changed() => return,
        };
        match answer {
            Ok(answer) => {
                if !reachable {
                    tracing::info!(coordinator = %shared.members.address(), "coordinator reachable again; resyncing metadata");
                    reachable = true;
                }
                if image.is_behind(&answer) {
                    // A lagging quorum member; it catches up in a moment.
                    if sleep_or_shutdown(&shared, BEHIND_DELAY).await {
                        return;
                    }
                    continue;
                }
                match image.apply(answer) {
                    Ok(true) => {
                        shared.images.send_replace(Arc::clone(image.image()));
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "requesting a metadata snapshot");
                    }
                }
                continue;
            }
            Err(CallError::Unreachable { reason }) => {
                if reachable {
                    tracing::warn!(
                        "coordinator {} not reachable ({reason}); serving the last metadata and retrying every {}s",
                        shared.members.address(),
                        RETRY_DELAY.as_secs()
                    );
                    reachable = false;
                }
            }
            Err(CallError::Refused(error)) => {
                tracing::warn!(coordinator = %shared.members.address(), %error, "metadata pull refused");
            }
        }
        if sleep_or_shutdown(&shared, RETRY_DELAY).await {
            return;
        }
    }
}

/// The heartbeat loop (see the module docs).
async fn heartbeat(shared: Arc<Shared>) {
    let mut fenced = true;
    loop {
        let delay = if fenced {
            FENCED_HEARTBEAT_INTERVAL
        } else {
            HEARTBEAT_INTERVAL
        };
        let Some(session) = shared.session.lock().ok().and_then(|s| s.clone()) else {
            return;
        };
        let answer = send_heartbeat(
            &shared,
            session.registration.broker_id,
            session.broker_epoch,
            false,
        )
        .await;
        match answer {
            Ok(answer) => {
                if answer.is_fenced != fenced {
                    tracing::info!(
                        broker_epoch = session.broker_epoch,
                        "coordinator reports this broker {}",
                        if answer.is_fenced {
                            "fenced"
                        } else {
                            "unfenced"
                        }
                    );
                }
                fenced = answer.is_fenced;
            }
            Err(CallError::Refused(ClusterError::Rejected { code, message }))
                if code == KafkaCode::STALE_BROKER_EPOCH
                    || code == KafkaCode::BROKER_NOT_AVAILABLE =>
            {
                tracing::warn!(%message, "the coordinator lost this broker's registration; registering again");
                fenced = true;
                match register_until_answered(&shared, &session.registration).await {
                    Ok(broker_epoch) => {
                        if let Ok(mut current) = shared.session.lock() {
                            *current = Some(Session {
                                broker_epoch,
                                ..session
                            });
                        }
                    }
                    Err(error) => tracing::warn!(%error, "registering again failed"),
                }
            }
            // The pull loop already says when the coordinator is unreachable.
            Err(error) => tracing::debug!(%error, "heartbeat failed"),
        }
        if sleep_or_shutdown(&shared, delay).await {
            return;
        }
    }
}

/// One BrokerHeartbeat to the leader, reporting how far this broker's image
/// is; `want_shut_down` asks for a controlled shutdown.
async fn send_heartbeat(
    shared: &Shared,
    broker_id: i32,
    broker_epoch: i64,
    want_shut_down: bool,
) -> Result<BrokerHeartbeatResponse, CallError> {
    let request = BrokerHeartbeatRequest {
        broker_id,
        broker_epoch,
        current_metadata_offset: shared.images.borrow().last_applied,
        want_fence: false,
        want_shut_down,
    };
    shared
        .members
        .call::<BrokerHeartbeatResponse>(
            Method::POST,
            "/v1/brokers/heartbeat",
            Some(&request),
            Duration::ZERO,
        )
        .await
}

impl RemoteCoordinator {
    /// Controlled shutdown: heartbeats with `want_shut_down`, as Kafka's
    /// broker sends them, until the coordinator says it may stop.
    async fn shut_down(&self, broker_id: i32, broker_epoch: i64) -> Result<(), ClusterError> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let answer = send_heartbeat(&self.shared, broker_id, broker_epoch, true).await;
            match answer {
                Ok(answer) if answer.should_shut_down => return Ok(()),
                Ok(_) => {}
                Err(CallError::Refused(error)) => return Err(error),
                Err(CallError::Unreachable { reason }) => {
                    return Err(ClusterError::Rejected {
                        code: REQUEST_TIMED_OUT,
                        message: reason,
                    });
                }
            }
        }
        Err(ClusterError::Rejected {
            code: REQUEST_TIMED_OUT,
            message: format!("no shutdown permission after {ATTEMPTS} heartbeats"),
        })
    }
}

impl ClusterCoordinator for RemoteCoordinator {
    fn begin_shutdown(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(self.shut_down(broker_id, broker_epoch))
    }

    fn register_broker(&self, reg: BrokerRegistration) -> BoxFuture<'_, Result<i64, ClusterError>> {
        Box::pin(self.register(reg))
    }

    fn create_topic(
        &self,
        req: CreateTopicRequest,
    ) -> BoxFuture<'_, Result<TopicSummary, ClusterError>> {
        Box::pin(async move {
            let body = CreatableTopic {
                name: req.name,
                num_partitions: req.partitions,
                replication_factor: req.replication_factor,
                configs: req.configs,
                assignments: req.assignments,
                validate_only: req.validate_only,
            };
            let created: CreateTopicResponse = self
                .write(
                    Method::POST,
                    "/v1/topics",
                    Some(&body),
                    |r: &CreateTopicResponse| r.metadata_offset,
                )
                .await?;
            Ok(TopicSummary {
                id: created.topic_id,
                name: created.name,
                partitions: created.num_partitions,
                replication_factor: created.replication_factor,
            })
        })
    }

    fn delete_topic(&self, name: &str) -> BoxFuture<'_, Result<Uuid, ClusterError>> {
        let path = format!("/v1/topics/{}", encode_segment(name));
        Box::pin(async move {
            let deleted: DeleteTopicResponse = self
                .write(
                    Method::DELETE,
                    &path,
                    None::<&()>,
                    |r: &DeleteTopicResponse| r.metadata_offset,
                )
                .await?;
            Ok(deleted.topic_id)
        })
    }

    fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let path = format!("/v1/topics/{}/partitions", encode_segment(name));
        Box::pin(async move {
            let body = CreatePartitionsRequest {
                count: total,
                assignments,
                validate_only,
            };
            self.write(Method::POST, &path, Some(&body), |r: &WriteResponse| {
                r.metadata_offset
            })
            .await?;
            Ok(())
        })
    }

    fn alter_topic_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let path = format!("/v1/configs/topic/{}", encode_segment(name));
        Box::pin(async move {
            let body = AlterConfigsRequest { set, delete };
            self.write(Method::PUT, &path, Some(&body), |r: &WriteResponse| {
                r.metadata_offset
            })
            .await?;
            Ok(())
        })
    }

    fn allocate_producer_ids(
        &self,
        broker_id: i32,
    ) -> BoxFuture<'_, Result<Range<i64>, ClusterError>> {
        Box::pin(async move {
            let body = AllocateProducerIdsRequest {
                broker_id,
                count: PRODUCER_ID_BLOCK_SIZE,
            };
            let ids: AllocateProducerIdsResponse = self
                .write(
                    Method::POST,
                    "/v1/producer-ids",
                    Some(&body),
                    |r: &AllocateProducerIdsResponse| r.metadata_offset,
                )
                .await?;
            // Not trusted blindly either: a block must be non-empty and fit.
            match ids.producer_id_start.checked_add(ids.producer_id_len) {
                Some(end) if ids.producer_id_start >= 0 && ids.producer_id_len > 0 => {
                    Ok(ids.producer_id_start..end)
                }
                _ => Err(ClusterError::Rejected {
                    code: KafkaCode::UNKNOWN_SERVER_ERROR,
                    message: format!(
                        "coordinator answered an invalid producer id block: start {}, length {}",
                        ids.producer_id_start, ids.producer_id_len
                    ),
                }),
            }
        })
    }

    fn alter_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: Option<ScramCredential>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let body = AlterScramCredentialRequest {
            user: user.to_owned(),
            mechanism,
            credential,
        };
        Box::pin(async move {
            self.write(
                Method::POST,
                "/v1/scram-credentials",
                Some(&body),
                |r: &WriteResponse| r.metadata_offset,
            )
            .await?;
            Ok(())
        })
    }

    fn create_acls(
        &self,
        bindings: Vec<crate::security::acl::AclBinding>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(self.write_acls("/v1/acls", bindings))
    }

    fn delete_acls(
        &self,
        bindings: Vec<crate::security::acl::AclBinding>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(self.write_acls("/v1/acls/delete", bindings))
    }

    fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.shared.images.borrow())
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.images.subscribe()
    }
}
