//! The replication side of one hosted partition: its high watermark, and
//! while this broker leads it with other replicas, the
//! [`PartitionReplicaState`] that moves it.
//!
//! A partition whose only replica is this broker never takes the lock:
//! its high watermark follows the leader's writes with one atomic store,
//! so single-replica topics keep today's produce path.
//!
//! The high watermark is checkpointed in the partition's directory
//! (`high-watermark`; Kafka keeps one `replication-offset-checkpoint` per
//! log directory), so a restarted replica knows how much of its log was
//! committed: nothing below it is ever truncated. Where a follower's log
//! diverges above it is the leader's to say (`diverging_epoch`, see the
//! fetcher); only a log without leader epochs is still cut back to it
//! before following a new leader (Kafka's rule before KIP-101).

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use super::state::{BrokerId, Effect, Event, FollowerFetch, Leadership, PartitionReplicaState};

/// An ISR change for the controller (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterIsr {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<BrokerId>,
    /// Each member's broker epoch, as in [`Effect::AlterIsr`].
    pub broker_epochs: Vec<i64>,
}

/// What a leader does once an AlterPartition round trip ends (Kafka's
/// `Partition.handleAlterPartitionError` and the AlterPartition manager's
/// retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterSettlement {
    /// Accepted, or refused because the partition moved on
    /// (INVALID_UPDATE_VERSION, FENCED_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION):
    /// the change stays in flight until an image settles it. Reverting to
    /// the ISR this leader knows could let the high watermark follow an ISR
    /// smaller than the controller's, when the refusal only says that an
    /// earlier copy of this very change was applied.
    AwaitImage,
    /// Refused and certainly not applied (INELIGIBLE_REPLICA,
    /// OPERATION_NOT_ATTEMPTED, ...): the change is withdrawn and may be
    /// decided again.
    Withdraw,
    /// No answer: the controller may or may not have applied it, so the
    /// change stays in flight and is sent again, as Kafka's AlterPartition
    /// manager does. Withdrawing it instead let a leader commit alone what
    /// a member the controller had added lacked (simulation seed 2503).
    /// Sending again is safe because each member carries its broker epoch:
    /// a late copy adding a replica that restarted since, with less, is
    /// refused (INELIGIBLE_REPLICA; KIP-903, KAFKA-14139; seeds 4026, 2290
    /// and 2421 caught that before broker epochs).
    Unanswered,
}

impl AlterSettlement {
    /// `refusal`: `Ok` when accepted, `Err(Some(code))` when refused with
    /// `code`, `Err(None)` when no answer came (timeout, transport error).
    pub fn of(refusal: Result<(), Option<crate::cluster::KafkaCode>>) -> Self {
        use crate::cluster::KafkaCode;
        match refusal {
            Ok(()) => AlterSettlement::AwaitImage,
            Err(None) => AlterSettlement::Unanswered,
            Err(Some(
                KafkaCode::INVALID_UPDATE_VERSION
                | KafkaCode::FENCED_LEADER_EPOCH
                | KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
            )) => AlterSettlement::AwaitImage,
            Err(Some(_)) => AlterSettlement::Withdraw,
        }
    }
}

/// The checkpoint file in a partition's directory.
const CHECKPOINT_FILE: &str = "high-watermark";

#[derive(Debug)]
pub struct Replication {
    high_watermark: AtomicI64,
    /// The value last written to the checkpoint.
    checkpointed: AtomicI64,
    /// The leader epoch this broker last truncated for as a follower.
    truncated_for_epoch: AtomicI32,
    /// This broker leads with other replicas: the high watermark waits for
    /// the followers' fetches.
    tracking: AtomicBool,
    leader: Mutex<Option<PartitionReplicaState>>,
    /// The high watermark the followed leader last answered with (-1:
    /// none since this broker began following): the replica's lag.
    leader_high_watermark: AtomicI64,
}

/// What a follower's fetch changed on the leader.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FetchOutcome {
    pub high_watermark_moved: bool,
    pub alter: Option<AlterIsr>,
}

impl Replication {
    /// A partition just opened: until an image says otherwise it is taken
    /// as its only replica, so everything in the log counts as committed.
    pub fn new(log_end_offset: i64) -> Self {
        Replication {
            high_watermark: AtomicI64::new(log_end_offset),
            checkpointed: AtomicI64::new(-1),
            truncated_for_epoch: AtomicI32::new(-1),
            tracking: AtomicBool::new(false),
            leader: Mutex::new(None),
            leader_high_watermark: AtomicI64::new(-1),
        }
    }

    /// [`new`](Self::new) with the high watermark checkpointed in `dir`,
    /// if any (a log without one was never replicated: all of it counts).
    /// A new, empty log gets its checkpoint (0) at once: a replica that
    /// crashes before the first periodic checkpoint must not take the
    /// uncommitted batches it then holds for committed. Blocking.
    pub fn open(dir: &Path, log_end_offset: i64) -> Self {
        let path = dir.join(CHECKPOINT_FILE);
        let mut checkpointed = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .filter(|offset| *offset >= 0);
        if checkpointed.is_none() && log_end_offset == 0 && std::fs::write(&path, "0\n").is_ok() {
            checkpointed = Some(0);
        }
        let replication = Self::new(checkpointed.map_or(log_end_offset, |c| c.min(log_end_offset)));
        if let Some(offset) = checkpointed {
            replication.checkpointed.store(offset, Ordering::Release);
        }
        replication
    }

    /// Writes the high watermark to `dir` if it moved since the last time.
    /// Blocking; not fsynced (a lost update only makes a follower fetch
    /// again what it had).
    pub fn checkpoint(&self, dir: &Path) {
        let high_watermark = self.high_watermark();
        if self.checkpointed.load(Ordering::Acquire) == high_watermark {
            return;
        }
        let staged = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let written = std::fs::write(&staged, format!("{high_watermark}\n"))
            .and_then(|()| std::fs::rename(&staged, dir.join(CHECKPOINT_FILE)));
        match written {
            Ok(()) => self.checkpointed.store(high_watermark, Ordering::Release),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "could not checkpoint the high watermark")
            }
        }
    }

    /// Whether a follower has yet to take up `leader_epoch` (a log without
    /// leader epochs is then cut back to the high watermark).
    pub fn needs_truncation(&self, leader_epoch: i32) -> bool {
        self.truncated_for_epoch.load(Ordering::Acquire) != leader_epoch
    }

    /// The follower cut its log back to `log_end_offset` for `leader_epoch`.
    pub fn truncated(&self, leader_epoch: i32, log_end_offset: i64) {
        self.high_watermark
            .fetch_min(log_end_offset, Ordering::AcqRel);
        self.truncated_for_epoch
            .store(leader_epoch, Ordering::Release);
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Whether acknowledgements with `acks=all` wait for followers.
    pub fn waits_for_followers(&self) -> bool {
        self.tracking.load(Ordering::Acquire)
    }

    /// The ISR's size while leading with followers.
    pub fn isr_len(&self) -> Option<usize> {
        self.lock().as_ref().map(|state| state.isr().len())
    }

    /// While leading with followers: how many offsets each follower's log
    /// is behind the leader's.
    pub fn follower_lags(&self) -> Vec<(BrokerId, i64)> {
        self.lock()
            .as_ref()
            .map_or_else(Vec::new, PartitionReplicaState::follower_lags)
    }

    /// While following: how many offsets this replica's log is behind the
    /// high watermark the leader last answered with (Kafka's fetcher
    /// `ConsumerLag`); none before the first answer.
    pub fn fetcher_lag(&self, log_end_offset: i64) -> Option<i64> {
        let leader = self.leader_high_watermark.load(Ordering::Acquire);
        (leader >= 0).then(|| (leader - log_end_offset).max(0))
    }

    /// The leader epoch while leading with followers.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.lock()
            .as_ref()
            .map(PartitionReplicaState::leader_epoch)
    }

    /// After the leader wrote a produce; returns whether the high
    /// watermark moved.
    pub fn leader_appended(&self, log_end_offset: i64, now_ms: i64) -> bool {
        if !self.waits_for_followers() {
            self.high_watermark.store(log_end_offset, Ordering::Release);
            return true;
        }
        let event = Event::LeaderAppended { log_end_offset };
        self.apply(event, now_ms).0
    }

    /// A follower fetched.
    pub fn follower_fetched(
        &self,
        fetch: FollowerFetch,
        leader_log_end_offset: i64,
        now_ms: i64,
    ) -> FetchOutcome {
        if !self.waits_for_followers() {
            return FetchOutcome::default();
        }
        let event = Event::FollowerFetched {
            fetch,
            leader_log_end_offset,
        };
        let (high_watermark_moved, alter) = self.apply(event, now_ms);
        FetchOutcome {
            high_watermark_moved,
            alter,
        }
    }

    /// The periodic lag check: an ISR shrink to propose, if any.
    pub fn tick(&self, now_ms: i64) -> (bool, Option<AlterIsr>) {
        self.apply(Event::Tick, now_ms)
    }

    /// The controller refused the ISR change in flight and certainly did
    /// not apply it (see [`AlterSettlement::Withdraw`]), or it never left.
    pub fn alter_failed(&self, now_ms: i64) {
        self.apply(Event::AlterFailed, now_ms);
    }

    /// Whether `alter` is still this leader's ISR change in flight (a
    /// later one may have replaced it).
    pub fn alter_in_flight(&self, alter: &AlterIsr) -> bool {
        self.lock().as_ref().is_some_and(|state| {
            state.alter_in_flight(alter.leader_epoch, alter.partition_epoch, &alter.isr)
        })
    }

    /// This broker leads, with other replicas; a newer image of the same
    /// leadership updates the ISR and epochs. Returns whether the high
    /// watermark moved.
    pub fn lead(
        &self,
        local: BrokerId,
        leadership: Leadership,
        log_end_offset: i64,
        replica_lag_time_max_ms: i64,
        now_ms: i64,
    ) -> bool {
        let mut guard = self.lock();
        let effects = match guard.as_mut() {
            Some(state) => state.on_event(Event::Leadership(leadership), now_ms),
            None => {
                let state = guard.insert(PartitionReplicaState::become_leader(
                    local,
                    leadership,
                    log_end_offset,
                    self.high_watermark(),
                    replica_lag_time_max_ms,
                    now_ms,
                ));
                state.on_event(Event::LeaderAppended { log_end_offset }, now_ms)
            }
        };
        self.tracking.store(true, Ordering::Release);
        self.apply_effects(effects).0
    }

    /// This broker leads and is the only replica.
    pub fn lead_alone(&self, log_end_offset: i64) {
        *self.lock() = None;
        self.tracking.store(false, Ordering::Release);
        self.high_watermark
            .fetch_max(log_end_offset, Ordering::AcqRel);
    }

    /// This broker follows (or the partition has no leader).
    pub fn follow(&self) {
        *self.lock() = None;
        self.leader_high_watermark.store(-1, Ordering::Release);
        self.tracking.store(false, Ordering::Release);
    }

    /// A follower learns the high watermark from the leader's answers; it
    /// can be no higher than what the follower's own log holds.
    pub fn follower_high_watermark(&self, leader_high_watermark: i64, log_end_offset: i64) {
        self.leader_high_watermark
            .store(leader_high_watermark, Ordering::Release);
        let high_watermark = leader_high_watermark.min(log_end_offset);
        self.high_watermark
            .fetch_max(high_watermark, Ordering::AcqRel);
    }

    fn apply(&self, event: Event, now_ms: i64) -> (bool, Option<AlterIsr>) {
        let mut guard = self.lock();
        let Some(state) = guard.as_mut() else {
            return (false, None);
        };
        let effects = state.on_event(event, now_ms);
        self.apply_effects(effects)
    }

    fn apply_effects(&self, effects: Vec<Effect>) -> (bool, Option<AlterIsr>) {
        let mut moved = false;
        let mut alter = None;
        for effect in effects {
            match effect {
                Effect::HighWatermark(offset) => {
                    self.high_watermark.fetch_max(offset, Ordering::AcqRel);
                    moved = true;
                }
                Effect::AlterIsr {
                    leader_epoch,
                    partition_epoch,
                    isr,
                    broker_epochs,
                } => {
                    alter = Some(AlterIsr {
                        leader_epoch,
                        partition_epoch,
                        isr,
                        broker_epochs,
                    })
                }
            }
        }
        (moved, alter)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<PartitionReplicaState>> {
        self.leader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod alter_tests {
    use super::*;
    use crate::cluster::KafkaCode;

    #[test]
    fn a_refusal_saying_the_partition_moved_on_leaves_the_change_to_the_image() {
        assert_eq!(AlterSettlement::of(Ok(())), AlterSettlement::AwaitImage);
        assert_eq!(AlterSettlement::of(Err(None)), AlterSettlement::Unanswered);
        for moved_on in [
            KafkaCode::INVALID_UPDATE_VERSION,
            KafkaCode::FENCED_LEADER_EPOCH,
            KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
        ] {
            assert_eq!(
                AlterSettlement::of(Err(Some(moved_on))),
                AlterSettlement::AwaitImage
            );
        }
        assert_eq!(
            AlterSettlement::of(Err(Some(KafkaCode::INELIGIBLE_REPLICA))),
            AlterSettlement::Withdraw
        );
    }
}
