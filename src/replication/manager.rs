//! The replica manager: for every partition this broker is a replica of,
//! becomes leader, follower or nothing as each metadata image says; runs
//! one fetcher per leader broker; checks followers' lag; and sends the
//! leaders' ISR changes to the controller, one at a time per partition
//! (the state machine keeps a second from starting).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::fetcher::{self, Followed};
use super::inter_broker::InterBrokerClient;
use super::metrics::IsrChanges;
use super::replica::{AlterIsr, AlterSettlement};
use super::state::{BrokerId, Role};
use crate::broker::Partitions;
use crate::broker::partition::{Partition, now_ms};
use crate::cluster::{AlterPartitionRequest, ClusterCoordinator, ClusterError, MetadataImage};

/// How often leaders check their followers' lag.
const LAG_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Kafka's `replica.high.watermark.checkpoint.interval.ms` default.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// An ISR change a leader decided, on its way to the controller.
pub struct PendingAlter {
    pub topic_id: Uuid,
    pub partition: Arc<Partition>,
    pub alter: AlterIsr,
}

/// The cloneable front of the manager: handlers hand it ISR changes, the
/// metadata follower hands it reconciled images.
#[derive(Clone)]
pub struct ReplicaManagerHandle {
    alters: mpsc::UnboundedSender<PendingAlter>,
    images: watch::Sender<Option<Arc<MetadataImage>>>,
    isr_changes: Arc<IsrChanges>,
}

impl ReplicaManagerHandle {
    /// A replica fetch from `replica` was refused: `principal` lacks
    /// ClusterAction on the cluster. Counted, and logged once a minute.
    pub fn refused_replica_fetch(&self, replica: BrokerId, principal: &str) {
        let now = u64::try_from(now_ms()).unwrap_or(0);
        if self.isr_changes.note_refused_fetch(now) {
            tracing::warn!(
                replica,
                principal,
                "refused a replica fetch: the principal lacks ClusterAction on the cluster \
                 (CLUSTER_AUTHORIZATION_FAILED); make it a super user or grant the ACL, \
                 or this follower never joins the ISR"
            );
        }
    }

    /// Replication's lines for `/metrics`.
    pub fn render_metrics(
        &self,
        broker_id: BrokerId,
        image: &MetadataImage,
        partitions: &[Arc<Partition>],
    ) -> String {
        super::metrics::render(&self.isr_changes, broker_id, image, partitions)
    }

    /// Sends a leader's ISR change to the controller.
    pub fn alter_isr(
        &self,
        topic: &str,
        partition: Arc<Partition>,
        alter: AlterIsr,
        image: &MetadataImage,
    ) {
        let Some(topic_id) = image.topic(topic).map(|t| t.id) else {
            partition.replication.alter_failed(now_ms());
            return;
        };
        let pending = PendingAlter {
            topic_id,
            partition,
            alter,
        };
        if let Err(mpsc::error::SendError(pending)) = self.alters.send(pending) {
            pending.partition.replication.alter_failed(now_ms());
        }
    }

    /// The partitions now match `image`: take up the roles it gives.
    pub fn image_reconciled(&self, image: Arc<MetadataImage>) {
        self.images.send_replace(Some(image));
    }
}

pub struct ReplicaManager {
    broker_id: BrokerId,
    replica_lag_time_max_ms: i64,
    inter_broker: InterBrokerClient,
    coordinator: Arc<dyn ClusterCoordinator>,
    partitions: Arc<Partitions>,
    alters: mpsc::UnboundedReceiver<PendingAlter>,
    images: watch::Receiver<Option<Arc<MetadataImage>>>,
    isr_changes: Arc<IsrChanges>,
    /// Leader broker -> the partitions its fetcher fetches.
    fetchers: HashMap<BrokerId, watch::Sender<Vec<Followed>>>,
}

impl ReplicaManager {
    pub fn new(
        broker_id: BrokerId,
        replica_lag_time_max: Duration,
        inter_broker: InterBrokerClient,
        coordinator: Arc<dyn ClusterCoordinator>,
        partitions: Arc<Partitions>,
    ) -> (Self, ReplicaManagerHandle) {
        let (alters_tx, alters) = mpsc::unbounded_channel();
        let (images_tx, images) = watch::channel(None);
        let isr_changes = Arc::new(IsrChanges::default());
        let manager = ReplicaManager {
            isr_changes: isr_changes.clone(),
            broker_id,
            replica_lag_time_max_ms: i64::try_from(replica_lag_time_max.as_millis())
                .unwrap_or(i64::MAX),
            inter_broker,
            coordinator,
            partitions,
            alters,
            images,
            fetchers: HashMap::new(),
        };
        let handle = ReplicaManagerHandle {
            alters: alters_tx,
            images: images_tx,
            isr_changes,
        };
        (manager, handle)
    }

    /// Runs until `shutdown`; fetchers and ISR changes in flight are its
    /// children and stop with it.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let mut lag_check = tokio::time::interval(LAG_CHECK_INTERVAL);
        lag_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut checkpoint = tokio::time::interval(CHECKPOINT_INTERVAL);
        checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = self.images.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let image = self.images.borrow_and_update().clone();
                    if let Some(image) = image {
                        self.take_roles(&image, &mut tasks, &shutdown);
                    }
                }
                Some(pending) = self.alters.recv() => {
                    tasks.spawn(send_alter(
                        self.coordinator.clone(),
                        self.broker_id,
                        self.isr_changes.clone(),
                        pending,
                    ));
                }
                _ = lag_check.tick() => self.check_lag(&mut tasks),
                _ = checkpoint.tick() => {
                    let partitions = self.partitions.clone();
                    tasks.spawn(async move {
                        let _ = tokio::task::spawn_blocking(move || {
                            for partition in partitions.all() {
                                partition.replication.checkpoint(&partition.dir);
                            }
                        })
                        .await;
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        self.fetchers.clear();
        tasks.shutdown().await;
    }

    /// Lead, follow or stand by for every hosted partition, and give each
    /// leader's fetcher its partitions.
    fn take_roles(
        &mut self,
        image: &MetadataImage,
        tasks: &mut JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let now = now_ms();
        let mut followed: HashMap<BrokerId, Vec<Followed>> = HashMap::new();
        for partition in self.partitions.all() {
            let Some(state) = image.partition(&partition.topic, partition.index) else {
                continue;
            };
            let (leader, leader_epoch) = match Role::of(
                state,
                self.broker_id,
                image.strict_min_insync_replicas(&partition.topic),
            ) {
                Role::LeadAlone { leader_epoch } => {
                    partition.lead_under(leader_epoch);
                    partition.replication.lead_alone(partition.log_end_offset());
                    continue;
                }
                Role::Lead(leadership) => {
                    partition.lead_under(leadership.leader_epoch);
                    let moved = partition.replication.lead(
                        self.broker_id,
                        leadership,
                        partition.log_end_offset(),
                        self.replica_lag_time_max_ms,
                        now,
                    );
                    if moved {
                        partition.appended().notify_waiters();
                    }
                    continue;
                }
                Role::Follow {
                    leader,
                    leader_epoch,
                } => (leader, leader_epoch),
            };
            let was_leading = partition.replication.waits_for_followers();
            partition.follow_under(leader_epoch);
            partition.replication.follow();
            if was_leading {
                // acks=all produces waiting here answer NOT_LEADER_OR_FOLLOWER now.
                partition.appended().notify_waiters();
            }
            if leader >= 0 {
                let topic_id = image.topic(&partition.topic).map_or(Uuid::nil(), |t| t.id);
                followed.entry(leader).or_default().push(Followed {
                    leader_epoch,
                    topic_id,
                    partition,
                });
            }
        }
        // Fetchers of brokers that lead nothing here any more stop.
        self.fetchers
            .retain(|leader, _| followed.contains_key(leader));
        for (leader, partitions) in followed {
            match self.fetchers.get(&leader) {
                Some(assigned) => {
                    assigned.send_replace(partitions);
                }
                None => {
                    let (assigned, assignment) = watch::channel(partitions);
                    self.fetchers.insert(leader, assigned);
                    tasks.spawn(fetcher::run(fetcher::FetcherConfig {
                        local: self.broker_id,
                        leader,
                        inter_broker: self.inter_broker.clone(),
                        coordinator: self.coordinator.clone(),
                        assignment,
                        shutdown: shutdown.clone(),
                    }));
                }
            }
        }
    }

    /// Each led partition with followers checks their lag; shrinks go out.
    fn check_lag(&self, tasks: &mut JoinSet<()>) {
        let now = now_ms();
        let image = self.coordinator.image();
        for partition in self.partitions.all() {
            if !partition.replication.waits_for_followers() {
                continue;
            }
            let (moved, alter) = partition.replication.tick(now);
            if moved {
                partition.appended().notify_waiters();
            }
            let Some(alter) = alter else { continue };
            let Some(topic_id) = image.topic(&partition.topic).map(|t| t.id) else {
                partition.replication.alter_failed(now);
                continue;
            };
            tasks.spawn(send_alter(
                self.coordinator.clone(),
                self.broker_id,
                self.isr_changes.clone(),
                PendingAlter {
                    topic_id,
                    partition,
                    alter,
                },
            ));
        }
    }
}

/// How long an AlterPartition may take before the leader sends it again.
const ALTER_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before sending an unanswered AlterPartition again.
const ALTER_RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// One ISR change's AlterPartition, sent until it is answered or no longer
/// in flight. A change refused for good is no longer in flight afterwards
/// and may be decided again on fresher state. An accepted one stays in
/// flight until the image with its partition epoch reaches the leader's
/// state: clearing it at the answer would let the high watermark follow
/// the old, smaller ISR while the controller already counts the new member
/// in (and may make it leader: a reassignment completes in the very change
/// that adds the last new replica), so a record could be committed without
/// it. Found both by the reassignment tests and by the replication
/// simulation (seed 1009). A refusal saying the partition moved on
/// (INVALID_UPDATE_VERSION, FENCED_LEADER_EPOCH) leaves it in flight too,
/// for the newer image to settle, as Kafka's `Partition` does; and an
/// unanswered one is sent again (see [`AlterSettlement::Unanswered`]).
async fn send_alter(
    coordinator: Arc<dyn ClusterCoordinator>,
    broker_id: BrokerId,
    isr_changes: Arc<IsrChanges>,
    pending: PendingAlter,
) {
    let before = coordinator
        .image()
        .partition(&pending.partition.topic, pending.partition.index)
        .map_or(0, |state| state.isr.len());
    let PendingAlter {
        topic_id,
        partition,
        alter,
    } = pending;
    let request = AlterPartitionRequest {
        broker_id,
        topic_id,
        partition: partition.index,
        leader_epoch: alter.leader_epoch,
        partition_epoch: alter.partition_epoch,
        isr: alter.isr.clone(),
        broker_epochs: alter.broker_epochs.clone(),
    };
    loop {
        let sent =
            tokio::time::timeout(ALTER_TIMEOUT, coordinator.alter_partition(request.clone()));
        let outcome = match sent.await {
            Ok(Ok(())) => {
                isr_changes.note(before, alter.isr.len());
                tracing::info!(
                    topic = %partition.topic, partition = partition.index, isr = ?alter.isr,
                    broker_epochs = ?alter.broker_epochs, "ISR changed"
                );
                Ok(())
            }
            Ok(Err(ClusterError::Rejected { code, message })) => {
                tracing::info!(
                    topic = %partition.topic, partition = partition.index, isr = ?alter.isr,
                    broker_epochs = ?alter.broker_epochs, %code, %message, "ISR change refused"
                );
                Err(Some(code))
            }
            Ok(Err(error)) => {
                tracing::warn!(
                    topic = %partition.topic, partition = partition.index, isr = ?alter.isr,
                    %error, "ISR change not answered; sending it again"
                );
                Err(None)
            }
            Err(_) => {
                tracing::warn!(
                    topic = %partition.topic, partition = partition.index, isr = ?alter.isr,
                    "ISR change not answered in time; sending it again"
                );
                Err(None)
            }
        };
        match AlterSettlement::of(outcome) {
            AlterSettlement::AwaitImage => return,
            // Only this change: a later one may be in flight by now.
            AlterSettlement::Withdraw => {
                if partition.replication.alter_in_flight(&alter) {
                    partition.replication.alter_failed(now_ms());
                }
                return;
            }
            AlterSettlement::Unanswered => {
                tokio::time::sleep(ALTER_RETRY_BACKOFF).await;
                // An image settled it meanwhile, or leadership moved on.
                if !partition.replication.alter_in_flight(&alter) {
                    return;
                }
            }
        }
    }
}
