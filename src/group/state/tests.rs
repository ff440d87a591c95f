//! The group state machine driven by events, judged by its effects.

use std::time::Duration;

use super::*;
use crate::group::records::GroupMetadata;

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);

fn limits(initial_delay: Duration) -> GroupLimits {
    GroupLimits {
        min_session_timeout: Duration::from_secs(6),
        max_session_timeout: Duration::from_secs(300),
        initial_rebalance_delay: initial_delay,
    }
}

/// `on_event`, with every group store it asks for succeeding at once
/// (the stores' own tests are below and in `persist`).
fn step(g: &mut Group, event: Event, now: Instant) -> Vec<Effect> {
    let mut out = Vec::new();
    let mut pending = vec![event];
    while let Some(event) = pending.pop() {
        for effect in g.on_event(event, now) {
            match effect {
                Effect::StoreGroup(metadata) => pending.push(Event::Stored {
                    generation_id: metadata.generation_id,
                    error: None,
                }),
                other => out.push(other),
            }
        }
    }
    out
}

fn group() -> Group {
    Group::new("g", limits(Duration::ZERO))
}

fn join_request(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: false,
    }
}

fn static_join(member_id: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.to_string()),
        ..join_request(member_id, &["range"])
    }
}

fn joins(effects: &[Effect]) -> Vec<(ReplyId, JoinOutcome)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Join(id, outcome) => Some((*id, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn syncs(effects: &[Effect]) -> Vec<(ReplyId, SyncOutcome)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Sync(id, outcome) => Some((*id, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn member(member_id: &str) -> MemberRef {
    MemberRef {
        member_id: member_id.to_string(),
        group_instance_id: None,
    }
}

/// Joins one dynamic member into an empty group and syncs it: the group
/// is Stable at generation 1 with that member as leader.
fn stable_with_one(g: &mut Group, now: Instant) -> String {
    let effects = step(g, Event::Join(1, join_request("", &["range"])), now);
    let (_, outcome) = joins(&effects).remove(0);
    let id = outcome.member_id.clone();
    step(
        g,
        Event::Sync(2, sync_request(&id, 1, &[(&id, "all")])),
        now,
    );
    assert_eq!(g.state(), GroupState::Stable);
    id
}

#[test]
fn first_member_becomes_leader_and_sees_its_own_metadata() {
    let mut g = group();
    let now = Instant::now();
    let effects = step(
        &mut g,
        Event::Join(1, join_request("", &["range", "roundrobin"])),
        now,
    );
    let outcome = &joins(&effects)[0].1;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 1);
    assert!(outcome.member_id.starts_with("client-"));
    assert_eq!(outcome.leader, outcome.member_id);
    assert_eq!(outcome.protocol_name.as_deref(), Some("range"));
    assert_eq!(outcome.members.len(), 1);
    assert_eq!(outcome.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn v4_join_without_member_id_gets_member_id_required_then_joins() {
    let mut g = group();
    let now = Instant::now();
    let request = JoinRequest {
        require_known_member_id: true,
        ..join_request("", &["range"])
    };
    let effects = step(&mut g, Event::Join(1, request.clone()), now);
    let outcome = &joins(&effects)[0].1;
    assert_eq!(outcome.error, Some(ResponseError::MemberIdRequired));
    let id = outcome.member_id.clone();
    assert_eq!(g.state(), GroupState::Empty);

    let rejoin = JoinRequest {
        member_id: id.clone(),
        ..request
    };
    let effects = step(&mut g, Event::Join(2, rejoin), now);
    let outcome = &joins(&effects)[0].1;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.member_id, id);
    assert_eq!(outcome.generation_id, 1);
}

#[test]
fn join_parks_until_every_known_member_rejoins() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);

    // A newcomer starts a rebalance; its join waits for the leader.
    let effects = step(&mut g, Event::Join(3, join_request("", &["range"])), now);
    assert!(joins(&effects).is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let hb = step(&mut g, Event::Heartbeat(4, member(&a), 1), now);
    assert_eq!(
        hb,
        vec![Effect::Heartbeat(
            4,
            Some(ResponseError::RebalanceInProgress)
        )]
    );

    let effects = step(&mut g, Event::Join(5, join_request(&a, &["range"])), now);
    let answered = joins(&effects);
    assert_eq!(answered.len(), 2);
    for (_, outcome) in &answered {
        assert_eq!(outcome.generation_id, 2);
        assert_eq!(outcome.leader, a);
    }
    let leader = answered.iter().find(|(id, _)| *id == 5).map(|(_, o)| o);
    assert_eq!(leader.map(|o| o.members.len()), Some(2));
    let follower = answered.iter().find(|(id, _)| *id == 3).map(|(_, o)| o);
    assert_eq!(follower.map(|o| o.members.len()), Some(0));
}

#[test]
fn sync_parks_followers_until_the_leader_assigns() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    let effects = step(&mut g, Event::Join(3, join_request("", &["range"])), now);
    assert!(effects.is_empty());
    let effects = step(&mut g, Event::Join(4, join_request(&a, &["range"])), now);
    let b = joins(&effects)
        .into_iter()
        .find(|(id, _)| *id == 3)
        .map(|(_, o)| o.member_id)
        .unwrap_or_default();

    let effects = step(&mut g, Event::Sync(5, sync_request(&b, 2, &[])), now);
    assert!(effects.is_empty(), "the follower waits for the leader");
    let effects = step(
        &mut g,
        Event::Sync(6, sync_request(&a, 2, &[(&a, "p0"), (&b, "p1")])),
        now,
    );
    let mut answered = syncs(&effects);
    answered.sort_by_key(|(id, _)| *id);
    assert_eq!(answered.len(), 2);
    assert_eq!(
        answered[0],
        (
            5,
            SyncOutcome {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from("p1"),
            }
        )
    );
    assert_eq!(answered[1].1.assignment, Bytes::from("p0"));
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    step(&mut g, Event::Join(3, join_request("", &["range"])), now);
    // `a` keeps heartbeating but never rejoins.
    let later = now + REBALANCE;
    step(
        &mut g,
        Event::Heartbeat(4, member(&a), 1),
        later - Duration::from_secs(1),
    );
    let effects = step(&mut g, Event::Tick, later);
    let answered = joins(&effects);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].0, 3);
    assert_eq!(answered[0].1.generation_id, 2);
    assert_eq!(answered[0].1.leader, answered[0].1.member_id);
    assert!(g.members().all(|m| m.member_id != a));
}

#[test]
fn session_timeout_removes_a_member_and_empties_the_group() {
    let mut g = group();
    let now = Instant::now();
    stable_with_one(&mut g, now);
    assert_eq!(g.deadline(), Some(now + SESSION));
    let effects = step(&mut g, Event::Tick, now + SESSION);
    assert!(effects.is_empty());
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id(), 2);
    assert!(g.is_empty());
}

#[test]
fn heartbeats_keep_a_member_alive() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    let half = now + SESSION / 2;
    assert_eq!(
        step(&mut g, Event::Heartbeat(9, member(&a), 1), half),
        vec![Effect::Heartbeat(9, None)]
    );
    step(&mut g, Event::Tick, now + SESSION);
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn heartbeat_errors_for_unknown_member_and_old_generation() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    assert_eq!(
        step(&mut g, Event::Heartbeat(1, member("nobody"), 1), now),
        vec![Effect::Heartbeat(1, Some(ResponseError::UnknownMemberId))]
    );
    assert_eq!(
        step(&mut g, Event::Heartbeat(2, member(&a), 0), now),
        vec![Effect::Heartbeat(2, Some(ResponseError::IllegalGeneration))]
    );
}

#[test]
fn leave_triggers_a_rebalance_for_the_rest() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    step(&mut g, Event::Join(3, join_request("", &["range"])), now);
    let effects = step(&mut g, Event::Join(4, join_request(&a, &["range"])), now);
    let b = joins(&effects)
        .into_iter()
        .find(|(id, _)| *id == 3)
        .map(|(_, o)| o.member_id)
        .unwrap_or_default();
    step(&mut g, Event::Sync(5, sync_request(&a, 2, &[])), now);
    step(&mut g, Event::Sync(6, sync_request(&b, 2, &[])), now);

    let effects = step(&mut g, Event::Leave(7, vec![member(&a)]), now);
    assert_eq!(
        effects,
        vec![Effect::Leave(7, None, vec![(a.clone(), None, None)])]
    );
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let effects = step(&mut g, Event::Join(8, join_request(&b, &["range"])), now);
    let outcome = &joins(&effects)[0].1;
    assert_eq!(outcome.generation_id, 3);
    assert_eq!(outcome.leader, b);

    let effects = step(&mut g, Event::Leave(9, vec![member("ghost")]), now);
    assert_eq!(
        effects,
        vec![Effect::Leave(
            9,
            Some(ResponseError::UnknownMemberId),
            vec![("ghost".into(), None, Some(ResponseError::UnknownMemberId))]
        )]
    );
}

#[test]
fn inconsistent_protocols_and_bad_session_timeouts_are_refused() {
    let mut g = group();
    let now = Instant::now();
    stable_with_one(&mut g, now);
    let effects = step(&mut g, Event::Join(3, join_request("", &["other"])), now);
    assert_eq!(
        joins(&effects)[0].1.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let short = JoinRequest {
        session_timeout: Duration::from_secs(1),
        ..join_request("", &["range"])
    };
    let effects = step(&mut g, Event::Join(4, short), now);
    assert_eq!(
        joins(&effects)[0].1.error,
        Some(ResponseError::InvalidSessionTimeout)
    );
    let effects = step(
        &mut g,
        Event::Join(5, join_request("stranger", &["range"])),
        now,
    );
    assert_eq!(
        joins(&effects)[0].1.error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn the_protocol_all_members_support_is_chosen_by_vote() {
    let mut g = group();
    let now = Instant::now();
    step(
        &mut g,
        Event::Join(1, join_request("", &["roundrobin", "range"])),
        now,
    );
    let a = g
        .members()
        .next()
        .map(|m| m.member_id.clone())
        .unwrap_or_default();
    step(
        &mut g,
        Event::Join(2, join_request("", &["range", "roundrobin"])),
        now,
    );
    step(&mut g, Event::Join(3, join_request("", &["range"])), now);
    let effects = step(
        &mut g,
        Event::Join(4, join_request(&a, &["roundrobin", "range"])),
        now,
    );
    for (_, outcome) in joins(&effects) {
        assert_eq!(outcome.protocol_name.as_deref(), Some("range"));
    }
}

#[test]
fn sync_with_wrong_generation_or_during_rebalance_is_refused() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    let effects = step(&mut g, Event::Sync(3, sync_request(&a, 7, &[])), now);
    assert_eq!(
        syncs(&effects)[0].1.error,
        Some(ResponseError::IllegalGeneration)
    );
    step(&mut g, Event::Join(4, join_request("", &["range"])), now);
    let effects = step(&mut g, Event::Sync(5, sync_request(&a, 1, &[])), now);
    assert_eq!(
        syncs(&effects)[0].1.error,
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn initial_delay_holds_the_first_rebalance_and_grows_with_newcomers() {
    let delay = Duration::from_secs(3);
    let mut g = Group::new("g", limits(delay));
    let now = Instant::now();
    assert!(step(&mut g, Event::Join(1, join_request("", &["range"])), now).is_empty());
    let later = now + Duration::from_secs(2);
    assert!(step(&mut g, Event::Join(2, join_request("", &["range"])), later).is_empty());
    assert!(step(&mut g, Event::Tick, now + delay).is_empty());
    assert_eq!(g.deadline(), Some(later + delay));
    let effects = step(&mut g, Event::Tick, later + delay);
    assert_eq!(joins(&effects).len(), 2);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_restarted_static_follower_keeps_its_assignment_without_rebalance() {
    let mut g = group();
    let now = Instant::now();
    let effects = step(&mut g, Event::Join(1, static_join("", "leader")), now);
    let a = joins(&effects)[0].1.member_id.clone();
    step(&mut g, Event::Join(2, static_join("", "follower")), now);
    let effects = step(&mut g, Event::Join(3, static_join(&a, "leader")), now);
    let b = joins(&effects)
        .into_iter()
        .find(|(id, _)| *id == 2)
        .map(|(_, o)| o.member_id)
        .unwrap_or_default();
    step(&mut g, Event::Sync(4, sync_request(&b, 2, &[])), now);
    step(
        &mut g,
        Event::Sync(5, sync_request(&a, 2, &[(&a, "pa"), (&b, "pb")])),
        now,
    );
    assert_eq!(g.state(), GroupState::Stable);

    // The follower restarts: a new member id, same slot, no rebalance.
    let effects = step(&mut g, Event::Join(6, static_join("", "follower")), now);
    let outcome = &joins(&effects)[0].1;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 2);
    let new_b = outcome.member_id.clone();
    assert_ne!(new_b, b);
    assert_eq!(g.state(), GroupState::Stable);
    let mut resync = sync_request(&new_b, 2, &[]);
    resync.group_instance_id = Some("follower".into());
    let effects = step(&mut g, Event::Sync(7, resync), now);
    assert_eq!(syncs(&effects)[0].1.assignment, Bytes::from("pb"));

    // The old process, still alive, is fenced.
    let stale = MemberRef {
        member_id: b.clone(),
        group_instance_id: Some("follower".into()),
    };
    assert_eq!(
        step(&mut g, Event::Heartbeat(8, stale.clone(), 2), now),
        vec![Effect::Heartbeat(8, Some(ResponseError::FencedInstanceId))]
    );
    assert_eq!(
        g.validate_commit(&stale, 2),
        Err(ResponseError::FencedInstanceId)
    );
    let effects = step(&mut g, Event::Join(9, static_join(&b, "follower")), now);
    assert_eq!(
        joins(&effects)[0].1.error,
        Some(ResponseError::FencedInstanceId)
    );
}

#[test]
fn static_members_survive_a_rebalance_timeout_until_their_session_ends() {
    let mut g = group();
    let now = Instant::now();
    let effects = step(&mut g, Event::Join(1, static_join("", "s1")), now);
    let a = joins(&effects)[0].1.member_id.clone();
    step(&mut g, Event::Sync(2, sync_request(&a, 1, &[])), now);
    step(&mut g, Event::Join(3, join_request("", &["range"])), now);
    // It keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    let static_ref = MemberRef {
        member_id: a.clone(),
        group_instance_id: Some("s1".into()),
    };
    for seconds in [8, 16, 24] {
        step(
            &mut g,
            Event::Heartbeat(9, static_ref.clone(), 1),
            now + Duration::from_secs(seconds),
        );
    }
    let effects = step(&mut g, Event::Tick, now + REBALANCE);
    assert_eq!(joins(&effects).len(), 1);
    assert!(g.members().any(|m| m.member_id == a));
    step(&mut g, Event::Tick, now + REBALANCE + SESSION);
    assert!(g.members().all(|m| m.member_id != a));
}

#[test]
fn standalone_commits_are_accepted_only_while_the_group_is_empty() {
    let mut g = group();
    let now = Instant::now();
    assert_eq!(g.validate_commit(&member(""), -1), Ok(()));
    let a = stable_with_one(&mut g, now);
    assert_eq!(
        g.validate_commit(&member(""), -1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(g.validate_commit(&member(&a), 1), Ok(()));
    assert_eq!(
        g.validate_commit(&member(&a), 0),
        Err(ResponseError::IllegalGeneration)
    );
}

#[test]
fn a_follower_rejoining_unchanged_while_stable_gets_the_current_generation() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    step(&mut g, Event::Join(3, join_request("", &["range"])), now);
    let effects = step(&mut g, Event::Join(4, join_request(&a, &["range"])), now);
    let b = joins(&effects)
        .into_iter()
        .find(|(id, _)| *id == 3)
        .map(|(_, o)| o.member_id)
        .unwrap_or_default();
    step(&mut g, Event::Sync(5, sync_request(&b, 2, &[])), now);
    step(&mut g, Event::Sync(6, sync_request(&a, 2, &[])), now);
    let effects = step(&mut g, Event::Join(7, join_request(&b, &["range"])), now);
    assert_eq!(joins(&effects)[0].1.generation_id, 2);
    assert_eq!(g.state(), GroupState::Stable);
}

/// Two members, a (leader) and b, through the join phase of generation 1:
/// CompletingRebalance, nothing synced yet.
fn joined_two(g: &mut Group, now: Instant) -> (String, String) {
    step(g, Event::Join(1, join_request("", &["range"])), now);
    let a = g.leader().unwrap().to_string();
    // a rejoins with b: both in generation 2.
    step(g, Event::Sync(2, sync_request(&a, 1, &[(&a, "x")])), now);
    step(g, Event::Join(3, join_request("", &["range"])), now);
    let effects = step(g, Event::Join(4, join_request(&a, &["range"])), now);
    let b = joins(&effects)
        .into_iter()
        .find(|(id, _)| *id == 3)
        .map(|(_, o)| o.member_id)
        .unwrap();
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    (a, b)
}

#[test]
fn syncs_are_answered_only_once_the_assignment_is_stored() {
    let mut g = group();
    let now = Instant::now();
    let (a, b) = joined_two(&mut g, now);
    assert!(
        g.on_event(Event::Sync(5, sync_request(&b, 2, &[])), now)
            .is_empty()
    );
    let effects = g.on_event(
        Event::Sync(6, sync_request(&a, 2, &[(&a, "for-a"), (&b, "for-b")])),
        now,
    );
    let [Effect::StoreGroup(stored)] = effects.as_slice() else {
        panic!("the leader's assignment is stored first: {effects:?}");
    };
    assert_eq!(stored.generation_id, 2);
    assert_eq!(stored.protocol_name.as_deref(), Some("range"));
    assert_eq!(stored.leader.as_deref(), Some(a.as_str()));
    let for_b = stored.members.iter().find(|m| m.member_id == b).unwrap();
    assert_eq!(for_b.assignment, Bytes::from("for-b"));
    assert_eq!(for_b.subscription, Bytes::from("meta-range"));
    assert_eq!(for_b.session_timeout_ms, 10_000);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    // A commit must wait for the generation to settle.
    assert_eq!(
        g.validate_commit(&member(&a), 2),
        Err(ResponseError::RebalanceInProgress)
    );

    let effects = g.on_event(
        Event::Stored {
            generation_id: 2,
            error: None,
        },
        now,
    );
    let mut answered = syncs(&effects);
    answered.sort_by_key(|(id, _)| *id);
    assert_eq!(answered.len(), 2);
    assert_eq!(answered[0].1.assignment, Bytes::from("for-b"));
    assert_eq!(answered[1].1.assignment, Bytes::from("for-a"));
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn a_failed_store_answers_the_syncs_with_its_error_and_rebalances() {
    let mut g = group();
    let now = Instant::now();
    let (a, b) = joined_two(&mut g, now);
    g.on_event(Event::Sync(5, sync_request(&b, 2, &[])), now);
    g.on_event(
        Event::Sync(6, sync_request(&a, 2, &[(&a, "x"), (&b, "y")])),
        now,
    );
    let effects = g.on_event(
        Event::Stored {
            generation_id: 2,
            error: Some(ResponseError::CoordinatorNotAvailable),
        },
        now,
    );
    let answered = syncs(&effects);
    assert_eq!(answered.len(), 2);
    assert!(answered.iter().all(
        |(_, o)| o.error == Some(ResponseError::CoordinatorNotAvailable) && o.assignment.is_empty()
    ));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_store_result_for_a_generation_left_behind_changes_nothing() {
    let mut g = group();
    let now = Instant::now();
    let (a, b) = joined_two(&mut g, now);
    g.on_event(
        Event::Sync(5, sync_request(&a, 2, &[(&a, "x"), (&b, "y")])),
        now,
    );
    // b leaves while the store is in flight: a new rebalance.
    step(&mut g, Event::Leave(6, vec![member(&b)]), now);
    let state = g.state();
    let effects = g.on_event(
        Event::Stored {
            generation_id: 2,
            error: None,
        },
        now,
    );
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(g.state(), state);
}

#[test]
fn a_group_left_empty_stores_its_generation() {
    let mut g = group();
    let now = Instant::now();
    let a = stable_with_one(&mut g, now);
    let effects = g.on_event(Event::Leave(3, vec![member(&a)]), now);
    let stored: Vec<&GroupMetadata> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::StoreGroup(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1, "{effects:?}");
    assert_eq!(stored[0].generation_id, 2);
    assert!(stored[0].members.is_empty() && stored[0].leader.is_none());
    assert_eq!(g.state(), GroupState::Empty);
}

#[test]
fn a_restored_group_is_stable_and_its_members_carry_on() {
    let mut g = group();
    let now = Instant::now();
    let (a, b) = joined_two(&mut g, now);
    step(&mut g, Event::Sync(5, sync_request(&b, 2, &[])), now);
    step(
        &mut g,
        Event::Sync(6, sync_request(&a, 2, &[(&a, "x"), (&b, "y")])),
        now,
    );
    let metadata = g.metadata();

    // Another broker takes over the group's partition.
    let later = now + Duration::from_secs(3);
    let mut restored = Group::restore("g", &metadata, limits(Duration::ZERO), later);
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.generation_id(), 2);
    assert_eq!(restored.leader(), Some(a.as_str()));
    assert_eq!(restored.protocol_name(), Some("range"));
    assert_eq!(restored.validate_commit(&member(&b), 2), Ok(()));
    assert_eq!(
        step(&mut restored, Event::Heartbeat(7, member(&a), 2), later),
        vec![Effect::Heartbeat(7, None)]
    );
    let effects = step(
        &mut restored,
        Event::Sync(8, sync_request(&b, 2, &[])),
        later,
    );
    assert_eq!(syncs(&effects)[0].1.assignment, Bytes::from("y"));
    assert_eq!(restored.metadata(), metadata, "the same generation again");

    // b never shows up at the new coordinator: its session ends there.
    let expiry = later + SESSION + Duration::from_millis(1);
    step(
        &mut restored,
        Event::Heartbeat(9, member(&a), 2),
        later + SESSION,
    );
    step(&mut restored, Event::Tick, expiry);
    assert_eq!(restored.state(), GroupState::PreparingRebalance);
}

#[test]
fn evicting_a_group_tells_its_parked_members_not_coordinator() {
    let mut g = group();
    let now = Instant::now();
    let (_, b) = joined_two(&mut g, now);
    step(&mut g, Event::Sync(5, sync_request(&b, 2, &[])), now);
    let effects = g.evict();
    assert_eq!(
        syncs(&effects),
        vec![(
            5,
            SyncOutcome {
                error: Some(ResponseError::NotCoordinator),
                ..SyncOutcome::default()
            }
        )]
    );
}
