//! Kafka's replica placement (`AdminUtils.assignReplicasToBrokers`): the
//! first replica of partition `p` on broker `(start_index + p) mod n`, the
//! others spread by a shift that grows every `n` partitions, so that leaders
//! and followers both go round the brokers. With racks, the broker list is
//! first rearranged to alternate racks, and followers skip a rack (or broker)
//! already holding a replica while another has none.
//!
//! Pure: the proposer draws the random [`PlacementStart`] and the command
//! carries the resulting replica lists, so applying stays deterministic.

use std::collections::{BTreeMap, BTreeSet};

/// A broker that may take replicas, as placement needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// Where the round-robin starts: Kafka draws both at random for a new
/// topic, so that topics' leaders do not all pile on the first broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementStart {
    /// Index (in the arranged broker list) of partition 0's first replica.
    pub start_index: usize,
    /// Offset of the followers from the first replica.
    pub replica_shift: usize,
}

impl PlacementStart {
    /// Both drawn at random below `brokers` (Kafka's `rand.nextInt`).
    pub fn random(brokers: usize) -> Self {
        let draw = || {
            let n = u32::try_from(brokers.max(1)).unwrap_or(u32::MAX);
            // Falls back to 0 (a fixed start) if the OS has no randomness.
            usize::try_from(getrandom::u32().unwrap_or(0) % n).unwrap_or(0)
        };
        Self {
            start_index: draw(),
            replica_shift: draw(),
        }
    }

    /// A fixed start, as `fixedStartIndex` gives both values in Kafka.
    pub fn fixed(index: usize) -> Self {
        Self {
            start_index: index,
            replica_shift: index,
        }
    }
}

/// Replica lists for partitions `first_partition..first_partition + count`,
/// `replication_factor` each, first replica the preferred leader. The
/// caller checks `1 <= replication_factor <= candidates.len()`.
///
/// Rack-aware when any candidate has a rack; candidates without one share
/// one unnamed rack (as in KRaft's placer, rather than refusing).
pub fn assign_replicas(
    candidates: &[Candidate],
    count: usize,
    replication_factor: usize,
    start: PlacementStart,
    first_partition: usize,
) -> Vec<Vec<i32>> {
    if candidates.is_empty() {
        return Vec::new();
    }
    if candidates.iter().all(|c| c.rack.is_none()) {
        let mut ids: Vec<i32> = candidates.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        return rack_unaware(&ids, count, replication_factor, start, first_partition);
    }
    rack_aware(
        candidates,
        count,
        replication_factor,
        start,
        first_partition,
    )
}

fn rack_unaware(
    brokers: &[i32],
    count: usize,
    replication_factor: usize,
    start: PlacementStart,
    first_partition: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    let start_index = start.start_index % n;
    let mut shift = start.replica_shift;
    (first_partition..first_partition + count)
        .map(|partition| {
            if partition > 0 && partition % n == 0 {
                shift += 1;
            }
            let first = (partition + start_index) % n;
            let mut replicas = vec![brokers[first]];
            replicas.extend(
                (0..replication_factor.saturating_sub(1))
                    .map(|j| brokers[replica_index(first, shift, j, n)]),
            );
            replicas
        })
        .collect()
}

fn rack_aware(
    candidates: &[Candidate],
    count: usize,
    replication_factor: usize,
    start: PlacementStart,
    first_partition: usize,
) -> Vec<Vec<i32>> {
    let rack_of: BTreeMap<i32, &str> = candidates
        .iter()
        .map(|c| (c.id, c.rack.as_deref().unwrap_or("")))
        .collect();
    let arranged = rack_alternated(&rack_of);
    let n = arranged.len();
    let rack_count = rack_of.values().collect::<BTreeSet<_>>().len();
    let start_index = start.start_index % n;
    let mut shift = start.replica_shift;
    (first_partition..first_partition + count)
        .map(|partition| {
            if partition > 0 && partition % n == 0 {
                shift += 1;
            }
            let first = (partition + start_index) % n;
            let leader = arranged[first];
            let mut replicas = vec![leader];
            let mut racks_used = BTreeSet::from([rack_of[&leader]]);
            let mut k = 0;
            for _ in 1..replication_factor {
                // Terminates: once every rack and broker has a replica,
                // any broker not yet holding one is taken.
                loop {
                    let broker = arranged[replica_index(first, shift * rack_count, k, n)];
                    k += 1;
                    let rack = rack_of[&broker];
                    let rack_ok = !racks_used.contains(rack) || racks_used.len() == rack_count;
                    if rack_ok && !replicas.contains(&broker) {
                        replicas.push(broker);
                        racks_used.insert(rack);
                        break;
                    }
                }
            }
            replicas
        })
        .collect()
}

/// Kafka's `replicaIndex`: the `j`-th follower of the replica at `first`.
fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let step = 1 + (shift + j) % (n - 1);
    (first + step) % n
}

/// Kafka's `getRackAlternatedBrokerList`: racks in name order, each rack's
/// brokers in id order, taking one broker from each rack in turn.
pub fn rack_alternated(rack_of: &BTreeMap<i32, &str>) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, std::vec::IntoIter<i32>> = BTreeMap::new();
    let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in rack_of {
        grouped.entry(rack).or_default().push(*id);
    }
    for (rack, ids) in grouped {
        by_rack.insert(rack, ids.into_iter());
    }
    let mut arranged = Vec::with_capacity(rack_of.len());
    while arranged.len() < rack_of.len() {
        for ids in by_rack.values_mut() {
            if let Some(id) = ids.next() {
                arranged.push(id);
            }
        }
    }
    arranged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unracked(ids: &[i32]) -> Vec<Candidate> {
        ids.iter().map(|&id| Candidate { id, rack: None }).collect()
    }

    fn racked(pairs: &[(i32, &str)]) -> Vec<Candidate> {
        pairs
            .iter()
            .map(|&(id, rack)| Candidate {
                id,
                rack: Some(rack.to_owned()),
            })
            .collect()
    }

    /// Kafka's `AdminTest.testReplicaAssignment`: 5 brokers, 10
    /// partitions, 3 replicas, fixed start 0.
    #[test]
    fn rack_unaware_placement_matches_kafkas() {
        let placed = assign_replicas(
            &unracked(&[4, 2, 0, 3, 1]),
            10,
            3,
            PlacementStart::fixed(0),
            0,
        );
        let expected = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(placed, expected);
    }

    /// Kafka's `AdminRackAwareTest.testGetRackAlternatedBrokerListAndAssignReplicasToBrokers`.
    #[test]
    fn rack_aware_placement_alternates_racks_like_kafka() {
        let brokers = racked(&[
            (0, "rack1"),
            (1, "rack3"),
            (2, "rack3"),
            (3, "rack2"),
            (4, "rack2"),
            (5, "rack1"),
        ]);
        let rack_of: BTreeMap<i32, &str> = brokers
            .iter()
            .map(|c| (c.id, c.rack.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(rack_alternated(&rack_of), vec![0, 3, 1, 5, 4, 2]);
        let placed = assign_replicas(&brokers, 7, 3, PlacementStart::fixed(0), 0);
        let expected = vec![
            vec![0, 3, 1],
            vec![3, 1, 5],
            vec![1, 5, 4],
            vec![5, 4, 2],
            vec![4, 2, 0],
            vec![2, 0, 3],
            vec![0, 4, 2],
        ];
        assert_eq!(placed, expected);
    }

    #[test]
    fn every_partition_has_one_replica_per_rack_when_racks_suffice() {
        let brokers = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        for start in 0..6 {
            let start = PlacementStart {
                start_index: start,
                replica_shift: 5 - start,
            };
            for replicas in assign_replicas(&brokers, 12, 3, start, 0) {
                let racks: BTreeSet<_> = replicas
                    .iter()
                    .map(|id| {
                        brokers
                            .iter()
                            .find(|b| b.id == *id)
                            .and_then(|b| b.rack.clone())
                    })
                    .collect();
                assert_eq!(racks.len(), 3, "{replicas:?}");
            }
        }
    }

    #[test]
    fn leaders_go_round_every_broker_from_the_start_index() {
        let placed = assign_replicas(&unracked(&[1, 2, 3]), 6, 1, PlacementStart::fixed(2), 0);
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![3, 1, 2, 3, 1, 2]);
    }

    #[test]
    fn a_random_start_stays_below_the_broker_count() {
        for _ in 0..100 {
            let start = PlacementStart::random(3);
            assert!(start.start_index < 3 && start.replica_shift < 3);
        }
    }
}
