use std::collections::BTreeMap;

use uuid::Uuid;

use crate::cluster::metadata::{
    ApplyOutcome, Command, KafkaCode, MetadataImage, PartitionState, Rejection,
};

const TOPIC: Uuid = Uuid::from_u128(7);

fn next(image: &mut MetadataImage, command: &Command) -> Result<ApplyOutcome, Rejection> {
    let index = image.last_applied + 1;
    image.apply(index, command)
}

fn unfence(image: &mut MetadataImage, id: i32) {
    let broker_epoch = image.broker(id).expect("registered").epoch;
    next(
        image,
        &Command::UnfenceBroker {
            broker_id: id,
            broker_epoch,
        },
    )
    .expect("unfenced");
}

/// Brokers 1-4 live; topic `t`: partition 0 on [1, 2, 3], partition 1
/// moved from there to [1] alone (which completes at once).
fn image() -> MetadataImage {
    let mut image = MetadataImage::new("reassign-test-000000A");
    for id in 1..=4 {
        next(
            &mut image,
            &Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::from_u128(id as u128),
                listeners: Vec::new(),
                rack: None,
                previous_broker_epoch: None,
            },
        )
        .expect("registered");
        unfence(&mut image, id);
    }
    next(
        &mut image,
        &Command::CreateTopic {
            name: "t".into(),
            topic_id: TOPIC,
            configs: BTreeMap::new(),
            assignments: vec![vec![1, 2, 3], vec![1, 2, 3]],
        },
    )
    .expect("created");
    reassign(&mut image, 1, Some(vec![1])).expect("shrunk");
    let shrunk = state(&image, 1);
    assert_eq!(
        (shrunk.replicas, shrunk.isr, shrunk.leader),
        (vec![1], vec![1], 1)
    );
    image
}

fn reassign(
    image: &mut MetadataImage,
    partition: i32,
    target: Option<Vec<i32>>,
) -> Result<ApplyOutcome, Rejection> {
    next(
        image,
        &Command::AlterPartitionReassignment {
            topic_id: TOPIC,
            partition,
            target_replicas: target,
        },
    )
}

/// The leader's AlterPartition to `isr`, at the current epochs.
fn alter_isr(image: &mut MetadataImage, partition: i32, isr: Vec<i32>) {
    let epoch = state(image, partition).partition_epoch;
    next(
        image,
        &Command::PartitionChange {
            topic_id: TOPIC,
            partition,
            expected_partition_epoch: epoch,
            leader: None,
            isr: Some(isr),
            isr_broker_epochs: Vec::new(),
        },
    )
    .expect("isr changed");
}

fn state(image: &MetadataImage, partition: i32) -> PartitionState {
    image.partition("t", partition).expect("exists").clone()
}

fn code(result: Result<ApplyOutcome, Rejection>) -> KafkaCode {
    result.err().map_or(KafkaCode::NONE, |r| r.code)
}

#[test]
fn a_move_adds_the_target_first_and_completes_when_the_new_replica_is_in_sync() {
    let mut image = image();
    let before = state(&image, 0);
    reassign(&mut image, 0, Some(vec![4, 2, 3])).expect("started");
    let moving = state(&image, 0);
    assert_eq!(moving.replicas, vec![4, 2, 3, 1]);
    assert_eq!(moving.adding_replicas, vec![4]);
    assert_eq!(moving.removing_replicas, vec![1]);
    // The ISR and the leader stay until the new replica has caught up.
    assert_eq!((moving.leader, moving.isr.clone()), (1, vec![1, 2, 3]));
    assert_eq!(moving.partition_epoch, before.partition_epoch + 1);
    assert_eq!(moving.leader_epoch, before.leader_epoch);

    // The leader lets broker 4 into the ISR: the move completes in the
    // same change, and the removed leader gives way to the target's first
    // in-sync replica.
    alter_isr(&mut image, 0, vec![1, 2, 3, 4]);
    let done = state(&image, 0);
    assert_eq!(done.replicas, vec![4, 2, 3]);
    assert!(!done.is_reassigning());
    assert_eq!(done.isr, vec![2, 3, 4]);
    assert_eq!(done.leader, 4);
    assert_eq!(done.leader_epoch, before.leader_epoch + 1);
    assert_eq!(done.partition_epoch, moving.partition_epoch + 1);
}

#[test]
fn a_single_replica_moves_to_another_broker() {
    let mut image = image();
    reassign(&mut image, 1, Some(vec![3])).expect("started");
    let moving = state(&image, 1);
    assert_eq!(moving.replicas, vec![3, 1]);
    assert_eq!((moving.leader, moving.isr.clone()), (1, vec![1]));
    alter_isr(&mut image, 1, vec![1, 3]);
    let done = state(&image, 1);
    assert_eq!(
        (done.replicas, done.isr, done.leader, done.leader_epoch),
        (vec![3], vec![3], 3, 1)
    );
}

#[test]
fn a_leader_kept_by_the_target_keeps_leading() {
    let mut image = image();
    reassign(&mut image, 0, Some(vec![2, 1, 4])).expect("started");
    alter_isr(&mut image, 0, vec![1, 2, 3, 4]);
    let done = state(&image, 0);
    assert_eq!(done.replicas, vec![2, 1, 4]);
    assert_eq!(done.isr, vec![1, 2, 4]);
    assert_eq!((done.leader, done.leader_epoch), (1, 0));
}

#[test]
fn a_target_without_new_brokers_completes_at_once() {
    let mut image = image();
    // Shrinking the replication factor and reordering need no catching up.
    reassign(&mut image, 0, Some(vec![3, 2])).expect("done");
    let done = state(&image, 0);
    assert!(!done.is_reassigning());
    assert_eq!(
        (done.replicas, done.isr, done.leader),
        (vec![3, 2], vec![2, 3], 3)
    );
    // The same target again changes nothing.
    assert_eq!(
        reassign(&mut image, 0, Some(vec![3, 2])),
        Ok(ApplyOutcome::Unchanged)
    );
}

#[test]
fn an_isr_change_short_of_every_adding_replica_leaves_the_move_running() {
    let mut image = image();
    reassign(&mut image, 0, Some(vec![3, 4, 2])).expect("started");
    // Broker 1 is dropped; 4 is not yet in sync.
    alter_isr(&mut image, 0, vec![1, 2]);
    let moving = state(&image, 0);
    assert!(moving.is_reassigning());
    assert_eq!(moving.replicas, vec![3, 4, 2, 1]);
    assert_eq!(moving.isr, vec![1, 2]);
}

#[test]
fn cancel_drops_the_adding_replicas_and_keeps_the_rest() {
    let mut image = image();
    reassign(&mut image, 0, Some(vec![4, 2, 3])).expect("started");
    reassign(&mut image, 0, None).expect("cancelled");
    let reverted = state(&image, 0);
    assert!(!reverted.is_reassigning());
    assert_eq!(reverted.replicas, vec![2, 3, 1]);
    assert_eq!((reverted.leader, reverted.isr), (1, vec![1, 2, 3]));
    assert_eq!(
        code(reassign(&mut image, 0, None)),
        KafkaCode::NO_REASSIGNMENT_IN_PROGRESS
    );
}

#[test]
fn cancel_of_a_move_whose_only_in_sync_replica_is_new_is_refused() {
    let mut image = image();
    reassign(&mut image, 1, Some(vec![3, 4])).expect("started");
    // Broker 3 caught up, the ISR is [1, 3]; the move waits for 4. Then
    // broker 1 is fenced and leaves: only the adding 3 is in sync.
    alter_isr(&mut image, 1, vec![1, 3]);
    let broker_epoch = image.broker(1).expect("registered").epoch;
    next(
        &mut image,
        &Command::FenceBroker {
            broker_id: 1,
            broker_epoch,
        },
    )
    .expect("fenced");
    assert_eq!(state(&image, 1).isr, vec![3]);
    let before = image.clone();
    assert_eq!(
        code(reassign(&mut image, 1, None)),
        KafkaCode::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(image, before);
}

#[test]
fn bad_targets_are_refused_with_kafkas_codes_and_change_nothing() {
    let mut image = image();
    let before = image.clone();
    for target in [vec![], vec![1, 9], vec![2, 2]] {
        assert_eq!(
            code(reassign(&mut image, 0, Some(target))),
            KafkaCode::INVALID_REPLICA_ASSIGNMENT
        );
    }
    assert_eq!(
        code(reassign(&mut image, 5, Some(vec![1]))),
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        code(next(
            &mut image,
            &Command::AlterPartitionReassignment {
                topic_id: Uuid::from_u128(99),
                partition: 0,
                target_replicas: Some(vec![1]),
            },
        )),
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(image, before);
}

#[test]
fn a_new_target_during_a_move_starts_from_the_replicas_in_place() {
    let mut image = image();
    reassign(&mut image, 0, Some(vec![4, 2, 3])).expect("started");
    // Broker 4 has not caught up; move to [2, 3] instead: 4 and 1 go.
    reassign(&mut image, 0, Some(vec![2, 3])).expect("moved again");
    let done = state(&image, 0);
    assert!(!done.is_reassigning());
    assert_eq!((done.replicas, done.isr), (vec![2, 3], vec![2, 3]));
    assert_eq!(done.leader, 2);
}

#[test]
fn replaying_a_move_gives_the_same_image() {
    let run = || {
        let mut image = image();
        reassign(&mut image, 0, Some(vec![4, 2, 3])).expect("started");
        alter_isr(&mut image, 0, vec![1, 2, 3, 4]);
        image
    };
    assert_eq!(run(), run());
}
