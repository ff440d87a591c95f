//! A deterministic simulation of the coordinator quorum (issue 13).
//!
//! The real members — [`RaftNode`] with its openraft core, the raft log and
//! vote on the [`RecordLog`](crate::record_log::RecordLog), the metadata
//! state machine and the raft RPC client — run as turmoil hosts: their
//! network is turmoil's (see [`transport`]) and their disk is turmoil's
//! (through [`crate::fs`]: writes stay pending until synced and a crash
//! drops them). A client host proposes commands (broker registrations and
//! topic creations) and records which were acknowledged. A [`Nemesis`]
//! chooses a fault from the seed every [`NEMESIS_INTERVAL`]; after every
//! step the [`Checker`] looks at each running member. After the fault
//! phase everything is healed and the quorum must elect a leader and take
//! a proposal within [`LIVENESS_BUDGET`], and every acknowledged command
//! must be in every member's applied image.
//!
//! Everything random comes from the seed: turmoil's network and disk, the
//! nemesis, the client, and openraft's election timeouts
//! ([`seed_elections`]). A run's observations are folded into a trace
//! digest, so a replay can be checked to be the same run.
//!
//! More hosts (brokers with replication) and their invariants fit in the
//! same loop: a host closure, observations in [`Shared`], a check in the
//! checker.

mod checker;
mod nemesis;
mod transport;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use openraft::ServerState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::network::PeerNetwork;
use super::node::open_stores;
use super::runtime::seed_elections;
use super::{Applied, LogStore, Member, MemberId, Proposal, RaftNode, RaftSettings};
use crate::cluster::metadata::Command;
use checker::{Checker, Observed};
use nemesis::{Fault, Nemesis};
use transport::{CLIENT_PORT, ClientAnswer, PEER_PORT, SimulatedTransport};

/// One simulated tick.
const TICK: Duration = Duration::from_millis(1);
/// How often the nemesis acts.
const NEMESIS_INTERVAL: Duration = Duration::from_millis(400);
/// After healing: a leader and an acknowledged proposal within this many
/// maximal election timeouts, then every member caught up.
const LIVENESS_TIMEOUTS: u32 = 20;
const LIVENESS_BUDGET: Duration = Duration::from_millis(600 * LIVENESS_TIMEOUTS as u64);
/// How long the client waits for one proposal's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
const NORMAL_LATENCY: Duration = Duration::from_millis(10);
/// The simulated disk writes whole blocks of this size; a crash may keep
/// any block-aligned prefix of an unsynced write.
const DISK_BLOCK_SIZE: u64 = 512;
/// How likely each write is to be flushed without a sync.
const BACKGROUND_FLUSH_PROBABILITY: f64 = 0.1;

/// What a simulation run is.
#[derive(Clone, Debug)]
pub struct SimulationConfig {
    pub seed: u64,
    pub members: u64,
    /// How long faults are injected before everything is healed.
    pub fault_phase: Duration,
    /// A broken disk, to show that the checker catches lost writes.
    pub lying_disk: Option<LyingDisk>,
}

/// Syncs that return at once without making anything durable: the stores
/// then acknowledge before fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LyingDisk {
    /// Every sync of every store.
    Everything,
    /// Only the raft log's appends (`raft.log`); the vote is synced.
    LogAppends,
}

impl SimulationConfig {
    pub fn new(seed: u64, members: u64) -> Self {
        Self {
            seed,
            members,
            fault_phase: Duration::from_secs(12),
            lying_disk: None,
        }
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "scripts/simulate.sh --replay {} --members {}",
            self.seed, self.members
        )
    }
}

/// What a run showed.
#[derive(Debug)]
pub struct Report {
    pub violations: Vec<String>,
    /// A digest of everything observed: equal for replays of one seed.
    pub trace_digest: u64,
    pub faults: Vec<String>,
    pub acknowledged: usize,
    pub proposals: usize,
    pub leader_ids: usize,
    pub terms_with_several_leaders: usize,
    pub simulated: Duration,
    /// Each running member at the end, for a failing seed's report.
    pub members_at_end: Vec<String>,
}

/// A proposal's fate as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    Pending,
    Acknowledged {
        at: Duration,
    },
    /// Committed but refused by `apply`: no change to check.
    Refused,
    /// Definitely not committed (sent to a non-leader).
    NotLeader,
    /// No answer: it may or may not have been committed.
    Indeterminate,
}

struct ProposalRecord {
    command: Command,
    invoked: Duration,
    outcome: Outcome,
}

/// A running member, as the checker reaches it.
struct Running {
    node: RaftNode,
    log: LogStore,
}

/// What the hosts and the checking loop share (one thread: the
/// simulation's).
#[derive(Default)]
struct Shared {
    running: BTreeMap<MemberId, Running>,
    proposals: Vec<ProposalRecord>,
}

fn host_name(id: MemberId) -> String {
    format!("m{id}")
}

fn voters(members: u64) -> BTreeMap<MemberId, Member> {
    (1..=members)
        .map(|id| {
            let member = Member {
                peer_address: format!("{}:{PEER_PORT}", host_name(id)),
                client_address: format!("{}:{CLIENT_PORT}", host_name(id)),
            };
            (id, member)
        })
        .collect()
}

/// Production's timing scaled down (a simulated fsync is instant), and
/// snapshots often, so log purging and snapshot transfer are exercised.
fn settings(member_id: MemberId, members: u64) -> RaftSettings {
    let mut settings = RaftSettings::new(member_id, voters(members));
    settings.heartbeat_interval = Duration::from_millis(50);
    settings.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    settings.snapshot_after_entries = 40;
    settings
}

/// The data directory every member's raft directory is made in; it exists
/// (durably) before the member first starts, as an operator's would.
const DATA_DIR: &str = "/data";

async fn member(id: MemberId, members: u64, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    crate::fs::create_dir_all(DATA_DIR)?;
    crate::fs::sync_dir(Path::new("/"))?;
    let dir = PathBuf::from(DATA_DIR).join("raft");
    let (log, machine) = open_stores(&dir).await?;
    let node = RaftNode::start_on(
        &dir,
        log.clone(),
        machine,
        &settings(id, members),
        PeerNetwork::over(SimulatedTransport),
    )
    .await?;
    shared.borrow_mut().running.insert(
        id,
        Running {
            node: node.clone(),
            log,
        },
    );
    tokio::try_join!(
        transport::serve_peers(node.clone()),
        transport::serve_client(node)
    )?;
    Ok(())
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// The client: proposes commands one at a time to the member it believes
/// leads, and records each answer.
async fn client(seed: u64, members: u64, shared: Rc<RefCell<Shared>>) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00c1_1e47);
    let voters = voters(members);
    let mut target: MemberId = 1;
    for n in 1.. {
        let command = if n % 2 == 1 {
            Command::RegisterBroker {
                broker_id: n,
                incarnation_id: Uuid::from_u128(rng.r#gen()),
                listeners: Vec::new(),
                rack: None,
                previous_broker_epoch: None,
            }
        } else {
            Command::CreateTopic {
                name: format!("topic-{n}"),
                topic_id: Uuid::from_u128(rng.r#gen()),
                configs: BTreeMap::new(),
                assignments: vec![vec![n - 1]],
            }
        };
        let index = {
            let mut shared = shared.borrow_mut();
            shared.proposals.push(ProposalRecord {
                command: command.clone(),
                invoked: now(),
                outcome: Outcome::Pending,
            });
            shared.proposals.len() - 1
        };
        let address = &voters[&target].client_address;
        let answer = tokio::time::timeout(
            CLIENT_TIMEOUT,
            transport::propose(address, &Proposal::Command { command }),
        )
        .await;
        let outcome = match answer {
            Ok(Ok(ClientAnswer::Applied(Applied::Accepted { .. }))) => {
                Outcome::Acknowledged { at: now() }
            }
            Ok(Ok(ClientAnswer::Applied(_))) => Outcome::Refused,
            Ok(Ok(ClientAnswer::NotLeader(leader))) => {
                target = leader.unwrap_or(target % members + 1);
                Outcome::NotLeader
            }
            Ok(Ok(ClientAnswer::Unavailable(_))) | Ok(Err(_)) | Err(_) => {
                target = target % members + 1;
                Outcome::Indeterminate
            }
        };
        let pause = match outcome {
            Outcome::Acknowledged { .. } => rng.gen_range(5..40),
            _ => rng.gen_range(50..150),
        };
        shared.borrow_mut().proposals[index].outcome = outcome;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Ok(())
}

/// The lying disk's choice of files, by name.
fn lies_about(disk: LyingDisk) -> fn(&Path) -> bool {
    match disk {
        LyingDisk::Everything => |_| true,
        LyingDisk::LogAppends => |path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("raft.log"))
        },
    }
}

/// Runs one simulation.
pub fn run(config: &SimulationConfig) -> Report {
    seed_elections(Some(config.seed));
    crate::fs::set_syncs_lie(config.lying_disk.map(lies_about));
    let report = run_seeded(config);
    crate::fs::set_syncs_lie(None);
    seed_elections(None);
    report
}

fn run_seeded(config: &SimulationConfig) -> Report {
    let members: Vec<MemberId> = (1..=config.members).collect();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut builder = turmoil::Builder::new();
    // A crash keeps a random block-aligned prefix of each unsynced write
    // (torn appends), and the "OS" flushes some writes on its own.
    builder
        .fs()
        .block_size(DISK_BLOCK_SIZE)
        .sync_probability(BACKGROUND_FLUSH_PROBABILITY);
    let mut sim = builder
        .rng_seed(config.seed)
        .tick_duration(TICK)
        .simulation_duration(Duration::from_secs(24 * 3600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(NORMAL_LATENCY)
        .repair_rate(0.01)
        .build();
    for &id in &members {
        let shared = Rc::clone(&shared);
        let count = config.members;
        sim.host(host_name(id), move || member(id, count, Rc::clone(&shared)));
    }
    sim.client(
        "client",
        client(config.seed, config.members, Rc::clone(&shared)),
    );
    let mut hosts: Vec<String> = members.iter().map(|m| host_name(*m)).collect();
    hosts.push("client".to_owned());

    let mut checker = Checker::new(members.len());
    let mut nemesis = Nemesis::new(
        StdRng::seed_from_u64(config.seed ^ 0x5e5e_5e5e),
        members.clone(),
    );
    let mut trace = DefaultHasher::new();
    let mut faults = Vec::new();
    let mut down: BTreeSet<MemberId> = BTreeSet::new();
    let fault_steps = ticks(config.fault_phase);
    let nemesis_every = ticks(NEMESIS_INTERVAL);
    let mut healed_at: Option<Duration> = None;
    let mut step: u64 = 0;
    let at = |step: u64| format!("{:?} (step {step})", TICK * step as u32);

    loop {
        step += 1;
        if let Err(error) = sim.step() {
            checker_failure(&mut checker, &at(step), format!("a host failed: {error}"));
            break;
        }
        {
            let shared = shared.borrow();
            let observed = observe(&shared);
            checker.after_step(&at(step), &observed);
            fold_trace(&mut trace, step, &observed);
            if step.is_multiple_of(nemesis_every) {
                checker.check_logs(&at(step), &observed);
            }
        }
        if step < fault_steps && step.is_multiple_of(nemesis_every) {
            let fault = nemesis.next(&down);
            fault.to_string().hash(&mut trace);
            apply(&mut sim, &fault, &hosts, &mut down, &shared);
            faults.push(format!("{:?}: {fault}", TICK * step as u32));
        }
        if step == fault_steps {
            heal(&mut sim, &hosts, &mut down);
            faults.push(format!("{:?}: heal", TICK * step as u32));
            healed_at = Some(sim.elapsed());
        }
        if let Some(healed) = healed_at {
            if settled(&shared.borrow(), healed, members.len()) {
                break;
            }
            if sim.elapsed() - healed > LIVENESS_BUDGET {
                let what = format!(
                    "no leader with an acknowledged proposal and all members caught up within {LIVENESS_BUDGET:?} of healing"
                );
                checker_failure(&mut checker, &at(step), what);
                break;
            }
        }
    }

    let shared = shared.borrow();
    let observed = observe(&shared);
    checker.check_logs(&at(step), &observed);
    let acked: Vec<Command> = shared
        .proposals
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Acknowledged { .. }))
        .map(|p| p.command.clone())
        .collect();
    for member in &observed {
        checker.check_acknowledged(&at(step), member, &acked);
    }
    for proposal in &shared.proposals {
        proposal.outcome.hash(&mut trace);
    }
    Report {
        violations: checker.violations.clone(),
        trace_digest: trace.finish(),
        faults,
        acknowledged: acked.len(),
        proposals: shared.proposals.len(),
        leader_ids: checker.leader_ids_seen(),
        terms_with_several_leaders: checker.terms_with_several_leaders(),
        simulated: sim.elapsed(),
        members_at_end: observed.iter().map(describe).collect(),
    }
}

fn describe(member: &Observed<'_>) -> String {
    let m = member.node.metrics();
    format!(
        "m{}: {:?} {:?} vote {} leader {:?} last log {:?} applied {:?} snapshot {:?} purged {:?} replication {:?}",
        member.member_id,
        m.state,
        m.running_state,
        m.vote,
        m.current_leader,
        m.last_log_index,
        m.last_applied,
        m.snapshot,
        m.purged,
        m.replication
    )
}

fn checker_failure(checker: &mut Checker, at: &str, what: String) {
    checker.violations.push(format!("at {at}: {what}"));
}

fn ticks(duration: Duration) -> u64 {
    (duration.as_millis() / TICK.as_millis()) as u64
}

fn observe(shared: &Shared) -> Vec<Observed<'_>> {
    shared
        .running
        .iter()
        .map(|(id, running)| Observed {
            member_id: *id,
            node: &running.node,
            log: &running.log,
        })
        .collect()
}

fn fold_trace(trace: &mut DefaultHasher, step: u64, observed: &[Observed<'_>]) {
    step.hash(trace);
    for member in observed {
        let metrics = member.node.metrics();
        member.member_id.hash(trace);
        metrics.current_term.hash(trace);
        (metrics.state == ServerState::Leader).hash(trace);
        metrics.last_log_index.hash(trace);
        metrics.last_applied.map(|l| l.index).hash(trace);
        metrics.current_leader.hash(trace);
    }
}

/// After healing: every member runs and has applied the leader's whole
/// log, and a proposal made after healing was acknowledged.
fn settled(shared: &Shared, healed: Duration, members: usize) -> bool {
    if shared.running.len() < members {
        return false;
    }
    let acked_since = shared
        .proposals
        .iter()
        .any(|p| p.invoked >= healed && matches!(p.outcome, Outcome::Acknowledged { .. }));
    if !acked_since {
        return false;
    }
    let leaders: Vec<_> = shared
        .running
        .values()
        .map(|r| r.node.metrics())
        .filter(|m| m.state == ServerState::Leader)
        .collect();
    let [leader] = leaders.as_slice() else {
        return false;
    };
    shared
        .running
        .values()
        .all(|r| r.node.metrics().last_applied.map(|l| l.index) == leader.last_log_index)
}

fn apply(
    sim: &mut turmoil::Sim<'_>,
    fault: &Fault,
    hosts: &[String],
    down: &mut BTreeSet<MemberId>,
    shared: &Rc<RefCell<Shared>>,
) {
    match fault {
        Fault::Quiet => {}
        Fault::Crash(member) => {
            sim.crash(host_name(*member));
            shared.borrow_mut().running.remove(member);
            down.insert(*member);
        }
        Fault::Restart(member) => {
            sim.bounce(host_name(*member));
            down.remove(member);
        }
        Fault::Isolate(member) => {
            let name = host_name(*member);
            for other in hosts.iter().filter(|h| **h != name) {
                sim.partition(name.as_str(), other.as_str());
            }
        }
        Fault::Split {
            side,
            client_inside,
        } => {
            let mut inside: Vec<String> = side.iter().map(|m| host_name(*m)).collect();
            if *client_inside {
                inside.push("client".to_owned());
            }
            for a in &inside {
                for b in hosts.iter().filter(|h| !inside.contains(h)) {
                    sim.partition(a.as_str(), b.as_str());
                }
            }
        }
        Fault::OneWay { from, to } => {
            let name = |m: MemberId| match m {
                0 => "client".to_owned(),
                m => host_name(m),
            };
            sim.partition_oneway(name(*from).as_str(), name(*to).as_str());
        }
        Fault::Repair => repair_all(sim, hosts),
        Fault::BreakLinks(rate) => sim.set_fail_rate(*rate),
        Fault::Latency(max) => sim.set_max_message_latency(*max),
    }
}

fn repair_all(sim: &mut turmoil::Sim<'_>, hosts: &[String]) {
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            sim.repair(a.as_str(), b.as_str());
        }
    }
}

/// Ends every fault: partitions repaired, links whole, latency normal, and
/// every crashed member restarted.
fn heal(sim: &mut turmoil::Sim<'_>, hosts: &[String], down: &mut BTreeSet<MemberId>) {
    repair_all(sim, hosts);
    sim.set_fail_rate(0.0);
    sim.set_max_message_latency(NORMAL_LATENCY);
    for member in std::mem::take(down) {
        sim.bounce(host_name(member));
    }
}
