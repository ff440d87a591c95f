//! One quorum member: its stores, its [`Raft`], and what the coordinator
//! asks of it in plain types (propose, fresh reads, who leads, status).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{ChangeMembers, Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use super::network::{BadRaftRequest, HttpNetwork, RaftRpc};
use super::{
    Applied, LogStore, Member, MemberId, Proposal, Raft, StateMachine, StateMachineHandle,
    TypeConfig,
};
use crate::cluster::http::CoordinatorTls;
use crate::fs;
use crate::task::OwnedTask;

/// The quorum as this member runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftSettings {
    pub member_id: MemberId,
    /// Every voter, this member included; identical on every member.
    pub voters: BTreeMap<MemberId, Member>,
    pub heartbeat_interval: Duration,
    /// An election starts after a random silence in this range.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is taken (and the log before it purged) after this many
    /// entries since the last one.
    pub snapshot_after_entries: u64,
}

impl RaftSettings {
    /// Heartbeats every 150 ms and elections after 1-2 s of silence: the
    /// election timeout stays far above an fsync (a vote and an append are
    /// acknowledged only after one, tens of ms on a slow disk), so a busy
    /// disk does not look like a dead leader, while a real failure is
    /// noticed within a couple of seconds.
    pub fn new(member_id: MemberId, voters: BTreeMap<MemberId, Member>) -> Self {
        Self {
            member_id,
            voters,
            heartbeat_interval: Duration::from_millis(150),
            election_timeout: (Duration::from_millis(1000), Duration::from_millis(2000)),
            snapshot_after_entries: 5000,
        }
    }

    fn openraft_config(&self) -> Result<Config, RaftStartError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: "gregor-coordinators".to_owned(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout.0),
            election_timeout_max: millis(self.election_timeout.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            // Kept after a snapshot so a briefly lagging follower catches
            // up from the log rather than a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshot_after_entries.min(1000),
            // Chunks fit the coordinator's request body limit.
            snapshot_max_chunk_size: 256 * 1024,
            ..Config::default()
        };
        config
            .validate()
            .map_err(|e| RaftStartError::Config(e.to_string()))
    }
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum RaftStartError {
    #[error("raft settings: {0}")]
    Config(String),
    #[error("raft storage in {}: {reason}", dir.display())]
    Storage { dir: PathBuf, reason: String },
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a proposal or a fresh read did not happen on this member.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// Another member leads (or none does yet); `leader` says which, when
    /// known, so the caller can go there.
    #[error("this coordinator is not the quorum leader")]
    NotLeader { leader: Option<(MemberId, Member)> },
    /// The member stopped, or the quorum could not be reached.
    #[error("quorum unavailable: {0}")]
    Unavailable(String),
    /// openraft refused a voter change (e.g. another one is in progress).
    #[error("voter change refused: {0}")]
    MembershipRefused(String),
}

/// A change of the voters; the quorum takes one at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Kafka's add-controller: the member catches up as a learner first.
    Add { member_id: MemberId, member: Member },
    /// Kafka's remove-controller.
    Remove { member_id: MemberId },
}

/// How long a new voter gets to catch up as a learner before it votes.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// One voter's replication as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterProgress {
    pub member_id: MemberId,
    pub member: Member,
    /// The last raft log index known to be on the voter.
    pub matched_index: Option<u64>,
}

/// What `GET /v1/quorum` and `metadata-quorum describe --status` show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    pub member_id: MemberId,
    pub leader_id: Option<MemberId>,
    /// Raft's term: Kafka's leader epoch of the metadata quorum.
    pub term: u64,
    /// The last raft index applied here (the leader applies on commit, so
    /// on the leader it is the high watermark).
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    pub is_leader: bool,
    /// Every voter; `matched_index` is known only on the leader.
    pub voters: Vec<VoterProgress>,
}

/// Initializes the quorum with `voters` after `delay`, unless this member
/// has heard from another one by then (openraft refuses it then).
async fn initialize_after(
    raft: Raft,
    member_id: MemberId,
    voters: BTreeMap<MemberId, Member>,
    delay: Duration,
) {
    tokio::time::sleep(delay).await;
    match raft.initialize(voters).await {
        Ok(()) => tracing::info!(
            member_id,
            "empty raft store: initialized the coordinator quorum"
        ),
        // Another member's vote or entries reached this one first.
        Err(error) => {
            tracing::info!(member_id, %error, "quorum already initialized by another member")
        }
    }
}

/// Follows whether this member leads, and in which term.
pub struct LeadershipWatch {
    metrics: watch::Receiver<openraft::RaftMetrics<MemberId, Member>>,
}

impl LeadershipWatch {
    /// `(leading, term)` now.
    pub fn current(&self) -> (bool, u64) {
        let metrics = self.metrics.borrow();
        (metrics.state == ServerState::Leader, metrics.current_term)
    }

    /// Waits until `(leading, term)` differs from `seen`; `None` once the
    /// member stopped.
    pub async fn changed(&mut self, seen: (bool, u64)) -> Option<(bool, u64)> {
        loop {
            let now = self.current();
            if now != seen {
                return Some(now);
            }
            self.metrics.changed().await.ok()?;
        }
    }
}

/// How long a write or a fresh read waits for the quorum. Past it the
/// caller hears REQUEST_TIMED_OUT, as from Kafka's controller; a write may
/// still commit afterwards, which a retry then finds (e.g. the topic exists).
const QUORUM_TIMEOUT: Duration = Duration::from_secs(10);
/// How fresh a quorum's acknowledgement of the leader must be for a turn
/// to skip the read-index round.
const RECENT_QUORUM_ACK: Duration = Duration::from_millis(500);

fn timed_out(what: &str) -> QuorumError {
    QuorumError::Unavailable(format!("{what} within {QUORUM_TIMEOUT:?}"))
}

/// Opens the raft log and the state machine in `dir`, created if missing.
pub(crate) async fn open_stores(dir: &Path) -> Result<(LogStore, StateMachine), RaftStartError> {
    let storage_failed = |reason: String| RaftStartError::Storage {
        dir: dir.to_owned(),
        reason,
    };
    let owned_dir = dir.to_owned();
    fs::blocking(move || {
        fs::create_dir_all(&owned_dir).map_err(|e| e.to_string())?;
        let log_store = LogStore::open(&owned_dir).map_err(|e| e.to_string())?;
        let machine = StateMachine::open(&owned_dir).map_err(|e| e.to_string())?;
        Ok::<_, String>((log_store, machine))
    })
    .await
    .map_err(|e| storage_failed(e.to_string()))?
    .map_err(storage_failed)
}

/// A running member.
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft,
    machine: StateMachineHandle,
    member_id: MemberId,
    /// The first start's delayed initialization; stops with the member.
    _initializing: Option<Arc<OwnedTask<()>>>,
}

impl RaftNode {
    /// Opens the stores in `dir` (created if missing) and starts the member.
    /// A member whose stores are empty initializes the quorum with every
    /// voter in `settings` — the identical list on every member, so their
    /// first entries agree; a member with any state never does it again.
    pub async fn start(
        dir: &Path,
        settings: &RaftSettings,
        tls: Option<CoordinatorTls>,
    ) -> Result<Self, RaftStartError> {
        let (log_store, machine) = open_stores(dir).await?;
        Self::start_on(dir, log_store, machine, settings, HttpNetwork::new(tls)).await
    }

    /// [`RaftNode::start`] on opened stores and a given network: the seam
    /// the deterministic simulation starts members through.
    pub(crate) async fn start_on<N: RaftNetworkFactory<TypeConfig>>(
        dir: &Path,
        mut log_store: LogStore,
        mut machine: StateMachine,
        settings: &RaftSettings,
        network: N,
    ) -> Result<Self, RaftStartError> {
        let config = Arc::new(settings.openraft_config()?);
        let storage_failed = |reason: String| RaftStartError::Storage {
            dir: dir.to_owned(),
            reason,
        };
        let log_state = log_store
            .get_log_state()
            .await
            .map_err(|e| storage_failed(e.to_string()))?;
        let vote = log_store
            .read_vote()
            .await
            .map_err(|e| storage_failed(e.to_string()))?;
        let (applied, _) = machine
            .applied_state()
            .await
            .map_err(|e| storage_failed(e.to_string()))?;
        let empty = log_state.last_log_id.is_none() && vote.is_none() && applied.is_none();
        // A member that is not among the configured voters joins a running
        // quorum (add-controller) and never initializes one.
        let founding = settings.voters.contains_key(&settings.member_id);
        let handle = machine.handle();
        let raft = Raft::new(settings.member_id, config, network, log_store, machine)
            .await
            .map_err(|e| RaftStartError::Raft(e.to_string()))?;
        let initializing = (empty && founding).then(|| {
            // Every member with an empty store initializes with the same
            // voters, but not all at once: each initialization starts an
            // election, and in openraft's default mode a same-term
            // candidate with a higher id unseats a fresh leader. So the
            // lowest id goes first and each next one waits an election
            // timeout more; by then the others usually have its entries
            // and their own initialization is refused, as it must be.
            let rank = settings
                .voters
                .keys()
                .position(|id| *id == settings.member_id)
                .unwrap_or(0);
            let delay = settings.election_timeout.1 * u32::try_from(rank).unwrap_or(u32::MAX);
            Arc::new(OwnedTask::spawn(initialize_after(
                raft.clone(),
                settings.member_id,
                settings.voters.clone(),
                delay,
            )))
        });
        Ok(Self {
            raft,
            machine: handle,
            member_id: settings.member_id,
            _initializing: initializing,
        })
    }

    pub fn member_id(&self) -> MemberId {
        self.member_id
    }

    /// The applied state on this member.
    pub fn state(&self) -> &StateMachineHandle {
        &self.machine
    }

    /// Commits `proposal` through the quorum (this member must lead) and
    /// returns what applying it answered.
    pub async fn propose(&self, proposal: Proposal) -> Result<Applied, QuorumError> {
        let written = tokio::time::timeout(QUORUM_TIMEOUT, self.raft.client_write(proposal))
            .await
            .map_err(|_| timed_out("the write was not committed"))?;
        match written {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(self.not_leader(forward.leader_id, forward.leader_node))
            }
            Err(error) => Err(QuorumError::Unavailable(error.to_string())),
        }
    }

    /// Returns once this member has confirmed with a quorum that it leads
    /// and has applied everything committed before the call: a read of the
    /// state after it is linearizable.
    pub async fn ensure_fresh(&self) -> Result<(), QuorumError> {
        let confirmed = tokio::time::timeout(QUORUM_TIMEOUT, self.raft.ensure_linearizable())
            .await
            .map_err(|_| timed_out("no quorum confirmed the lead"))?;
        match confirmed {
            Ok(_) => Ok(()),
            Err(error) => match error.forward_to_leader::<Member>() {
                Some(forward) => {
                    Err(self.not_leader(forward.leader_id, forward.leader_node.clone()))
                }
                None => Err(QuorumError::Unavailable(error.to_string())),
            },
        }
    }

    fn not_leader(&self, leader_id: Option<MemberId>, node: Option<Member>) -> QuorumError {
        let leader = match (leader_id, node) {
            (Some(id), Some(member)) => Some((id, member)),
            (Some(id), None) => self.voter(id).map(|member| (id, member)),
            _ => None,
        };
        QuorumError::NotLeader { leader }
    }

    fn voter(&self, id: MemberId) -> Option<Member> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// The leader, as far as this member knows.
    pub fn leader(&self) -> Option<(MemberId, Member)> {
        let id = self.raft.metrics().borrow().current_leader?;
        self.voter(id).map(|member| (id, member))
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The term this member leads in, if it leads and a quorum acknowledged
    /// it within the last [`RECENT_QUORUM_ACK`] (heartbeats go every
    /// 150 ms). A leader cut off from its quorum is not leading here, so its
    /// callers take the read-index round, which fails fast, instead of
    /// waiting out a write that cannot commit.
    pub fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let recent = metrics
            .millis_since_quorum_ack
            .is_some_and(|ms| ms <= RECENT_QUORUM_ACK.as_millis() as u64);
        (metrics.state == ServerState::Leader && recent).then_some(metrics.current_term)
    }

    /// openraft's view of this member (the simulation's checker reads it).
    #[cfg(test)]
    pub(crate) fn metrics(&self) -> openraft::RaftMetrics<MemberId, Member> {
        self.raft.metrics().borrow().clone()
    }

    /// Follows this member's leadership.
    pub fn leadership(&self) -> LeadershipWatch {
        LeadershipWatch {
            metrics: self.raft.metrics(),
        }
    }

    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters = membership
            .voter_ids()
            .map(|id| VoterProgress {
                member_id: id,
                member: membership.get_node(&id).cloned().unwrap_or_default(),
                matched_index: metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).copied().flatten())
                    .map(|log_id| log_id.index),
            })
            .collect();
        QuorumStatus {
            member_id: self.member_id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            applied_index: metrics.last_applied.map(|l| l.index),
            last_log_index: metrics.last_log_index,
            is_leader: metrics.state == ServerState::Leader,
            voters,
        }
    }

    /// The voters now, with their addresses.
    pub fn voters(&self) -> BTreeMap<MemberId, Member> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership
            .voter_ids()
            .map(|id| (id, membership.get_node(&id).cloned().unwrap_or_default()))
            .collect()
    }

    /// Adds or removes one voter (this member must lead). Adding waits for
    /// the new member to catch up as a learner, so it does not hold back
    /// commits once it votes; openraft's joint consensus does the rest.
    pub async fn change_voters(&self, change: MembershipChange) -> Result<(), QuorumError> {
        let (members, deadline) = match change {
            MembershipChange::Add { member_id, member } => {
                let learned = tokio::time::timeout(
                    CATCH_UP_TIMEOUT,
                    self.raft.add_learner(member_id, member, true),
                )
                .await
                .map_err(|_| timed_out("the new controller did not catch up"))?;
                self.write_error(learned.map(|_| ()))?;
                (
                    ChangeMembers::AddVoterIds([member_id].into()),
                    QUORUM_TIMEOUT,
                )
            }
            MembershipChange::Remove { member_id } => (
                ChangeMembers::RemoveVoters([member_id].into()),
                QUORUM_TIMEOUT,
            ),
        };
        let changed = tokio::time::timeout(deadline, self.raft.change_membership(members, false))
            .await
            .map_err(|_| timed_out("the voter change was not committed"))?;
        self.write_error(changed.map(|_| ()))
    }

    fn write_error(
        &self,
        result: Result<(), RaftError<MemberId, ClientWriteError<MemberId, Member>>>,
    ) -> Result<(), QuorumError> {
        match result {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(self.not_leader(forward.leader_id, forward.leader_node))
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(refused))) => {
                Err(QuorumError::MembershipRefused(refused.to_string()))
            }
            Err(error) => Err(QuorumError::Unavailable(error.to_string())),
        }
    }

    /// Serves one raft RPC from a peer.
    pub async fn serve_rpc(&self, rpc: RaftRpc, body: &[u8]) -> Result<Vec<u8>, BadRaftRequest> {
        super::network::serve(&self.raft, rpc, body).await
    }

    /// Takes a snapshot now (tests; the policy takes them otherwise).
    pub async fn trigger_snapshot(&self) -> Result<(), QuorumError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| QuorumError::Unavailable(e.to_string()))
    }

    /// Stops the member's raft tasks.
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft did not stop cleanly");
        }
    }
}
