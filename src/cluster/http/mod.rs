//! The coordinator as its own process (ZooKeeper's role) and the client
//! brokers use to reach it, over HTTP/JSON.
//!
//! - [`wire`]: request and response bodies, named after Kafka's RPCs;
//! - [`server`]: `gregor coordinator`, serving the routes below;
//! - [`client`]: [`RemoteCoordinator`], the [`ClusterCoordinator`] a broker
//!   uses when `zookeeper.connect` / `coordinator.connect` is set;
//! - [`lease`]: heartbeats and fencing, as a pure decision;
//! - [`settings`]: `coordinator.properties` / `zookeeper.properties`;
//! - [`ensemble`]: ZooKeeper's `server.N` / `myid` keys for a quorum;
//! - `exchange`: one JSON request to one address, on keep-alive
//!   connections;
//! - `members`: the members a client tries, following the leader;
//! - [`access`]: mutual TLS peers and what each route needs to be
//!   authorized for.
//!
//! Routes: `POST /v1/brokers/register`, `POST /v1/brokers/heartbeat`,
//! `POST /v1/topics`, `DELETE /v1/topics/{name}`,
//! `POST /v1/topics/{name}/partitions`, `PUT /v1/configs/topic/{name}`,
//! `POST /v1/producer-ids`, `GET /v1/metadata/log?from=IDX&wait_ms=MS`,
//! `GET /v1/cluster`, `GET /v1/quorum`,
//! `POST /v1/raft/{append,vote,snapshot}` (between quorum members),
//! `/healthz`, `/readyz`, `/metrics`. Errors answer with
//! `{"error_code", "error_name", "error_message"}` and a matching HTTP
//! status; NOT_CONTROLLER adds `leader_id` and `leader_address`.
//!
//! [`ClusterCoordinator`]: crate::cluster::ClusterCoordinator

pub mod access;
pub mod client;
pub mod client_tls;
pub mod ensemble;
mod exchange;
pub mod lease;
mod members;
pub mod server;
pub mod settings;
pub mod wire;

pub use client::RemoteCoordinator;
pub use client_tls::CoordinatorTls;
pub use members::{change_voters, quorum_view};
pub use server::{CoordinatorError, Listeners, run, run_on, run_on_listeners};
pub use settings::{CoordinatorArgs, CoordinatorSettings};

#[cfg(test)]
mod quorum_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
