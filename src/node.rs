//! What one `gregor broker` process runs, by Kafka's `process.roles`:
//!
//! - no roles: the broker alone, with the embedded coordinator or a
//!   `zookeeper.connect` quorum (unchanged);
//! - `controller`: a voter of the metadata quorum (raft member id =
//!   `node.id`). Its controller listener carries the raft RPCs between
//!   controllers *and* the coordinator API brokers and tools use — the
//!   coordinator server of `gregor coordinator`, on one port;
//! - `broker`: a broker that reaches the quorum through the controllers'
//!   addresses, following its leader, as a `zookeeper.connect` broker does;
//! - both: the two in one process (Kafka's combined mode). The broker talks
//!   to its own controller over loopback like any other broker, so there is
//!   one path for local and remote brokers.
//!
//! The controller outlives the broker: it stops only after the broker's
//! controlled shutdown, which it may have to serve as the quorum leader.
//!
//! An SSL controller listener is the coordinator's TLS port: the listener's
//! certificate and `ssl.client.auth`, the peer's principal from its
//! certificate, and, with `authorizer.class.name` or `super.users`, what
//! each route needs authorized (as `gregor coordinator` with
//! `secureClientPort`). Raft RPCs to the other voters, and the broker's
//! calls, dial with the listener's client side (see `KraftSettings`).

use std::collections::BTreeMap;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{self, StartError};
use crate::cluster::command_log::claim_node_id;
use crate::cluster::http::ensemble::{EnsembleServer, EnsembleSettings};
use crate::cluster::http::settings::{AccessSettings, REQUEST_TIMEOUT, SecureListen};
use crate::cluster::http::{CoordinatorError, CoordinatorSettings, Listeners};
use crate::config::{BrokerSettings, ControllerListener, KraftSettings};

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Broker(#[from] StartError),
    #[error("controller: {0}")]
    Controller(#[from] CoordinatorError),
    #[error("controller listener {listener}: {error}")]
    ControllerTls {
        listener: String,
        error: crate::security::tls::TlsError,
    },
    #[error("controller listener {listener}: cannot listen on {address}: {reason}")]
    ControllerBind {
        listener: String,
        address: String,
        reason: String,
    },
    #[error("controller.quorum.voters: {0}")]
    Voters(String),
    #[error("data directory: {0}")]
    DataDir(String),
}

/// Runs the roles `settings` names until `shutdown` turns true.
pub async fn run(
    settings: BrokerSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let Some(kraft) = settings.kraft.clone() else {
        return Ok(broker::run(settings, shutdown).await?);
    };
    let controller = match &kraft.controller {
        Some(listener) => Some(Controller::start(&kraft, listener, &settings).await?),
        None => {
            // A controller's marker is checked by the quorum member; a
            // broker alone claims its directory for its node id here.
            let data_dir = settings.data_dir.clone();
            let node_id = kraft.node_id;
            tokio::task::spawn_blocking(move || claim_node_id(&data_dir, node_id))
                .await
                .map_err(|e| NodeError::DataDir(e.to_string()))?
                .map_err(StartError::Cluster)?;
            None
        }
    };
    tracing::info!(
        node_id = kraft.node_id,
        broker = kraft.roles.broker,
        controller = kraft.roles.controller,
        quorum = %kraft.quorum_addresses(),
        "starting a KRaft-shaped node"
    );
    let (stop_broker, broker_stop) = watch::channel(false);
    let broker = async move {
        if kraft.roles.broker {
            broker::run(settings, broker_stop).await
        } else {
            let mut stop = broker_stop;
            let _ = stop.wait_for(|stop| *stop).await;
            Ok(())
        }
    };
    let mut broker = std::pin::pin!(broker);
    let mut shutdown = shutdown;
    let mut controller = controller;
    let mut controller_failed = None;
    let mut stopping = false;
    let broker_result = loop {
        tokio::select! {
            done = &mut broker => break done,
            changed = shutdown.changed(), if !stopping => {
                if changed.is_err() || *shutdown.borrow() {
                    stopping = true;
                    let _ = stop_broker.send(true);
                }
            }
            ended = wait_controller(&mut controller) => {
                // A controller that stops on its own failed to start (or
                // lost its data directory): the broker cannot go on alone.
                controller = None;
                controller_failed = Some(ended);
                let _ = stop_broker.send(true);
            }
        }
    };
    if let Some(controller) = controller {
        controller.stop().await?;
    }
    if let Some(ended) = controller_failed {
        ended?;
    }
    Ok(broker_result?)
}

/// The in-process controller: the coordinator server on the controller
/// listener, with its own stop signal.
struct Controller {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), CoordinatorError>>,
    /// The listener's name, for errors.
    listener: String,
}

impl Controller {
    async fn start(
        kraft: &KraftSettings,
        listener: &ControllerListener,
        settings: &BrokerSettings,
    ) -> Result<Self, NodeError> {
        let socket =
            TcpListener::bind(&listener.bind)
                .await
                .map_err(|e| NodeError::ControllerBind {
                    listener: listener.name.clone(),
                    address: listener.bind.clone(),
                    reason: e.to_string(),
                })?;
        let local = socket.local_addr().map_err(|e| NodeError::ControllerBind {
            listener: listener.name.clone(),
            address: listener.bind.clone(),
            reason: e.to_string(),
        })?;
        let coordinator = coordinator_settings(kraft, listener, settings, local)?;
        tracing::info!(
            listener = %listener.name,
            address = %listener.address,
            protocol = %if listener.tls.is_some() { "SSL" } else { "PLAINTEXT" },
            "controller listening (raft and coordinator API)"
        );
        let listeners = match listener.tls {
            Some(_) => Listeners {
                secure: Some(socket),
                ..Listeners::default()
            },
            None => Listeners {
                plaintext: Some(socket),
                ..Listeners::default()
            },
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(crate::cluster::http::run_on_listeners(
            listeners,
            coordinator,
            stopped,
        ));
        Ok(Self {
            stop,
            task,
            listener: listener.name.clone(),
        })
    }

    async fn stop(self) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        finished(self.task.await, &self.listener)
    }
}

async fn wait_controller(controller: &mut Option<Controller>) -> Result<(), NodeError> {
    match controller {
        Some(controller) => finished((&mut controller.task).await, &controller.listener),
        None => std::future::pending().await,
    }
}

fn finished(
    joined: Result<Result<(), CoordinatorError>, tokio::task::JoinError>,
    listener: &str,
) -> Result<(), NodeError> {
    match joined {
        // The coordinator names its TLS port after ZooKeeper's key; here
        // it is the controller listener.
        Ok(Err(CoordinatorError::Tls(error))) => Err(NodeError::ControllerTls {
            listener: listener.to_owned(),
            error,
        }),
        Ok(result) => Ok(result?),
        Err(error) => Err(NodeError::Controller(CoordinatorError::DataDir {
            path: std::path::PathBuf::new(),
            reason: format!("the controller task failed: {error}"),
        })),
    }
}

/// The coordinator server's settings for this controller: the broker's data
/// directory (the quorum's files go under `__cluster_metadata/raft`, next
/// to `meta.json`), the voters as an ensemble whose members serve raft
/// and clients on the same port, and, on an SSL listener, its TLS and the
/// broker's authorization keys.
fn coordinator_settings(
    kraft: &KraftSettings,
    listener: &ControllerListener,
    settings: &BrokerSettings,
    listen: std::net::SocketAddr,
) -> Result<CoordinatorSettings, NodeError> {
    let mut servers = BTreeMap::new();
    for (id, address) in &kraft.voters {
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| NodeError::Voters(format!("{id}@{address} is not id@host:port")))?;
        servers.insert(
            *id,
            EnsembleServer {
                host: host.trim_matches(['[', ']']).to_owned(),
                peer_port: port,
                election_port: port,
                client_port: Some(port),
            },
        );
    }
    let secure = listener.tls.clone().map(|tls| SecureListen {
        listen,
        tls,
        peer_client: kraft.controller_client_tls.clone(),
    });
    Ok(CoordinatorSettings {
        data_dir: settings.data_dir.clone(),
        listen: secure.is_none().then_some(listen),
        authorization: controller_access(kraft, settings, secure.is_some()),
        secure,
        max_client_connections: None,
        node_id: kraft.node_id,
        request_timeout: REQUEST_TIMEOUT,
        partition_limits: settings.partition_limits,
        leader_rebalance: settings.leader_rebalance,
        eligible_leader_replicas: settings.eligible_leader_replicas,
        ensemble: Some(EnsembleSettings {
            my_id: u64::try_from(kraft.node_id).unwrap_or(0),
            servers,
            snapshot_after_entries: kraft.snapshot_after_entries,
        }),
    })
}

/// Who may write through the controller listener. PLAINTEXT: everyone, as
/// before (every peer is `User:ANONYMOUS`; a non-loopback address is
/// warned about). SSL: as Kafka's controller, everyone with a certificate
/// the listener accepts unless `authorizer.class.name` names the ACL
/// authorizer (then the ACLs and `super.users` decide); `super.users`
/// alone restricts writes to those principals, as on `gregor coordinator`.
fn controller_access(
    kraft: &KraftSettings,
    settings: &BrokerSettings,
    tls: bool,
) -> AccessSettings {
    if !tls {
        return AccessSettings::default();
    }
    AccessSettings {
        enabled: settings.authorizer.is_some() || !kraft.super_users.is_empty(),
        acl: settings.authorizer.clone(),
        super_users: kraft.super_users.clone(),
    }
}
