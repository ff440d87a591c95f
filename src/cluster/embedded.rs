//! The single-node coordinator a broker runs in-process (combined mode).
//!
//! It plays the coordinator leader: it makes the non-deterministic choices
//! (topic ids, replica placement), dry-runs the command on a copy of the
//! image, makes it durable in the [`CommandLog`], and only then publishes the
//! new image. A rejected command is never logged.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::{Mutex, MutexGuard, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::command_log::{CommandLog, LogEntry};
use super::metadata::{ApplyOutcome, Command, ConfigResource, KafkaCode, MetadataImage, Rejection};
use super::policy::placement::PlacementStart;
use super::policy::{
    PRODUCER_ID_BLOCK_SIZE, check_config_change, check_partition_limits, check_topic_configs,
    manual_assignments, manual_partition_assignments,
};
use super::{
    BoxFuture, BrokerRegistration, ClusterCoordinator, ClusterError, CreateTopicRequest,
    TopicSummary, validate_topic_name,
};
use crate::config::{PartitionLimits, validate_topic_config};
use crate::security::sasl::{ScramCredential, ScramMechanism};

/// State changed together: `image` reflects exactly the log's entries, so
/// the next command's index is `image.last_applied + 1`.
struct Committed {
    image: Arc<MetadataImage>,
    /// The std mutex only lets a blocking thread borrow the log for the
    /// `fdatasync`; the async mutex around `Committed` orders proposals.
    log: Arc<StdMutex<CommandLog>>,
    log_path: PathBuf,
    /// The append in flight. It outlives its proposer if that is cancelled,
    /// and is then settled by the next [`EmbeddedCoordinator::lock`].
    pending: Option<PendingAppend>,
    /// The newest committed entries, oldest first, ending at `image`; what
    /// [`EmbeddedCoordinator::read_log`] serves without touching the disk.
    tail: VecDeque<LogEntry>,
}

/// An append running on a blocking thread and the image it commits.
struct PendingAppend {
    image: Arc<MetadataImage>,
    entry: LogEntry,
    task: JoinHandle<Result<(), ClusterError>>,
}

impl Committed {
    fn next_index(&self) -> u64 {
        self.image.last_applied + 1
    }

    /// Makes `image` (the result of `entry`) the committed state.
    fn commit(&mut self, image: Arc<MetadataImage>, entry: LogEntry) {
        self.image = image;
        if self.tail.len() >= LOG_TAIL_ENTRIES {
            self.tail.pop_front();
        }
        self.tail.push_back(entry);
    }
}

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

/// The embedded coordinator; cheap to share behind an `Arc`.
pub struct EmbeddedCoordinator {
    committed: Mutex<Committed>,
    images: watch::Sender<Arc<MetadataImage>>,
    limits: PartitionLimits,
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
            committed: Mutex::new(Committed {
                image,
                log: Arc::new(StdMutex::new(log)),
                log_path,
                pending: None,
                tail,
            }),
            images,
            limits: PartitionLimits::default(),
        })
    }

    /// Caps partitions per topic and per broker at `limits` (the defaults
    /// otherwise).
    pub fn with_partition_limits(mut self, limits: PartitionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Validates, logs and applies one command, then publishes the new image.
    ///
    /// Commands are the leader's decisions: callers fill in ids and
    /// placements themselves. The trait methods do that for the common cases.
    pub async fn propose(&self, command: Command) -> Result<ApplyOutcome, ClusterError> {
        let mut committed = self.lock().await;
        self.propose_locked(&mut committed, command).await
    }

    /// Locks the committed state, first settling an append left behind by a
    /// cancelled proposal: its image is committed exactly when it succeeded,
    /// so the image keeps matching the log.
    async fn lock(&self) -> MutexGuard<'_, Committed> {
        let mut committed = self.committed.lock().await;
        // Awaited in place, so cancelling this wait leaves it for the next.
        let outcome = match committed.pending.as_mut() {
            Some(pending) => Some((&mut pending.task).await),
            None => None,
        };
        if let (Some(outcome), Some(pending)) = (outcome, committed.pending.take()) {
            match outcome {
                Ok(Ok(())) => {
                    committed.commit(pending.image, pending.entry);
                    self.images.send_replace(Arc::clone(&committed.image));
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "an abandoned metadata log append failed");
                }
                Err(error) => {
                    tracing::error!(%error, "an abandoned metadata log append panicked");
                }
            }
        }
        committed
    }

    async fn propose_locked(
        &self,
        committed: &mut Committed,
        command: Command,
    ) -> Result<ApplyOutcome, ClusterError> {
        let index = committed.next_index();
        let mut next = MetadataImage::clone(&committed.image);
        let outcome = next.apply(index, &command)?;
        let entry = LogEntry { index, command };
        let log = Arc::clone(&committed.log);
        let log_path = committed.log_path.clone();
        let next = Arc::new(next);
        let to_write = entry.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut log = log.lock().map_err(|_| poisoned(&log_path))?;
            log.append(&to_write)
        });
        // Kept in `committed` while awaited: if this future is dropped, the
        // append still finishes and `lock` commits or discards its image.
        let pending = committed.pending.insert(PendingAppend {
            image: Arc::clone(&next),
            entry: entry.clone(),
            task,
        });
        let written = (&mut pending.task).await;
        committed.pending = None;
        written.map_err(|e| task_failed(&committed.log_path, &e))??;
        committed.commit(next, entry);
        self.images.send_replace(Arc::clone(&committed.image));
        Ok(outcome)
    }

    /// The committed entries from index `from` on (at most `max`), or a
    /// snapshot when `from` is older than the in-memory tail or beyond the
    /// log's end + 1 (the reader saw a log this coordinator no longer has).
    /// Index 0 never exists, so `from = 0` always asks for a snapshot.
    pub async fn read_log(&self, from: u64, max: usize) -> LogRead {
        let committed = self.lock().await;
        let next = committed.next_index();
        let oldest = committed.tail.front().map_or(next, |e| e.index);
        if from == 0 || from < oldest || from > next {
            return LogRead::Snapshot(Arc::clone(&committed.image));
        }
        let skip = usize::try_from(from - oldest).unwrap_or(usize::MAX);
        LogRead::Entries(
            committed
                .tail
                .iter()
                .skip(skip)
                .take(max)
                .cloned()
                .collect(),
        )
    }

    /// Applies `command` to a copy of the current image without logging it.
    fn dry_run(committed: &Committed, command: &Command) -> Result<ApplyOutcome, ClusterError> {
        let mut scratch = MetadataImage::clone(&committed.image);
        Ok(scratch.apply(committed.next_index(), command)?)
    }

    async fn register(&self, reg: BrokerRegistration) -> Result<i64, ClusterError> {
        let mut committed = self.lock().await;
        let registered = self
            .propose_locked(
                &mut committed,
                Command::RegisterBroker {
                    broker_id: reg.broker_id,
                    incarnation_id: reg.incarnation_id,
                    listeners: reg.listeners,
                    rack: reg.rack,
                },
            )
            .await?;
        let ApplyOutcome::BrokerRegistered { broker_epoch } = registered else {
            return Err(unexpected(&registered));
        };
        // In combined mode the broker reads this very image, so it has
        // caught up the moment it registers; no heartbeat round is needed.
        self.propose_locked(
            &mut committed,
            Command::UnfenceBroker {
                broker_id: reg.broker_id,
                broker_epoch,
            },
        )
        .await?;
        Ok(broker_epoch)
    }

    async fn create(&self, req: CreateTopicRequest) -> Result<TopicSummary, ClusterError> {
        // Checked first so a bad name is reported as such, not as whatever
        // placement would have complained about.
        validate_topic_name(&req.name)
            .map_err(|reason| Rejection::new(KafkaCode::INVALID_TOPIC_EXCEPTION, reason))?;
        let mut committed = self.lock().await;
        let image = &committed.image;
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
            Self::dry_run(&committed, &command)?;
            Uuid::nil()
        } else {
            self.propose_locked(&mut committed, command).await?;
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
        let mut committed = self.lock().await;
        let topic_id = committed
            .image
            .topic(name)
            .map(|topic| topic.id)
            .ok_or_else(|| unknown_topic(name))?;
        self.propose_locked(&mut committed, Command::DeleteTopic { topic_id })
            .await?;
        Ok(topic_id)
    }

    async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ClusterError> {
        let mut committed = self.lock().await;
        let image = &committed.image;
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
            Self::dry_run(&committed, &command)?;
        } else {
            self.propose_locked(&mut committed, command).await?;
        }
        Ok(())
    }

    async fn alter_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<(), ClusterError> {
        let mut committed = self.lock().await;
        let topic = committed
            .image
            .topic(name)
            .ok_or_else(|| unknown_topic(name))?;
        check_config_change(&topic.configs, &set, &delete)?;
        let command = Command::AlterConfigs {
            resource: ConfigResource::Topic(name.to_owned()),
            set,
            delete,
        };
        self.propose_locked(&mut committed, command).await?;
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

fn poisoned(log_path: &Path) -> ClusterError {
    ClusterError::storage(
        log_path,
        std::io::Error::other("log lock poisoned by a panic during an earlier append"),
    )
}

fn task_failed(log_path: &Path, error: &tokio::task::JoinError) -> ClusterError {
    ClusterError::storage(
        log_path,
        std::io::Error::other(format!("log task failed: {error}")),
    )
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
        Arc::clone(&self.images.borrow())
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }
}

#[cfg(test)]
mod tests;
