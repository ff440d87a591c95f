//! One classic consumer group as a pure state machine.
//!
//! `Group::on_event` takes a request (or a clock tick) and the current time
//! and returns the replies it produces, as [`Effect`]s. A reply may belong
//! to an earlier request: JoinGroup and SyncGroup park until the rebalance
//! they wait for completes, and the effects that complete it answer every
//! parked request at once. Nothing here touches sockets, clocks or timers;
//! the shell in `coordinator.rs` asks [`Group::deadline`] when to tick.
//!
//! The states and transitions are Kafka's (`GroupMetadata` /
//! `GroupCoordinator`): Empty → PreparingRebalance → CompletingRebalance →
//! Stable, back to PreparingRebalance on any membership change.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

mod protocol;

pub use protocol::*;

pub struct Group {
    pub group_id: String,
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → current member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, each with the time
    /// by which it must rejoin.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    /// While the first rebalance of an empty group waits for more members
    /// (`group.initial.rebalance.delay.ms`): (current end, latest end).
    initial_delay: Option<(Instant, Instant)>,
    limits: GroupLimits,
    next_seq: u64,
    /// The generation whose metadata (with the leader's assignment) is
    /// being written to the offsets partition; the group stays in
    /// CompletingRebalance, its SyncGroup answers parked, until it is.
    storing: Option<i32>,
}

impl Group {
    pub fn new(group_id: &str, limits: GroupLimits) -> Self {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            limits,
            next_seq: 0,
            storing: None,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// The earliest time at which a `Tick` could change something.
    pub fn deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none())
            .map(|m| m.session_deadline);
        let rebalance = match self.state {
            GroupState::PreparingRebalance => self
                .rebalance_deadline
                .into_iter()
                .chain(self.initial_delay.map(|(end, _)| end))
                .min(),
            _ => None,
        };
        sessions
            .chain(self.pending.values().copied())
            .chain(rebalance)
            .min()
    }

    pub fn on_event(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::Join(reply, request) => self.join(reply, request, now, &mut effects),
            Event::Sync(reply, request) => self.sync(reply, request, now, &mut effects),
            Event::Heartbeat(reply, member, generation_id) => {
                let error = self.heartbeat(&member, generation_id, now);
                effects.push(Effect::Heartbeat(reply, error));
            }
            Event::Leave(reply, members) => self.leave(reply, members, now, &mut effects),
            Event::Tick => self.tick(now, &mut effects),
            Event::Stored {
                generation_id,
                error,
            } => self.stored(generation_id, error, now, &mut effects),
        }
        effects
    }

    /// Whether an OffsetCommit from this member may be stored now
    /// (Kafka's `validateOffsetCommit`). A commit with generation -1 and
    /// no member id into a group without members is a standalone
    /// consumer's, and is accepted.
    pub fn validate_commit(
        &self,
        member: &MemberRef,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if self.is_fenced(member) {
            return Err(ResponseError::FencedInstanceId);
        }
        if generation_id < 0 && member.member_id.is_empty() && self.members.is_empty() {
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if !self.members.contains_key(&member.member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    fn is_fenced(&self, member: &MemberRef) -> bool {
        member.group_instance_id.as_ref().is_some_and(|instance| {
            self.static_members
                .get(instance)
                .is_some_and(|current| *current != member.member_id)
        })
    }

    fn join(&mut self, reply: ReplyId, request: JoinRequest, now: Instant, out: &mut Vec<Effect>) {
        let fail = |out: &mut Vec<Effect>, error: ResponseError, member_id: String| {
            out.push(Effect::Join(
                reply,
                JoinOutcome {
                    error: Some(error),
                    generation_id: -1,
                    member_id,
                    ..JoinOutcome::default()
                },
            ));
        };
        if request.session_timeout < self.limits.min_session_timeout
            || request.session_timeout > self.limits.max_session_timeout
        {
            return fail(out, ResponseError::InvalidSessionTimeout, request.member_id);
        }
        if !self.supports(&request.protocol_type, &request.protocols) {
            return fail(
                out,
                ResponseError::InconsistentGroupProtocol,
                request.member_id,
            );
        }
        let member_id = request.member_id.clone();
        if member_id.is_empty() {
            if let Some(instance) = &request.group_instance_id
                && let Some(old) = self.static_members.get(instance).cloned()
            {
                return self.replace_static_member(reply, &old, request, now, out);
            }
            let new_id = format!("{}-{}", request.client_id, Uuid::new_v4());
            if request.require_known_member_id && request.group_instance_id.is_none() {
                self.pending
                    .insert(new_id.clone(), now + request.session_timeout);
                return fail(out, ResponseError::MemberIdRequired, new_id);
            }
            return self.add_member(reply, new_id, request, now, out);
        }
        if self.pending.remove(&member_id).is_some() {
            return self.add_member(reply, member_id, request, now, out);
        }
        if let Some(instance) = &request.group_instance_id {
            match self.static_members.get(instance) {
                Some(current) if *current != member_id => {
                    return fail(out, ResponseError::FencedInstanceId, member_id);
                }
                None => return fail(out, ResponseError::UnknownMemberId, member_id),
                Some(_) => {}
            }
        }
        let Some(member) = self.members.get(&member_id) else {
            return fail(out, ResponseError::UnknownMemberId, member_id);
        };
        let unchanged = member.same_protocols(&request.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(self.state == GroupState::Stable && is_leader) =>
            {
                // A rejoin with nothing new: answer with the current
                // generation instead of disturbing the group.
                let outcome = self.join_outcome(&member_id);
                if let Some(member) = self.members.get_mut(&member_id) {
                    member.session_deadline = now + member.session_timeout;
                }
                out.push(Effect::Join(reply, outcome));
            }
            _ => {
                self.update_member(&member_id, &request, reply, out);
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now, out);
                }
                self.try_complete_join(now, out);
            }
        }
    }

    /// Kafka's `supportsProtocols`: a first member must name a type and at
    /// least one protocol; later ones must share the type and one protocol
    /// with every member.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn add_member(
        &mut self,
        reply: ReplyId,
        member_id: String,
        request: JoinRequest,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.next_seq += 1;
        self.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: request.group_instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocol_type: request.protocol_type,
                protocols: request.protocols,
                assignment: Bytes::new(),
                join_reply: Some(reply),
                sync_reply: None,
                session_deadline: now + request.session_timeout,
                joined_seq: self.next_seq,
            },
        );
        match self.state {
            GroupState::PreparingRebalance => {
                // A newcomer during the initial delay buys the group
                // another delay, up to the rebalance timeout.
                if let Some((end, latest)) = self.initial_delay {
                    let extended = (now + self.limits.initial_rebalance_delay).min(latest);
                    self.initial_delay = Some((end.max(extended), latest));
                }
            }
            _ => self.prepare_rebalance(now, out),
        }
        self.try_complete_join(now, out);
    }

    fn update_member(
        &mut self,
        member_id: &str,
        request: &JoinRequest,
        reply: ReplyId,
        out: &mut Vec<Effect>,
    ) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.protocols = request.protocols.clone();
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        if let Some(previous) = member.join_reply.replace(reply) {
            // The client gave up on its earlier JoinGroup and sent another;
            // only the newest one will be answered with the generation.
            out.push(Effect::Join(
                previous,
                JoinOutcome {
                    error: Some(ResponseError::RebalanceInProgress),
                    generation_id: -1,
                    member_id: member_id.to_string(),
                    ..JoinOutcome::default()
                },
            ));
        }
    }

    /// A static member rejoining without its member id (a restarted
    /// process): it takes over the old member's slot under a new id, and
    /// whoever still holds the old id is fenced.
    fn replace_static_member(
        &mut self,
        reply: ReplyId,
        old_id: &str,
        request: JoinRequest,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        if let Some(parked) = member.join_reply.take() {
            out.push(Effect::Join(
                parked,
                JoinOutcome {
                    error: Some(ResponseError::FencedInstanceId),
                    generation_id: -1,
                    member_id: old_id.to_string(),
                    ..JoinOutcome::default()
                },
            ));
        }
        if let Some(parked) = member.sync_reply.take() {
            out.push(Effect::Sync(parked, fenced_sync()));
        }
        let new_id = format!("{}-{}", request.client_id, Uuid::new_v4());
        let unchanged = member.same_protocols(&request.protocols);
        member.member_id = new_id.clone();
        member.session_deadline = now + request.session_timeout;
        self.members.insert(new_id.clone(), member);
        if let Some(instance) = &request.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.state == GroupState::Stable && unchanged && !was_leader {
            // Kafka's static-membership promise: a restarted follower with
            // the same subscription keeps its assignment, no rebalance.
            if let Some(member) = self.members.get_mut(&new_id) {
                member.client_host = request.client_host.clone();
                member.session_timeout = request.session_timeout;
                member.rebalance_timeout = request.rebalance_timeout;
            }
            let outcome = self.join_outcome(&new_id);
            out.push(Effect::Join(reply, outcome));
            return;
        }
        self.update_member(&new_id, &request, reply, out);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, out);
        }
        self.try_complete_join(now, out);
    }

    fn prepare_rebalance(&mut self, now: Instant, out: &mut Vec<Effect>) {
        // A store still in flight is for a generation that will not be.
        self.storing = None;
        if self.state == GroupState::CompletingRebalance {
            // Followers waiting for an assignment that will never come.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(parked) = member.sync_reply.take() {
                    out.push(Effect::Sync(
                        parked,
                        SyncOutcome {
                            error: Some(ResponseError::RebalanceInProgress),
                            ..SyncOutcome::default()
                        },
                    ));
                }
            }
        }
        let rebalance_timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.initial_delay = (self.state == GroupState::Empty
            && !self.limits.initial_rebalance_delay.is_zero())
        .then(|| {
            (
                now + self.limits.initial_rebalance_delay.min(rebalance_timeout),
                now + rebalance_timeout,
            )
        });
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + rebalance_timeout);
    }

    fn try_complete_join(&mut self, now: Instant, out: &mut Vec<Effect>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some((end, _)) = self.initial_delay {
            if now < end {
                return;
            }
            self.initial_delay = None;
        }
        let all_joined = self.members.values().all(|m| m.join_reply.is_some());
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        if (all_joined && self.pending.is_empty()) || timed_out {
            self.complete_join(now, out);
        }
    }

    /// Ends the join phase: members that did not rejoin in time are
    /// dropped (static ones keep their slot until their session expires),
    /// a new generation begins, and every waiting member is answered.
    fn complete_join(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let late: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in late {
            self.remove_member(&member_id, out);
        }
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            // Kafka keeps the empty group's generation in the log too.
            out.push(Effect::StoreGroup(self.metadata()));
            return;
        }
        self.state = GroupState::CompletingRebalance;
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .filter(|m| m.join_reply.is_some())
                .min_by_key(|m| m.joined_seq)
                .or_else(|| self.members.values().min_by_key(|m| m.joined_seq))
                .map(|m| m.member_id.clone());
        }
        let waiting: Vec<(String, ReplyId)> = self
            .members
            .values_mut()
            .filter_map(|m| {
                m.session_deadline = now + m.session_timeout;
                Some((m.member_id.clone(), m.join_reply.take()?))
            })
            .collect();
        for (member_id, reply) in waiting {
            out.push(Effect::Join(reply, self.join_outcome(&member_id)));
        }
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports,
    /// each member votes for the first in its own preference order.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect();
        let mut votes: Vec<(&str, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
                && let Some(vote) = votes.iter_mut().find(|(c, _)| c == name)
            {
                vote.1 += 1;
            }
        }
        // Ties go to the first member's earlier preference.
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, b)| count > b) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    fn join_outcome(&self, member_id: &str) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn sync(&mut self, reply: ReplyId, request: SyncRequest, now: Instant, out: &mut Vec<Effect>) {
        let member_ref = MemberRef {
            member_id: request.member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
        };
        let error = if self.is_fenced(&member_ref) {
            Some(ResponseError::FencedInstanceId)
        } else if !self.members.contains_key(&request.member_id) {
            Some(ResponseError::UnknownMemberId)
        } else if request.generation_id != self.generation_id {
            Some(ResponseError::IllegalGeneration)
        } else if request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || request
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol_name.as_ref())
        {
            Some(ResponseError::InconsistentGroupProtocol)
        } else if self.state == GroupState::PreparingRebalance {
            Some(ResponseError::RebalanceInProgress)
        } else {
            None
        };
        if let Some(error) = error {
            out.push(Effect::Sync(
                reply,
                SyncOutcome {
                    error: Some(error),
                    ..SyncOutcome::default()
                },
            ));
            return;
        }
        let is_leader = self.leader.as_deref() == Some(request.member_id.as_str());
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return;
        };
        member.session_deadline = now + member.session_timeout;
        if self.state == GroupState::Stable {
            let assignment = member.assignment.clone();
            out.push(Effect::Sync(reply, self.sync_outcome(assignment)));
            return;
        }
        // CompletingRebalance: wait for the leader's assignment.
        if let Some(previous) = member.sync_reply.replace(reply) {
            out.push(Effect::Sync(
                previous,
                SyncOutcome {
                    error: Some(ResponseError::RebalanceInProgress),
                    ..SyncOutcome::default()
                },
            ));
        }
        if is_leader && self.storing.is_none() {
            let assignments: HashMap<String, Bytes> = request.assignments.into_iter().collect();
            for member in self.members.values_mut() {
                member.assignment = assignments
                    .get(&member.member_id)
                    .cloned()
                    .unwrap_or_default();
            }
            // Stable once the assignment is stored, as Kafka does: a new
            // coordinator then knows this generation and its members.
            self.storing = Some(self.generation_id);
            out.push(Effect::StoreGroup(self.metadata()));
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    fn heartbeat(
        &mut self,
        member: &MemberRef,
        generation_id: i32,
        now: Instant,
    ) -> Option<ResponseError> {
        if self.is_fenced(member) {
            return Some(ResponseError::FencedInstanceId);
        }
        let Some(found) = self.members.get_mut(&member.member_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if generation_id != self.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        found.session_deadline = now + found.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ => None,
        }
    }

    fn leave(
        &mut self,
        reply: ReplyId,
        leaving: Vec<MemberRef>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let mut results = Vec::new();
        let mut removed = false;
        for member in leaving {
            // Batch LeaveGroup (v3+) may name a static member by instance
            // id alone.
            let member_id = match (&member.group_instance_id, member.member_id.is_empty()) {
                (Some(instance), true) => self.static_members.get(instance).cloned(),
                _ => Some(member.member_id.clone()),
            };
            let error = if self.is_fenced(&member) {
                Some(ResponseError::FencedInstanceId)
            } else {
                match member_id {
                    Some(id) if self.pending.remove(&id).is_some() => None,
                    Some(id) if self.members.contains_key(&id) => {
                        self.remove_member(&id, out);
                        removed = true;
                        None
                    }
                    _ => Some(ResponseError::UnknownMemberId),
                }
            };
            results.push((member.member_id, member.group_instance_id, error));
        }
        if removed {
            self.after_removal(now, out);
        }
        // v0-2 carry one member and report its error at the top level.
        let top = if results.len() == 1 {
            results[0].2
        } else {
            None
        };
        out.push(Effect::Leave(reply, top, results));
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Effect>) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.session_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &expired {
            tracing::info!(group = %self.group_id, member = %member_id, "session timed out");
            self.remove_member(member_id, out);
        }
        if !expired.is_empty() {
            self.after_removal(now, out);
        } else {
            self.try_complete_join(now, out);
        }
    }

    fn after_removal(&mut self, now: Instant, out: &mut Vec<Effect>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, out)
            }
            GroupState::Empty | GroupState::PreparingRebalance => {}
        }
        self.try_complete_join(now, out);
    }

    fn remove_member(&mut self, member_id: &str, out: &mut Vec<Effect>) {
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        if let Some(parked) = member.join_reply.take() {
            out.push(Effect::Join(
                parked,
                JoinOutcome {
                    error: Some(ResponseError::UnknownMemberId),
                    generation_id: -1,
                    member_id: member_id.to_string(),
                    ..JoinOutcome::default()
                },
            ));
        }
        if let Some(parked) = member.sync_reply.take() {
            out.push(Effect::Sync(
                parked,
                SyncOutcome {
                    error: Some(ResponseError::UnknownMemberId),
                    ..SyncOutcome::default()
                },
            ));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }
}

mod persist;

fn fenced_sync() -> SyncOutcome {
    SyncOutcome {
        error: Some(ResponseError::FencedInstanceId),
        ..SyncOutcome::default()
    }
}

#[cfg(test)]
mod tests;
