//! A deterministic simulation of partition replication (issue 14).
//!
//! A controller and three brokers, each hosting a replica of one
//! partition, run the real replication code on a simulated network and
//! clock: the controller the real metadata state machine (elections, ISR
//! changes, fencing), leases and AlterPartition check; each broker the real
//! partition log on its own directory, the real [`Replication`] and leader
//! state machine, and the real decisions of the fetch handler, the
//! fetcher, the replica manager and the `acks=all` purgatory (see
//! [`broker`]). A client produces with `acks=all` and `acks=1`.
//!
//! A seeded nemesis crashes and restarts brokers (a crash loses what was
//! not synced, per the seed's `flush.messages`), cuts links (both ways or
//! one, between brokers and between a broker and the controller), drops
//! messages and delays them. A crash is only chosen while another running
//! ISR member holds every committed record: Kafka's promise is about
//! losing fewer than all of the ISR, and a crash that loses every copy of
//! an unsynced record is not a bug but the trade-off of not fsyncing.
//! After every step the [`Checker`] judges (see [`checker`]); after the
//! fault phase everything heals, and the cluster must acknowledge an
//! `acks=all` record and bring every replica level within
//! [`LIVENESS_BUDGET_MS`].
//!
//! Everything random comes from the seed, so a seed replays exactly
//! (`scripts/simulate.sh --replication --replay N`); a run's observations
//! fold into a trace digest that shows it.
//!
//! Why not turmoil here, as in the quorum's simulation: the partition log
//! does its file I/O with `std::fs` (and positioned, vectored writes), not
//! through the [`crate::fs`] seam, so its crash semantics come from the
//! log's own sync bookkeeping instead ([`PartitionLog::synced_offset`]); and
//! the replication code under test is synchronous once its decisions are
//! pure, so one deterministic loop drives it without an async runtime.

mod broker;
mod checker;
mod client;
mod controller;
mod messages;
mod network;

#[cfg(test)]
mod tests;

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::replication::state::{BrokerId, Role};
use crate::storage::{BatchHeader, LogConfig};
use broker::Broker;
use checker::Checker;
use client::Client;
use controller::Controller;
use network::{Network, Node};

pub(super) const TOPIC: &str = "replicated";
pub(super) const BROKERS: [BrokerId; 3] = [1, 2, 3];
pub(super) const MIN_INSYNC_REPLICAS: i32 = 2;
/// `replica.lag.time.max.ms`, shorter than Kafka's 30 s default so a
/// run sees many ISR changes.
pub(super) const LAG_TIME_MAX_MS: i64 = 5_000;
/// `broker.session.timeout.ms` (Kafka's default 9 s).
pub(super) const SESSION_TIMEOUT_MS: i64 = 9_000;
const TICK_MS: i64 = 5;
const NEMESIS_EVERY_MS: i64 = 1_000;
const LOG_CHECK_EVERY: u64 = 40;
const LIVENESS_BUDGET_MS: i64 = 60_000;
/// Record ids ride in the batches' timestamps, from here on.
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

/// A one-record batch at `base_offset` carrying `record_id`.
pub(super) fn record_batch(base_offset: i64, record_id: u64) -> Bytes {
    crate::storage::test_util::make_batch(base_offset, 1, 16, BASE_TIMESTAMP + record_id as i64)
}

pub(super) fn record_id_of(header: &BatchHeader) -> u64 {
    (header.max_timestamp - BASE_TIMESTAMP).max(0) as u64
}

/// What a run is.
#[derive(Clone, Debug)]
pub struct SimulationConfig {
    pub seed: u64,
    pub fault_phase_ms: i64,
    /// The broken build: the high watermark follows the leader's log end.
    pub broken_high_watermark: bool,
}

impl SimulationConfig {
    pub fn new(seed: u64) -> Self {
        SimulationConfig {
            seed,
            fault_phase_ms: 40_000,
            broken_high_watermark: false,
        }
    }

    pub fn replay_command(&self) -> String {
        format!("scripts/simulate.sh --replication --replay {}", self.seed)
    }
}

/// What a run showed.
#[derive(Debug)]
pub struct Report {
    pub violations: Vec<String>,
    pub trace_digest: u64,
    pub faults: Vec<String>,
    pub flush_messages: u64,
    pub acked_all: usize,
    pub acked_one: usize,
    pub acked_one_lost: usize,
    pub committed: usize,
    pub leader_epochs: i32,
    pub truncations: u64,
    pub refused_truncations: u64,
    pub crashes: usize,
    /// When every ISR member had lost records in a crash, if ever.
    pub outside_guarantee: Option<String>,
    pub simulated_ms: i64,
    pub brokers_at_end: Vec<String>,
    /// Every command the controller applied.
    pub controller_log: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Fault {
    Quiet,
    Crash(BrokerId),
    Restart(BrokerId),
    Isolate(Node),
    CutBoth(Node, Node),
    CutOneWay(Node, Node),
    Repair,
    Loss(f64),
    Latency(i64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Quiet => write!(f, "quiet"),
            Fault::Crash(b) => write!(f, "crash b{b}"),
            Fault::Restart(b) => write!(f, "restart b{b}"),
            Fault::Isolate(n) => write!(f, "isolate {n}"),
            Fault::CutBoth(a, b) => write!(f, "cut {a} <-> {b}"),
            Fault::CutOneWay(a, b) => write!(f, "cut {a} -> {b}"),
            Fault::Repair => write!(f, "repair links"),
            Fault::Loss(p) => write!(f, "lose {p} of messages"),
            Fault::Latency(ms) => write!(f, "latency up to {ms} ms"),
        }
    }
}

const NODES: [Node; 5] = [
    Node::Controller,
    Node::Broker(1),
    Node::Broker(2),
    Node::Broker(3),
    Node::Client,
];

struct Cluster {
    controller: Controller,
    brokers: Vec<Broker>,
    client: Client,
    network: Network,
    checker: Checker,
    rng: StdRng,
    now_ms: i64,
}

/// Runs one simulation; the broken build only on this thread, and only
/// for this run.
pub fn run(config: &SimulationConfig) -> Report {
    crate::replication::state::break_high_watermark_here(config.broken_high_watermark);
    let report = run_seeded(config);
    crate::replication::state::break_high_watermark_here(false);
    report
}

fn run_seeded(config: &SimulationConfig) -> Report {
    let root = tempfile::Builder::new()
        .prefix("gregor-simrep")
        .tempdir_in(scratch_dir())
        .expect("a scratch directory for the simulated disks");
    let mut rng = StdRng::seed_from_u64(config.seed);
    let flush_messages = [1, 4, u64::MAX][rng.gen_range(0..3)];
    let log_config = LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        cache_bytes: 4096,
        flush_interval_messages: flush_messages,
        ..LogConfig::default()
    };
    let brokers = BROKERS
        .iter()
        .map(|id| {
            let dir = root.path().join(format!("b{id}"));
            Broker::new(*id, dir, log_config.clone())
        })
        .collect();
    let mut cluster = Cluster {
        controller: Controller::new(Uuid::from_u128(rng.r#gen())),
        brokers,
        client: Client::new(StdRng::seed_from_u64(rng.r#gen())),
        network: Network::new(StdRng::seed_from_u64(rng.r#gen())),
        checker: Checker::default(),
        rng,
        now_ms: 0,
    };
    for i in 0..cluster.brokers.len() {
        let (brokers, rng) = (&mut cluster.brokers, &mut cluster.rng);
        brokers[i].start(0, rng).expect("a new log opens");
    }
    let mut nemesis = StdRng::seed_from_u64(config.seed ^ 0x5e5e_5e5e);
    let mut trace = DefaultHasher::new();
    let mut faults = Vec::new();
    let mut crashes = 0;
    let mut step: u64 = 0;
    let mut healed_at: Option<i64> = None;
    let mut acked_since_heal = false;
    loop {
        step += 1;
        cluster.now_ms += TICK_MS;
        let now = cluster.now_ms;
        let at = format!("{now} ms (step {step})");
        cluster.step();
        let answers = {
            let image = cluster.controller.image().clone();
            cluster
                .checker
                .after_step(&at, &mut cluster.brokers, &image)
        };
        if healed_at.is_some()
            && answers.iter().any(|(request, result)| {
                result.is_ok()
                    && cluster
                        .client
                        .requests
                        .get(request)
                        .is_some_and(|r| r.acks == -1 && Some(r.sent_ms) >= healed_at)
            })
        {
            acked_since_heal = true;
            cluster.client.stopped = true;
        }
        cluster.checker.note_answers(&at, &answers, &cluster.client);
        if cluster.checker.outside_guarantee.is_none() && cluster.isr_all_lossy() {
            cluster.checker.outside_guarantee = Some(at.clone());
        }
        if step.is_multiple_of(LOG_CHECK_EVERY) {
            let image = cluster.controller.image().clone();
            cluster.checker.check_logs(&at, &cluster.brokers, &image);
            cluster.fold_trace(&mut trace, step);
        }
        if now < config.fault_phase_ms && now % NEMESIS_EVERY_MS == 0 {
            let fault = cluster.choose_fault(&mut nemesis);
            fault.to_string().hash(&mut trace);
            if matches!(fault, Fault::Crash(_)) {
                crashes += 1;
            }
            cluster.apply(&fault);
            if fault != Fault::Quiet {
                faults.push(format!("{now} ms: {fault}"));
            }
        }
        if healed_at.is_none() && now >= config.fault_phase_ms {
            cluster.heal();
            faults.push(format!("{now} ms: heal"));
            healed_at = Some(now);
        }
        if let Some(healed) = healed_at {
            if acked_since_heal && cluster.settled() {
                break;
            }
            if now - healed > LIVENESS_BUDGET_MS {
                // With committed records lost, the replicas holding them
                // refuse to truncate them: they stay out of sync by design
                // (an operator's call), so the run cannot converge.
                if cluster.checker.outside_guarantee.is_some() {
                    break;
                }
                let what = if acked_since_heal {
                    "the replicas did not converge"
                } else {
                    "no acks=all record was acknowledged"
                };
                cluster.checker.violations.push(format!(
                    "at {at}: {what} within {LIVENESS_BUDGET_MS} ms of healing"
                ));
                break;
            }
        }
    }
    let at = format!("{} ms (end)", cluster.now_ms);
    let image = cluster.controller.image().clone();
    cluster.checker.check_logs(&at, &cluster.brokers, &image);
    let final_log = cluster.final_log();
    let acked_one_lost = cluster.checker.finish(&at, &final_log);
    cluster.checker.committed.len().hash(&mut trace);
    Report {
        violations: cluster.checker.violations.clone(),
        trace_digest: trace.finish(),
        faults,
        flush_messages,
        acked_all: cluster.checker.acked_all.len(),
        acked_one: cluster.checker.acked_one.len(),
        acked_one_lost,
        committed: cluster.checker.committed.len(),
        leader_epochs: image.partition(TOPIC, 0).map_or(0, |p| p.leader_epoch),
        truncations: cluster.checker.truncations,
        refused_truncations: cluster.checker.refused_truncations,
        crashes,
        outside_guarantee: cluster.checker.outside_guarantee.clone(),
        simulated_ms: cluster.now_ms,
        brokers_at_end: cluster.describe(),
        controller_log: cluster.controller.applied.clone(),
    }
}

/// Where the simulated disks go: memory when the machine has it (a
/// simulated sync costs nothing there), else the temporary directory.
fn scratch_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl Cluster {
    fn step(&mut self) {
        let now = self.now_ms;
        for envelope in self.network.due(now) {
            match envelope.to {
                Node::Controller => {
                    self.controller
                        .receive(now, envelope.from, envelope.message, &mut self.network)
                }
                Node::Broker(id) => {
                    if let Some(broker) = self.brokers.iter_mut().find(|b| b.id == id) {
                        broker.receive(now, envelope.from, envelope.message, &mut self.network);
                    }
                }
                Node::Client => {
                    let image = self.controller.image().clone();
                    self.client.receive(envelope.message, &image);
                }
            }
        }
        self.controller.tick(now, &mut self.network);
        for broker in &mut self.brokers {
            broker.tick(now, &mut self.network);
        }
        let image = self.controller.image().clone();
        self.client.tick(now, &image, &mut self.network);
    }

    /// Whether every ISR member is an incarnation whose crash lost records
    /// (Kafka's assumption of a live ISR member no longer holds).
    fn isr_all_lossy(&self) -> bool {
        let image = self.controller.image();
        let Some(state) = image.partition(TOPIC, 0) else {
            return false;
        };
        !state.isr.is_empty()
            && state.isr.iter().all(|id| {
                let registered = image.broker(*id).map(|b| b.incarnation_id);
                self.brokers.iter().any(|b| {
                    b.id == *id && registered.is_some_and(|i| b.lossy_incarnations.contains(&i))
                })
            })
    }

    /// Whether `id` may crash now: it is no ISR member, or another running
    /// ISR member holds every committed record.
    fn may_crash(&self, id: BrokerId) -> bool {
        let image = self.controller.image();
        let isr = image
            .partition(TOPIC, 0)
            .map(|p| p.isr.clone())
            .unwrap_or_default();
        if !isr.contains(&id) {
            return true;
        }
        let committed = self.checker.committed.len() as i64;
        self.brokers.iter().any(|b| {
            b.id != id
                && isr.contains(&b.id)
                && b.process.as_ref().is_some_and(|p| {
                    image
                        .broker(b.id)
                        .is_some_and(|r| r.incarnation_id == p.incarnation)
                        && p.log.log_end_offset() >= committed
                })
        })
    }

    fn choose_fault(&mut self, rng: &mut StdRng) -> Fault {
        loop {
            let any_broker = BROKERS[rng.gen_range(0..BROKERS.len())];
            let fault = match rng.gen_range(0..18) {
                0..=2 => Fault::Quiet,
                3..=5 => {
                    let running = self
                        .brokers
                        .iter()
                        .any(|b| b.id == any_broker && b.is_running());
                    if !running || !self.may_crash(any_broker) {
                        continue;
                    }
                    Fault::Crash(any_broker)
                }
                6..=8 => {
                    let down: Vec<BrokerId> = self
                        .brokers
                        .iter()
                        .filter(|b| !b.is_running())
                        .map(|b| b.id)
                        .collect();
                    if down.is_empty() {
                        continue;
                    }
                    Fault::Restart(down[rng.gen_range(0..down.len())])
                }
                9 => Fault::Isolate(Node::Broker(any_broker)),
                10 => Fault::Isolate(Node::Controller),
                11 => {
                    let a = NODES[rng.gen_range(0..NODES.len())];
                    let b = NODES[rng.gen_range(0..NODES.len())];
                    if a == b {
                        continue;
                    }
                    Fault::CutOneWay(a, b)
                }
                12 => {
                    let other = BROKERS[rng.gen_range(0..BROKERS.len())];
                    if other == any_broker {
                        Fault::CutBoth(Node::Broker(any_broker), Node::Controller)
                    } else {
                        Fault::CutBoth(Node::Broker(any_broker), Node::Broker(other))
                    }
                }
                13 | 14 => Fault::Repair,
                15 => Fault::Loss([0.0, 0.05, 0.2][rng.gen_range(0..3)]),
                _ => Fault::Latency([5, 100, 400][rng.gen_range(0..3)]),
            };
            return fault;
        }
    }

    fn apply(&mut self, fault: &Fault) {
        let now = self.now_ms;
        match fault {
            Fault::Quiet => {}
            Fault::Crash(id) => {
                if let Some(b) = self.brokers.iter_mut().find(|b| b.id == *id) {
                    b.crash(&mut self.rng);
                }
            }
            Fault::Restart(id) => {
                if let Some(b) = self.brokers.iter_mut().find(|b| b.id == *id)
                    && let Err(error) = b.start(now, &mut self.rng)
                {
                    self.checker.violations.push(format!(
                        "at {now} ms: b{id} could not recover its log: {error}"
                    ));
                }
            }
            Fault::Isolate(node) => self.network.isolate(*node, &NODES),
            Fault::CutBoth(a, b) => self.network.cut_both(*a, *b),
            Fault::CutOneWay(a, b) => self.network.cut_one_way(*a, *b),
            Fault::Repair => self.network.repair(),
            Fault::Loss(p) => self.network.loss = *p,
            Fault::Latency(ms) => self.network.max_latency_ms = *ms,
        }
    }

    fn heal(&mut self) {
        self.network.heal();
        let now = self.now_ms;
        for b in &mut self.brokers {
            if !b.is_running()
                && let Err(error) = b.start(now, &mut self.rng)
            {
                self.checker.violations.push(format!(
                    "at {now} ms: b{} could not recover its log: {error}",
                    b.id
                ));
            }
        }
    }

    /// Every broker runs, registered and unfenced, all in the ISR, and
    /// every log ends where the leader's high watermark is.
    fn settled(&self) -> bool {
        let image = self.controller.image();
        let Some(state) = image.partition(TOPIC, 0) else {
            return false;
        };
        if state.leader < 0 || state.isr.len() != BROKERS.len() {
            return false;
        }
        let Some(leader) = self
            .brokers
            .iter()
            .find(|b| b.id == state.leader)
            .and_then(|b| b.process.as_ref())
        else {
            return false;
        };
        let end = leader.log.log_end_offset();
        leader.replication.high_watermark() == end
            && self.brokers.iter().all(|b| {
                b.process.as_ref().is_some_and(|p| {
                    p.log.log_end_offset() == end
                        && image
                            .broker(b.id)
                            .is_some_and(|r| !r.fenced && r.incarnation_id == p.incarnation)
                })
            })
    }

    /// The leader's log at the end, as record ids by offset.
    fn final_log(&self) -> Vec<u64> {
        let image = self.controller.image();
        let leader = image.partition(TOPIC, 0).map_or(-1, |p| p.leader);
        self.brokers
            .iter()
            .find(|b| b.id == leader)
            .and_then(|b| b.process.as_ref())
            .map(|p| {
                checker::record_ids(&p.log, 0, p.log.log_end_offset())
                    .into_iter()
                    .map(|(_, id)| id)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn fold_trace(&self, trace: &mut DefaultHasher, step: u64) {
        step.hash(trace);
        self.controller.image().last_applied.hash(trace);
        for b in &self.brokers {
            b.id.hash(trace);
            if let Some(p) = &b.process {
                p.log.log_end_offset().hash(trace);
                p.replication.high_watermark().hash(trace);
                p.log.latest_leader_epoch().hash(trace);
            }
        }
    }

    fn describe(&self) -> Vec<String> {
        let image = self.controller.image();
        let mut lines = vec![format!("controller: {:?}", image.partition(TOPIC, 0))];
        for b in &self.brokers {
            lines.push(match &b.process {
                None => format!("b{}: down", b.id),
                Some(p) => format!(
                    "b{}: role {:?}, log [{}, {}), high watermark {}, epochs {:?}, fenced {:?}",
                    b.id,
                    p.role.as_ref().map(describe_role),
                    p.log.log_start_offset(),
                    p.log.log_end_offset(),
                    p.replication.high_watermark(),
                    p.log.leader_epochs().entries(),
                    image.broker(b.id).map(|r| r.fenced),
                ),
            });
        }
        lines
    }
}

fn describe_role(role: &Role) -> String {
    match role {
        Role::Lead(l) => format!("lead@{} isr {:?}", l.leader_epoch, l.isr),
        Role::LeadAlone { leader_epoch } => format!("lead alone@{leader_epoch}"),
        Role::Follow {
            leader,
            leader_epoch,
        } => format!("follow b{leader}@{leader_epoch}"),
    }
}
