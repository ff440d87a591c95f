//! The cluster coordinator (ZooKeeper's role), in KRaft's shape.
//!
//! - [`metadata`]: the deterministic state machine — [`MetadataImage`]
//!   changed only by applying [`Command`]s, refusing with a [`KafkaCode`];
//! - [`command_log`]: the durable, replayable log of accepted commands;
//! - [`embedded`]: [`EmbeddedCoordinator`], the proposer (policy checks,
//!   non-deterministic choices, dry runs) over the single node's command
//!   log — what a broker runs in-process when no coordinator is configured —
//!   or over a raft quorum;
//! - [`raft`]: the replicated quorum on openraft (all its types live there);
//! - [`http`]: the coordinator as its own process and [`RemoteCoordinator`],
//!   which brokers use to reach it; [`remote_image`] is the broker's copy
//!   of the metadata, kept by pulling the command log.
//!
//! Brokers talk to the coordinator only through [`ClusterCoordinator`], so
//! the embedded coordinator and a remote one (over HTTP) are interchangeable.

pub mod bootstrap;
mod code;
pub mod command_log;
pub mod embedded;
pub mod http;
pub mod metadata;
pub mod policy;
pub mod raft;
pub mod remote_image;
pub mod stall;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::security::acl::AclBinding;
use crate::security::sasl::{ScramCredential, ScramMechanism};

pub use command_log::{CommandLog, LogEntry, MetaMarker, new_cluster_id};
pub use embedded::{EmbeddedCoordinator, LogRead};
pub use http::RemoteCoordinator;
pub use metadata::{
    ApplyOutcome, BrokerState, Command, ConfigResource, ElectionType, KafkaCode, Listener,
    MetadataImage, PartitionState, Rejection, SecurityProtocol, TopicState, validate_topic_name,
};

/// A future the coordinator trait returns; boxed so the trait stays
/// object-safe (`Arc<dyn ClusterCoordinator>`).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What a broker announces when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// Fresh for every process start.
    pub incarnation_id: Uuid,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// The broker's data directory, as [`directory_id`] names it: tells a
    /// restart from the same directory from a second broker claiming the
    /// id. Nil when unknown.
    pub directory_id: Uuid,
    /// The broker epoch this broker's last clean shutdown recorded, -1
    /// when it did not stop cleanly (KIP-966); see
    /// [`crate::broker::clean_shutdown`].
    pub previous_broker_epoch: Option<i64>,
}

/// The file in a broker's data directory that holds its id.
const DIRECTORY_ID_FILE: &str = "directory.id";

/// The id of the data directory `data_dir`, made on first use (Kafka keeps
/// one in `meta.properties`, KIP-858). It stays with the directory, so a
/// broker restarted on it is recognised as the same broker.
pub fn directory_id(data_dir: &Path) -> Result<Uuid, ClusterError> {
    let path = data_dir.join(DIRECTORY_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Uuid::parse_str(text.trim()).map_err(|e| ClusterError::InconsistentMetadata {
            path: path.clone(),
            reason: format!("{DIRECTORY_ID_FILE} does not hold a UUID: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4();
            let staged = data_dir.join(format!("{DIRECTORY_ID_FILE}.tmp"));
            std::fs::write(&staged, format!("{id}\n"))
                .and_then(|()| std::fs::rename(&staged, &path))
                .map_err(|e| ClusterError::storage(&path, e))?;
            Ok(id)
        }
        Err(e) => Err(ClusterError::storage(&path, e)),
    }
}

/// A CreateTopics entry. The broker resolves Kafka's `-1` defaults for
/// `partitions` and `replication_factor` before calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTopicRequest {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// The caller's placement of the replicas; empty to let the coordinator
    /// place them (then `partitions` and `replication_factor` apply).
    pub assignments: Vec<ReplicaAssignment>,
    /// Check everything, change nothing.
    pub validate_only: bool,
}

/// One partition of a manual replica assignment (CreateTopics `assignments`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaAssignment {
    pub partition_index: i32,
    /// The replicas, preferred leader first.
    pub broker_ids: Vec<i32>,
}

/// AlterPartition (KIP-497): a partition leader asks for a new ISR. Both
/// epochs must be the partition's current ones, so a change decided on a
/// stale view (an older leader, or an ISR changed since) is refused; and
/// each member's broker epoch, where known, its current registration's
/// (KIP-903), so a late copy cannot add a replica that restarted since.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    /// The leader asking.
    pub broker_id: i32,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    /// `isr[i]`'s broker epoch as the leader knows it; -1, or missing (a
    /// leader of an older gregor), when not known.
    #[serde(default)]
    pub broker_epochs: Vec<i64>,
}

impl AlterPartitionRequest {
    /// Each ISR member with its broker epoch (-1: not known).
    pub fn members(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.isr
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, self.broker_epochs.get(i).copied().unwrap_or(-1)))
    }
}

/// ElectLeaders (KIP-460): which partitions to elect a leader for, and how.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElectLeadersRequest {
    pub election_type: ElectionType,
    /// `None`: every partition of every topic.
    pub topic_partitions: Option<Vec<ElectionTopic>>,
}

/// Some partitions of one topic.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElectionTopic {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// How the election went for one topic's partitions.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElectionResult {
    pub topic: String,
    pub partitions: Vec<PartitionElection>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionElection {
    pub partition: i32,
    /// NONE when the new leader was elected.
    pub error_code: KafkaCode,
    pub error_message: Option<String>,
}

/// AlterPartitionReassignments (KIP-455): the partitions of one topic to
/// move or whose move to cancel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReassignmentTopic {
    pub topic: String,
    pub partitions: Vec<PartitionReassignment>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionReassignment {
    pub partition: i32,
    /// The replicas to move to, preferred leader first; `None` cancels the
    /// move in progress.
    pub target_replicas: Option<Vec<i32>>,
}

/// How one topic's partitions fared in AlterPartitionReassignments.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReassignmentResult {
    pub topic: String,
    pub partitions: Vec<PartitionOutcome>,
}

/// One partition's result in a per-partition admin call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionOutcome {
    pub partition: i32,
    /// NONE when the change was committed.
    pub error_code: KafkaCode,
    pub error_message: Option<String>,
}

/// The result of a (possibly validate-only) topic creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSummary {
    /// Nil when the request was `validate_only`, as in Kafka.
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The command was refused; `code` and `message` go into the response.
    #[error("{code}: {message}")]
    Rejected { code: KafkaCode, message: String },
    /// Reading or writing the coordinator's files failed.
    #[error("cluster metadata storage {}: {source}", path.display())]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The command log cannot be parsed or replayed; `position` is the
    /// byte where the bad record starts.
    #[error("cluster metadata log {} is corrupt at byte {position}: {reason}", path.display())]
    CorruptLog {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The data directory belongs to another cluster or node, or its format
    /// marker and log disagree; starting would mix two clusters' state.
    #[error("inconsistent cluster metadata in {}: {reason}", path.display())]
    InconsistentMetadata { path: PathBuf, reason: String },
    /// This coordinator is not the quorum's leader; writes go to `leader`
    /// (Kafka's NOT_CONTROLLER), when one is known.
    #[error("this coordinator is not the quorum leader{}", leader.as_ref().map(|l| format!("; the leader is {} at {}", l.id, l.client_address)).unwrap_or_default())]
    NotController { leader: Option<QuorumLeader> },
    /// The quorum could not confirm a write or a fresh read in time.
    #[error("the coordinator quorum is unavailable: {reason}")]
    QuorumUnavailable { reason: String },
}

/// The coordinator quorum's leader, as a follower names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumLeader {
    /// Its `myid`.
    pub id: u64,
    /// `host:port` where brokers and tools reach it.
    pub client_address: String,
}

impl ClusterError {
    /// The Kafka code to answer with: the rejection's own, otherwise
    /// `UNKNOWN_SERVER_ERROR`.
    pub fn code(&self) -> KafkaCode {
        match self {
            Self::Rejected { code, .. } => *code,
            Self::NotController { .. } => KafkaCode::NOT_CONTROLLER,
            Self::QuorumUnavailable { .. } => KafkaCode::REQUEST_TIMED_OUT,
            _ => KafkaCode::UNKNOWN_SERVER_ERROR,
        }
    }

    /// The text for a response's `error_message`: the rejection's own
    /// message, otherwise the whole error.
    pub fn message(&self) -> String {
        match self {
            Self::Rejected { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn storage(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Storage {
            path: path.into(),
            source,
        }
    }
}

impl From<Rejection> for ClusterError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected {
            code: rejection.code,
            message: rejection.message,
        }
    }
}

/// The coordinator as brokers see it: changes go through it, and it hands
/// out the committed metadata image.
pub trait ClusterCoordinator: Send + Sync {
    /// Registers (or re-registers after a restart) a broker; returns its new
    /// broker epoch.
    fn register_broker(&self, reg: BrokerRegistration) -> BoxFuture<'_, Result<i64, ClusterError>>;

    /// Controlled shutdown (Kafka's `controlled.shutdown.enable`): the
    /// broker at `broker_epoch` is about to stop, so it leads nothing from
    /// now on and gets no new replicas.
    fn begin_shutdown(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;

    fn create_topic(
        &self,
        req: CreateTopicRequest,
    ) -> BoxFuture<'_, Result<TopicSummary, ClusterError>>;

    /// Deletes the topic; returns the id it had.
    fn delete_topic(&self, name: &str) -> BoxFuture<'_, Result<Uuid, ClusterError>>;

    /// Grows the topic to `total` partitions; fewer than it has is
    /// `INVALID_PARTITIONS`. `assignments`, when given, places the new
    /// partitions' replicas (one list per new partition).
    fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// Sets then deletes (resets to default) topic config entries.
    fn alter_topic_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// Reserves a block of [`policy::PRODUCER_ID_BLOCK_SIZE`] producer ids
    /// for `broker_id`; blocks never overlap and only move forward.
    fn allocate_producer_ids(
        &self,
        broker_id: i32,
    ) -> BoxFuture<'_, Result<Range<i64>, ClusterError>>;

    /// A partition leader's ISR change: FENCED_LEADER_EPOCH when the
    /// asker no longer leads at that epoch, INVALID_UPDATE_VERSION when the
    /// partition changed since, INELIGIBLE_REPLICA for a member that may
    /// not join.
    fn alter_partition(
        &self,
        request: AlterPartitionRequest,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// ElectLeaders: a preferred or unclean election per partition, each
    /// committed as its own `PartitionChange`; a partition's failure is its
    /// result's code, never the call's `Err`. With all partitions asked
    /// for, those that need no election are left out, as in Kafka.
    fn elect_leaders(
        &self,
        request: ElectLeadersRequest,
    ) -> BoxFuture<'_, Result<Vec<ElectionResult>, ClusterError>>;

    /// AlterPartitionReassignments: each partition's move started (or
    /// cancelled) as its own committed command; a partition's failure is
    /// its result's code, never the call's `Err`.
    fn alter_partition_reassignments(
        &self,
        topics: Vec<ReassignmentTopic>,
    ) -> BoxFuture<'_, Result<Vec<ReassignmentResult>, ClusterError>>;

    // SASL/SCRAM credentials.

    /// Sets (`Some`) or deletes (`None`) `user`'s credential for
    /// `mechanism`; deleting one that does not exist is `RESOURCE_NOT_FOUND`.
    fn alter_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: Option<ScramCredential>,
    ) -> BoxFuture<'_, Result<(), ClusterError>>;

    // --- Authorization (ACLs) ---
    /// Adds ACL bindings: all of them, or none when one is invalid.
    fn create_acls(&self, bindings: Vec<AclBinding>) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// Removes exactly these bindings; DeleteAcls resolves its filters
    /// against the image before calling.
    fn delete_acls(&self, bindings: Vec<AclBinding>) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// The latest committed image; brokers answer Metadata from it.
    fn image(&self) -> Arc<MetadataImage>;

    /// What tells this broker it stalled long enough to have been fenced
    /// (see [`stall`]); none in process, where the coordinator stalls too.
    fn stall_guard(&self) -> Option<Arc<stall::StallGuard>> {
        None
    }

    /// Wakes on every new image (the embedded stand-in for brokers pulling
    /// the metadata log).
    fn watch(&self) -> tokio::sync::watch::Receiver<Arc<MetadataImage>>;
}
