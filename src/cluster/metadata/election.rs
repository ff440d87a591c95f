//! Leader elections an operator asks for (ElectLeaders, KIP-460) and the
//! controller's automatic preferred-leader rebalance
//! (`auto.leader.rebalance.enable`).
//!
//! Both only decide: they turn the image into `PartitionChange` commands,
//! which the proposer logs like any other, so the epoch checks and bumps
//! are the ones every other leader change goes through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BrokerState, Command, KafkaCode, MetadataImage, PartitionState, Rejection};
use crate::cluster::code::rejected;

/// ElectLeaders' `election_type`: Kafka's `ElectionType` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ElectionType {
    /// The first replica leads again, if it is live and in sync.
    Preferred,
    /// A leaderless partition gets a leader, from outside the ISR if no
    /// member of it is live (losing what only the ISR had).
    Unclean,
}

impl ElectionType {
    /// From the wire byte: 0 preferred, 1 unclean; anything else is not an
    /// election type.
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            0 => Some(Self::Preferred),
            1 => Some(Self::Unclean),
            _ => None,
        }
    }

    pub fn to_wire(self) -> i8 {
        match self {
            Self::Preferred => 0,
            Self::Unclean => 1,
        }
    }
}

impl MetadataImage {
    /// The `PartitionChange` that performs a `kind` election on
    /// `topic`-`partition`, or the error ElectLeaders answers with, as
    /// Kafka's controller decides them: ELECTION_NOT_NEEDED when the
    /// preferred replica already leads (preferred) or the partition has a
    /// leader (unclean); PREFERRED_LEADER_NOT_AVAILABLE when the first
    /// replica is not live or not in the ISR; ELIGIBLE_LEADERS_NOT_AVAILABLE
    /// when no replica at all is live.
    pub fn election(
        &self,
        topic: &str,
        partition: i32,
        kind: ElectionType,
    ) -> Result<Command, Rejection> {
        let Some(topic_state) = self.topic(topic) else {
            return rejected(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no such topic as {topic}"),
            );
        };
        let Some(state) = self.partition(topic, partition) else {
            return rejected(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no such partition as {topic}-{partition}"),
            );
        };
        let live = |id: &i32| self.brokers.get(id).is_some_and(BrokerState::is_available);
        let (leader, isr) = match kind {
            ElectionType::Preferred => {
                let preferred = preferred_replica(state);
                if preferred == Some(state.leader) {
                    return rejected(
                        KafkaCode::ELECTION_NOT_NEEDED,
                        "leader election not needed for topic partition",
                    );
                }
                match preferred.filter(|id| state.isr.contains(id) && live(id)) {
                    Some(preferred) => (preferred, None),
                    None => {
                        return rejected(
                            KafkaCode::PREFERRED_LEADER_NOT_AVAILABLE,
                            format!(
                                "the preferred replica {preferred:?} of {topic}-{partition} is not live or not in the isr {:?}",
                                state.isr
                            ),
                        );
                    }
                }
            }
            ElectionType::Unclean => {
                if state.leader != -1 {
                    return rejected(
                        KafkaCode::ELECTION_NOT_NEEDED,
                        "leader election not needed for topic partition",
                    );
                }
                let in_sync = state
                    .replicas
                    .iter()
                    .copied()
                    .find(|id| state.isr.contains(id) && live(id));
                // With the ISR empty, an ELR member is a clean choice.
                let eligible = state
                    .replicas
                    .iter()
                    .copied()
                    .find(|id| state.isr.is_empty() && state.elr.contains(id) && live(id));
                match (in_sync, eligible) {
                    (Some(leader), _) => (leader, None),
                    (None, Some(leader)) => (leader, Some(vec![leader])),
                    (None, None) => match state.replicas.iter().copied().find(live) {
                        Some(leader) => (leader, Some(vec![leader])),
                        None => {
                            return rejected(
                                KafkaCode::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                                format!("no replica of {topic}-{partition} is live"),
                            );
                        }
                    },
                }
            }
        };
        Ok(Command::PartitionChange {
            topic_id: topic_state.id,
            partition,
            expected_partition_epoch: state.partition_epoch,
            leader: Some(leader),
            isr,
            isr_broker_epochs: Vec::new(),
        })
    }

    /// The partitions the automatic rebalance moves back to their preferred
    /// replica, as Kafka's controller picks them: for each broker, the share
    /// of the partitions it is preferred for that it does not lead (another
    /// broker or none does); when that share is above `percentage` %, each
    /// of those whose preferred replica is live and in sync. Ordered by
    /// topic, then partition.
    pub fn imbalanced_partitions(&self, percentage: u32) -> Vec<(String, i32)> {
        let mut by_preferred: BTreeMap<i32, PreferredShare<'_>> = BTreeMap::new();
        for topic in self.topics.values() {
            for (index, state) in topic.partitions.iter().enumerate() {
                let Some(preferred) = preferred_replica(state) else {
                    continue;
                };
                let share = by_preferred.entry(preferred).or_default();
                share.total += 1;
                // As Kafka counts it, a leaderless partition is not led by
                // its preferred replica either.
                if state.leader != preferred {
                    let index = i32::try_from(index).unwrap_or(i32::MAX);
                    share.led_by_others.push((topic.name.as_str(), index));
                }
            }
        }
        let mut chosen = Vec::new();
        for share in by_preferred.into_values() {
            // led_by_others / total > percentage / 100, in integers.
            let others = share.led_by_others.len() as u128;
            if others * 100 <= (share.total as u128) * u128::from(percentage) {
                continue;
            }
            chosen.extend(
                share
                    .led_by_others
                    .into_iter()
                    .filter(|(topic, partition)| {
                        self.election(topic, *partition, ElectionType::Preferred)
                            .is_ok()
                    })
                    .map(|(topic, partition)| (topic.to_owned(), partition)),
            );
        }
        chosen.sort();
        chosen
    }
}

/// One broker's partitions, as the preferred replica.
#[derive(Default)]
struct PreferredShare<'a> {
    /// How many partitions it is the preferred replica of.
    total: usize,
    /// Those it does not lead (another broker does, or none): (topic,
    /// partition).
    led_by_others: Vec<(&'a str, i32)>,
}

/// The first replica: the one that leads when everything is well.
fn preferred_replica(state: &PartitionState) -> Option<i32> {
    state.replicas.first().copied()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::ElectionType::{Preferred, Unclean};
    use crate::cluster::metadata::{Command, KafkaCode, MetadataImage};

    fn next(image: &mut MetadataImage, command: &Command) {
        let index = image.last_applied + 1;
        image.apply(index, command).expect("accepted");
    }

    fn epoch(image: &MetadataImage, id: i32) -> i64 {
        image.broker(id).expect("registered").epoch
    }

    fn fence(image: &mut MetadataImage, id: i32) {
        let broker_epoch = epoch(image, id);
        next(
            image,
            &Command::FenceBroker {
                broker_id: id,
                broker_epoch,
            },
        );
    }

    fn unfence(image: &mut MetadataImage, id: i32) {
        let broker_epoch = epoch(image, id);
        next(
            image,
            &Command::UnfenceBroker {
                broker_id: id,
                broker_epoch,
            },
        );
    }

    /// Brokers 1-3 live; topic `t`: partition 0 prefers 1, 1 prefers 2,
    /// 2 prefers 3, all three replicas in sync.
    fn image() -> MetadataImage {
        let mut image = MetadataImage::new("election-test-000000A");
        for id in 1..=3 {
            next(
                &mut image,
                &Command::RegisterBroker {
                    broker_id: id,
                    incarnation_id: Uuid::from_u128(id as u128),
                    listeners: Vec::new(),
                    rack: None,
                    previous_broker_epoch: None,
                },
            );
            unfence(&mut image, id);
        }
        next(
            &mut image,
            &Command::CreateTopic {
                name: "t".into(),
                topic_id: Uuid::from_u128(7),
                configs: BTreeMap::new(),
                assignments: vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
            },
        );
        image
    }

    fn code(result: Result<Command, crate::cluster::Rejection>) -> KafkaCode {
        result.err().map_or(KafkaCode::NONE, |r| r.code)
    }

    /// Broker 1 fenced, then unfenced: partition 0 is led by 2, and 1 is
    /// back in its ISR as the leader would have let it in.
    fn moved_away() -> MetadataImage {
        let mut image = image();
        fence(&mut image, 1);
        unfence(&mut image, 1);
        let state = image.partition("t", 0).expect("exists").clone();
        assert_eq!(state.leader, 2);
        next(
            &mut image,
            &Command::PartitionChange {
                topic_id: Uuid::from_u128(7),
                partition: 0,
                expected_partition_epoch: state.partition_epoch,
                leader: None,
                isr: Some(vec![2, 3, 1]),
                isr_broker_epochs: Vec::new(),
            },
        );
        image
    }

    #[test]
    fn preferred_election_moves_leadership_back_and_bumps_both_epochs() {
        let mut image = moved_away();
        let before = image.partition("t", 0).expect("exists").clone();
        let command = image.election("t", 0, Preferred).expect("needed");
        next(&mut image, &command);
        let after = image.partition("t", 0).expect("exists");
        assert_eq!(after.leader, 1);
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert_eq!(after.partition_epoch, before.partition_epoch + 1);
        assert_eq!(after.isr, before.isr);
        assert_eq!(
            code(image.election("t", 0, Preferred)),
            KafkaCode::ELECTION_NOT_NEEDED
        );
    }

    #[test]
    fn preferred_election_needs_the_first_replica_live_and_in_sync() {
        let mut image = image();
        fence(&mut image, 1);
        // Fenced: out of the ISR and not live.
        assert_eq!(
            code(image.election("t", 0, Preferred)),
            KafkaCode::PREFERRED_LEADER_NOT_AVAILABLE
        );
        // Live again but not yet back in the ISR.
        unfence(&mut image, 1);
        assert_eq!(
            code(image.election("t", 0, Preferred)),
            KafkaCode::PREFERRED_LEADER_NOT_AVAILABLE
        );
        assert_eq!(
            code(image.election("t", 1, Preferred)),
            KafkaCode::ELECTION_NOT_NEEDED
        );
        assert_eq!(
            code(image.election("t", 3, Preferred)),
            KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            code(image.election("nope", 0, Preferred)),
            KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
        );
    }

    #[test]
    fn unclean_election_prefers_the_isr_and_goes_outside_it_only_when_nobody_in_it_is_live() {
        let mut image = image();
        assert_eq!(
            code(image.election("t", 0, Unclean)),
            KafkaCode::ELECTION_NOT_NEEDED
        );
        fence(&mut image, 1);
        fence(&mut image, 2);
        fence(&mut image, 3);
        // Every partition is offline; its ISR names its last leader.
        assert_eq!(
            code(image.election("t", 0, Unclean)),
            KafkaCode::ELIGIBLE_LEADERS_NOT_AVAILABLE
        );
        let last_isr = image.partition("t", 0).expect("exists").isr.clone();
        let outsider = (1..=3)
            .find(|id| !last_isr.contains(id))
            .expect("one out of sync");
        unfence(&mut image, outsider);
        let command = image.election("t", 0, Unclean).expect("unclean");
        next(&mut image, &command);
        let state = image.partition("t", 0).expect("exists");
        assert_eq!(
            (state.leader, state.isr.clone()),
            (outsider, vec![outsider])
        );
    }

    #[test]
    fn the_rebalance_picks_partitions_of_brokers_over_the_threshold() {
        let mut image = moved_away();
        // Broker 1 leads none of its one preferred partition: 100% > 10%.
        assert_eq!(image.imbalanced_partitions(10), vec![("t".to_owned(), 0)]);
        // 100% is never over 100%.
        assert!(image.imbalanced_partitions(100).is_empty());
        let command = image.election("t", 0, Preferred).expect("needed");
        next(&mut image, &command);
        assert!(image.imbalanced_partitions(0).is_empty());
        // A preferred replica that is down is imbalanced but cannot lead.
        fence(&mut image, 3);
        assert!(image.imbalanced_partitions(0).is_empty());
    }
}
