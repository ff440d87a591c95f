//! Who leads each partition as brokers come and go.
//!
//! The invariant: a broker that is fenced, shutting down or gone leads
//! nothing. Fencing, a controlled shutdown, a new registration (a restart
//! starts fenced) and unregistering take leadership from the broker; its
//! partitions go offline (leader -1) because no other replica holds their
//! data until replication lands. Unfencing gives a broker back the offline
//! partitions it is the preferred (first) replica of: without replication
//! that is the only replica that ever led, so the only one with the data.
//!
//! Every change bumps `leader_epoch` and `partition_epoch`, as a
//! `PartitionChange` would, so a broker that saw the old leadership can
//! tell it is stale.

use super::{BrokerState, MetadataImage};

impl MetadataImage {
    /// Takes leadership of every partition `broker_id` leads; returns
    /// whether any partition changed.
    pub(super) fn take_leadership(&mut self, broker_id: i32) -> bool {
        let mut changed = false;
        for partition in self.topics.values_mut().flat_map(|t| &mut t.partitions) {
            if partition.leader == broker_id {
                partition.leader = -1;
                partition.leader_epoch += 1;
                partition.partition_epoch += 1;
                changed = true;
            }
        }
        changed
    }

    /// Gives `broker_id`, if it is available, the leaderless partitions it
    /// is the preferred replica of (and still in the ISR of); returns
    /// whether any partition changed.
    pub(super) fn restore_leadership(&mut self, broker_id: i32) -> bool {
        if !self
            .brokers
            .get(&broker_id)
            .is_some_and(BrokerState::is_available)
        {
            return false;
        }
        let mut changed = false;
        for partition in self.topics.values_mut().flat_map(|t| &mut t.partitions) {
            if partition.leader == -1
                && partition.replicas.first() == Some(&broker_id)
                && partition.isr.contains(&broker_id)
            {
                partition.leader = broker_id;
                partition.leader_epoch += 1;
                partition.partition_epoch += 1;
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use crate::cluster::metadata::{ApplyOutcome, Command, MetadataImage};

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

    #[test]
    fn a_fenced_broker_leads_nothing_until_it_is_unfenced() {
        let mut image = image();
        let broker_epoch = epoch(&image, 2);
        let fence = Command::FenceBroker {
            broker_id: 2,
            broker_epoch,
        };
        assert_eq!(next(&mut image, fence.clone()), ApplyOutcome::Applied);
        assert_eq!(leaders(&image), vec![(1, 0), (-1, 1), (-1, 1)]);
        assert_eq!(image.topics["t"].partitions[1].partition_epoch, 1);
        // Broker 1 is in their ISR but, without replication, has none of
        // their data: it does not take over.
        assert_eq!(next(&mut image, fence), ApplyOutcome::Unchanged);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 2,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(1, 0), (2, 2), (2, 2)]);
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
        assert_eq!(leaders(&image), vec![(-1, 1), (2, 0), (2, 0)]);
        next(
            &mut image,
            Command::RegisterBroker {
                broker_id: 2,
                incarnation_id: Uuid::from_u128(22),
                listeners: Vec::new(),
                rack: None,
            },
        );
        assert_eq!(leaders(&image), vec![(-1, 1), (-1, 1), (-1, 1)]);
        // The restarted broker 2 leads again once unfenced; broker 1, still
        // shutting down, does not.
        let broker_epoch = epoch(&image, 2);
        next(
            &mut image,
            Command::UnfenceBroker {
                broker_id: 2,
                broker_epoch,
            },
        );
        assert_eq!(leaders(&image), vec![(-1, 1), (2, 2), (2, 2)]);
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
        assert_eq!(leaders(&first), vec![(1, 2), (2, 0), (2, 0)]);
    }
}
