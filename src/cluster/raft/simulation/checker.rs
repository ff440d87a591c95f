//! The invariants, checked against what each running member holds.
//!
//! A note on election safety. openraft's default mode (the one gregor
//! runs) orders leaders by `(term, member id)`, not by term alone: within a
//! term a candidate with a higher id may still win the votes of members
//! that voted for a lower one, so "one leader per term" is not its
//! guarantee, and checking it would flag correct runs. Its guarantee is
//! that a leader holds a quorum of votes for its leader id, which rests on
//! every member's vote only ever moving forward — across crashes, that is
//! what the durable vote is for. Both are checked: votes never go
//! backwards, and every leader has a quorum of members whose vote is at
//! least its own.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use openraft::{EntryPayload, LogId, ServerState, Vote};

use super::super::{LogStore, MemberId, RaftNode};
use crate::cluster::metadata::Command;

/// A member as the checker sees it after a step.
pub struct Observed<'a> {
    pub member_id: MemberId,
    pub node: &'a RaftNode,
    pub log: &'a LogStore,
}

/// A committed entry: its id and a digest of its payload.
type CommittedEntry = (LogId<MemberId>, u64);

#[derive(Default)]
pub struct Checker {
    members: usize,
    /// The highest vote each member was seen with (kept while it is down).
    votes: BTreeMap<MemberId, Vote<MemberId>>,
    /// Every index known committed (applied on some member).
    committed: BTreeMap<u64, CommittedEntry>,
    /// Leader ids seen, and the terms that had more than one leader.
    leaders: BTreeSet<(u64, MemberId)>,
    /// Members whose raft stopped on a fatal error (reported once each).
    stopped: BTreeSet<MemberId>,
    pub violations: Vec<String>,
}

fn payload_digest(payload: &EntryPayload<super::super::TypeConfig>) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(payload)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

impl Checker {
    pub fn new(members: usize) -> Self {
        Self {
            members,
            ..Self::default()
        }
    }

    fn violation(&mut self, at: &str, what: String) {
        // Each kind of violation once per run is enough to replay it.
        if self.violations.len() < 20 {
            self.violations.push(format!("at {at}: {what}"));
        }
    }

    /// Checks after one simulation step: votes, leaders' quorums.
    pub fn after_step(&mut self, at: &str, running: &[Observed<'_>]) {
        for member in running {
            let metrics = member.node.metrics();
            if let Err(fatal) = &metrics.running_state
                && self.stopped.insert(member.member_id)
            {
                let what = format!("member {} stopped: {fatal}", member.member_id);
                self.violation(at, what);
            }
            let vote = metrics.vote;
            match self.votes.get(&member.member_id) {
                // By leader id: whether the vote is committed may be
                // relearned after a restart.
                Some(seen) if vote.leader_id() < seen.leader_id() => {
                    let what = format!(
                        "member {} vote went backwards from {seen} to {vote}",
                        member.member_id
                    );
                    self.violation(at, what);
                    // Reported once; the quorum check counts what it holds now.
                    self.votes.insert(member.member_id, vote);
                }
                Some(seen) if vote.leader_id() == seen.leader_id() => {}
                _ => {
                    self.votes.insert(member.member_id, vote);
                }
            }
        }
        for member in running {
            let metrics = member.node.metrics();
            if metrics.state != ServerState::Leader {
                continue;
            }
            let vote = metrics.vote;
            self.leaders
                .insert((vote.leader_id().term, member.member_id));
            let supporters = self
                .votes
                .values()
                .filter(|v| v.leader_id() >= vote.leader_id())
                .count();
            if supporters * 2 <= self.members {
                self.violation(
                    at,
                    format!(
                        "member {} leads with vote {vote} but only {supporters} of {} members hold a vote as high",
                        member.member_id, self.members
                    ),
                );
            }
        }
    }

    /// Checks the members' logs: log matching, committed entries unchanged.
    pub fn check_logs(&mut self, at: &str, running: &[Observed<'_>]) {
        let logs: Vec<(MemberId, Vec<LogId<MemberId>>)> = running
            .iter()
            .map(|m| (m.member_id, m.log.log_ids()))
            .collect();
        for (i, (a, a_log)) in logs.iter().enumerate() {
            for (b, b_log) in &logs[i + 1..] {
                if let Some(what) = log_matching(a_log, b_log) {
                    self.violation(at, format!("log matching between {a} and {b}: {what}"));
                }
            }
        }
        for member in running {
            let Some(applied) = member.node.metrics().last_applied else {
                continue;
            };
            for log_id in member.log.log_ids() {
                if log_id.index > applied.index {
                    break;
                }
                let Some(entry) = member.log.entry(log_id.index) else {
                    continue;
                };
                let held = (entry.log_id, payload_digest(&entry.payload));
                match self.committed.get(&log_id.index) {
                    None => {
                        self.committed.insert(log_id.index, held);
                    }
                    Some(committed) if *committed != held => {
                        let what = format!(
                            "member {} applied {} at index {} where {} was committed",
                            member.member_id, held.0, log_id.index, committed.0
                        );
                        self.violation(at, what);
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// Terms in which more than one member led (allowed by openraft's
    /// default mode; reported, not a violation).
    pub fn terms_with_several_leaders(&self) -> usize {
        let mut per_term: BTreeMap<u64, usize> = BTreeMap::new();
        for (term, _) in &self.leaders {
            *per_term.entry(*term).or_default() += 1;
        }
        per_term.values().filter(|n| **n > 1).count()
    }

    pub fn leader_ids_seen(&self) -> usize {
        self.leaders.len()
    }

    /// Every acknowledged command is in `member`'s applied image.
    pub fn check_acknowledged(&mut self, at: &str, member: &Observed<'_>, acked: &[Command]) {
        let image = member.node.state().image();
        for command in acked {
            let present = match command {
                Command::RegisterBroker {
                    broker_id,
                    incarnation_id,
                    ..
                } => image
                    .brokers
                    .get(broker_id)
                    .is_some_and(|b| b.incarnation_id == *incarnation_id),
                Command::CreateTopic { name, topic_id, .. } => {
                    image.topics.get(name).is_some_and(|t| t.id == *topic_id)
                }
                _ => true,
            };
            if !present {
                self.violation(
                    at,
                    format!(
                        "acknowledged {command:?} is missing on member {}",
                        member.member_id
                    ),
                );
            }
        }
    }
}

/// Raft's log matching: where two logs hold the same id at an index, they
/// hold the same ids at every earlier index both still have.
fn log_matching(a: &[LogId<MemberId>], b: &[LogId<MemberId>]) -> Option<String> {
    let b_by_index: BTreeMap<u64, &LogId<MemberId>> = b.iter().map(|l| (l.index, l)).collect();
    let mut matched_at = None;
    for log_id in a.iter().rev() {
        let Some(other) = b_by_index.get(&log_id.index) else {
            continue;
        };
        match matched_at {
            None if *other == log_id => matched_at = Some(log_id.index),
            None => {}
            Some(at) if *other != log_id => {
                return Some(format!(
                    "both hold the entry at {at}, but index {} is {log_id} on one and {other} on the other",
                    log_id.index
                ));
            }
            Some(_) => {}
        }
    }
    None
}
