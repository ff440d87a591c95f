//! What the leader of one partition knows about its replicas, as a pure
//! state machine: each follower's log end offset and when it last caught
//! up, the ISR (committed, and the change proposed to the controller if
//! any), and the high watermark derived from them.
//!
//! Kafka's rules (`Partition.scala`, KIP-841):
//! - the high watermark is the smallest log end offset over the ISR (the
//!   leader included) and never goes back; while an ISR change is in flight
//!   the larger of the two sets counts, so a shrink cannot move it early;
//! - a follower is caught up at a fetch when its fetch offset reaches the
//!   leader's log end as of that fetch, or as of its previous fetch (so a
//!   follower fetching steadily under load is never taken for lagging);
//! - an ISR member not caught up for `replica.lag.time.max.ms` leaves, a
//!   replica whose fetch offset reaches the high watermark joins if the
//!   image lets it (registered under the broker epoch it fetched with, not
//!   fenced, not shutting down); one change is in flight at a time;
//! - every change names each member's broker epoch as its fetches last
//!   stated it (KIP-903), so the controller can refuse a change that adds
//!   a replica restarted since, with less in its log (KAFKA-14139).
//!
//! No clock, no I/O: [`PartitionReplicaState::on_event`] takes the time and
//! returns [`Effect`]s for the shell to carry out.

/// A broker id (Kafka's `replicaId` when it names a replica).
pub type BrokerId = i32;

/// The partition's leadership as the metadata image states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// With eligible leader replicas on (KIP-966), the topic's
    /// `min.insync.replicas`: the high watermark stays put while the ISR is
    /// smaller, so a replica that left the ISR below it holds everything
    /// committed and may lead cleanly.
    pub strict_min_insync_replicas: Option<usize>,
}

/// What an image makes of this broker for one partition it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It leads, with other replicas: the high watermark waits for them.
    Lead(Leadership),
    /// It leads and is the only replica.
    LeadAlone { leader_epoch: i32 },
    /// It follows `leader` (-1: the partition has no leader).
    Follow { leader: BrokerId, leader_epoch: i32 },
}

impl Role {
    /// `strict_min_insync_replicas`: what the image says for the topic
    /// (`MetadataImage::strict_min_insync_replicas`), `None` with ELR off.
    pub fn of(
        state: &crate::cluster::PartitionState,
        local: BrokerId,
        strict_min_insync_replicas: Option<usize>,
    ) -> Self {
        if state.leader != local {
            return Role::Follow {
                leader: state.leader,
                leader_epoch: state.leader_epoch,
            };
        }
        if state.replicas.len() <= 1 {
            return Role::LeadAlone {
                leader_epoch: state.leader_epoch,
            };
        }
        Role::Lead(Leadership {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            replicas: state.replicas.clone(),
            isr: state.isr.clone(),
            strict_min_insync_replicas,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A newer image: same leader, maybe a new ISR or epochs.
    Leadership(Leadership),
    /// The leader's own log grew (a produce was written).
    LeaderAppended { log_end_offset: i64 },
    /// A follower fetched from `fetch_offset`: everything before it is in
    /// its log.
    FollowerFetched {
        fetch: FollowerFetch,
        leader_log_end_offset: i64,
    },
    /// The controller refused (or never answered) the ISR change in flight.
    AlterFailed,
    /// Time passed: check followers' lag.
    Tick,
}

/// One follower's fetch of the partition, as the leader's shell saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub replica: BrokerId,
    /// The broker epoch the fetch stated (Fetch v15 `ReplicaState`); -1
    /// from an older follower.
    pub broker_epoch: i64,
    /// Whether the image lets the replica join the ISR: registered under
    /// that broker epoch, not fenced, not shutting down (Kafka's
    /// `isReplicaIsrEligible`).
    pub isr_eligible: bool,
    pub fetch_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The high watermark moved up to this offset.
    HighWatermark(i64),
    /// Ask the controller for this ISR (AlterPartition), expecting the
    /// partition at `partition_epoch`; `broker_epochs[i]` is `isr[i]`'s
    /// (-1: not known, and for the leader itself).
    AlterIsr {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
        broker_epochs: Vec<i64>,
    },
}

#[derive(Debug, Clone)]
struct Follower {
    id: BrokerId,
    /// -1 until its first fetch under this leader epoch.
    log_end_offset: i64,
    /// As its last fetch stated it (-1: not known).
    broker_epoch: i64,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    last_fetch_leader_log_end_offset: i64,
}

#[derive(Debug, Clone)]
pub struct PartitionReplicaState {
    local: BrokerId,
    leadership: Leadership,
    /// The ISR asked for and not yet in an image.
    pending_isr: Option<Vec<BrokerId>>,
    followers: Vec<Follower>,
    log_end_offset: i64,
    high_watermark: i64,
    /// The log end when this leader epoch began: a replica joins the ISR
    /// only once it has everything up to here, since a new leader's high
    /// watermark may lag what the previous leader had committed (Kafka's
    /// `leaderEpochStartOffset`, KAFKA-7128).
    leader_epoch_start_offset: i64,
    replica_lag_time_max_ms: i64,
}

impl PartitionReplicaState {
    /// This broker (`local`) has just become the leader. Every follower
    /// counts as caught up now, as in Kafka, so none is dropped before it
    /// had `replica.lag.time.max.ms` to fetch from the new leader.
    pub fn become_leader(
        local: BrokerId,
        leadership: Leadership,
        log_end_offset: i64,
        high_watermark: i64,
        replica_lag_time_max_ms: i64,
        now_ms: i64,
    ) -> Self {
        let followers = leadership
            .replicas
            .iter()
            .filter(|id| **id != local)
            .map(|&id| Follower {
                id,
                log_end_offset: -1,
                broker_epoch: -1,
                last_caught_up_ms: now_ms,
                last_fetch_ms: now_ms,
                last_fetch_leader_log_end_offset: -1,
            })
            .collect();
        PartitionReplicaState {
            local,
            leadership,
            pending_isr: None,
            followers,
            log_end_offset,
            high_watermark: high_watermark.min(log_end_offset),
            leader_epoch_start_offset: log_end_offset,
            replica_lag_time_max_ms,
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leadership.leader_epoch
    }

    pub fn isr(&self) -> &[BrokerId] {
        &self.leadership.isr
    }

    /// Whether the ISR change proposed at these epochs is still in flight
    /// (no image settled it, no refusal withdrew it).
    pub fn alter_in_flight(
        &self,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[BrokerId],
    ) -> bool {
        self.leadership.leader_epoch == leader_epoch
            && self.leadership.partition_epoch == partition_epoch
            && self.pending_isr.as_deref() == Some(isr)
    }

    /// How many offsets each follower's log is behind this leader's log
    /// end (all of it until its first fetch under this epoch).
    pub fn follower_lags(&self) -> Vec<(BrokerId, i64)> {
        self.followers
            .iter()
            .map(|f| (f.id, (self.log_end_offset - f.log_end_offset.max(0)).max(0)))
            .collect()
    }

    /// A follower's log end offset as last reported (-1: not yet).
    pub fn follower_log_end_offset(&self, replica: BrokerId) -> Option<i64> {
        self.followers
            .iter()
            .find(|f| f.id == replica)
            .map(|f| f.log_end_offset)
    }

    pub fn on_event(&mut self, event: Event, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::Leadership(leadership) => self.on_leadership(leadership, now_ms),
            Event::LeaderAppended { log_end_offset } => {
                self.log_end_offset = self.log_end_offset.max(log_end_offset);
            }
            Event::FollowerFetched {
                fetch,
                leader_log_end_offset,
            } => {
                self.log_end_offset = self.log_end_offset.max(leader_log_end_offset);
                self.on_follower_fetch(fetch, now_ms);
                if fetch.isr_eligible
                    && let Some(alter) = self.maybe_expand(fetch.replica)
                {
                    effects.push(alter);
                }
            }
            Event::AlterFailed => self.pending_isr = None,
            Event::Tick => {
                if let Some(alter) = self.maybe_shrink(now_ms) {
                    effects.push(alter);
                }
            }
        }
        if let Some(moved) = self.advance_high_watermark() {
            effects.push(moved);
        }
        effects
    }

    fn on_leadership(&mut self, leadership: Leadership, now_ms: i64) {
        if leadership.leader_epoch != self.leadership.leader_epoch {
            *self = Self::become_leader(
                self.local,
                leadership,
                self.log_end_offset,
                self.high_watermark,
                self.replica_lag_time_max_ms,
                now_ms,
            );
            return;
        }
        // Any newer partition epoch settles the change in flight: it was
        // applied, or another change won and ours was stale.
        if leadership.partition_epoch != self.leadership.partition_epoch {
            self.pending_isr = None;
        }
        for id in &leadership.replicas {
            if *id != self.local && !self.followers.iter().any(|f| f.id == *id) {
                self.followers.push(Follower {
                    id: *id,
                    log_end_offset: -1,
                    broker_epoch: -1,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    last_fetch_leader_log_end_offset: -1,
                });
            }
        }
        self.leadership = leadership;
    }

    fn on_follower_fetch(&mut self, fetch: FollowerFetch, now_ms: i64) {
        let FollowerFetch {
            replica,
            broker_epoch,
            fetch_offset,
            ..
        } = fetch;
        let leader_log_end = self.log_end_offset;
        let Some(follower) = self.followers.iter_mut().find(|f| f.id == replica) else {
            return;
        };
        follower.broker_epoch = broker_epoch;
        if fetch_offset >= leader_log_end {
            follower.last_caught_up_ms = now_ms;
        } else if fetch_offset >= follower.last_fetch_leader_log_end_offset
            && follower.last_fetch_leader_log_end_offset >= 0
        {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end_offset = fetch_offset;
        follower.last_fetch_ms = now_ms;
        follower.last_fetch_leader_log_end_offset = leader_log_end;
    }

    /// A replica outside the ISR that reached the high watermark (and the
    /// start of this leader epoch) joins.
    fn maybe_expand(&mut self, replica: BrokerId) -> Option<Effect> {
        if self.pending_isr.is_some() || self.leadership.isr.contains(&replica) {
            return None;
        }
        let follower = self.followers.iter().find(|f| f.id == replica)?;
        if follower.log_end_offset < self.high_watermark.max(self.leader_epoch_start_offset) {
            return None;
        }
        let mut isr = self.leadership.isr.clone();
        isr.push(replica);
        Some(self.propose(isr))
    }

    /// ISR members that have not caught up within the lag limit leave.
    fn maybe_shrink(&mut self, now_ms: i64) -> Option<Effect> {
        if self.pending_isr.is_some() {
            return None;
        }
        let lagging = |id: &BrokerId| {
            self.followers
                .iter()
                .any(|f| f.id == *id && now_ms - f.last_caught_up_ms > self.replica_lag_time_max_ms)
        };
        if !self.leadership.isr.iter().any(lagging) {
            return None;
        }
        let isr: Vec<BrokerId> = self
            .leadership
            .isr
            .iter()
            .copied()
            .filter(|id| *id == self.local || !lagging(id))
            .collect();
        Some(self.propose(isr))
    }

    fn propose(&mut self, isr: Vec<BrokerId>) -> Effect {
        self.pending_isr = Some(isr.clone());
        let broker_epochs = isr
            .iter()
            .map(|id| {
                self.followers
                    .iter()
                    .find(|f| f.id == *id)
                    .map_or(-1, |f| f.broker_epoch)
            })
            .collect();
        Effect::AlterIsr {
            leader_epoch: self.leadership.leader_epoch,
            partition_epoch: self.leadership.partition_epoch,
            isr,
            broker_epochs,
        }
    }

    /// The smallest log end offset over the ISR and the ISR in flight.
    fn advance_high_watermark(&mut self) -> Option<Effect> {
        if high_watermark_ignores_isr() {
            return (self.log_end_offset > self.high_watermark).then(|| {
                self.high_watermark = self.log_end_offset;
                Effect::HighWatermark(self.log_end_offset)
            });
        }
        if self
            .leadership
            .strict_min_insync_replicas
            .is_some_and(|min| self.leadership.isr.len() < min)
        {
            return None;
        }
        let members = self
            .leadership
            .isr
            .iter()
            .chain(self.pending_isr.iter().flatten());
        let mut candidate = self.log_end_offset;
        for id in members {
            if *id == self.local {
                continue;
            }
            let follower_end = self
                .followers
                .iter()
                .find(|f| f.id == *id)
                .map_or(-1, |f| f.log_end_offset);
            candidate = candidate.min(follower_end);
        }
        (candidate > self.high_watermark).then(|| {
            self.high_watermark = candidate;
            Effect::HighWatermark(candidate)
        })
    }
}

/// The deliberately broken build the fault checker is tested against
/// (`tests/chaos/test_broken_build.py`): in a debug build,
/// `GREGOR_DEBUG_BREAK_HIGH_WATERMARK=1` advances the high watermark to the
/// leader's log end without waiting for the ISR, so `acks=all` is answered
/// before any follower has the batch. A release build cannot be broken so.
/// Unit tests break it per thread instead ([`break_high_watermark_here`]),
/// so the replication simulation's self-test cannot leak into other tests.
#[cfg(debug_assertions)]
fn high_watermark_ignores_isr() -> bool {
    static BROKEN: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        std::env::var_os("GREGOR_DEBUG_BREAK_HIGH_WATERMARK").is_some_and(|v| v == "1")
    });
    *BROKEN || broken_here()
}

#[cfg(not(debug_assertions))]
const fn high_watermark_ignores_isr() -> bool {
    false
}

#[cfg(test)]
thread_local! {
    static BROKEN_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(all(test, debug_assertions))]
fn broken_here() -> bool {
    BROKEN_HERE.with(std::cell::Cell::get)
}

#[cfg(all(not(test), debug_assertions))]
const fn broken_here() -> bool {
    false
}

/// Tests only: on this thread, the high watermark follows the leader's
/// log end, ignoring the ISR (the broken build).
#[cfg(test)]
pub fn break_high_watermark_here(broken: bool) {
    BROKEN_HERE.with(|cell| cell.set(broken));
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: i64 = 30_000;

    fn leadership(isr: &[BrokerId]) -> Leadership {
        Leadership {
            leader_epoch: 3,
            partition_epoch: 7,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            strict_min_insync_replicas: None,
        }
    }

    fn leader(isr: &[BrokerId], log_end_offset: i64) -> PartitionReplicaState {
        PartitionReplicaState::become_leader(1, leadership(isr), log_end_offset, 0, LAG_MS, 0)
    }

    /// Follower `replica` (broker epoch `100 + replica`, eligible) fetched.
    fn fetched(replica: BrokerId, fetch_offset: i64, leader_end: i64) -> Event {
        Event::FollowerFetched {
            fetch: FollowerFetch {
                replica,
                broker_epoch: 100 + i64::from(replica),
                isr_eligible: true,
                fetch_offset,
            },
            leader_log_end_offset: leader_end,
        }
    }

    #[test]
    fn with_strict_min_isr_the_high_watermark_waits_for_a_big_enough_isr() {
        let mut under = leadership(&[1, 2]);
        under.strict_min_insync_replicas = Some(3);
        let mut state = PartitionReplicaState::become_leader(1, under, 10, 0, LAG_MS, 0);
        // Both ISR members have everything, but two are fewer than three.
        assert_eq!(state.on_event(fetched(2, 10, 10), 1), vec![]);
        assert_eq!(state.high_watermark(), 0);
        // Replica 3 catches up to the high watermark and is proposed.
        let effects = state.on_event(fetched(3, 10, 10), 2);
        assert!(matches!(effects.as_slice(), [Effect::AlterIsr { .. }]));
        let mut at_min = leadership(&[1, 2, 3]);
        at_min.strict_min_insync_replicas = Some(3);
        assert_eq!(
            state.on_event(Event::Leadership(at_min), 3),
            vec![Effect::HighWatermark(10)]
        );
    }

    #[test]
    fn follower_lag_is_how_far_each_log_is_behind_the_leaders_end() {
        let mut state = leader(&[1, 2, 3], 10);
        // Before its first fetch a follower lacks everything.
        assert_eq!(state.follower_lags(), vec![(2, 10), (3, 10)]);
        state.on_event(fetched(2, 10, 10), 1);
        state.on_event(fetched(3, 4, 10), 1);
        assert_eq!(state.follower_lags(), vec![(2, 0), (3, 6)]);
    }

    #[test]
    fn high_watermark_is_the_smallest_log_end_offset_of_the_isr() {
        let mut state = leader(&[1, 2, 3], 10);
        assert_eq!(state.on_event(fetched(2, 10, 10), 1), vec![]);
        assert_eq!(
            state.on_event(fetched(3, 6, 10), 1),
            vec![Effect::HighWatermark(6)]
        );
        assert_eq!(
            state.on_event(fetched(3, 10, 10), 2),
            vec![Effect::HighWatermark(10)]
        );
        // A leader append alone does not commit anything with followers.
        assert_eq!(
            state.on_event(Event::LeaderAppended { log_end_offset: 15 }, 3),
            vec![]
        );
        assert_eq!(state.high_watermark(), 10);
    }

    #[test]
    fn a_leader_alone_in_the_isr_commits_on_its_own_write() {
        let mut state = leader(&[1], 0);
        assert_eq!(
            state.on_event(Event::LeaderAppended { log_end_offset: 4 }, 1),
            vec![Effect::HighWatermark(4)]
        );
    }

    #[test]
    fn high_watermark_never_goes_back() {
        let mut state = leader(&[1, 2], 10);
        state.on_event(fetched(2, 8, 10), 1);
        assert_eq!(state.high_watermark(), 8);
        // A follower restarted with less (or reporting an older offset).
        assert_eq!(state.on_event(fetched(2, 3, 10), 2), vec![]);
        assert_eq!(state.high_watermark(), 8);
    }

    #[test]
    fn a_follower_that_stops_fetching_leaves_the_isr_after_the_lag_limit() {
        let mut state = leader(&[1, 2, 3], 10);
        state.on_event(fetched(2, 10, 10), 1_000);
        state.on_event(fetched(3, 10, 10), 1_000);
        assert_eq!(state.on_event(Event::Tick, LAG_MS), vec![]);
        // Broker 3 goes quiet; broker 2 keeps fetching.
        state.on_event(fetched(2, 10, 10), LAG_MS);
        let effects = state.on_event(Event::Tick, LAG_MS + 1_001);
        assert_eq!(
            effects,
            vec![Effect::AlterIsr {
                leader_epoch: 3,
                partition_epoch: 7,
                isr: vec![1, 2],
                broker_epochs: vec![-1, 102],
            }]
        );
        // One change in flight at a time.
        assert_eq!(state.on_event(Event::Tick, LAG_MS + 2_000), vec![]);
    }

    #[test]
    fn a_follower_fetching_steadily_behind_a_busy_leader_stays_in_sync() {
        let mut state = leader(&[1, 2], 0);
        let mut leader_end = 0;
        for step in 1..100 {
            let now = step * 1_000;
            // Every fetch asks for what the leader had at the previous one,
            // while the leader has appended more meanwhile.
            let fetch_offset = leader_end;
            leader_end += 5;
            state.on_event(
                Event::LeaderAppended {
                    log_end_offset: leader_end,
                },
                now,
            );
            state.on_event(fetched(2, fetch_offset, leader_end), now);
            assert_eq!(state.on_event(Event::Tick, now), vec![], "at {now}");
        }
    }

    #[test]
    fn a_replica_that_reaches_the_high_watermark_joins_the_isr() {
        let mut state = leader(&[1, 2], 20);
        state.on_event(fetched(2, 20, 20), 1);
        assert_eq!(state.high_watermark(), 20);
        assert_eq!(state.on_event(fetched(3, 12, 20), 2), vec![]);
        assert_eq!(
            state.on_event(fetched(3, 20, 20), 3),
            vec![Effect::AlterIsr {
                leader_epoch: 3,
                partition_epoch: 7,
                isr: vec![1, 2, 3],
                broker_epochs: vec![-1, 102, 103],
            }]
        );
        // The image with the new ISR settles the change.
        let mut joined = leadership(&[1, 2, 3]);
        joined.partition_epoch = 8;
        assert_eq!(state.on_event(Event::Leadership(joined), 4), vec![]);
        assert_eq!(state.isr(), &[1, 2, 3]);
    }

    #[test]
    fn a_replica_joins_only_once_it_reaches_the_start_of_the_leader_epoch() {
        // A new leader whose high watermark (10) lags its log end (20):
        // the records between may have been committed by its predecessor.
        let mut state =
            PartitionReplicaState::become_leader(1, leadership(&[1, 2]), 20, 10, LAG_MS, 0);
        assert_eq!(state.on_event(fetched(3, 15, 20), 1), vec![]);
        assert!(matches!(
            state.on_event(fetched(3, 20, 20), 2)[..],
            [Effect::AlterIsr { .. }]
        ));
    }

    #[test]
    fn a_replica_the_image_finds_ineligible_does_not_join() {
        let mut state = leader(&[1, 2], 20);
        state.on_event(fetched(2, 20, 20), 1);
        let Event::FollowerFetched { mut fetch, .. } = fetched(3, 20, 20) else {
            unreachable!()
        };
        fetch.isr_eligible = false;
        let event = Event::FollowerFetched {
            fetch,
            leader_log_end_offset: 20,
        };
        assert_eq!(state.on_event(event, 2), vec![]);
        assert!(!state.on_event(fetched(3, 20, 20), 3).is_empty());
    }

    #[test]
    fn a_refused_change_can_be_proposed_again() {
        let mut state = leader(&[1, 2], 20);
        state.on_event(fetched(2, 20, 20), 1);
        assert!(!state.on_event(fetched(3, 20, 20), 2).is_empty());
        assert_eq!(state.on_event(fetched(3, 20, 20), 3), vec![]);
        state.on_event(Event::AlterFailed, 4);
        assert!(!state.on_event(fetched(3, 20, 20), 5).is_empty());
    }

    #[test]
    fn while_a_shrink_is_in_flight_the_leaving_member_still_holds_the_high_watermark() {
        let mut state = leader(&[1, 2, 3], 10);
        state.on_event(fetched(2, 10, 10), LAG_MS);
        state.on_event(fetched(3, 4, 10), 0);
        assert_eq!(state.high_watermark(), 4);
        let effects = state.on_event(Event::Tick, LAG_MS + 1);
        assert!(matches!(effects[..], [Effect::AlterIsr { .. }]));
        assert_eq!(state.high_watermark(), 4);
        let mut shrunk = leadership(&[1, 2]);
        shrunk.partition_epoch = 8;
        assert_eq!(
            state.on_event(Event::Leadership(shrunk), LAG_MS + 2),
            vec![Effect::HighWatermark(10)]
        );
    }

    #[test]
    fn a_new_leader_epoch_starts_followers_afresh() {
        let mut state = leader(&[1, 2], 10);
        state.on_event(fetched(2, 10, 10), 1);
        let mut next = leadership(&[1, 2]);
        next.leader_epoch = 4;
        next.partition_epoch = 9;
        state.on_event(Event::Leadership(next), 2);
        assert_eq!(state.follower_log_end_offset(2), Some(-1));
        assert_eq!(state.leader_epoch(), 4);
        assert_eq!(state.high_watermark(), 10);
    }
}
