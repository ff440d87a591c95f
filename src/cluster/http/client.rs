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
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use uuid::Uuid;

use super::client_tls::CoordinatorTls;
pub(crate) use super::exchange::{CallError, HttpClient};
use super::lease::HEARTBEAT_INTERVAL;
use super::members::Members;
use super::wire::AlterScramCredentialRequest;
use super::wire::{
    AclBindingsRequest, AllocateProducerIdsRequest, AllocateProducerIdsResponse,
    AlterConfigsRequest, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
    BrokerRegistrationRequest, BrokerRegistrationResponse, CreatableTopic, CreatePartitionsRequest,
    CreateTopicResponse, DeleteTopicResponse, MetadataLogResponse, WriteResponse,
};
use crate::cluster::policy::PRODUCER_ID_BLOCK_SIZE;
use crate::cluster::remote_image::RemoteImage;
use crate::cluster::stall::{self, StallGuard};
use crate::cluster::{
    BoxFuture, BrokerRegistration, ClusterCoordinator, ClusterError, CreateTopicRequest, KafkaCode,
    MetadataImage, TopicSummary,
};
use crate::security::sasl::{ScramCredential, ScramMechanism};
use crate::task::OwnedTask;

/// How long one long poll waits for new entries.
const LONG_POLL: Duration = Duration::from_secs(10);
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Wait before pulling again from a quorum member behind this broker.
const BEHIND_DELAY: Duration = Duration::from_millis(200);
/// Heartbeat period while fenced: being unfenced waits on it.
const FENCED_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// How long a write waits for the local image to catch up with it.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// Kafka's REQUEST_TIMED_OUT: what clients get for a write while the
/// coordinator is unreachable; they retry it.
const REQUEST_TIMED_OUT: KafkaCode = KafkaCode(7);

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
    stall: Arc<StallGuard>,
}

/// The coordinator over HTTP; see the module docs.
pub struct RemoteCoordinator {
    shared: Arc<Shared>,
    /// The loops below stop with this handle (and on shutdown).
    _pulling: OwnedTask<()>,
    _ticking: OwnedTask<()>,
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
            stall: Arc::new(StallGuard::new(Instant::now())),
        });
        Self {
            _pulling: OwnedTask::spawn(pull_log(Arc::clone(&shared))),
            _ticking: OwnedTask::spawn(tick(Arc::clone(&shared))),
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
        previous_broker_epoch: registration.previous_broker_epoch,
    };
    // A broker restarted on an empty disk (a lost disk, a new pod volume)
    // comes back with a new directory id while its old lease may still run:
    // like Kafka's BrokerLifecycleManager it keeps asking until the lease
    // lapses, and gives up (a second live broker with this id) after twice
    // the session timeout.
    let duplicate_deadline = tokio::time::Instant::now() + 2 * super::lease::SESSION_TIMEOUT;
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
            // A broker restarted on an empty disk while its old lease runs.
            Err(CallError::Refused(ClusterError::Rejected { code, message }))
                if code == KafkaCode::DUPLICATE_BROKER_REGISTRATION
                    && tokio::time::Instant::now() < duplicate_deadline =>
            {
                tracing::warn!(
                    "registration refused ({message}); retrying in {}s while the previous \
                     registration's lease may still run",
                    RETRY_DELAY.as_secs()
                );
                if sleep_or_shutdown(shared, RETRY_DELAY).await {
                    return Err(gone());
                }
            }
            // A quorum between leaders: wait for the next one. A member
            // that leads by its persisted vote but cannot reach a majority
            // yet (the whole quorum restarting) answers REQUEST_TIMED_OUT;
            // Kafka's broker keeps asking through that too.
            Err(CallError::Refused(
                error @ (ClusterError::NotController { .. }
                | ClusterError::QuorumUnavailable { .. }),
            ))
            | Err(CallError::Refused(
                error @ ClusterError::Rejected {
                    code: KafkaCode::REQUEST_TIMED_OUT,
                    ..
                },
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

/// Proves to the stall guard that this process runs.
async fn tick(shared: Arc<Shared>) {
    loop {
        shared.stall.tick(Instant::now());
        if sleep_or_shutdown(&shared, stall::TICK_INTERVAL).await {
            return;
        }
    }
}

/// The heartbeat loop (see the module docs).
async fn heartbeat(shared: Arc<Shared>) {
    let mut fenced = true;
    loop {
        let Some(session) = shared.session.lock().ok().and_then(|s| s.clone()) else {
            return;
        };
        let sent = Instant::now();
        let answer = send_heartbeat(
            &shared,
            session.registration.broker_id,
            session.broker_epoch,
            false,
        )
        .await;
        match answer {
            Ok(answer) => {
                shared
                    .stall
                    .heartbeat_answered(sent, answer.metadata_offset);
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
                // The process kept its log: it is the same replica, clean.
                let mut registration = session.registration.clone();
                registration.previous_broker_epoch = Some(session.broker_epoch);
                match register_until_answered(&shared, &registration).await {
                    Ok(broker_epoch) => {
                        if let Ok(mut current) = shared.session.lock() {
                            *current = Some(Session {
                                broker_epoch,
                                registration,
                            });
                        }
                    }
                    Err(error) => tracing::warn!(%error, "registering again failed"),
                }
            }
            // The pull loop already says when the coordinator is unreachable.
            Err(error) => tracing::debug!(%error, "heartbeat failed"),
        }
        // Fenced, or back from a stall: being allowed to lead waits on it.
        let delay = if fenced || shared.stall.is_suspect(Instant::now()) {
            FENCED_HEARTBEAT_INTERVAL
        } else {
            HEARTBEAT_INTERVAL
        };
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

    fn alter_partition(
        &self,
        request: crate::cluster::AlterPartitionRequest,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            self.write(
                Method::POST,
                "/v1/partitions/alter",
                Some(&request),
                |r: &WriteResponse| r.metadata_offset,
            )
            .await?;
            Ok(())
        })
    }

    fn elect_leaders(
        &self,
        request: crate::cluster::ElectLeadersRequest,
    ) -> BoxFuture<'_, Result<Vec<crate::cluster::ElectionResult>, ClusterError>> {
        Box::pin(async move {
            let answer: super::wire::ElectLeadersResponse = self
                .write(
                    Method::POST,
                    "/v1/partitions/elect",
                    Some(&request),
                    |r: &super::wire::ElectLeadersResponse| r.metadata_offset,
                )
                .await?;
            Ok(answer.results)
        })
    }

    fn alter_partition_reassignments(
        &self,
        topics: Vec<crate::cluster::ReassignmentTopic>,
    ) -> BoxFuture<'_, Result<Vec<crate::cluster::ReassignmentResult>, ClusterError>> {
        Box::pin(async move {
            let answer: super::wire::ReassignPartitionsResponse = self
                .write(
                    Method::POST,
                    "/v1/partitions/reassign",
                    Some(&super::wire::ReassignPartitionsRequest { topics }),
                    |r: &super::wire::ReassignPartitionsResponse| r.metadata_offset,
                )
                .await?;
            Ok(answer.results)
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

    fn stall_guard(&self) -> Option<Arc<StallGuard>> {
        Some(Arc::clone(&self.shared.stall))
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.images.subscribe()
    }
}
