//! Start-up and shutdown of a broker process: open the data directory and
//! the cluster coordinator, bring partitions in step with the metadata,
//! accept connections on every listener, and on shutdown stop accepting,
//! let in-flight requests finish, then flush and close every log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::clean_shutdown;
use super::cleaner::LogCleaner;
use super::connection::{self, ConnectionInfo};
use super::limits::{ConnectionLimits, ConnectionSlot, RequestBudget};
use super::metrics::Metrics;
use super::offsets_log::PartitionsOffsetsLog;
use super::partition::now_ms;
use super::{BrokerContext, Partitions};
use crate::accept::Acceptor;
use crate::admin_http;
use crate::cluster::{
    BrokerRegistration, ClusterCoordinator, ClusterError, EmbeddedCoordinator, Listener,
    RemoteCoordinator,
};
use crate::config::BrokerSettings;
use crate::group::{GroupCoordinator, LegacyOffsets, LegacyOffsetsError};
use crate::replication::{InterBrokerClient, ReplicaManager};
use crate::security::tls::{self, TlsAcceptorHandle};
use crate::security::{self, KafkaPrincipal, SecurityProtocol};

/// Why a broker could not start; each names what the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "data directory {path} is not usable by uid {uid}: {reason} (fix: chown it to uid {uid} or choose another log.dirs)"
    )]
    DataDir {
        path: PathBuf,
        uid: u32,
        reason: String,
    },
    #[error("cannot listen on {address} for listener {listener}: {reason}")]
    Bind {
        listener: String,
        address: String,
        reason: String,
    },
    #[error("TLS listener {listener}: {error}")]
    Tls {
        listener: String,
        error: crate::security::tls::TlsError,
    },
    /// The inter-broker listener's client side: its truststore or keystore.
    #[error("inter-broker listener {listener} (its ssl.* keys as a client): {error}")]
    InterBrokerTls {
        listener: String,
        error: crate::security::tls::TlsError,
    },
    #[error("cluster metadata: {0}")]
    Cluster(#[from] ClusterError),
    /// The old committed-offsets log cannot be recovered without losing
    /// commits.
    #[error("{0}")]
    CommittedOffsets(#[from] LegacyOffsetsError),
    /// `keys`: where the TLS settings came from (`zookeeper.ssl.*`, or the
    /// controller listener's `ssl.*` in KRaft's shape).
    #[error("{keys}: {error}")]
    CoordinatorTls {
        keys: String,
        error: crate::security::tls::TlsError,
    },
}

/// Runs the broker until `shutdown` turns true.
pub async fn run(
    settings: BrokerSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StartError> {
    prepare_data_dir(&settings.data_dir)?;
    let inter_broker = InterBrokerClient::new(settings.inter_broker.as_ref()).map_err(|error| {
        StartError::InterBrokerTls {
            listener: settings
                .inter_broker
                .as_ref()
                .map(|i| i.listener.clone())
                .unwrap_or_default(),
            error,
        }
    })?;
    // A named coordinator is a separate process; otherwise run it in-process.
    let coordinator: Arc<dyn ClusterCoordinator> = match &settings.coordinator {
        Some(address) => {
            let tls = match &settings.coordinator_tls {
                Some(tls) => Some(crate::cluster::http::CoordinatorTls::new(tls).map_err(
                    |error| StartError::CoordinatorTls {
                        keys: match &settings.kraft {
                            Some(kraft) => format!(
                                "controller listener {} (its ssl.* keys)",
                                kraft.controller_listener_names[0]
                            ),
                            None => "zookeeper.ssl.*".to_owned(),
                        },
                        error,
                    },
                )?),
                None => None,
            };
            Arc::new(RemoteCoordinator::start_with_tls(
                address,
                tls,
                shutdown.clone(),
            ))
        }
        None => Arc::new(
            EmbeddedCoordinator::open(&settings.data_dir, settings.broker_id)?
                .with_partition_limits(settings.partition_limits),
        ),
    };
    let listeners = settings
        .listeners
        .iter()
        .map(|l| Listener {
            name: l.name.clone(),
            host: l.advertised_host.clone(),
            port: l.advertised_port,
            security_protocol: l.security_protocol,
        })
        .collect();
    let registration = coordinator.register_broker(BrokerRegistration {
        broker_id: settings.broker_id,
        incarnation_id: Uuid::new_v4(),
        listeners,
        rack: settings.rack.clone(),
        directory_id: crate::cluster::directory_id(&settings.data_dir)?,
        previous_broker_epoch: Some(clean_shutdown::previous_broker_epoch(&settings.data_dir)),
    });
    // A remote coordinator may not be up yet; a stop request must not wait.
    let broker_epoch = tokio::select! {
        registered = registration => registered?,
        _ = shutdown.changed() => return Ok(()),
    };
    clean_shutdown::forget(&settings.data_dir);

    // Certificates are read before anything is bound or opened, so a bad
    // file stops the start with its name.
    let mut tls_listeners = HashMap::new();
    let mut tls_reloaders = Vec::new();
    for listener in &settings.listeners {
        if let Some(tls) = &listener.tls {
            let (handle, reloader) =
                TlsAcceptorHandle::start(&listener.name, tls).map_err(|error| StartError::Tls {
                    listener: listener.name.clone(),
                    error,
                })?;
            tls_listeners.insert(listener.name.clone(), handle);
            tls_reloaders.push(reloader);
        }
    }

    // Bind before opening logs, so a second start on a busy port fails fast
    // and touches nothing.
    let mut bound = Vec::new();
    for listener in &settings.listeners {
        let socket = TcpListener::bind(&listener.bind)
            .await
            .map_err(|e| StartError::Bind {
                listener: listener.name.clone(),
                address: listener.bind.clone(),
                reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                    "address already in use (is another broker running?)".to_string()
                } else {
                    e.to_string()
                },
            })?;
        // A TLS listener requiring client certificates authenticates too.
        let certificates_required = listener
            .tls
            .as_ref()
            .is_some_and(|tls| tls.client_auth == crate::config::ClientAuth::Required);
        if !listener.security_protocol.uses_sasl()
            && !certificates_required
            && let Ok(address) = socket.local_addr()
        {
            let what = format!(
                "listener {} ({})",
                listener.name, listener.security_protocol
            );
            security::warn_if_exposed_without_authentication(&what, address);
        }
        bound.push((listener.name.clone(), listener.security_protocol, socket));
    }

    let partitions = Arc::new(
        Partitions::new(settings.broker_id, &settings.data_dir, settings.log.clone())
            .guarded_by(coordinator.stall_guard()),
    );
    partitions.reconcile_off_workers(coordinator.image()).await;
    // The offsets file of earlier versions, if any, is read before
    // accepting: one that cannot be recovered stops the start with its file
    // and byte position, instead of serving older offsets.
    let data_dir = settings.data_dir.clone();
    let legacy = tokio::task::spawn_blocking(move || LegacyOffsets::open(&data_dir))
        .await
        .map_err(|e| StartError::DataDir {
            path: settings.data_dir.clone(),
            uid: current_uid(),
            reason: e.to_string(),
        })??;
    let offsets_log = PartitionsOffsetsLog::new(
        settings.broker_id,
        partitions.clone(),
        coordinator.clone(),
        settings.log.clone(),
        settings.message_max_decompressed_bytes,
    );
    let groups = GroupCoordinator::start(
        settings.groups.clone(),
        settings.broker_id,
        Arc::new(offsets_log),
        legacy,
        shutdown.clone(),
    );
    let cleaner = LogCleaner::start(
        &settings.cleaner,
        settings.message_max_decompressed_bytes,
        partitions.clone(),
    );
    let (replica_manager, replicas) = ReplicaManager::new(
        settings.broker_id,
        settings.replica_lag_time_max,
        inter_broker,
        coordinator.clone(),
        partitions.clone(),
    );
    replicas.image_reconciled(coordinator.image());
    groups.image_reconciled(coordinator.image());
    let ctx = Arc::new(BrokerContext {
        coordinator: coordinator.clone(),
        partitions: partitions.clone(),
        replicas,
        metrics: Arc::new(Metrics::default()),
        groups: Arc::new(groups),
        producer_ids: Mutex::new(0..0),
        authorizer: settings.authorizer.clone().map(Arc::new),
        settings,
    });
    super::handlers::scram_credentials::ensure_client_users(&ctx).await;

    let mut background = JoinSet::new();
    background.spawn(follow_metadata(ctx.clone(), shutdown.clone()));
    // Not in `background`: it is stopped after the connections drained,
    // so acks=all produces still in flight can complete.
    let (stop_replication, replication_stopped) = watch::channel(false);
    let replication = tokio::spawn(replica_manager.run(replication_stopped));
    background.spawn(housekeeping(ctx.clone(), shutdown.clone()));
    background.spawn(tls::reload_on_change(tls_reloaders, shutdown.clone()));
    match admin_http::bind(ctx.settings.admin_listener).await {
        Ok(admin) => {
            background.spawn(admin_http::serve(admin, ctx.clone(), shutdown.clone()));
        }
        Err(error) => {
            tracing::warn!(address = %ctx.settings.admin_listener, %error, "admin HTTP listener disabled")
        }
    }

    let mut connections = JoinSet::new();
    let mut acceptors = JoinSet::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel();
    let limits = ConnectionLimits::new(&ctx.settings.connections);
    let budget = RequestBudget::new(ctx.settings.connections.queued_max_request_bytes);
    for (name, security_protocol, socket) in bound {
        let address = socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(listener = %name, %address, "listening");
        let acceptor = Acceptor::new(socket, name.clone());
        acceptors.spawn(accept_loop(
            name,
            security_protocol,
            acceptor,
            limits.clone(),
            conn_tx.clone(),
            shutdown.clone(),
        ));
    }
    drop(conn_tx);
    tracing::info!(broker_id = ctx.settings.broker_id, "broker started");

    loop {
        tokio::select! {
            accepted = conn_rx.recv() => match accepted {
                Some((stream, info, slot)) => {
                    let ctx = ctx.clone();
                    let budget = budget.clone();
                    let shutdown = shutdown.clone();
                    let tls = tls_listeners.get(&info.listener).cloned();
                    connections.spawn(async move {
                        ctx.metrics.connection_opened();
                        match tls {
                            None => connection::serve(ctx.clone(), stream, info, budget, shutdown).await,
                            Some(tls) => {
                                connection::serve_tls(ctx.clone(), stream, info, budget, shutdown, tls).await
                            }
                        }
                        ctx.metrics.connection_closed();
                        drop(slot);
                    });
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }

    if ctx.settings.controlled_shutdown {
        controlled_shutdown(&ctx, broker_epoch).await;
    }
    tracing::info!("shutting down: draining connections");
    acceptors.abort_all();
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(ctx.settings.shutdown_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown timeout; closing them");
        connections.abort_all();
    }
    background.abort_all();
    let _ = stop_replication.send(true);
    let _ = replication.await;
    if let Some(cleaner) = cleaner {
        let _ = tokio::task::spawn_blocking(move || cleaner.stop()).await;
    }
    // Group writes still in flight end before the partitions close.
    ctx.groups.close().await;
    if partitions.close_all().await {
        record_clean_shutdown(&ctx, broker_epoch).await;
    }
    tracing::info!("broker stopped cleanly");
    let _ = shutdown.borrow_and_update();
    Ok(())
}

/// A new connection with its place in the connection counts.
type Accepted = (tokio::net::TcpStream, ConnectionInfo, ConnectionSlot);

/// Accepts on one listener while the broker is under `max.connections`,
/// and closes a new connection at once when its address is over
/// `max.connections.per.ip`, as Kafka does.
async fn accept_loop(
    listener: String,
    security_protocol: SecurityProtocol,
    mut acceptor: Acceptor,
    limits: Arc<ConnectionLimits>,
    connections: tokio::sync::mpsc::UnboundedSender<Accepted>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Wait for a free slot without holding it, so that an idle listener
        // does not keep one from the others.
        tokio::select! {
            slot = limits.free_slot() => drop(slot),
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        // Normally at once; another listener may have taken the slot.
        let slot = tokio::select! {
            slot = limits.free_slot() => slot,
            _ = shutdown.changed() => return,
        };
        match limits.admit(slot, peer.ip()) {
            Ok(slot) => {
                let info = ConnectionInfo {
                    listener: listener.clone(),
                    peer,
                    security_protocol,
                    principal: KafkaPrincipal::anonymous(),
                };
                if connections.send((stream, info, slot)).is_err() {
                    return;
                }
            }
            Err(refused) => {
                tracing::info!(%listener, %peer, %refused, "closing new connection");
                drop(stream);
            }
        }
    }
}

/// Every partition closed cleanly: the next start tells the coordinator so
/// (see [`clean_shutdown`]), under the registration renewed last.
async fn record_clean_shutdown(ctx: &BrokerContext, broker_epoch: i64) {
    let broker_epoch = ctx
        .coordinator
        .image()
        .broker(ctx.settings.broker_id)
        .map_or(broker_epoch, |b| b.epoch);
    let data_dir = ctx.settings.data_dir.clone();
    let recorded =
        tokio::task::spawn_blocking(move || clean_shutdown::record(&data_dir, broker_epoch)).await;
    if let Ok(Err(error)) = recorded {
        tracing::warn!(%error, "could not record the clean shutdown; the next start counts as unclean");
    }
}

/// How long a stopping broker waits for the coordinator to hear it.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Tells the coordinator this broker is stopping, so its partitions show
/// no leader at once instead of after the session timeout. A coordinator
/// that does not answer in time does not hold the shutdown up.
async fn controlled_shutdown(ctx: &BrokerContext, broker_epoch: i64) {
    let broker_id = ctx.settings.broker_id;
    // A lost registration may have been renewed since start-up.
    let broker_epoch = ctx
        .coordinator
        .image()
        .broker(broker_id)
        .map_or(broker_epoch, |b| b.epoch);
    let request = ctx.coordinator.begin_shutdown(broker_id, broker_epoch);
    match tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT, request).await {
        Ok(Ok(())) => tracing::info!(
            broker_id,
            "controlled shutdown: the coordinator moved leadership away"
        ),
        Ok(Err(error)) => {
            tracing::warn!(broker_id, %error, "controlled shutdown refused; stopping anyway")
        }
        Err(_) => tracing::warn!(
            broker_id,
            "controlled shutdown: no answer from the coordinator; stopping anyway"
        ),
    }
}

/// Keeps hosted partitions in step with every new metadata image.
async fn follow_metadata(ctx: Arc<BrokerContext>, mut shutdown: watch::Receiver<bool>) {
    let mut images = ctx.coordinator.watch();
    loop {
        tokio::select! {
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                let image = images.borrow_and_update().clone();
                ctx.partitions.reconcile_off_workers(image.clone()).await;
                ctx.replicas.image_reconciled(image.clone());
                ctx.groups.image_reconciled(image);
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Time-based flushing (every second, cheap when nothing is due) and
/// retention (every `log.retention.check.interval.ms`).
async fn housekeeping(ctx: Arc<BrokerContext>, mut shutdown: watch::Receiver<bool>) {
    let retention_every = ctx.settings.log.retention_check_interval;
    let mut flush_tick = tokio::time::interval(Duration::from_secs(1).min(retention_every));
    let mut last_retention = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = flush_tick.tick() => {
                let retention_due = last_retention.elapsed() >= retention_every;
                if retention_due {
                    last_retention = tokio::time::Instant::now();
                }
                let partitions = ctx.partitions.clone();
                let _ = tokio::task::spawn_blocking(move || partitions.tick(now_ms(), retention_due)).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Creates the data directory and proves it writable, so a bind-mounted
/// directory owned by someone else fails at start-up with one clear line.
fn prepare_data_dir(path: &Path) -> Result<(), StartError> {
    let fail = |reason: String| StartError::DataDir {
        path: path.to_path_buf(),
        uid: current_uid(),
        reason,
    };
    std::fs::create_dir_all(path).map_err(|e| fail(e.to_string()))?;
    let probe = path.join(".gregor-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("cannot write: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn current_uid() -> u32 {
    // The owner of /proc/self is this process's uid; no libc call needed.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}
