//! A group and its record in `__consumer_offsets`: the metadata written
//! when a generation is settled (and what its store's outcome does), the
//! group rebuilt from it when another broker takes over the group's
//! partition, and the group handed back when this broker stops
//! coordinating it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::{Effect, Group, GroupLimits, GroupState, JoinOutcome, Member, ReplyId, SyncOutcome};
use crate::group::records::{GroupMetadata, MemberMetadata};

impl Group {
    /// The group's metadata as Kafka's `GroupMetadataValue` holds it: each
    /// member with its metadata for the chosen protocol and its assignment.
    /// The state timestamp is the shell's to stamp (-1 here).
    pub(super) fn metadata(&self) -> GroupMetadata {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadata {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: -1,
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: millis(m.rebalance_timeout),
                    session_timeout_ms: millis(m.session_timeout),
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The group as its last stored metadata left it (Kafka's
    /// `GroupMetadata.loadGroup`): Stable with its members, their
    /// assignments and generation, or Empty. Each member's session starts
    /// now, so members that still heartbeat keep their place and a dead
    /// one expires after its session timeout.
    pub fn restore(
        group_id: &str,
        metadata: &GroupMetadata,
        limits: GroupLimits,
        now: Instant,
    ) -> Group {
        let mut group = Group::new(group_id, limits);
        group.generation_id = metadata.generation_id;
        group.protocol_type =
            (!metadata.protocol_type.is_empty()).then(|| metadata.protocol_type.clone());
        group.protocol_name = metadata.protocol_name.clone();
        let protocol = metadata.protocol_name.clone().unwrap_or_default();
        for stored in &metadata.members {
            group.next_seq += 1;
            let session_timeout = duration(stored.session_timeout_ms);
            if let Some(instance) = &stored.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), stored.member_id.clone());
            }
            group.members.insert(
                stored.member_id.clone(),
                Member {
                    member_id: stored.member_id.clone(),
                    group_instance_id: stored.group_instance_id.clone(),
                    client_id: stored.client_id.clone(),
                    client_host: stored.client_host.clone(),
                    session_timeout,
                    rebalance_timeout: duration(stored.rebalance_timeout_ms),
                    protocol_type: metadata.protocol_type.clone(),
                    protocols: vec![(protocol.clone(), stored.subscription.clone())],
                    assignment: stored.assignment.clone(),
                    join_reply: None,
                    sync_reply: None,
                    session_deadline: now + session_timeout,
                    joined_seq: group.next_seq,
                },
            );
        }
        group.leader = metadata
            .leader
            .clone()
            .filter(|leader| group.members.contains_key(leader));
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    /// The store of a generation's metadata ended. Success makes the group
    /// Stable and answers every parked SyncGroup with its assignment; a
    /// failure answers them with the error (Kafka's
    /// `resetAndPropagateAssignmentError`) and starts a rebalance. A result
    /// for a generation the group has left behind changes nothing.
    pub(super) fn stored(
        &mut self,
        generation_id: i32,
        error: Option<ResponseError>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if self.storing != Some(generation_id)
            || self.generation_id != generation_id
            || self.state != GroupState::CompletingRebalance
        {
            return;
        }
        self.storing = None;
        if let Some(error) = error {
            let parked: Vec<ReplyId> = self
                .members
                .values_mut()
                .filter_map(|m| {
                    m.assignment = Bytes::new();
                    m.sync_reply.take()
                })
                .collect();
            for reply in parked {
                out.push(Effect::Sync(
                    reply,
                    SyncOutcome {
                        error: Some(error),
                        ..SyncOutcome::default()
                    },
                ));
            }
            self.prepare_rebalance(now, out);
            self.try_complete_join(now, out);
            return;
        }
        self.state = GroupState::Stable;
        let parked: Vec<(ReplyId, Bytes)> = self
            .members
            .values_mut()
            .filter_map(|m| Some((m.sync_reply.take()?, m.assignment.clone())))
            .collect();
        for (reply, assignment) in parked {
            out.push(Effect::Sync(reply, self.sync_outcome(assignment)));
        }
    }

    /// This broker no longer coordinates the group: every parked JoinGroup
    /// and SyncGroup is answered NOT_COORDINATOR, so its member finds the
    /// new coordinator (Kafka's `onGroupUnloaded`).
    pub fn evict(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        for member in self.members.values_mut() {
            if let Some(reply) = member.join_reply.take() {
                out.push(Effect::Join(
                    reply,
                    JoinOutcome {
                        error: Some(ResponseError::NotCoordinator),
                        generation_id: -1,
                        member_id: member.member_id.clone(),
                        ..JoinOutcome::default()
                    },
                ));
            }
            if let Some(reply) = member.sync_reply.take() {
                out.push(Effect::Sync(
                    reply,
                    SyncOutcome {
                        error: Some(ResponseError::NotCoordinator),
                        assignment: Bytes::new(),
                        ..SyncOutcome::default()
                    },
                ));
            }
        }
        self.storing = None;
        out
    }
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// A stored timeout; a negative one (only a foreign writer's) counts as 0.
fn duration(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
