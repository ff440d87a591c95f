//! The coordinator's proposer, over one of two committers.
//!
//! The proposer plays the coordinator leader: it makes the
//! non-deterministic choices (topic ids, replica placement), checks policy,
//! dry-runs the command on a copy of the image, and hands it to the
//! committer; the image changes only once the command is committed. A
//! rejected command is never committed. Proposals take turns, so each one
//! is checked against the image the previous one left.
//!
//! The committers:
//! - **local**: the single node's own [`CommandLog`] — what a broker runs
//!   in-process (combined mode) and a lone `gregor coordinator`;
//! - **quorum**: the raft quorum ([`RaftNode`]) of a coordinator ensemble.
//!   A turn starts with a linearizable check that this member leads and has
//!   applied every committed command, so the dry run sees them all; a
//!   follower answers NOT_CONTROLLER with the leader.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::{Mutex, MutexGuard, watch};
use uuid::Uuid;

use self::local::Committed;
use super::command_log::{CommandLog, LogEntry, new_cluster_id};
use super::metadata::{ApplyOutcome, Command, ConfigResource, KafkaCode, MetadataImage, Rejection};
use super::policy::placement::PlacementStart;
use super::policy::{
    PRODUCER_ID_BLOCK_SIZE, check_config_change, check_partition_limits, check_topic_configs,
    manual_assignments, manual_partition_assignments,
};
use super::raft::{Applied, Proposal, QuorumError, RaftNode};
use super::{
    BoxFuture, BrokerRegistration, ClusterCoordinator, ClusterError, CreateTopicRequest,
    QuorumLeader, TopicSummary, validate_topic_name,
};
use crate::config::{PartitionLimits, validate_topic_config};
use crate::security::sasl::{ScramCredential, ScramMechanism};

/// How many of the newest log entries stay in memory for brokers pulling
/// the log; a broker further behind gets a snapshot instead.
pub const LOG_TAIL_ENTRIES: usize = 4096;

/// What a broker pulling the metadata log gets.
#[derive(Clone, Debug, PartialEq)]
pub enum LogRead {
    /// Committed entries with contiguous indexes from the requested one;
    /// empty when nothing newer is committed.
    Entries(Vec<LogEntry>),
    /// The whole current image, when the requested index is no longer (or
    /// not yet) in the log this coordinator serves.
    Snapshot(Arc<MetadataImage>),
}

/// Where proposals are committed.
enum Committer {
    Local {
        committed: Mutex<Committed>,
        images: watch::Sender<Arc<MetadataImage>>,
    },
    Quorum {
        node: RaftNode,
        /// Held for a whole turn, so proposals do not interleave; holds the
        /// term in which this member last confirmed its lead.
        turns: Mutex<Option<u64>>,
    },
}

/// One proposer's exclusive turn: the image its checks run against, and
/// the way to commit.
enum Turn<'a> {
    Local {
        committed: MutexGuard<'a, Committed>,
        images: &'a watch::Sender<Arc<MetadataImage>>,
    },
    Quorum {
        _turn: MutexGuard<'a, Option<u64>>,
        node: &'a RaftNode,
        image: Arc<MetadataImage>,
    },
}

impl Turn<'_> {
    /// The committed image, every earlier proposal included.
    fn image(&self) -> &Arc<MetadataImage> {
        match self {
            Self::Local { committed, .. } => &committed.image,
            Self::Quorum { image, .. } => image,
        }
    }

    /// The command index the next command gets.
    fn next_index(&self) -> u64 {
        self.image().last_applied + 1
    }

    /// Applies `command` to a copy of the image, committing nothing.
    fn dry_run(&self, command: &Command) -> Result<ApplyOutcome, ClusterError> {
        let mut scratch = MetadataImage::clone(self.image());
        Ok(scratch.apply(self.next_index(), command)?)
    }

    /// Checks `command`, commits it, and moves the turn's image past it.
    async fn commit(&mut self, command: Command) -> Result<ApplyOutcome, ClusterError> {
        match self {
            Self::Local { committed, images } => committed.append(images, command).await,
            Self::Quorum { node, image, .. } => {
                // Checked here so a refusal costs no raft entry.
                MetadataImage::clone(image).apply(image.last_applied + 1, &command)?;
                let applied = node
                    .propose(Proposal::Command { command })
                    .await
                    .map_err(quorum_error)?;
                *image = node.state().image();
                match applied {
                    Applied::Accepted { outcome, .. } => Ok(outcome),
                    Applied::Refused(rejection) => Err(rejection.into()),
                    Applied::NotACommand => Err(Rejection::new(
                        KafkaCode::UNKNOWN_SERVER_ERROR,
                        "the quorum applied the command as something else",
                    )
                    .into()),
                }
            }
        }
    }
}

/// A quorum failure as the coordinator reports it.
fn quorum_error(error: QuorumError) -> ClusterError {
    match error {
        QuorumError::NotLeader { leader } => ClusterError::NotController {
            leader: leader.map(|(id, member)| QuorumLeader {
                id,
                client_address: member.client_address,
            }),
        },
        QuorumError::Unavailable(reason) => ClusterError::QuorumUnavailable { reason },
        QuorumError::MembershipRefused(reason) => {
            Rejection::new(KafkaCode::INVALID_REQUEST, reason).into()
        }
    }
}

/// The coordinator; cheap to share behind an `Arc`.
pub struct EmbeddedCoordinator {
    committer: Committer,
    limits: PartitionLimits,
    /// The cluster id `kafka-storage.sh format` chose, which the quorum's
    /// first leader commits instead of a fresh one.
    formatted_cluster_id: Option<String>,
}

impl EmbeddedCoordinator {
    /// Opens (formatting on first start) the coordinator's directory under
    /// `data_dir` and rebuilds the image by replaying the command log.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<Self, ClusterError> {
        let (log, entries) = CommandLog::open(data_dir, node_id)?;
        let mut image = MetadataImage::new(log.marker().cluster_id.clone());
        for entry in &entries {
            image
                .apply(entry.index, &entry.command)
                .map_err(|rejection| log.corrupt_entry(entry.index, rejection.to_string()))?;
        }
        tracing::info!(
            cluster_id = %image.cluster_id,
            node_id,
            replayed = entries.len(),
            topics = image.topics.len(),
            "cluster metadata loaded"
        );
        warn_unsupported_configs(&image);
        let log_path = log.path().to_owned();
        let image = Arc::new(image);
        let skip = entries.len().saturating_sub(LOG_TAIL_ENTRIES);
        let tail = entries.into_iter().skip(skip).collect();
        let (images, _) = watch::channel(Arc::clone(&image));
        Ok(Self {
            committer: Committer::Local {
                committed: Mutex::new(Committed {
                    image,
                    log: Arc::new(StdMutex::new(log)),
                    log_path,
                    pending: None,
                    tail,
                }),
                images,
            },
            limits: PartitionLimits::default(),
            formatted_cluster_id: None,
        })
    }

    /// The proposer over a running quorum member.
    pub fn with_quorum(node: RaftNode) -> Self {
        Self {
            committer: Committer::Quorum {
                node,
                turns: Mutex::new(None),
            },
            limits: PartitionLimits::default(),
            formatted_cluster_id: None,
        }
    }

    /// Has the quorum's first leader commit `cluster_id` (from
    /// `kafka-storage.sh format`) rather than a fresh one.
    pub fn with_formatted_cluster_id(mut self, cluster_id: Option<String>) -> Self {
        self.formatted_cluster_id = cluster_id.filter(|id| !id.is_empty());
        self
    }

    /// Caps partitions per topic and per broker at `limits` (the defaults
    /// otherwise).
    pub fn with_partition_limits(mut self, limits: PartitionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The quorum member, when this coordinator commits through one.
    pub fn quorum(&self) -> Option<&RaftNode> {
        match &self.committer {
            Committer::Local { .. } => None,
            Committer::Quorum { node, .. } => Some(node),
        }
    }

    /// Validates, commits and applies one command, then publishes the new
    /// image.
    ///
    /// Commands are the leader's decisions: callers fill in ids and
    /// placements themselves. The trait methods do that for the common cases.
    pub async fn propose(&self, command: Command) -> Result<ApplyOutcome, ClusterError> {
        self.turn().await?.commit(command).await
    }

    /// Waits for this proposer's turn. On the quorum it also confirms this
    /// member leads and has applied everything committed, and has the
    /// cluster id decided first if no leader did yet.
    async fn turn(&self) -> Result<Turn<'_>, ClusterError> {
        match &self.committer {
            Committer::Local { committed, images } => {
                let mut committed = committed.lock().await;
                committed.settle(images).await;
                Ok(Turn::Local { committed, images })
            }
            Committer::Quorum { node, turns } => {
                let mut turn = turns.lock().await;
                // One read-index round per term, not per proposal: once a
                // leader has confirmed its lead and applied everything
                // committed before it, its later turns in that term follow
                // behind this lock, each returning after its own entry is
                // applied. A deposed leader may validate against a stale
                // image, but it can no longer commit.
                let term = node.leading_term();
                if term.is_none() || *turn != term {
                    node.ensure_fresh().await.map_err(quorum_error)?;
                    *turn = term.filter(|t| node.leading_term() == Some(*t));
                }
                if node.state().image().cluster_id.is_empty() {
                    let cluster_id = self
                        .formatted_cluster_id
                        .clone()
                        .unwrap_or_else(new_cluster_id);
                    node.propose(Proposal::ClusterId { cluster_id })
                        .await
                        .map_err(quorum_error)?;
                }
                Ok(Turn::Quorum {
                    _turn: turn,
                    node,
                    image: node.state().image(),
                })
            }
        }
    }

    /// On the quorum: confirms this member leads, and has the cluster id
    /// committed if it is not yet. Nothing to do on a single node.
    pub async fn take_lead(&self) -> Result<(), ClusterError> {
        self.turn().await.map(drop)
    }

    /// Confirms that the image this member serves is the quorum's latest
    /// (a linearizable read); always true on a single node.
    pub async fn ensure_fresh(&self) -> Result<(), ClusterError> {
        match &self.committer {
            Committer::Local { .. } => Ok(()),
            Committer::Quorum { node, .. } => node.ensure_fresh().await.map_err(quorum_error),
        }
    }

    /// The committed entries from index `from` on (at most `max`), or a
    /// snapshot when `from` is older than the in-memory tail or beyond the
    /// log's end + 1 (the reader saw a log this coordinator no longer has).
    /// Index 0 never exists, so `from = 0` always asks for a snapshot.
    pub async fn read_log(&self, from: u64, max: usize) -> LogRead {
        match &self.committer {
            Committer::Local { committed, images } => {
                let mut committed = committed.lock().await;
                committed.settle(images).await;
                read_tail(&committed.image, &committed.tail, from, max)
            }
            Committer::Quorum { node, .. } => node.state().read_log(from, max),
        }
    }

    async fn register(&self, reg: BrokerRegistration) -> Result<i64, ClusterError> {
        let mut turn = self.turn().await?;
        let registered = turn
            .commit(Command::RegisterBroker {
                broker_id: reg.broker_id,
                incarnation_id: reg.incarnation_id,
                listeners: reg.listeners,
                rack: reg.rack,
                previous_broker_epoch: reg.previous_broker_epoch,
            })
            .await?;
        let ApplyOutcome::BrokerRegistered { broker_epoch } = registered else {
            return Err(unexpected(&registered));
        };
        // In combined mode the broker reads this very image, so it has
        // caught up the moment it registers; no heartbeat round is needed.
        turn.commit(Command::UnfenceBroker {
            broker_id: reg.broker_id,
            broker_epoch,
        })
        .await?;
        Ok(broker_epoch)
    }

    async fn create(&self, req: CreateTopicRequest) -> Result<TopicSummary, ClusterError> {
        // Checked first so a bad name is reported as such, not as whatever
        // placement would have complained about.
        validate_topic_name(&req.name)
            .map_err(|reason| Rejection::new(KafkaCode::INVALID_TOPIC_EXCEPTION, reason))?;
        let mut turn = self.turn().await?;
        let image = turn.image();
        if image.topic(&req.name).is_some() {
            return Err(Rejection::new(
                KafkaCode::TOPIC_ALREADY_EXISTS,
                format!("topic '{}' already exists", req.name),
            )
            .into());
        }
        let assignments = if req.assignments.is_empty() {
            let start = PlacementStart::random(image.available_brokers().len());
            image.place_replicas(req.partitions, req.replication_factor, start, 0)?
        } else {
            manual_assignments(image, &req.assignments)?
        };
        let partitions = i32::try_from(assignments.len()).unwrap_or(i32::MAX);
        let replication_factor = assignments
            .first()
            .map_or(0, |r| i16::try_from(r.len()).unwrap_or(i16::MAX));
        check_partition_limits(image, &req.name, &assignments, self.limits)?;
        check_topic_configs(&req.configs)?;
        let mut topic_id = Uuid::new_v4();
        while image.topic_by_id(topic_id).is_some() {
            topic_id = Uuid::new_v4();
        }
        let command = Command::CreateTopic {
            name: req.name.clone(),
            topic_id,
            configs: req.configs,
            assignments,
        };
        let id = if req.validate_only {
            turn.dry_run(&command)?;
            Uuid::nil()
        } else {
            turn.commit(command).await?;
            topic_id
        };
        Ok(TopicSummary {
            id,
            name: req.name,
            partitions,
            replication_factor,
        })
    }

    async fn delete(&self, name: &str) -> Result<Uuid, ClusterError> {
        let mut turn = self.turn().await?;
        let topic_id = turn
            .image()
            .topic(name)
            .map(|topic| topic.id)
            .ok_or_else(|| unknown_topic(name))?;
        turn.commit(Command::DeleteTopic { topic_id }).await?;
        Ok(topic_id)
    }

    async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ClusterError> {
        let mut turn = self.turn().await?;
        let image = turn.image();
        let topic = image.topic(name).ok_or_else(|| unknown_topic(name))?;
        let current = topic.partitions.len();
        let wanted = usize::try_from(total).unwrap_or(0);
        if wanted <= current {
            let message = if wanted == current {
                format!("topic already has {current} partitions")
            } else {
                format!(
                    "topic currently has {current} partitions, which is higher than the requested {total}"
                )
            };
            return Err(Rejection::new(KafkaCode::INVALID_PARTITIONS, message).into());
        }
        let replication_factor = topic
            .partitions
            .first()
            .map_or(0, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX));
        // Continue the topic's round-robin where its existing partitions end.
        let start = continued_placement(image, topic);
        let additional = total - current as i32;
        let new_assignments = match assignments {
            None => image.place_replicas(additional, replication_factor, start, current)?,
            Some(assignments) => manual_partition_assignments(
                image,
                &assignments,
                additional,
                usize::try_from(replication_factor).unwrap_or(0),
            )?,
        };
        check_partition_limits(image, name, &new_assignments, self.limits)?;
        let command = Command::CreatePartitions {
            name: name.to_owned(),
            new_assignments,
        };
        if validate_only {
            turn.dry_run(&command)?;
        } else {
            turn.commit(command).await?;
        }
        Ok(())
    }

    async fn alter_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<(), ClusterError> {
        let mut turn = self.turn().await?;
        let topic = turn
            .image()
            .topic(name)
            .ok_or_else(|| unknown_topic(name))?;
        check_config_change(&topic.configs, &set, &delete)?;
        let command = Command::AlterConfigs {
            resource: ConfigResource::Topic(name.to_owned()),
            set,
            delete,
        };
        turn.commit(command).await?;
        Ok(())
    }

    async fn producer_ids(&self, broker_id: i32) -> Result<Range<i64>, ClusterError> {
        let command = Command::AllocateProducerIds {
            broker_id,
            count: PRODUCER_ID_BLOCK_SIZE,
        };
        match self.propose(command).await? {
            ApplyOutcome::ProducerIds(range) => Ok(range),
            other => Err(unexpected(&other)),
        }
    }
}

/// The entries of `tail` (the newest committed, ending at `image`) from
/// index `from` on, at most `max`; or `image` when `from` is older than the
/// tail or beyond its end + 1 (the reader saw a log this coordinator no
/// longer has). Index 0 never exists, so `from = 0` always asks for the
/// image.
pub(crate) fn read_tail(
    image: &Arc<MetadataImage>,
    tail: &VecDeque<LogEntry>,
    from: u64,
    max: usize,
) -> LogRead {
    let next = image.last_applied + 1;
    let oldest = tail.front().map_or(next, |e| e.index);
    if from == 0 || from < oldest || from > next {
        return LogRead::Snapshot(Arc::clone(image));
    }
    let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
    LogRead::Entries(tail.iter().skip(skip).take(max).cloned().collect())
}

/// Says once per entry which stored topic configs no longer validate: an
/// older version accepted them, and brokers now leave them at their
/// defaults (every other entry of the topic still applies).
fn warn_unsupported_configs(image: &MetadataImage) {
    for topic in image.topics() {
        for (key, value) in &topic.configs {
            if let Err(error) = validate_topic_config(key, value) {
                tracing::warn!(
                    topic = %topic.name,
                    %error,
                    "stored topic config is not supported; brokers use the default for this key"
                );
            }
        }
    }
}

/// The first broker (in id order) of a new placement. Derived from the log
/// index so it rotates between topics and survives restarts without state.
/// Kafka's start for new partitions of an existing topic: the position of
/// partition 0's first replica among the available brokers.
fn continued_placement(image: &MetadataImage, topic: &super::TopicState) -> PlacementStart {
    let first = topic
        .partitions
        .first()
        .and_then(|p| p.replicas.first())
        .copied()
        .unwrap_or(0);
    let index = image
        .available_brokers()
        .iter()
        .position(|id| *id >= first)
        .unwrap_or(0);
    PlacementStart::fixed(index)
}

fn unknown_topic(name: &str) -> ClusterError {
    Rejection::new(
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
        format!("topic '{name}' does not exist"),
    )
    .into()
}

fn unexpected(outcome: &ApplyOutcome) -> ClusterError {
    Rejection::new(
        KafkaCode::UNKNOWN_SERVER_ERROR,
        format!("unexpected outcome {outcome:?}"),
    )
    .into()
}

impl ClusterCoordinator for EmbeddedCoordinator {
    fn register_broker(&self, reg: BrokerRegistration) -> BoxFuture<'_, Result<i64, ClusterError>> {
        Box::pin(self.register(reg))
    }

    fn create_topic(
        &self,
        req: CreateTopicRequest,
    ) -> BoxFuture<'_, Result<TopicSummary, ClusterError>> {
        Box::pin(self.create(req))
    }

    fn delete_topic(&self, name: &str) -> BoxFuture<'_, Result<Uuid, ClusterError>> {
        let name = name.to_owned();
        Box::pin(async move { self.delete(&name).await })
    }

    fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let name = name.to_owned();
        Box::pin(async move {
            self.add_partitions(&name, total, assignments, validate_only)
                .await
        })
    }

    fn alter_topic_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let name = name.to_owned();
        Box::pin(async move { self.alter_configs(&name, set, delete).await })
    }

    fn allocate_producer_ids(
        &self,
        broker_id: i32,
    ) -> BoxFuture<'_, Result<Range<i64>, ClusterError>> {
        Box::pin(self.producer_ids(broker_id))
    }

    fn alter_partition(
        &self,
        request: crate::cluster::AlterPartitionRequest,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            let command = self.image().alter_partition(&request)?;
            self.propose(command).await.map(|_| ())
        })
    }

    fn elect_leaders(
        &self,
        request: crate::cluster::ElectLeadersRequest,
    ) -> BoxFuture<'_, Result<Vec<crate::cluster::ElectionResult>, ClusterError>> {
        Box::pin(self.elect(request))
    }

    fn alter_partition_reassignments(
        &self,
        topics: Vec<crate::cluster::ReassignmentTopic>,
    ) -> BoxFuture<'_, Result<Vec<crate::cluster::ReassignmentResult>, ClusterError>> {
        Box::pin(self.reassign(topics))
    }

    fn alter_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: Option<ScramCredential>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        let user = user.to_owned();
        let command = match credential {
            Some(credential) => Command::UpsertScramCredential {
                user,
                mechanism,
                credential,
            },
            None => Command::DeleteScramCredential { user, mechanism },
        };
        Box::pin(async move { self.propose(command).await.map(|_| ()) })
    }

    fn create_acls(
        &self,
        bindings: Vec<crate::security::acl::AclBinding>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            self.propose(Command::CreateAcls { bindings }).await?;
            Ok(())
        })
    }

    fn begin_shutdown(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        // As the remote coordinator does it: stop leading, then (no
        // replica to wait for) fence.
        Box::pin(async move {
            self.propose(Command::BeginShutdown {
                broker_id,
                broker_epoch,
            })
            .await?;
            self.propose(Command::FenceBroker {
                broker_id,
                broker_epoch,
            })
            .await?;
            Ok(())
        })
    }

    fn delete_acls(
        &self,
        bindings: Vec<crate::security::acl::AclBinding>,
    ) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            self.propose(Command::DeleteAcls { bindings }).await?;
            Ok(())
        })
    }

    fn image(&self) -> Arc<MetadataImage> {
        match &self.committer {
            Committer::Local { images, .. } => Arc::clone(&images.borrow()),
            Committer::Quorum { node, .. } => node.state().image(),
        }
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        match &self.committer {
            Committer::Local { images, .. } => images.subscribe(),
            Committer::Quorum { node, .. } => node.state().watch(),
        }
    }
}

mod elect;
mod local;
mod reassign;
#[cfg(test)]
mod tests;
mod voters;
