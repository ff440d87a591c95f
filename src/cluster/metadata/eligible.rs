//! Eligible leader replicas (KIP-966 part 1), as Kafka 4.0's controller
//! keeps them behind the `eligible.leader.replicas.version` feature.
//!
//! With ELR on, the high watermark only advances while the ISR has at least
//! `min.insync.replicas` members (the broker's side, see
//! [`MetadataImage::strict_min_insync_replicas`]). So when the ISR shrinks
//! below that size, the replicas that leave it still hold everything up to
//! the high watermark: they become the partition's ELR, and one of them may
//! lead again (a clean election) once the ISR is empty, where without ELR
//! the partition would wait for its last ISR member or lose data to an
//! unclean election. The ISR may then be empty: a fenced last member moves
//! to the ELR instead of staying named in the ISR.
//!
//! A broker that registers without a clean shutdown recorded (KIP-966's
//! `PreviousBrokerEpoch`) may have lost unflushed records: it leaves every
//! ELR.
//!
//! `last_known_elr` holds the partition's last leader once the ISR empties
//! (Kafka's default, `useLastKnownLeaderInBalancedRecovery`). When every
//! eligible replica has come back from a crash, the ISR and the ELR are
//! both empty and no clean leader will ever return; the last leader, which
//! holds the most of the log, then leads as in an unclean election (the ISR
//! becomes it alone) instead of leaving the partition offline for good.
//! Both lists are cleared when the ISR is back at min ISR, once the
//! partition has a leader again (the last known leader), on an unclean
//! election, when the topic's `min.insync.replicas` changes and when the
//! feature is turned off.

use serde::{Deserialize, Serialize};

use super::{
    ApplyOutcome, BrokerState, KafkaCode, MetadataImage, PartitionState, Rejection, TopicState,
};
use crate::cluster::code::rejected;

/// The feature's name, as `kafka-features.sh` and ApiVersions spell it.
pub const ELIGIBLE_LEADER_REPLICAS_VERSION: &str = "eligible.leader.replicas.version";

/// The highest `eligible.leader.replicas.version` gregor knows.
pub const MAX_ELIGIBLE_LEADER_REPLICAS_VERSION: i16 = 1;

/// The topic config the ELR rules measure the ISR against.
const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// The finalized `eligible.leader.replicas.version`, with the cluster-wide
/// `min.insync.replicas` that applies to topics without their own (Kafka
/// writes the cluster-level config when the feature is enabled, so every
/// controller and broker measures against the same number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibleLeaderReplicas {
    /// 0: off (Kafka 4.0's default), 1: on.
    pub version: i16,
    pub min_insync_replicas: i32,
}

impl Default for EligibleLeaderReplicas {
    /// Off, with Kafka's default `min.insync.replicas` of 1.
    fn default() -> Self {
        Self {
            version: 0,
            min_insync_replicas: 1,
        }
    }
}

impl EligibleLeaderReplicas {
    pub fn enabled(&self) -> bool {
        self.version >= 1
    }

    /// The `min.insync.replicas` of a topic: its own, else the cluster's.
    fn min_insync_replicas(&self, topic: &TopicState) -> usize {
        let own = topic
            .configs
            .get(MIN_INSYNC_REPLICAS)
            .and_then(|v| v.trim().parse::<i32>().ok());
        usize::try_from(own.unwrap_or(self.min_insync_replicas).max(1)).unwrap_or(1)
    }
}

/// The ELR rules one partition change follows, fixed per topic.
#[derive(Clone, Copy, Debug)]
pub(super) struct ElrRules {
    pub enabled: bool,
    pub min_insync_replicas: usize,
}

impl ElrRules {
    /// After the ISR changed from `old_isr` under `old_leader`: below min
    /// ISR, the members that left join the ELR (the ELR keeps those still
    /// out of the ISR), and a change that empties the ISR records the
    /// leader it had as the last known leader; at min ISR, both empty.
    pub fn track(&self, partition: &mut PartitionState, old_isr: &[i32], old_leader: i32) {
        if !self.enabled {
            return;
        }
        if partition.isr.len() >= self.min_insync_replicas {
            partition.elr.clear();
            partition.last_known_elr.clear();
            return;
        }
        let mut candidates = partition.elr.clone();
        push_missing(&mut candidates, old_isr);
        candidates.retain(|id| !partition.isr.contains(id));
        partition.elr = candidates;
        if partition.isr.is_empty() && !old_isr.is_empty() && old_leader >= 0 {
            partition.last_known_elr = vec![old_leader];
        }
    }

    /// `leader` was elected from the ELR: it leads, alone in the ISR.
    pub fn elected_from_elr(partition: &mut PartitionState, leader: i32) {
        partition.leader = leader;
        partition.isr = vec![leader];
        partition.elr.retain(|id| *id != leader);
        partition.last_known_elr.clear();
    }

    /// The last known leader, when it may lead: the ISR and the ELR are
    /// both empty, so every replica that held all committed records is
    /// gone or came back from a crash (Kafka's `canElectLastKnownLeader`).
    pub fn last_known_leader(partition: &PartitionState) -> Option<i32> {
        match partition.last_known_elr[..] {
            [leader] if partition.isr.is_empty() && partition.elr.is_empty() => Some(leader),
            _ => None,
        }
    }

    /// `leader` leads without an ELR member's promise (an unclean election,
    /// or the last known leader's): it alone is the ISR, and what the ELR
    /// tracked no longer holds.
    pub fn elected_uncleanly(partition: &mut PartitionState, leader: i32) {
        partition.leader = leader;
        partition.isr = vec![leader];
        Self::forget(partition);
    }

    /// An unclean election: what the ELR promised no longer holds.
    pub fn forget(partition: &mut PartitionState) {
        partition.elr.clear();
        partition.last_known_elr.clear();
    }
}

/// Appends the ids of `more` not in `list` yet, keeping `list`'s order.
fn push_missing(list: &mut Vec<i32>, more: &[i32]) {
    for id in more {
        if !list.contains(id) {
            list.push(*id);
        }
    }
}

impl MetadataImage {
    /// The ELR rules for partitions of `topic`.
    pub(super) fn elr_rules(&self, topic: &TopicState) -> ElrRules {
        ElrRules {
            enabled: self.eligible_leader_replicas.enabled(),
            min_insync_replicas: self.eligible_leader_replicas.min_insync_replicas(topic),
        }
    }

    /// With ELR on, the ISR size under which a leader of `topic` must not
    /// advance its high watermark (Kafka 4.0's strict min ISR, what makes
    /// ELR members safe leaders); `None` with ELR off.
    pub fn strict_min_insync_replicas(&self, topic: &str) -> Option<usize> {
        let topic = self.topics.get(topic)?;
        self.eligible_leader_replicas
            .enabled()
            .then(|| self.eligible_leader_replicas.min_insync_replicas(topic))
    }

    /// Broker `broker_id` registered after an unclean shutdown (Kafka's
    /// `handleBrokerUncleanShutdown`): it may have lost records it had not
    /// flushed, so it leaves every ELR. Where that empties the ELR of a
    /// leaderless partition, its last known leader leads if it is available
    /// (else when it is unfenced). Bumps the partition epoch of each
    /// partition changed, and the leader epoch of each that gets a leader.
    pub(super) fn forget_unclean_replica(&mut self, broker_id: i32) {
        let brokers = &self.brokers;
        let available =
            |id: i32| id != broker_id && brokers.get(&id).is_some_and(BrokerState::is_available);
        for partition in self.topics.values_mut().flat_map(|t| &mut t.partitions) {
            if !partition.elr.contains(&broker_id) {
                continue;
            }
            partition.elr.retain(|id| *id != broker_id);
            partition.partition_epoch += 1;
            if let Some(leader) = ElrRules::last_known_leader(partition).filter(|id| available(*id))
            {
                ElrRules::elected_uncleanly(partition, leader);
                partition.leader_epoch += 1;
            }
        }
    }

    /// Finalizes `eligible.leader.replicas.version` at `version`; turning it
    /// off clears every partition's ELR and last known ELR.
    pub(super) fn set_eligible_leader_replicas(
        &mut self,
        setting: EligibleLeaderReplicas,
    ) -> Result<ApplyOutcome, Rejection> {
        if !(0..=MAX_ELIGIBLE_LEADER_REPLICAS_VERSION).contains(&setting.version) {
            return rejected(
                KafkaCode::INVALID_UPDATE_VERSION,
                format!(
                    "{ELIGIBLE_LEADER_REPLICAS_VERSION} {} is not in 0..={MAX_ELIGIBLE_LEADER_REPLICAS_VERSION}",
                    setting.version
                ),
            );
        }
        if setting.min_insync_replicas < 1 {
            return rejected(
                KafkaCode::INVALID_CONFIG,
                format!(
                    "min.insync.replicas must be at least 1, got {}",
                    setting.min_insync_replicas
                ),
            );
        }
        if self.eligible_leader_replicas == setting {
            return Ok(ApplyOutcome::Unchanged);
        }
        if !setting.enabled() {
            for topic in self.topics.values_mut() {
                clear_elr(topic);
            }
        }
        self.eligible_leader_replicas = setting;
        Ok(ApplyOutcome::Applied)
    }
}

/// Kafka's `ClearElrRecord` for one topic: its min ISR changed, so what the
/// ELR was measured against no longer holds. Bumps the partition epoch of
/// each partition that had any.
pub(super) fn clear_elr(topic: &mut TopicState) {
    for partition in &mut topic.partitions {
        if !partition.elr.is_empty() || !partition.last_known_elr.is_empty() {
            ElrRules::forget(partition);
            partition.partition_epoch += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::EligibleLeaderReplicas;
    use crate::cluster::metadata::{Command, ConfigResource, MetadataImage, PartitionState};

    const TOPIC_ID: Uuid = Uuid::from_u128(7);

    fn next(image: &mut MetadataImage, command: Command) {
        let index = image.last_applied + 1;
        image.apply(index, &command).expect("accepted");
    }

    fn epoch(image: &MetadataImage, id: i32) -> i64 {
        image.broker(id).expect("registered").epoch
    }

    fn fence(image: &mut MetadataImage, id: i32) {
        let broker_epoch = epoch(image, id);
        next(
            image,
            Command::FenceBroker {
                broker_id: id,
                broker_epoch,
            },
        );
    }

    fn unfence(image: &mut MetadataImage, id: i32) {
        let broker_epoch = epoch(image, id);
        next(
            image,
            Command::UnfenceBroker {
                broker_id: id,
                broker_epoch,
            },
        );
    }

    /// Broker `id` registers again, sending `previous_broker_epoch`.
    fn register(image: &mut MetadataImage, id: i32, previous_broker_epoch: Option<i64>) {
        next(
            image,
            Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::from_u128(10 + id as u128),
                listeners: Vec::new(),
                rack: None,
                previous_broker_epoch,
            },
        );
    }

    fn elr_version(image: &mut MetadataImage, version: i16) {
        next(
            image,
            Command::SetEligibleLeaderReplicas {
                setting: EligibleLeaderReplicas {
                    version,
                    min_insync_replicas: 2,
                },
            },
        );
    }

    /// Brokers 1-3 live; topic `t` with one partition on [1, 2, 3] (leader
    /// 1); ELR at `version` with a cluster-wide min ISR of 2.
    fn image(version: i16, topic_configs: &[(&str, &str)]) -> MetadataImage {
        let mut image = MetadataImage::new("elr-test-000000000000A");
        for id in 1..=3 {
            next(
                &mut image,
                Command::RegisterBroker {
                    broker_id: id,
                    incarnation_id: Uuid::from_u128(id as u128),
                    listeners: Vec::new(),
                    rack: None,
                    previous_broker_epoch: None,
                },
            );
            unfence(&mut image, id);
        }
        elr_version(&mut image, version);
        next(
            &mut image,
            Command::CreateTopic {
                name: "t".into(),
                topic_id: TOPIC_ID,
                configs: topic_configs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                assignments: vec![vec![1, 2, 3]],
            },
        );
        image
    }

    /// [`image`] after brokers 2, 3 and then the leader 1 were fenced, one
    /// after the other.
    fn every_replica_fenced(version: i16) -> MetadataImage {
        let mut image = image(version, &[]);
        for id in [2, 3, 1] {
            fence(&mut image, id);
        }
        image
    }

    fn state(image: &MetadataImage) -> &PartitionState {
        image.partition("t", 0).expect("exists")
    }

    /// (leader epoch, partition epoch)
    fn epochs(image: &MetadataImage) -> (i32, i32) {
        (state(image).leader_epoch, state(image).partition_epoch)
    }

    /// (leader, isr, elr, last known elr)
    fn lists(image: &MetadataImage) -> (i32, Vec<i32>, Vec<i32>, Vec<i32>) {
        let s = state(image);
        (
            s.leader,
            s.isr.clone(),
            s.elr.clone(),
            s.last_known_elr.clone(),
        )
    }

    #[test]
    fn replicas_leaving_an_isr_under_min_isr_become_eligible_and_the_isr_may_empty() {
        let mut image = image(1, &[]);
        fence(&mut image, 2);
        // At min ISR (2 of 2) nothing is eligible: the high watermark moved
        // with both members.
        assert_eq!(lists(&image), (1, vec![1, 3], vec![], vec![]));
        fence(&mut image, 3);
        assert_eq!(lists(&image), (1, vec![1], vec![3], vec![]));
        let before = epochs(&image);
        fence(&mut image, 1);
        // The last member leaves the ISR too: it is eligible, not named,
        // and the last known leader.
        assert_eq!(lists(&image), (-1, vec![], vec![3, 1], vec![1]));
        assert_eq!(epochs(&image), (before.0 + 1, before.1 + 1));
    }

    /// KIP-966: a replica that crashed may have lost records it had not
    /// flushed, so registering without a clean shutdown takes it out of
    /// the ELR; one that stopped cleanly stays eligible and leads.
    #[test]
    fn a_replica_back_from_an_unclean_shutdown_is_no_longer_eligible() {
        let mut image = every_replica_fenced(1);
        assert_eq!(lists(&image), (-1, vec![], vec![3, 1], vec![1]));
        let partition_epoch = state(&image).partition_epoch;
        register(&mut image, 1, Some(-1));
        assert_eq!(lists(&image), (-1, vec![], vec![3], vec![1]));
        assert_eq!(state(&image).partition_epoch, partition_epoch + 1);
        // Unfenced, the crashed replica does not lead.
        unfence(&mut image, 1);
        assert_eq!(lists(&image).0, -1);
        // Broker 3 stopped cleanly at its current epoch: still eligible.
        let clean = epoch(&image, 3);
        register(&mut image, 3, Some(clean));
        assert_eq!(lists(&image).2, vec![3]);
        unfence(&mut image, 3);
        assert_eq!(lists(&image), (3, vec![3], vec![], vec![]));
    }

    /// Kafka's balanced recovery: once every eligible replica came back
    /// from a crash nobody can lead cleanly again, so the last leader (it
    /// holds the most of the log) leads rather than the partition staying
    /// offline for good; while a replica that may return cleanly is still
    /// eligible, it waits.
    #[test]
    fn when_every_eligible_replica_crashed_the_last_known_leader_leads() {
        let mut image = every_replica_fenced(1);
        // The last leader returns first: broker 3 may still return clean.
        register(&mut image, 1, Some(-1));
        unfence(&mut image, 1);
        assert_eq!(lists(&image), (-1, vec![], vec![3], vec![1]));
        let before = epochs(&image);
        // Broker 3 crashed too: the ELR empties and the available last
        // known leader leads at once, alone in the ISR.
        register(&mut image, 3, Some(-1));
        assert_eq!(lists(&image), (1, vec![1], vec![], vec![]));
        assert_eq!(epochs(&image), (before.0 + 1, before.1 + 1));
    }

    #[test]
    fn the_last_known_leader_back_last_leads_when_it_is_unfenced() {
        let mut image = every_replica_fenced(1);
        register(&mut image, 3, Some(-1));
        // Registered but fenced, the last leader cannot lead yet; nor may
        // the crashed replicas that are back.
        register(&mut image, 1, Some(-1));
        unfence(&mut image, 3);
        unfence(&mut image, 2);
        assert_eq!(lists(&image), (-1, vec![], vec![], vec![1]));
        unfence(&mut image, 1);
        assert_eq!(lists(&image), (1, vec![1], vec![], vec![]));
    }

    #[test]
    fn an_eligible_replica_leads_cleanly_when_it_returns_first() {
        let mut image = every_replica_fenced(1);
        // Broker 2 left while the ISR was at min: it may have missed
        // committed records, so it does not lead.
        unfence(&mut image, 2);
        assert_eq!(lists(&image), (-1, vec![], vec![3, 1], vec![1]));
        unfence(&mut image, 3);
        assert_eq!(lists(&image), (3, vec![3], vec![1], vec![]));
        // Once the ISR is back at min ISR the ELR is cleared.
        let partition_epoch = state(&image).partition_epoch;
        next(
            &mut image,
            Command::PartitionChange {
                topic_id: TOPIC_ID,
                partition: 0,
                expected_partition_epoch: partition_epoch,
                leader: None,
                isr: Some(vec![3, 2]),
                isr_broker_epochs: Vec::new(),
            },
        );
        assert_eq!(lists(&image), (3, vec![3, 2], vec![], vec![]));
    }

    #[test]
    fn a_leader_shrinking_the_isr_below_min_isr_fills_the_elr() {
        let mut image = image(1, &[("min.insync.replicas", "3")]);
        next(
            &mut image,
            Command::PartitionChange {
                topic_id: TOPIC_ID,
                partition: 0,
                expected_partition_epoch: 0,
                leader: None,
                isr: Some(vec![1]),
                isr_broker_epochs: Vec::new(),
            },
        );
        // The topic's own min ISR (3) counts, not the cluster's (2).
        assert_eq!(lists(&image), (1, vec![1], vec![2, 3], vec![]));
        // A replica back in the ISR leaves the ELR; still under min ISR, the
        // one that left before stays eligible.
        next(
            &mut image,
            Command::PartitionChange {
                topic_id: TOPIC_ID,
                partition: 0,
                expected_partition_epoch: 1,
                leader: None,
                isr: Some(vec![1, 2]),
                isr_broker_epochs: Vec::new(),
            },
        );
        assert_eq!(lists(&image), (1, vec![1, 2], vec![3], vec![]));
    }

    #[test]
    fn without_the_feature_the_last_isr_member_stays_named_and_alone_may_lead() {
        let mut image = every_replica_fenced(0);
        assert_eq!(lists(&image), (-1, vec![1], vec![], vec![]));
        unfence(&mut image, 3);
        assert_eq!(lists(&image), (-1, vec![1], vec![], vec![]));
    }

    #[test]
    fn an_unclean_election_happens_only_with_no_eligible_replica_and_forgets_the_elr() {
        let mut image = image(1, &[("unclean.leader.election.enable", "true")]);
        fence(&mut image, 2);
        fence(&mut image, 3);
        // Broker 2 returns but is in neither the ISR nor the ELR.
        unfence(&mut image, 2);
        assert_eq!(lists(&image), (1, vec![1], vec![3], vec![]));
        fence(&mut image, 1);
        // ELR members 3 and 1 are fenced: 2 leads uncleanly, alone.
        assert_eq!(lists(&image), (2, vec![2], vec![], vec![]));
    }

    #[test]
    fn changing_the_min_isr_or_turning_the_feature_off_clears_the_elr() {
        let mut image = image(1, &[]);
        fence(&mut image, 2);
        fence(&mut image, 3);
        assert_eq!(lists(&image), (1, vec![1], vec![3], vec![]));
        let before = state(&image).partition_epoch;
        next(
            &mut image,
            Command::AlterConfigs {
                resource: ConfigResource::Topic("t".into()),
                set: BTreeMap::from([("min.insync.replicas".into(), "3".into())]),
                delete: Vec::new(),
            },
        );
        assert_eq!(lists(&image), (1, vec![1], vec![], vec![]));
        assert_eq!(state(&image).partition_epoch, before + 1);
        unfence(&mut image, 2);
        for isr in [vec![1, 2], vec![1]] {
            let partition_epoch = state(&image).partition_epoch;
            next(
                &mut image,
                Command::PartitionChange {
                    topic_id: TOPIC_ID,
                    partition: 0,
                    expected_partition_epoch: partition_epoch,
                    leader: None,
                    isr: Some(isr),
                    isr_broker_epochs: Vec::new(),
                },
            );
        }
        assert_eq!(lists(&image), (1, vec![1], vec![2], vec![]));
        elr_version(&mut image, 0);
        assert_eq!(lists(&image), (1, vec![1], vec![], vec![]));
        assert_eq!(image.strict_min_insync_replicas("t"), None);
    }

    #[test]
    fn a_replica_back_in_the_isr_leaves_the_elr() {
        let mut image = image(1, &[("min.insync.replicas", "3")]);
        fence(&mut image, 3);
        assert_eq!(lists(&image), (1, vec![1, 2], vec![3], vec![]));
        // 3 comes back and rejoins; 2 leaves: 3 was never out under min
        // ISR again, 2 is eligible.
        unfence(&mut image, 3);
        let partition_epoch = state(&image).partition_epoch;
        next(
            &mut image,
            Command::PartitionChange {
                topic_id: TOPIC_ID,
                partition: 0,
                expected_partition_epoch: partition_epoch,
                leader: None,
                isr: Some(vec![1, 3]),
                isr_broker_epochs: Vec::new(),
            },
        );
        assert_eq!(lists(&image), (1, vec![1, 3], vec![2], vec![]));
        assert_eq!(image.strict_min_insync_replicas("t"), Some(3));
    }

    #[test]
    fn an_out_of_range_version_or_min_isr_is_refused() {
        let mut image = image(0, &[]);
        for setting in [
            EligibleLeaderReplicas {
                version: 2,
                min_insync_replicas: 1,
            },
            EligibleLeaderReplicas {
                version: 1,
                min_insync_replicas: 0,
            },
        ] {
            let index = image.last_applied + 1;
            let before = image.clone();
            assert!(
                image
                    .apply(index, &Command::SetEligibleLeaderReplicas { setting })
                    .is_err()
            );
            assert_eq!(image, before);
        }
    }
}
