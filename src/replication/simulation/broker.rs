//! A broker host: the partition's real [`PartitionLog`] (segments, leader
//! epoch cache, recovery, truncation) in its own directory, the real
//! [`Replication`] and [`PartitionReplicaState`](crate::replication::PartitionReplicaState)
//! through it, and the real decisions of the fetch handler
//! ([`fetch_check`]), the fetcher ([`follower`]), the replica manager
//! ([`Role`]) and the `acks=all` purgatory ([`acks_all_answer`]). What is
//! left here is the shell production runs them in: timers, messages, and
//! carrying out each decision on the log.
//!
//! A crash drops the process without closing the log: the tail past the
//! last completed sync is lost, from a seeded offset on (a torn write may
//! keep part of it), exactly as if the disk had never had it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use rand::Rng;
use rand::rngs::StdRng;
use uuid::Uuid;

use super::messages::{FetchRequest, Message};
use super::network::{Network, Node};
use super::{LAG_TIME_MAX_MS, MIN_INSYNC_REPLICAS, TOPIC, record_batch};
use crate::broker::acks::acks_all_answer;
use crate::cluster::http::wire::BrokerHeartbeatRequest;
use crate::cluster::{AlterPartitionRequest, MetadataImage, PartitionState};
use crate::config::{ProduceLimits, ProduceRefusal};
use crate::replication::fetch_check::{Divergence, divergence, isr_eligible, leader_epoch_refusal};
use crate::replication::follower::{
    self, FetchPosition, FetchedPartition, FollowerLog, FollowerStep,
};
use crate::replication::state::{BrokerId, FollowerFetch, Role};
use crate::replication::{AlterIsr, AlterSettlement, Replication};
use crate::storage::{BatchStamp, LogConfig, PartitionLog, PendingBatch, StorageError};

const REGISTER_RETRY_MS: i64 = 1_000;
const HEARTBEAT_MS: i64 = crate::cluster::http::lease::HEARTBEAT_INTERVAL.as_millis() as i64;
const LAG_CHECK_MS: i64 = 500;
const CHECKPOINT_MS: i64 = 5_000;
/// `replica.fetch.wait.max.ms`: how long the leader holds a fetch with
/// nothing new.
const FETCH_WAIT_MAX_MS: i64 = 500;
/// A fetch with no answer by then is given up (the connection breaks).
const FETCH_TIMEOUT_MS: i64 = 5_000;
/// `replica.fetch.backoff.ms`.
const FETCH_BACKOFF_MS: i64 = 1_000;
const ALTER_TIMEOUT_MS: i64 = 10_000;
/// The producer's `request.timeout.ms` as the purgatory applies it.
const PRODUCE_TIMEOUT_MS: i64 = 30_000;
const FETCH_MAX_BYTES: usize = 64 * 1024;

/// Something a broker did that the checker judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deed {
    /// It took the lead at this leader epoch.
    Led { leader_epoch: i32 },
    /// It cut its log back to `to` (restart: emptied it), its high
    /// watermark then being `high_watermark`.
    Truncated {
        to: i64,
        high_watermark: i64,
        why: &'static str,
    },
    /// It refused to truncate below its high watermark.
    RefusedTruncation,
    /// Its partition went offline on a storage error (the process stops).
    Failed(String),
    /// It answered a produce.
    Answered {
        request_id: u64,
        result: Result<i64, i16>,
    },
}

struct InFlightFetch {
    fetch_id: u64,
    sent_ms: i64,
    position: FetchPosition,
}

struct ParkedProduce {
    request_id: u64,
    end_offset: i64,
    deadline_ms: i64,
}

struct ParkedFetch {
    from: Node,
    request: FetchRequest,
    deadline_ms: i64,
}

/// A running broker process.
pub struct Process {
    id: BrokerId,
    pub incarnation: Uuid,
    pub broker_epoch: Option<i64>,
    pub image: Arc<MetadataImage>,
    pub log: PartitionLog,
    pub replication: Replication,
    pub role: Option<Role>,
    /// In-flight fetches by the leader they went to (one fetcher each).
    fetches: BTreeMap<BrokerId, InFlightFetch>,
    fetch_pause_until_ms: i64,
    parked_produces: Vec<ParkedProduce>,
    parked_fetches: Vec<ParkedFetch>,
    /// The ISR change last sent and not answered yet, and when.
    alter_sent: Option<(i64, AlterIsr)>,
    next_register_ms: i64,
    next_heartbeat_ms: i64,
    next_lag_check_ms: i64,
    next_checkpoint_ms: i64,
}

pub struct Broker {
    pub id: BrokerId,
    dir: PathBuf,
    config: LogConfig,
    pub process: Option<Process>,
    /// Set by a crash: the log keeps nothing from this offset on.
    lost_from: Option<i64>,
    /// Incarnations whose crash lost records from their log.
    pub lossy_incarnations: std::collections::BTreeSet<Uuid>,
    pub deeds: Vec<Deed>,
}

impl Broker {
    pub fn new(id: BrokerId, dir: PathBuf, config: LogConfig) -> Self {
        Broker {
            id,
            dir,
            config,
            process: None,
            lost_from: None,
            lossy_incarnations: std::collections::BTreeSet::new(),
            deeds: Vec::new(),
        }
    }

    /// Starts the process: recovery of the log, minus what the crash lost.
    pub fn start(&mut self, now_ms: i64, rng: &mut StdRng) -> Result<(), StorageError> {
        let mut log = PartitionLog::open(&self.dir, self.config.clone())?;
        if let Some(lost_from) = self.lost_from.take()
            && lost_from < log.log_end_offset()
        {
            log.truncate_to(lost_from)?;
        }
        let replication = Replication::open(&self.dir, log.log_end_offset());
        self.process = Some(Process {
            id: self.id,
            incarnation: Uuid::from_u128(rng.r#gen()),
            broker_epoch: None,
            image: Arc::new(MetadataImage::new("simulated")),
            log,
            replication,
            role: None,
            fetches: BTreeMap::new(),
            fetch_pause_until_ms: 0,
            parked_produces: Vec::new(),
            parked_fetches: Vec::new(),
            alter_sent: None,
            next_register_ms: now_ms,
            next_heartbeat_ms: now_ms,
            next_lag_check_ms: now_ms,
            next_checkpoint_ms: now_ms + CHECKPOINT_MS,
        });
        Ok(())
    }

    /// Stops the process at once: what was not synced may be lost, from a
    /// seeded offset between the last sync and the log end.
    pub fn crash(&mut self, rng: &mut StdRng) {
        if let Some(process) = self.process.take() {
            let synced = process.log.synced_offset();
            let end = process.log.log_end_offset();
            let lost_from = if synced >= end {
                end
            } else {
                rng.gen_range(synced..=end)
            };
            if lost_from < end {
                self.lossy_incarnations.insert(process.incarnation);
            }
            self.lost_from = Some(lost_from);
        }
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn receive(&mut self, now_ms: i64, from: Node, message: Message, network: &mut Network) {
        let id = self.id;
        let Some(p) = self.process.as_mut() else {
            return;
        };
        let deeds = &mut self.deeds;
        let result = match message {
            Message::Registered {
                incarnation,
                broker_epoch,
            } if incarnation == p.incarnation => {
                p.broker_epoch.get_or_insert(broker_epoch);
                p.take_role(id, now_ms, deeds, network)
            }
            Message::Image(image) if image.last_applied > p.image.last_applied => {
                p.image = image;
                p.take_role(id, now_ms, deeds, network)
            }
            Message::AlterAnswered {
                incarnation,
                request,
                result,
            } if incarnation == p.incarnation => {
                // As the manager's `send_alter`: an accepted change (or one
                // refused because the partition moved on) stays in flight
                // until its image arrives.
                let alter = AlterIsr {
                    leader_epoch: request.leader_epoch,
                    partition_epoch: request.partition_epoch,
                    isr: request.isr,
                    broker_epochs: request.broker_epochs,
                };
                if p.alter_sent
                    .as_ref()
                    .is_some_and(|(_, sent)| *sent == alter)
                {
                    p.alter_sent = None;
                }
                if AlterSettlement::of(result.map_err(Some)) == AlterSettlement::Withdraw
                    && p.replication.alter_in_flight(&alter)
                {
                    p.replication.alter_failed(now_ms);
                }
                Ok(())
            }
            Message::Fetch(request) => p.serve_fetch(id, now_ms, from, request, deeds, network),
            Message::Fetched {
                fetch_id,
                data,
                batches,
            } => {
                let Node::Broker(leader) = from else {
                    return;
                };
                p.apply_fetched(id, now_ms, leader, fetch_id, data, batches, deeds)
            }
            Message::Produce {
                request_id,
                record_id,
                acks,
            } => p.serve_produce(
                id, now_ms, from, request_id, record_id, acks, deeds, network,
            ),
            _ => Ok(()),
        };
        if let Err(error) = result {
            // The partition goes offline in production: the process stops.
            self.deeds.push(Deed::Failed(error.to_string()));
            self.process = None;
        }
    }

    pub fn tick(&mut self, now_ms: i64, network: &mut Network) {
        let id = self.id;
        let Some(p) = self.process.as_mut() else {
            return;
        };
        let deeds = &mut self.deeds;
        if let Err(error) = p.tick(id, now_ms, deeds, network, &self.dir) {
            self.deeds.push(Deed::Failed(error.to_string()));
            self.process = None;
        }
    }
}

impl Process {
    fn partition(&self) -> Option<&PartitionState> {
        self.image.partition(TOPIC, 0)
    }

    /// The role this image gives, once it holds this process's own
    /// registration (production registers, waits for its image to show
    /// it, and only then starts the replica manager).
    fn take_role(
        &mut self,
        id: BrokerId,
        now_ms: i64,
        deeds: &mut Vec<Deed>,
        network: &mut Network,
    ) -> Result<(), StorageError> {
        let Some(epoch) = self.broker_epoch else {
            return Ok(());
        };
        if (self.image.last_applied as i64) < epoch {
            return Ok(());
        }
        let Some(state) = self.partition() else {
            return Ok(());
        };
        let role = Role::of(state, id, self.image.strict_min_insync_replicas(TOPIC));
        match &role {
            Role::LeadAlone { leader_epoch } => {
                self.lead_under(*leader_epoch, deeds)?;
                self.replication.lead_alone(self.log.log_end_offset());
            }
            Role::Lead(leadership) => {
                self.lead_under(leadership.leader_epoch, deeds)?;
                self.replication.lead(
                    id,
                    leadership.clone(),
                    self.log.log_end_offset(),
                    LAG_TIME_MAX_MS,
                    now_ms,
                );
            }
            Role::Follow { .. } => self.replication.follow(),
        }
        self.role = Some(role);
        self.answer_parked(now_ms, deeds, network);
        Ok(())
    }

    /// `Partition::lead_under`: the epoch starts at the log end.
    fn lead_under(&mut self, leader_epoch: i32, deeds: &mut Vec<Deed>) -> Result<(), StorageError> {
        if self.log.latest_leader_epoch() != Some(leader_epoch) {
            self.log.assign_leader_epoch(leader_epoch)?;
        }
        if !deeds.contains(&Deed::Led { leader_epoch }) {
            deeds.push(Deed::Led { leader_epoch });
        }
        Ok(())
    }

    fn leads(&self, id: BrokerId) -> Option<i32> {
        let state = self.partition()?;
        match &self.role {
            Some(Role::Lead(l)) if state.leader == id => Some(l.leader_epoch),
            Some(Role::LeadAlone { leader_epoch }) if state.leader == id => Some(*leader_epoch),
            _ => None,
        }
    }

    fn follower_log(&self) -> FollowerLog {
        FollowerLog {
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: self.log.log_end_offset(),
            high_watermark: self.replication.high_watermark(),
            latest_epoch: self.log.latest_leader_epoch().unwrap_or(-1),
        }
    }

    fn tick(
        &mut self,
        id: BrokerId,
        now_ms: i64,
        deeds: &mut Vec<Deed>,
        network: &mut Network,
        dir: &std::path::Path,
    ) -> Result<(), StorageError> {
        let me = Node::Broker(id);
        if self.broker_epoch.is_none() && now_ms >= self.next_register_ms {
            self.next_register_ms = now_ms + REGISTER_RETRY_MS;
            let register = Message::Register {
                broker_id: id,
                incarnation: self.incarnation,
            };
            network.send(now_ms, me, Node::Controller, register);
        }
        if let Some(broker_epoch) = self.broker_epoch
            && now_ms >= self.next_heartbeat_ms
        {
            self.next_heartbeat_ms = now_ms + HEARTBEAT_MS;
            let heartbeat = BrokerHeartbeatRequest {
                broker_id: id,
                broker_epoch,
                current_metadata_offset: self.image.last_applied,
                want_fence: false,
                want_shut_down: false,
            };
            network.send(now_ms, me, Node::Controller, Message::Heartbeat(heartbeat));
        }
        if now_ms >= self.next_checkpoint_ms {
            self.next_checkpoint_ms = now_ms + CHECKPOINT_MS;
            self.replication.checkpoint(dir);
        }
        if let Some((sent_ms, alter)) = self.alter_sent.take() {
            if now_ms - sent_ms <= ALTER_TIMEOUT_MS {
                self.alter_sent = Some((sent_ms, alter));
            } else if self.replication.alter_in_flight(&alter) {
                // As the manager: an unanswered change is sent again (see
                // `AlterSettlement::Unanswered`).
                self.send_alter(id, now_ms, alter, network);
            }
        }
        if now_ms >= self.next_lag_check_ms {
            self.next_lag_check_ms = now_ms + LAG_CHECK_MS;
            if self.replication.waits_for_followers() {
                let (_, alter) = self.replication.tick(now_ms);
                if let Some(alter) = alter {
                    self.send_alter(id, now_ms, alter, network);
                }
            }
        }
        self.answer_parked(now_ms, deeds, network);
        self.fetch(id, now_ms, deeds, network)
    }

    fn send_alter(
        &mut self,
        id: BrokerId,
        now_ms: i64,
        alter: crate::replication::AlterIsr,
        network: &mut Network,
    ) {
        let Some(topic_id) = self.image.topic(TOPIC).map(|t| t.id) else {
            self.replication.alter_failed(now_ms);
            return;
        };
        let request = AlterPartitionRequest {
            broker_id: id,
            topic_id,
            partition: 0,
            leader_epoch: alter.leader_epoch,
            partition_epoch: alter.partition_epoch,
            isr: alter.isr.clone(),
            broker_epochs: alter.broker_epochs.clone(),
        };
        self.alter_sent = Some((now_ms, alter));
        let message = Message::AlterPartition {
            incarnation: self.incarnation,
            request,
        };
        network.send(now_ms, Node::Broker(id), Node::Controller, message);
    }

    /// The follower's fetcher: one fetch at a time to the current leader.
    fn fetch(
        &mut self,
        id: BrokerId,
        now_ms: i64,
        deeds: &mut Vec<Deed>,
        network: &mut Network,
    ) -> Result<(), StorageError> {
        let before = self.fetches.len();
        self.fetches
            .retain(|_, f| now_ms - f.sent_ms <= FETCH_TIMEOUT_MS);
        if self.fetches.len() < before {
            self.fetch_pause_until_ms = now_ms + FETCH_BACKOFF_MS;
        }
        let Some(Role::Follow {
            leader,
            leader_epoch,
        }) = self.role
        else {
            return Ok(());
        };
        if leader < 0 || self.fetches.contains_key(&leader) || now_ms < self.fetch_pause_until_ms {
            return Ok(());
        }
        if self.replication.needs_truncation(leader_epoch) {
            if let Some(target) = follower::cut_before_following(self.follower_log()) {
                deeds.push(Deed::Truncated {
                    to: target,
                    high_watermark: self.replication.high_watermark(),
                    why: "no leader epochs",
                });
                self.log.truncate_to(target)?;
            }
            self.replication
                .truncated(leader_epoch, self.log.log_end_offset());
        }
        let fetch_id = network.sent + 1;
        let request = FetchRequest {
            fetch_id,
            replica: id,
            broker_epoch: self.image.broker(id).map_or(-1, |b| b.epoch),
            current_leader_epoch: leader_epoch,
            fetch_offset: self.log.log_end_offset(),
            last_fetched_epoch: self.log.latest_leader_epoch().unwrap_or(-1),
        };
        self.fetches.insert(
            leader,
            InFlightFetch {
                fetch_id,
                sent_ms: now_ms,
                position: FetchPosition {
                    leader_epoch,
                    fetch_offset: request.fetch_offset,
                },
            },
        );
        network.send(
            now_ms,
            Node::Broker(id),
            Node::Broker(leader),
            Message::Fetch(request),
        );
        Ok(())
    }

    /// The fetcher's `apply`: carries out the follower's decision.
    #[allow(clippy::too_many_arguments)]
    fn apply_fetched(
        &mut self,
        _id: BrokerId,
        now_ms: i64,
        leader: BrokerId,
        fetch_id: u64,
        data: FetchedPartition,
        batches: Vec<Bytes>,
        deeds: &mut Vec<Deed>,
    ) -> Result<(), StorageError> {
        let Some(fetch) = self.fetches.get(&leader).filter(|f| f.fetch_id == fetch_id) else {
            return Ok(());
        };
        let sent = fetch.position;
        let leader_epoch = sent.leader_epoch;
        self.fetches.remove(&leader);
        // As the fetcher: an answer for a partition that moved on (another
        // leader, another epoch, another log end) is dropped.
        let now = match self.role {
            Some(Role::Follow {
                leader: following,
                leader_epoch,
            }) if following == leader => Some(FetchPosition {
                leader_epoch,
                fetch_offset: self.log.log_end_offset(),
            }),
            _ => None,
        };
        if !follower::answer_is_current(sent, now) {
            return Ok(());
        }
        let before = self.follower_log();
        let high_watermark = before.high_watermark;
        let log = &self.log;
        let step = follower::next_step(before, &data, |epoch, end_offset| {
            log.leader_epochs()
                .truncation_offset(epoch, end_offset, log.log_end_offset())
        });
        let ok = match step {
            FollowerStep::TruncateDiverging { offset } => {
                deeds.push(Deed::Truncated {
                    to: offset,
                    high_watermark,
                    why: "diverging epoch",
                });
                self.log.truncate_to(offset)?;
                let end = self.log.log_end_offset();
                self.replication.truncated(leader_epoch, end);
                follower::cut_changed(before, end, self.log.latest_leader_epoch().unwrap_or(-1))
            }
            FollowerStep::RefuseBelowHighWatermark { .. } => {
                deeds.push(Deed::RefusedTruncation);
                false
            }
            FollowerStep::RestartAt { offset } => {
                deeds.push(Deed::Truncated {
                    to: before.log_start_offset,
                    high_watermark,
                    why: "restart at the leader's log start",
                });
                self.log.restart_at(offset)?;
                self.replication
                    .truncated(leader_epoch, self.log.log_end_offset());
                true
            }
            FollowerStep::TruncateTo { offset } => {
                deeds.push(Deed::Truncated {
                    to: offset,
                    high_watermark,
                    why: "offset out of range",
                });
                self.log.truncate_to(offset)?;
                self.replication
                    .truncated(leader_epoch, self.log.log_end_offset());
                true
            }
            FollowerStep::NoDataAtLogEnd | FollowerStep::Pause { .. } => false,
            FollowerStep::Append { restart_at } => {
                if !batches.is_empty() {
                    if let Some(offset) = restart_at {
                        self.log.restart_at(offset)?;
                    }
                    let pending: Vec<PendingBatch> = batches
                        .iter()
                        .filter_map(|b| PendingBatch::verbatim(b.clone()))
                        .collect();
                    // A refused append (an answer to an older fetch that
                    // another fetcher's appends overtook) leaves the log as
                    // it was and pauses, as the fetcher does.
                    let appended = self.log.append_replicated(&pending);
                    if self.log.sync_due() {
                        self.log.commit()?;
                    }
                    if appended.is_err() {
                        self.fetch_pause_until_ms = now_ms + FETCH_BACKOFF_MS;
                        return Ok(());
                    }
                }
                self.replication
                    .follower_high_watermark(data.high_watermark, self.log.log_end_offset());
                true
            }
        };
        if !ok {
            self.fetch_pause_until_ms = now_ms + FETCH_BACKOFF_MS;
        }
        Ok(())
    }

    /// The fetch handler, for a follower's fetch.
    fn serve_fetch(
        &mut self,
        id: BrokerId,
        now_ms: i64,
        from: Node,
        request: FetchRequest,
        deeds: &mut Vec<Deed>,
        network: &mut Network,
    ) -> Result<(), StorageError> {
        let refusal = match (self.leads(id), self.partition()) {
            (Some(_), Some(state)) => {
                leader_epoch_refusal(request.current_leader_epoch, state.leader_epoch)
            }
            _ => Some(ResponseError::NotLeaderOrFollower),
        };
        if let Some(error) = refusal {
            let data = FetchedPartition {
                error_code: error.code(),
                diverging_epoch: (-1, -1),
                high_watermark: -1,
                log_start_offset: -1,
                first_base_offset: None,
            };
            self.answer_fetch(
                id,
                now_ms,
                from,
                request.fetch_id,
                data,
                Vec::new(),
                network,
            );
            return Ok(());
        }
        let check = divergence(
            request.last_fetched_epoch,
            request.fetch_offset,
            self.log.end_offset_for_epoch(request.last_fetched_epoch),
            self.log.log_start_offset(),
        );
        if check == Divergence::InStep {
            let fetch = FollowerFetch {
                replica: request.replica,
                broker_epoch: request.broker_epoch,
                isr_eligible: isr_eligible(&self.image, request.replica, request.broker_epoch),
                fetch_offset: request.fetch_offset,
            };
            let outcome =
                self.replication
                    .follower_fetched(fetch, self.log.log_end_offset(), now_ms);
            if outcome.high_watermark_moved {
                self.answer_parked(now_ms, deeds, network);
            }
            if let Some(alter) = outcome.alter {
                self.send_alter(id, now_ms, alter, network);
            }
            if request.fetch_offset == self.log.log_end_offset() {
                self.parked_fetches.push(ParkedFetch {
                    from,
                    request,
                    deadline_ms: now_ms + FETCH_WAIT_MAX_MS,
                });
                return Ok(());
            }
        }
        let (data, batches) = self.read_for(&request, check);
        self.answer_fetch(id, now_ms, from, request.fetch_id, data, batches, network);
        Ok(())
    }

    fn read_for(
        &self,
        request: &FetchRequest,
        check: Divergence,
    ) -> (FetchedPartition, Vec<Bytes>) {
        let mut data = FetchedPartition {
            error_code: 0,
            diverging_epoch: (-1, -1),
            high_watermark: self.replication.high_watermark(),
            log_start_offset: self.log.log_start_offset(),
            first_base_offset: None,
        };
        match check {
            Divergence::Diverging { epoch, end_offset } => {
                data.diverging_epoch = (epoch, end_offset);
                (data, Vec::new())
            }
            Divergence::OutOfRange => {
                data.error_code = ResponseError::OffsetOutOfRange.code();
                (data, Vec::new())
            }
            Divergence::InStep => match self.log.read(request.fetch_offset, FETCH_MAX_BYTES) {
                Ok(batches) => {
                    data.first_base_offset = batches
                        .first()
                        .and_then(|b| crate::records::BatchHeader::parse(b))
                        .map(|h| h.base_offset);
                    (data, batches)
                }
                Err(StorageError::OffsetOutOfRange { .. }) => {
                    data.error_code = ResponseError::OffsetOutOfRange.code();
                    (data, Vec::new())
                }
                Err(_) => {
                    data.error_code = ResponseError::KafkaStorageError.code();
                    (data, Vec::new())
                }
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_fetch(
        &self,
        id: BrokerId,
        now_ms: i64,
        to: Node,
        fetch_id: u64,
        data: FetchedPartition,
        batches: Vec<Bytes>,
        network: &mut Network,
    ) {
        let message = Message::Fetched {
            fetch_id,
            data,
            batches,
        };
        network.send(now_ms, Node::Broker(id), to, message);
    }

    /// The produce handler: the leader appends under its epoch; `acks=1`
    /// is answered at once, `acks=all` when the high watermark passes.
    #[allow(clippy::too_many_arguments)]
    fn serve_produce(
        &mut self,
        id: BrokerId,
        now_ms: i64,
        from: Node,
        request_id: u64,
        record_id: u64,
        acks: i16,
        deeds: &mut Vec<Deed>,
        network: &mut Network,
    ) -> Result<(), StorageError> {
        let mut answer = |result: Result<i64, i16>, deeds: &mut Vec<Deed>| {
            deeds.push(Deed::Answered { request_id, result });
            let message = Message::Produced { request_id, result };
            network.send(now_ms, Node::Broker(id), from, message);
        };
        let Some(leader_epoch) = self.leads(id) else {
            answer(Err(ResponseError::NotLeaderOrFollower.code()), deeds);
            return Ok(());
        };
        let limits = ProduceLimits {
            max_message_bytes: 1 << 20,
            min_insync_replicas: MIN_INSYNC_REPLICAS,
        };
        let in_sync = self.replication.isr_len().unwrap_or(1);
        let batch = record_batch(self.log.log_end_offset(), record_id);
        if let Err(refusal) = limits.check(batch.len(), acks, in_sync) {
            let error = match refusal {
                ProduceRefusal::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
                ProduceRefusal::TooLarge { .. } => ResponseError::MessageTooLarge,
            };
            answer(Err(error.code()), deeds);
            return Ok(());
        }
        let base_offset = self.log.log_end_offset();
        let pending = PendingBatch {
            stamp: BatchStamp {
                base_offset,
                partition_leader_epoch: leader_epoch,
            },
            bytes: batch,
        };
        self.log
            .append_pending(std::slice::from_ref(&pending))
            .map_err(|e| e.source)?;
        if self.log.sync_due() {
            self.log.commit()?;
        }
        let end_offset = self.log.log_end_offset();
        self.replication.leader_appended(end_offset, now_ms);
        if acks != -1 {
            answer(Ok(base_offset), deeds);
        } else {
            self.parked_produces.push(ParkedProduce {
                request_id,
                end_offset,
                deadline_ms: now_ms + PRODUCE_TIMEOUT_MS,
            });
            self.answer_parked(now_ms, deeds, network);
        }
        Ok(())
    }

    /// Answers the parked `acks=all` produces and fetches that can be.
    fn answer_parked(&mut self, now_ms: i64, deeds: &mut Vec<Deed>, network: &mut Network) {
        let high_watermark = self.replication.high_watermark();
        let isr_len = self.replication.isr_len();
        let waits = self.replication.waits_for_followers();
        let parked = std::mem::take(&mut self.parked_produces);
        for produce in parked {
            let answer = acks_all_answer(
                high_watermark,
                produce.end_offset,
                isr_len,
                waits,
                MIN_INSYNC_REPLICAS as usize,
            )
            .or_else(|| {
                (now_ms >= produce.deadline_ms).then_some(Err(ResponseError::RequestTimedOut))
            });
            match answer {
                None => self.parked_produces.push(produce),
                Some(answer) => {
                    let result = answer
                        .map(|()| produce.end_offset - 1)
                        .map_err(|error| error.code());
                    deeds.push(Deed::Answered {
                        request_id: produce.request_id,
                        result,
                    });
                    let message = Message::Produced {
                        request_id: produce.request_id,
                        result,
                    };
                    network.send(now_ms, Node::Broker(self.id), Node::Client, message);
                }
            }
        }
        let log_end = self.log.log_end_offset();
        let parked = std::mem::take(&mut self.parked_fetches);
        for fetch in parked {
            if log_end > fetch.request.fetch_offset || now_ms >= fetch.deadline_ms {
                let (data, batches) = self.read_for(&fetch.request, Divergence::InStep);
                let message = Message::Fetched {
                    fetch_id: fetch.request.fetch_id,
                    data,
                    batches,
                };
                network.send(now_ms, Node::Broker(self.id), fetch.from, message);
            } else {
                self.parked_fetches.push(fetch);
            }
        }
    }
}
