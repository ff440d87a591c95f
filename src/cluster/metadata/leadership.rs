//! Who leads each partition as brokers come and go: the controller's
//! leader election, as KRaft's `PartitionChangeBuilder` does it.
//!
//! The invariant: a broker that is fenced, shutting down or gone leads
//! nothing and leaves every ISR it is in but the last place of one (the
//! last ISR member is the only replica known to hold everything
//! committed, so it stays named until it returns). Fencing, a controlled
//! shutdown, a new registration (a restart starts fenced) and
//! unregistering take leadership from the broker: the next available ISR
//! member in replica order leads, or, with no such member, the partition
//! goes offline (leader -1) — unless the topic sets
//! `unclean.leader.election.enable=true`, when any available replica may
//! lead (with an ISR of itself, accepting the loss Kafka warns about).
//! Unfencing gives a broker the leaderless partitions whose ISR holds it.
//!
//! Every leader change bumps `leader_epoch` and `partition_epoch`, an ISR
//! change `partition_epoch`, as a `PartitionChange` would, so a broker
//! that saw the old state can tell it is stale.

use std::collections::BTreeMap;

use super::eligible::ElrRules;
use super::{BrokerState, Command, KafkaCode, MetadataImage, PartitionState, Rejection};
use crate::cluster::AlterPartitionRequest;

/// The topic config that allows electing a replica outside the ISR.
const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

fn unclean_election(configs: &BTreeMap<String, String>) -> bool {
    configs
        .get(UNCLEAN_LEADER_ELECTION)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

impl MetadataImage {
    /// The `PartitionChange` an AlterPartition asks for, or its refusal:
    /// only the partition's current leader at its current leader epoch may
    /// change the ISR (FENCED_LEADER_EPOCH otherwise). The partition epoch
    /// is the command's own check, when it applies: a leader change always
    /// bumps it, so a leadership lost after this decision is caught there.
    pub fn alter_partition(&self, request: &AlterPartitionRequest) -> Result<Command, Rejection> {
        let state = self.topic_by_id(request.topic_id).and_then(|topic| {
            topic
                .partitions
                .get(usize::try_from(request.partition).ok()?)
        });
        let Some(state) = state else {
            return Err(Rejection::new(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!(
                    "no partition {} of topic id {}",
                    request.partition, request.topic_id
                ),
            ));
        };
        if state.leader != request.broker_id || state.leader_epoch != request.leader_epoch {
            return Err(Rejection::new(
                KafkaCode::FENCED_LEADER_EPOCH,
                format!(
                    "broker {} at leader epoch {} does not lead (leader {} at epoch {})",
                    request.broker_id, request.leader_epoch, state.leader, state.leader_epoch
                ),
            ));
        }
        Ok(Command::PartitionChange {
            topic_id: request.topic_id,
            partition: request.partition,
            expected_partition_epoch: request.partition_epoch,
            leader: None,
            isr: Some(request.isr.clone()),
            isr_broker_epochs: request.members().map(|(_, epoch)| epoch).collect(),
        })
    }

    /// Takes leadership and ISR membership from `broker_id`; returns
    /// whether any partition changed.
    pub(super) fn take_leadership(&mut self, broker_id: i32) -> bool {
        let brokers = &self.brokers;
        let available =
            |id: &i32| *id != broker_id && brokers.get(id).is_some_and(BrokerState::is_available);
        let elr_rules: Vec<ElrRules> = self.topics.values().map(|t| self.elr_rules(t)).collect();
        let mut changed = false;
        for (topic, elr) in self.topics.values_mut().zip(elr_rules) {
            let unclean = unclean_election(&topic.configs);
            for partition in &mut topic.partitions {
                let leads = partition.leader == broker_id;
                let in_isr = partition.isr.contains(&broker_id);
                if elr.enabled {
                    // With ELR the ISR may empty: its last member moves to
                    // the ELR, which remembers it holds everything.
                    if !leads && !in_isr {
                        continue;
                    }
                    let (old_isr, old_leader) = (partition.isr.clone(), partition.leader);
                    partition.isr.retain(|id| *id != broker_id);
                    elr.track(partition, &old_isr, old_leader);
                    if leads {
                        elect(partition, &available, unclean, true);
                        partition.leader_epoch += 1;
                    }
                    partition.partition_epoch += 1;
                    changed = true;
                } else if leads {
                    elect_without(partition, broker_id, &available, unclean);
                    changed = true;
                } else if partition.leader != -1 && partition.isr.len() > 1 && in_isr {
                    partition.isr.retain(|id| *id != broker_id);
                    partition.partition_epoch += 1;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Gives `broker_id`, if it is available, the leaderless partitions
    /// whose ISR holds it, or with ELR on whose ELR holds it while the ISR
    /// is empty, or whose last known leader it is while both are empty
    /// (or, with unclean election, any it is a replica of); returns whether
    /// any partition changed.
    pub(super) fn restore_leadership(&mut self, broker_id: i32) -> bool {
        if !self
            .brokers
            .get(&broker_id)
            .is_some_and(BrokerState::is_available)
        {
            return false;
        }
        let mut changed = false;
        for topic in self.topics.values_mut() {
            let unclean = unclean_election(&topic.configs);
            for partition in &mut topic.partitions {
                if partition.leader != -1 || !partition.replicas.contains(&broker_id) {
                    continue;
                }
                if partition.isr.contains(&broker_id) {
                    partition.leader = broker_id;
                } else if partition.isr.is_empty() && partition.elr.contains(&broker_id) {
                    ElrRules::elected_from_elr(partition, broker_id);
                } else if unclean || ElrRules::last_known_leader(partition) == Some(broker_id) {
                    ElrRules::elected_uncleanly(partition, broker_id);
                } else {
                    continue;
                }
                partition.leader_epoch += 1;
                partition.partition_epoch += 1;
                changed = true;
            }
        }
        changed
    }
}

/// Elects a new leader for `partition`, whose leader `leaving` is going
/// (ELR off: the last ISR member stays named while nobody leads).
fn elect_without(
    partition: &mut PartitionState,
    leaving: i32,
    available: &impl Fn(&i32) -> bool,
    unclean: bool,
) {
    let keeps_isr = partition
        .replicas
        .iter()
        .any(|id| partition.isr.contains(id) && available(id));
    if keeps_isr {
        partition.isr.retain(|id| *id != leaving);
    }
    elect(partition, available, unclean, false);
    partition.leader_epoch += 1;
    partition.partition_epoch += 1;
}

/// Kafka's order of election: the first available ISR member in replica
/// order; with the ISR empty, the first available ELR member (clean, it
/// alone becomes the ISR); with the ELR empty too, the last known leader
/// if it is available; with `unclean`, any available replica (the ISR
/// becomes it alone and the ELR is forgotten); else no leader (-1).
fn elect(
    partition: &mut PartitionState,
    available: &impl Fn(&i32) -> bool,
    unclean: bool,
    elr_enabled: bool,
) {
    let replicas = partition.replicas.clone();
    if let Some(leader) = replicas
        .iter()
        .copied()
        .find(|id| partition.isr.contains(id) && available(id))
    {
        partition.leader = leader;
        return;
    }
    if elr_enabled
        && partition.isr.is_empty()
        && let Some(leader) = replicas
            .iter()
            .copied()
            .find(|id| partition.elr.contains(id) && available(id))
    {
        ElrRules::elected_from_elr(partition, leader);
        return;
    }
    let last_known = ElrRules::last_known_leader(partition).filter(available);
    let any = || replicas.iter().copied().find(available).filter(|_| unclean);
    match last_known.or_else(any) {
        Some(leader) => ElrRules::elected_uncleanly(partition, leader),
        // The ISR (ELR off) or the ELR keeps naming the replicas that hold
        // everything committed; one of them leads again when it returns.
        None => partition.leader = -1,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use crate::cluster::AlterPartitionRequest;
    use crate::cluster::metadata::{ApplyOutcome, Command, KafkaCode, MetadataImage};

    /// Brokers 1 and 2 registered and unfenced, topic `t` with two replicas
    /// per partition: partition 0 prefers broker 1, partitions 1 and 2
    /// prefer broker 2.
    fn image() -> MetadataImage {
        let mut image = MetadataImage::new("leadership-test-0000A");
        let mut index = 0;
        let mut apply = |image: &mut MetadataImage, command: Command| {
            index += 1;
            image.apply(index, &command).expect("accepted");
        };
        for id in [1, 2] {
            apply(
                &mut image,
                Command::RegisterBroker {
                    broker_id: id,
                    incarnation_id: Uuid::from_u128(id as u128),
                    listeners: Vec::new(),
                    rack: None,
                    previous_broker_epoch: None,
                },
            );
            let epoch = image.broker(id).expect("registered").epoch;
            apply(
                &mut image,
                Command::UnfenceBroker {
                    broker_id: id,
                    broker_epoch: epoch,
                },
            );
        }
        apply(
            &mut image,
            Command::CreateTopic {
                name: "t".into(),
                topic_id: Uuid::from_u128(9),
                configs: BTreeMap::new(),
                assignments: vec![vec![1, 2], vec![2, 1], vec![2, 1]],
            },
        );
        image
    }

    fn next(image: &mut MetadataImage, command: Command) -> ApplyOutcome {
        let index = image.last_applied + 1;
        image.apply(index, &command).expect("accepted")
    }

    fn leaders(image: &MetadataImage) -> Vec<(i32, i32)> {
        image.topics["t"]
            .partitions
            .iter()
            .map(|p| (p.leader, p.leader_epoch))
            .collect()
    }

    fn epoch(image: &MetadataImage, id: i32) -> i64 {
        image.broker(id).expect("registered").epoch
    }

    fn isrs(image: &MetadataImage) -> Vec<Vec<i32>> {
        image.topics["t"]
            .partitions
            .iter()
            .map(|p| p.isr.clone())
            .collect()
    }

    /// Broker `id` restarted: a new incarnation registers, fenced.
    fn register_again(image: &mut MetadataImage, id: i32) {
        next(
            image,
            Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::from_u128(20 + id as u128),
                listeners: Vec::new(),
                rack: None,
                previous_broker_epoch: None,
            },
        );
    }

    fn fence(image: &mut MetadataImage, id: i32) -> ApplyOutcome {
        let broker_epoch = epoch(image, id);
        next(
            image,
            Command::FenceBroker {
                broker_id: id,
                broker_epoch,
            },
        )
    }

    #[test]
    fn a_fenced_leader_is_replaced_by_the_next_isr_member() {
        let mut image = image();
        assert_eq!(fence(&mut image, 2), ApplyOutcome::Applied);
        assert_eq!(leaders(&image), vec![(1, 0), (1, 1), (1, 1)]);
        // The fenced broker leaves every ISR; each change bumps the epoch.
        assert_eq!(isrs(&image), vec![vec![1], vec![1], vec![1]]);
        assert_eq!(image.topics["t"].partitions[0].partition_epoch, 1);
        assert_eq!(fence(&mut image, 2), ApplyOutcome::Unchanged);
        // Unfenced, it leads nothing until the leader lets it back in.
        let broker_epoch = epoch(&image, 2);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 2,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(1, 0), (1, 1), (1, 1)]);
    }

    #[test]
    fn no_leader_outside_the_isr_until_its_last_member_returns() {
        let mut image = image();
        fence(&mut image, 2);
        // Broker 1 is now the last ISR member: fenced, nobody may lead.
        fence(&mut image, 1);
        assert_eq!(leaders(&image), vec![(-1, 1), (-1, 2), (-1, 2)]);
        assert_eq!(isrs(&image), vec![vec![1], vec![1], vec![1]]);
        // Broker 2 returns first: it has not got everything, it waits.
        let broker_epoch = epoch(&image, 2);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 2,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(-1, 1), (-1, 2), (-1, 2)]);
        let broker_epoch = epoch(&image, 1);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 1,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(1, 2), (1, 3), (1, 3)]);
    }

    #[test]
    fn unclean_election_lets_an_out_of_sync_replica_lead() {
        let mut image = image();
        next(
            &mut image,
            Command::AlterConfigs {
                resource: crate::cluster::metadata::ConfigResource::Topic("t".into()),
                set: BTreeMap::from([("unclean.leader.election.enable".into(), "true".into())]),
                delete: Vec::new(),
            },
        );
        fence(&mut image, 2);
        fence(&mut image, 1);
        let broker_epoch = epoch(&image, 2);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 2,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(2, 2), (2, 3), (2, 3)]);
        assert_eq!(isrs(&image), vec![vec![2], vec![2], vec![2]]);
    }

    #[test]
    fn a_restart_or_a_controlled_shutdown_takes_leadership_too() {
        let mut image = image();
        let broker_epoch = epoch(&image, 1);
        next(
            &mut image,
            Command::BeginShutdown {
                broker_id: 1,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(2, 1), (2, 0), (2, 0)]);
        register_again(&mut image, 2);
        assert_eq!(leaders(&image), vec![(-1, 2), (-1, 1), (-1, 1)]);
        // The restarted broker 2, the last ISR member, leads again once
        // unfenced; broker 1, still shutting down, does not.
        let broker_epoch = epoch(&image, 2);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 2,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(2, 3), (2, 2), (2, 2)]);
    }

    #[test]
    fn replaying_the_same_commands_gives_the_same_leaders() {
        let mut first = image();
        let mut second = image();
        for image in [&mut first, &mut second] {
            let broker_epoch = epoch(image, 1);
            next(
                image,
                Command::FenceBroker {
                    broker_id: 1,
                    broker_epoch,
                },
            );
            next(
                image,
                Command::UnfenceBroker {
                    broker_id: 1,
                    broker_epoch,
                },
            );
        }
        assert_eq!(first, second);
        assert_eq!(leaders(&first), vec![(2, 1), (2, 0), (2, 0)]);
    }

    /// KAFKA-14139: a late AlterPartition must not add a replica that has
    /// restarted (maybe with less in its log) since the leader heard from it.
    #[test]
    fn an_isr_change_naming_a_replica_by_an_old_broker_epoch_is_refused() {
        let mut image = image();
        let before_restart = epoch(&image, 2);
        fence(&mut image, 2);
        register_again(&mut image, 2);
        let after_restart = epoch(&image, 2);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 2,
                broker_epoch: after_restart,
            },
        );
        let state = image.topics["t"].partitions[0].clone();
        assert_eq!((state.leader, state.isr.clone()), (1, vec![1]));
        let add_two = |broker_epoch: i64| AlterPartitionRequest {
            broker_id: 1,
            topic_id: Uuid::from_u128(9),
            partition: 0,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr: vec![1, 2],
            broker_epochs: vec![-1, broker_epoch],
        };
        let stale = image
            .alter_partition(&add_two(before_restart))
            .expect("the leader asks at its epochs");
        let index = image.last_applied + 1;
        let refused = image.apply(index, &stale).expect_err("refused");
        assert_eq!(refused.code, KafkaCode::INELIGIBLE_REPLICA);
        assert_eq!(image.topics["t"].partitions[0].isr, vec![1]);
        let current = image.alter_partition(&add_two(after_restart)).unwrap();
        assert_eq!(next(&mut image, current), ApplyOutcome::Applied);
        assert_eq!(image.topics["t"].partitions[0].isr, vec![1, 2]);
    }
}
