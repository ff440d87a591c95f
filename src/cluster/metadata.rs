//! The cluster metadata state machine: [`MetadataImage`] changed only by
//! [`MetadataImage::apply`]ing logged [`Command`]s.
//!
//! `apply` is deterministic — no clocks, randomness or I/O — so every node
//! that applies the same log reaches the same image. Whoever proposes a
//! command (the coordinator leader) makes the non-deterministic choices
//! first (topic UUIDs, replica placement) and writes them into the command.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::code::rejected;
pub use super::code::{KafkaCode, Rejection};
pub use election::ElectionType;
pub use eligible::{
    ELIGIBLE_LEADER_REPLICAS_VERSION, EligibleLeaderReplicas, MAX_ELIGIBLE_LEADER_REPLICAS_VERSION,
};
use topics::check_replication_factor;

use super::policy::placement::{Candidate, PlacementStart, assign_replicas};

pub use crate::security::SecurityProtocol;
use crate::security::acl::{AclBinding, AclSet};
use crate::security::sasl::{ScramCredential, ScramMechanism};

/// How clients reach a broker on one listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: SecurityProtocol,
}

/// A registered broker as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    pub id: i32,
    /// Changes on every process start; tells a restart from a retry.
    pub incarnation_id: Uuid,
    /// The log index of the registration, so it grows with every restart.
    pub epoch: i64,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and receives no new replicas.
    pub fenced: bool,
    pub shutting_down: bool,
}

impl BrokerState {
    /// Whether new replicas and leadership may be given to this broker.
    pub fn is_available(&self) -> bool {
        !self.fenced && !self.shutting_down
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The leader's broker id, or -1 when the partition has none.
    pub leader: i32,
    /// +1 whenever the leader changes.
    pub leader_epoch: i32,
    /// +1 on every change of this partition; guards `PartitionChange`.
    pub partition_epoch: i32,
    /// While a reassignment (KIP-455) moves the partition: the target's
    /// brokers not yet among the original replicas. `replicas` holds them
    /// too, so they fetch like any follower.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// While a reassignment moves the partition: the original replicas the
    /// target drops; they leave once every adding replica is in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
    /// Eligible leader replicas (KIP-966): out of the ISR but holding
    /// everything up to the high watermark; see [`eligible`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
    /// Replicas once in the ISR or ELR while under min ISR, neither now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<i32>,
}

impl PartitionState {
    /// Whether a reassignment is moving this partition.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    pub id: Uuid,
    pub name: String,
    pub configs: BTreeMap<String, String>,
    /// Indexed by partition number.
    pub partitions: Vec<PartitionState>,
}

/// The thing an `AlterConfigs` command changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

/// One change to the cluster metadata, as written to the command log.
///
/// Broker lifecycle commands carry the broker epoch they were decided
/// against, so a decision about an old incarnation (say, fencing after a
/// missed heartbeat) cannot hit the broker's newer registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    RegisterBroker {
        broker_id: i32,
        incarnation_id: Uuid,
        listeners: Vec<Listener>,
        rack: Option<String>,
        /// The broker epoch its last clean shutdown recorded (KIP-966):
        /// `Some(-1)` after a crash, `None` from a broker too old to say.
        /// A broker that did not stop cleanly may have lost records it had
        /// not flushed, so it is no longer an eligible leader replica.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_broker_epoch: Option<i64>,
    },
    FenceBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    UnfenceBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    BeginShutdown {
        broker_id: i32,
        broker_epoch: i64,
    },
    UnregisterBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    CreateTopic {
        name: String,
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
        /// Replicas of each new partition, first replica = preferred leader.
        assignments: Vec<Vec<i32>>,
    },
    /// By id, so a delete decided for a topic cannot remove a later topic
    /// that reuses its name.
    DeleteTopic {
        topic_id: Uuid,
    },
    CreatePartitions {
        name: String,
        /// Replicas of each added partition, numbered after the existing ones.
        new_assignments: Vec<Vec<i32>>,
    },
    AlterConfigs {
        resource: ConfigResource,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        expected_partition_epoch: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        /// `isr[i]`'s broker epoch as the asking leader knew it (-1: not
        /// known): a member registered anew since is refused when the
        /// change applies (KIP-903). Empty in changes the controller makes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        isr_broker_epochs: Vec<i64>,
    },
    /// AlterPartitionReassignments (KIP-455) for one partition: start
    /// moving it to `target_replicas` (preferred leader first), or, with
    /// `None`, cancel the move in progress.
    AlterPartitionReassignment {
        topic_id: Uuid,
        partition: i32,
        target_replicas: Option<Vec<i32>>,
    },
    AllocateProducerIds {
        broker_id: i32,
        count: i64,
    },
    /// Kafka's `FeatureLevelRecord` for `eligible.leader.replicas.version`,
    /// with the cluster-wide `min.insync.replicas` it measures against.
    SetEligibleLeaderReplicas {
        setting: EligibleLeaderReplicas,
    },
    // SASL/SCRAM credentials (KIP-554): what the broker checks a SCRAM
    // login against, never the password.
    UpsertScramCredential {
        user: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    DeleteScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    // --- Authorization (ACLs) ---
    /// Adds bindings; ones already present are kept as they are.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Removes exactly these bindings: the proposer resolves DeleteAcls
    /// filters against its image first, so applying stays deterministic.
    /// Bindings no longer present are skipped.
    DeleteAcls {
        bindings: Vec<AclBinding>,
    },
}

/// What an accepted command produced, for the proposer's response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    BrokerRegistered {
        broker_epoch: i64,
    },
    TopicCreated {
        topic_id: Uuid,
    },
    TopicDeleted {
        topic_id: Uuid,
        name: String,
    },
    ProducerIds(Range<i64>),
    /// The command was accepted and changed the state.
    Applied,
    /// The command was accepted but asked for the state already in place.
    Unchanged,
}

/// The cluster metadata at one log index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerState>,
    pub topics: BTreeMap<String, TopicState>,
    /// Topic id → name; always the inverse of `topics`.
    pub topic_names_by_id: BTreeMap<Uuid, String>,
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// The first producer id of the next block handed out.
    pub next_producer_id: i64,
    /// SCRAM credentials by user, then mechanism.
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// The ACL bindings the authorizer decides with.
    #[serde(default)]
    pub acls: AclSet,
    /// Index of the last command applied; 0 before any.
    pub last_applied: u64,
    /// Controller (raft member) ids removed from the quorum: never reused,
    /// as a returning node with an old log would look like a voter that
    /// missed entries. Only a KRaft quorum's state machine adds to it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub removed_controllers: std::collections::BTreeSet<u64>,
    /// The finalized `eligible.leader.replicas.version` (KIP-966).
    #[serde(default)]
    pub eligible_leader_replicas: EligibleLeaderReplicas,
}

/// The longest topic name Kafka accepts (it leaves room in file names for
/// the partition suffix).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// The most partitions one request may add; like Kafka's controller limit on
/// records per user operation, it keeps one request from flooding the log
/// and memory.
pub const MAX_NEW_PARTITIONS: i32 = 10_000;

/// Checks a topic name the way Kafka does; the error says what is wrong.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is illegal, it can't be empty".to_owned());
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be \".\" or \"..\"".to_owned());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} is illegal, it contains {bad:?}, a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

impl MetadataImage {
    /// An empty image for a freshly formatted cluster.
    pub fn new(cluster_id: impl Into<String>) -> Self {
        Self {
            cluster_id: cluster_id.into(),
            ..Self::default()
        }
    }

    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicState> {
        self.topic_names_by_id
            .get(&id)
            .and_then(|name| self.topics.get(name))
    }

    /// All topics, ordered by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicState> {
        self.topics.values()
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerState> {
        self.brokers.get(&id)
    }

    /// All registered brokers, fenced ones included, ordered by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerState> {
        self.brokers.values()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionState> {
        let index = usize::try_from(index).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }

    /// Ids of the brokers that may take new replicas, ascending.
    pub fn available_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| b.is_available())
            .map(|b| b.id)
            .collect()
    }

    /// Kafka's placement of `count` new partitions, numbered from
    /// `first_partition`, with `replication_factor` replicas over the
    /// available brokers (rack-aware when brokers have racks; see
    /// [`crate::cluster::policy::placement`]). The proposer picks `start`
    /// (at random for a new topic); the result goes into the command.
    pub fn place_replicas(
        &self,
        count: i32,
        replication_factor: i16,
        start: PlacementStart,
        first_partition: usize,
    ) -> Result<Vec<Vec<i32>>, Rejection> {
        if count < 1 {
            return rejected(
                KafkaCode::INVALID_PARTITIONS,
                format!("number of partitions must be at least 1, got {count}"),
            );
        }
        if count > MAX_NEW_PARTITIONS {
            return rejected(
                KafkaCode::INVALID_PARTITIONS,
                format!("cannot add {count} partitions at once, the limit is {MAX_NEW_PARTITIONS}"),
            );
        }
        let candidates: Vec<Candidate> = self
            .brokers
            .values()
            .filter(|b| b.is_available())
            .map(|b| Candidate {
                id: b.id,
                rack: b.rack.clone(),
            })
            .collect();
        check_replication_factor(i64::from(replication_factor), candidates.len())?;
        let rf = usize::from(replication_factor.unsigned_abs());
        Ok(assign_replicas(
            &candidates,
            count as usize,
            rf,
            start,
            first_partition,
        ))
    }

    /// Applies `cmd`, the command at log `index`.
    ///
    /// On `Err` the image is unchanged, so a proposer can dry-run a command
    /// on a clone and log it only if it is accepted. Replaying the same
    /// commands at the same indexes always yields an equal image.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Result<ApplyOutcome, Rejection> {
        if index <= self.last_applied {
            return rejected(
                KafkaCode::UNKNOWN_SERVER_ERROR,
                format!(
                    "command index {index} is not after last applied index {}",
                    self.last_applied
                ),
            );
        }
        let outcome = self.apply_command(index, cmd)?;
        self.last_applied = index;
        Ok(outcome)
    }

    fn apply_command(&mut self, index: u64, cmd: &Command) -> Result<ApplyOutcome, Rejection> {
        match cmd {
            Command::RegisterBroker {
                broker_id,
                incarnation_id,
                listeners,
                rack,
                previous_broker_epoch,
            } => {
                if *broker_id < 0 {
                    return rejected(
                        KafkaCode::INVALID_REQUEST,
                        format!("broker id must not be negative, got {broker_id}"),
                    );
                }
                let broker_epoch = i64::try_from(index).map_err(|_| {
                    Rejection::new(KafkaCode::UNKNOWN_SERVER_ERROR, "log index overflows i64")
                })?;
                // A (re)registered broker starts fenced: it is unfenced only
                // once it has shown it caught up with the metadata log, and
                // its earlier incarnation's leadership ends here.
                let last_epoch = self.brokers.get(broker_id).map(|b| b.epoch);
                self.take_leadership(*broker_id);
                if previous_broker_epoch.is_some_and(|previous| Some(previous) != last_epoch) {
                    self.forget_unclean_replica(*broker_id);
                }
                self.brokers.insert(
                    *broker_id,
                    BrokerState {
                        id: *broker_id,
                        incarnation_id: *incarnation_id,
                        epoch: broker_epoch,
                        listeners: listeners.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        shutting_down: false,
                    },
                );
                Ok(ApplyOutcome::BrokerRegistered { broker_epoch })
            }
            Command::FenceBroker {
                broker_id,
                broker_epoch,
            } => {
                let broker = self.current_broker(*broker_id, *broker_epoch)?;
                let flagged = set_flag(&mut broker.fenced, true);
                let moved = self.take_leadership(*broker_id);
                Ok(changed(flagged, moved))
            }
            Command::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => {
                let broker = self.current_broker(*broker_id, *broker_epoch)?;
                let flagged = set_flag(&mut broker.fenced, false);
                let moved = self.restore_leadership(*broker_id);
                Ok(changed(flagged, moved))
            }
            Command::BeginShutdown {
                broker_id,
                broker_epoch,
            } => {
                let broker = self.current_broker(*broker_id, *broker_epoch)?;
                let flagged = set_flag(&mut broker.shutting_down, true);
                let moved = self.take_leadership(*broker_id);
                Ok(changed(flagged, moved))
            }
            Command::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.current_broker(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
                self.take_leadership(*broker_id);
                Ok(ApplyOutcome::Applied)
            }
            Command::CreateTopic {
                name,
                topic_id,
                configs,
                assignments,
            } => self.create_topic(name, *topic_id, configs, assignments),
            Command::DeleteTopic { topic_id } => {
                let Some(name) = self.topic_names_by_id.remove(topic_id) else {
                    return rejected(
                        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("no topic with id {topic_id}"),
                    );
                };
                self.topics.remove(&name);
                Ok(ApplyOutcome::TopicDeleted {
                    topic_id: *topic_id,
                    name,
                })
            }
            Command::CreatePartitions {
                name,
                new_assignments,
            } => self.create_partitions(name, new_assignments),
            Command::AlterConfigs {
                resource,
                set,
                delete,
            } => self.alter_configs(resource, set, delete),
            Command::PartitionChange {
                topic_id,
                partition,
                expected_partition_epoch,
                leader,
                isr,
                isr_broker_epochs,
            } => self.change_partition(
                *topic_id,
                *partition,
                *expected_partition_epoch,
                *leader,
                isr.as_deref(),
                isr_broker_epochs,
            ),
            Command::AlterPartitionReassignment {
                topic_id,
                partition,
                target_replicas,
            } => self.reassign_partition(*topic_id, *partition, target_replicas.as_deref()),
            Command::AllocateProducerIds { broker_id, count } => {
                if !self.brokers.contains_key(broker_id) {
                    return rejected(
                        KafkaCode::BROKER_NOT_AVAILABLE,
                        format!("broker {broker_id} is not registered"),
                    );
                }
                if *count < 1 {
                    return rejected(
                        KafkaCode::INVALID_REQUEST,
                        format!("producer id block size must be positive, got {count}"),
                    );
                }
                let start = self.next_producer_id;
                let Some(end) = start.checked_add(*count) else {
                    return rejected(
                        KafkaCode::UNKNOWN_SERVER_ERROR,
                        "producer ids are exhausted",
                    );
                };
                self.next_producer_id = end;
                Ok(ApplyOutcome::ProducerIds(start..end))
            }
            Command::SetEligibleLeaderReplicas { setting } => {
                self.set_eligible_leader_replicas(*setting)
            }
            Command::UpsertScramCredential {
                user,
                mechanism,
                credential,
            } => self.upsert_scram_credential(user, *mechanism, credential),
            Command::DeleteScramCredential { user, mechanism } => {
                self.delete_scram_credential(user, *mechanism)
            }
            Command::CreateAcls { bindings } => self.create_acls(bindings),
            Command::DeleteAcls { bindings } => Ok(self.delete_acls(bindings)),
        }
    }

    /// Adds `bindings`, all or none: one invalid binding refuses the
    /// command with INVALID_REQUEST.
    fn create_acls(&mut self, bindings: &[AclBinding]) -> Result<ApplyOutcome, Rejection> {
        if let Some(reason) = bindings.iter().find_map(AclBinding::invalid_reason) {
            return rejected(KafkaCode::INVALID_REQUEST, reason);
        }
        let mut added = false;
        for binding in bindings {
            added |= self.acls.insert(binding.clone());
        }
        Ok(if added {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::Unchanged
        })
    }

    fn delete_acls(&mut self, bindings: &[AclBinding]) -> ApplyOutcome {
        let mut removed = false;
        for binding in bindings {
            removed |= self.acls.remove(binding);
        }
        if removed {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::Unchanged
        }
    }

    /// The registration of `broker_id`, if `broker_epoch` is its current epoch.
    fn current_broker(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<&mut BrokerState, Rejection> {
        let Some(broker) = self.brokers.get_mut(&broker_id) else {
            return rejected(
                KafkaCode::BROKER_NOT_AVAILABLE,
                format!("broker {broker_id} is not registered"),
            );
        };
        if broker.epoch != broker_epoch {
            return rejected(
                KafkaCode::STALE_BROKER_EPOCH,
                format!(
                    "broker {broker_id} epoch is {}, command was for epoch {broker_epoch}",
                    broker.epoch
                ),
            );
        }
        Ok(broker)
    }
}

/// `Applied` when the flag or any partition's leadership changed.
fn changed(flagged: ApplyOutcome, leadership_moved: bool) -> ApplyOutcome {
    if leadership_moved {
        ApplyOutcome::Applied
    } else {
        flagged
    }
}

fn set_flag(flag: &mut bool, value: bool) -> ApplyOutcome {
    if *flag == value {
        ApplyOutcome::Unchanged
    } else {
        *flag = value;
        ApplyOutcome::Applied
    }
}

/// Partition `partition` of the topic with id `topic_id`, to change: a
/// function of the two maps rather than a method, so callers may hold the
/// image's other fields (its brokers) meanwhile.
fn partition_by_id_mut<'a>(
    topics: &'a mut BTreeMap<String, TopicState>,
    topic_names_by_id: &BTreeMap<Uuid, String>,
    topic_id: Uuid,
    partition: i32,
) -> Option<&'a mut PartitionState> {
    let topic = topics.get_mut(topic_names_by_id.get(&topic_id)?)?;
    topic.partitions.get_mut(usize::try_from(partition).ok()?)
}

mod election;
mod eligible;
mod leadership;
mod reassignment;
mod scram;
mod topics;

#[cfg(test)]
mod tests;
