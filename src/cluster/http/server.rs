//! `gregor coordinator`: the coordinator as its own process, serving
//! brokers and tools over HTTP/JSON (hyper).
//!
//! The metadata itself is the same [`EmbeddedCoordinator`] a broker runs in
//! combined mode — one implementation of proposing, logging and applying.
//! This module adds what only a separate process needs: the HTTP routes,
//! broker leases (fencing brokers that stop heartbeating), the long poll
//! brokers pull the log with, mutual TLS and authorization on every write
//! ([`super::access`]), and a graceful stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use self::routes::{Failure, HttpResponse, invalid, json, respond};
use super::access::{self, ControlAuthorizer, Operation, Peer, Resource};
use super::lease::{Leases, SESSION_TIMEOUT, decide_heartbeat};
use super::settings::CoordinatorSettings;
use super::wire::AlterScramCredentialRequest;
use super::wire::{
    AclBindingsRequest, AllocateProducerIdsRequest, AllocateProducerIdsResponse,
    AlterConfigsRequest, BrokerHeartbeatRequest, BrokerRegistrationRequest,
    BrokerRegistrationResponse, CreatableTopic, CreatePartitionsRequest, CreateTopicResponse,
    DeleteTopicResponse, ErrorBody, LogBatch, MetadataLogResponse, WriteResponse,
};
use crate::accept::Acceptor;
use crate::cluster::embedded::LogRead;
use crate::cluster::metadata::{ELIGIBLE_LEADER_REPLICAS_VERSION, EligibleLeaderReplicas};
use crate::cluster::policy::check_producer_id_count;
use crate::cluster::{
    ApplyOutcome, ClusterCoordinator, ClusterError, Command, CreateTopicRequest,
    EmbeddedCoordinator, KafkaCode,
};
use crate::security::KafkaPrincipal;
use crate::security::tls::{TlsAcceptorHandle, TlsError, reload_on_change};

mod quorum;
mod rebalance;
mod routes;

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
    #[error("secureClientPort: {0}")]
    Tls(#[from] TlsError),
}

/// The sockets the coordinator serves: plaintext (`clientPort`) and mutual
/// TLS (`secureClientPort`), either or both.
#[derive(Debug, Default)]
pub struct Listeners {
    pub plaintext: Option<TcpListener>,
    pub secure: Option<TcpListener>,
    /// A quorum member's `peerPort`: raft RPCs from the other members, with
    /// mutual TLS when `secureClientPort` is configured.
    pub peer: Option<TcpListener>,
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
    authorizer: Box<dyn ControlAuthorizer>,
}

/// Runs the coordinator until `shutdown` turns true.
pub async fn run(
    settings: CoordinatorSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), CoordinatorError> {
    // Bound first, so a second start on a busy port fails without touching
    // the data directory.
    let mut listeners = Listeners::default();
    if let Some(address) = settings.listen {
        listeners.plaintext = Some(bind(address).await?);
    }
    if let Some(secure) = &settings.secure {
        listeners.secure = Some(bind(secure.listen).await?);
    }
    if let Some(ensemble) = &settings.ensemble {
        let ip = settings
            .listen
            .or(settings.secure.as_ref().map(|s| s.listen))
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
        listeners.peer = Some(bind(SocketAddr::new(ip, ensemble.me().peer_port)).await?);
    }
    run_on_listeners(listeners, settings, shutdown).await
}

/// [`run`] on a plaintext socket the caller bound (tests bind port 0).
pub async fn run_on(
    listener: TcpListener,
    settings: CoordinatorSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), CoordinatorError> {
    let listeners = Listeners {
        plaintext: Some(listener),
        ..Listeners::default()
    };
    run_on_listeners(listeners, settings, shutdown).await
}

/// [`run`] on sockets the caller bound; ignores the addresses in
/// `settings`, uses its TLS keys for `listeners.secure`.
pub async fn run_on_listeners(
    listeners: Listeners,
    settings: CoordinatorSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), CoordinatorError> {
    let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let address = local(&listeners.secure)
        .or(local(&listeners.plaintext))
        .or(settings.listen)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    // Certificates are read before anything is served, off the workers.
    let tls = match (&settings.secure, &listeners.secure) {
        (Some(secure), Some(_)) => {
            let tls = secure.tls.clone();
            let started =
                tokio::task::spawn_blocking(move || TlsAcceptorHandle::start("coordinator", &tls))
                    .await
                    .map_err(|e| CoordinatorError::DataDir {
                        path: settings.data_dir.clone(),
                        reason: format!("reading the TLS certificates failed: {e}"),
                    })??;
            Some(started)
        }
        _ => None,
    };
    let data_dir = settings.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|e| CoordinatorError::DataDir {
        path: data_dir.clone(),
        reason: e.to_string(),
    })?;
    let metadata = quorum::open_metadata(&settings).await?;
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
        authorizer: access::authorizer_for(&settings.authorization),
    });
    warn_if_open(&listeners, &settings);
    let member_id = settings.ensemble.as_ref().map_or(settings.node_id, |e| {
        i32::try_from(e.my_id).unwrap_or(i32::MAX)
    });
    let quorum = quorum::follow_leadership(Arc::clone(&service), data_dir, member_id);
    serve(
        Arc::clone(&service),
        listeners,
        tls,
        settings.max_client_connections,
        quorum,
        settings.leader_rebalance,
        settings.eligible_leader_replicas,
    )
    .await;
    if let Some(node) = service.metadata.quorum() {
        node.shutdown().await;
    }
    Ok(())
}

/// One line per port that lets in peers without a certificate.
fn warn_if_open(listeners: &Listeners, settings: &CoordinatorSettings) {
    let address = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(plaintext) = address(&listeners.plaintext) {
        crate::security::warn_if_exposed_without_authentication("the coordinator", plaintext);
    }
    let needs_certificate = settings
        .secure
        .as_ref()
        .is_some_and(|s| s.tls.client_auth == crate::config::ClientAuth::Required);
    if let Some(secure) = address(&listeners.secure)
        && !needs_certificate
    {
        crate::security::warn_if_exposed_without_authentication("the coordinator", secure);
    }
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

/// The next connection of an optional listener; never without one.
async fn accept(acceptor: &mut Option<Acceptor>) -> (tokio::net::TcpStream, SocketAddr) {
    match acceptor {
        Some(acceptor) => acceptor.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve(
    service: Arc<Service>,
    listeners: Listeners,
    tls: Option<(TlsAcceptorHandle, crate::security::tls::TlsReloader)>,
    max_connections: Option<usize>,
    quorum: impl std::future::Future<Output = ()> + Send + 'static,
    leader_rebalance: crate::config::LeaderRebalance,
    eligible_leader_replicas: EligibleLeaderReplicas,
) {
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
    tasks.spawn(quorum);
    tasks.spawn(rebalance::rebalance_leaders(
        Arc::clone(&service),
        leader_rebalance,
    ));
    tasks.spawn(finalize_eligible_leader_replicas(
        Arc::clone(&service),
        eligible_leader_replicas,
    ));
    let tls = tls.map(|(handle, reloader)| {
        tasks.spawn(reload_on_change(vec![reloader], service.shutdown.clone()));
        handle
    });
    let mut connections = JoinSet::new();
    let mut plaintext = listeners.plaintext.map(|l| Acceptor::new(l, "coordinator"));
    let mut secure = listeners
        .secure
        .map(|l| Acceptor::new(l, "coordinator (TLS)"));
    let mut peers = listeners
        .peer
        .map(|l| Acceptor::new(l, "coordinator (quorum peers)"));
    for (acceptor, port) in [
        (&plaintext, "clientPort"),
        (&secure, "secureClientPort"),
        (&peers, "peerPort"),
    ] {
        if let Some(address) = acceptor.as_ref().and_then(|a| a.local_addr().ok()) {
            tracing::info!(%address, "coordinator listening ({port})");
        }
    }
    loop {
        let (stream, peer, tls) = tokio::select! {
            (stream, peer) = accept(&mut plaintext) => (stream, peer, None),
            (stream, peer) = accept(&mut secure) => (stream, peer, tls.clone()),
            (stream, peer) = accept(&mut peers) => (stream, peer, tls.clone()),
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = shutdown.changed() => break,
        };
        {
            {
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
                    accept_connection(Arc::clone(&service), stream, peer, tls).await;
                    service.connections.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
        }
    }
    tracing::info!("coordinator stopping: draining connections");
    drop((plaintext, secure, peers));
    tasks.abort_all();
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        connections.abort_all();
    }
    tracing::info!("coordinator stopped cleanly");
}

/// Completes the TLS handshake (within the request timeout) on the secure
/// port, then serves HTTP with the peer's principal.
async fn accept_connection(
    service: Arc<Service>,
    stream: tokio::net::TcpStream,
    address: SocketAddr,
    tls: Option<TlsAcceptorHandle>,
) {
    let Some(tls) = tls else {
        let peer = Peer {
            principal: KafkaPrincipal::anonymous(),
            host: address.ip(),
        };
        return serve_connection(service, stream, peer).await;
    };
    match tls.accept(stream, service.request_timeout).await {
        Ok((stream, principal)) => {
            let peer = Peer {
                principal,
                host: address.ip(),
            };
            tracing::debug!(%address, principal = %peer.principal, "coordinator TLS peer");
            serve_connection(service, stream, peer).await;
        }
        Err(error) => {
            tracing::info!(%address, %error, "coordinator TLS connection refused");
        }
    }
}

async fn serve_connection<S>(service: Arc<Service>, stream: S, peer: Peer)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = service.shutdown.clone();
    let handler = Arc::clone(&service);
    let peer = Arc::new(peer);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(service.request_timeout)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| respond(Arc::clone(&handler), Arc::clone(&peer), request)),
        );
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = shutdown.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Makes the log's `eligible.leader.replicas.version` the configured one:
/// the quorum leader proposes it whenever they differ (at the first start,
/// and after the setting changed), as Kafka's controller writes a feature
/// level record.
async fn finalize_eligible_leader_replicas(service: Arc<Service>, wanted: EligibleLeaderReplicas) {
    let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        if quorum::require_leader(&service).is_err()
            || service.metadata.image().eligible_leader_replicas == wanted
        {
            continue;
        }
        let command = Command::SetEligibleLeaderReplicas { setting: wanted };
        match service.metadata.propose(command).await {
            Ok(_) => tracing::info!(
                version = wanted.version,
                min_insync_replicas = wanted.min_insync_replicas,
                "finalized {ELIGIBLE_LEADER_REPLICAS_VERSION}"
            ),
            Err(error) => {
                tracing::warn!(%error, "{ELIGIBLE_LEADER_REPLICAS_VERSION} not finalized");
            }
        }
    }
}

/// Proposes `FenceBroker` for every broker whose lease ran out.
async fn expire_leases(service: Arc<Service>) {
    let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        // Leases are the quorum leader's alone.
        if quorum::require_leader(&service).is_err() {
            continue;
        }
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

impl Service {
    fn check(&self, peer: &Peer, wanted: &[(Operation, Resource<'_>)]) -> Result<(), Failure> {
        let image = self.metadata.image();
        Ok(access::check(&*self.authorizer, &image.acls, peer, wanted)?)
    }

    /// Whether `peer` owns `broker_id` (see [`Leases::check_owner`]).
    fn check_owner(&self, peer: &Peer, broker_id: i32) -> Result<(), Failure> {
        match self.leases.lock() {
            Ok(leases) => Ok(leases.check_owner(broker_id, &peer.principal)?),
            Err(_) => Ok(()),
        }
    }

    async fn register(
        &self,
        peer: &Peer,
        req: BrokerRegistrationRequest,
    ) -> Result<HttpResponse, Failure> {
        // One at a time, so two brokers starting together cannot both pass
        // the check before either is registered.
        let _registering = self.registering.lock().await;
        if let Err(failure) = self.check_owner(peer, req.broker_id) {
            tracing::warn!(broker_id = req.broker_id, principal = %peer.principal, "broker registration refused: {}", failure.0.error_message.as_deref().unwrap_or(""));
            return Err(failure);
        }
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
                previous_broker_epoch: req.previous_broker_epoch,
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
            leases.claim(req.broker_id, &peer.principal);
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

    async fn heartbeat(
        &self,
        peer: &Peer,
        req: BrokerHeartbeatRequest,
    ) -> Result<HttpResponse, Failure> {
        self.check_owner(peer, req.broker_id)?;
        let mut decision = decide_heartbeat(&self.metadata.image(), &req);
        if decision.response.error.error_code != KafkaCode::NONE.0 {
            return Err(Failure(decision.response.error));
        }
        self.renew(req.broker_id);
        // A coordinator that restarted learns owners again from the
        // brokers' next heartbeats (they hold the epoch), not only from
        // registrations.
        if let Ok(mut leases) = self.leases.lock() {
            leases.claim(req.broker_id, &peer.principal);
        }
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
        decision.response.metadata_offset = self.metadata.image().last_applied;
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

    async fn alter_partition(
        &self,
        req: crate::cluster::AlterPartitionRequest,
    ) -> Result<HttpResponse, Failure> {
        self.metadata.alter_partition(req).await?;
        self.written()
    }

    async fn elect_leaders(
        &self,
        req: crate::cluster::ElectLeadersRequest,
    ) -> Result<HttpResponse, Failure> {
        let results = self.metadata.elect_leaders(req).await?;
        json(&super::wire::ElectLeadersResponse {
            error: ErrorBody::none(),
            results,
            metadata_offset: self.metadata_offset(),
        })
    }

    async fn reassign_partitions(
        &self,
        req: super::wire::ReassignPartitionsRequest,
    ) -> Result<HttpResponse, Failure> {
        let results = self
            .metadata
            .alter_partition_reassignments(req.topics)
            .await?;
        json(&super::wire::ReassignPartitionsResponse {
            error: ErrorBody::none(),
            results,
            metadata_offset: self.metadata_offset(),
        })
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
