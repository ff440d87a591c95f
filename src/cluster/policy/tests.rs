//! The proposer's rules on their own: an image in, a code out.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::cluster::metadata::{Command, Listener, SecurityProtocol};

fn image_with_brokers(ids: &[i32]) -> MetadataImage {
    let mut image = MetadataImage::new("policy-test-cluster-00A");
    let mut index = 0;
    let mut apply = |image: &mut MetadataImage, command: Command| {
        index += 1;
        image.apply(index, &command).expect("command accepted")
    };
    for &id in ids {
        apply(
            &mut image,
            Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::from_u128(id as u128 + 1),
                listeners: vec![Listener {
                    name: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9092,
                    security_protocol: SecurityProtocol::Plaintext,
                }],
                rack: None,
                previous_broker_epoch: None,
            },
        );
        let epoch = image.broker(id).expect("registered").epoch;
        apply(
            &mut image,
            Command::UnfenceBroker {
                broker_id: id,
                broker_epoch: epoch,
            },
        );
    }
    if !ids.is_empty() {
        apply(
            &mut image,
            Command::CreateTopic {
                name: "existing".into(),
                topic_id: Uuid::from_u128(99),
                configs: BTreeMap::new(),
                assignments: vec![vec![ids[0]]; 3],
            },
        );
    }
    image
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn code<T: std::fmt::Debug>(result: Result<T, Rejection>) -> KafkaCode {
    result.expect_err("refused").code
}

#[test]
fn supported_topic_configs_pass_and_others_are_invalid_config_naming_the_key() {
    assert!(
        check_topic_configs(&configs(&[
            ("retention.ms", "-1"),
            ("segment.bytes", "2048"),
            ("cleanup.policy", "compact"),
        ]))
        .is_ok()
    );
    for (key, value) in [
        ("cleanup.policy", "shred"),
        ("preallocate", "yes"),
        ("remote.storage.enable", "true"),
        ("retention.mss", "1"),
        ("retention.ms", "soon"),
    ] {
        let refused = check_topic_configs(&configs(&[(key, value)])).expect_err(key);
        assert_eq!(refused.code, KafkaCode::INVALID_CONFIG);
        assert!(refused.message.contains(key), "{}", refused.message);
    }
}

#[test]
fn a_stored_unsupported_config_can_still_be_deleted() {
    let stored = configs(&[("old.key", "1"), ("remote.storage.enable", "true")]);
    assert!(check_config_change(&stored, &BTreeMap::new(), &["old.key".into()]).is_ok());
    // Nor does a stored entry that no longer validates block other changes.
    let set = configs(&[("retention.ms", "1000")]);
    assert!(check_config_change(&stored, &set, &[]).is_ok());
    let lags = configs(&[("min.compaction.lag.ms", "10")]);
    let refused = check_config_change(&lags, &configs(&[("max.compaction.lag.ms", "5")]), &[]);
    assert_eq!(code(refused), KafkaCode::INVALID_CONFIG);
    assert_eq!(
        code(check_config_change(
            &BTreeMap::new(),
            &BTreeMap::new(),
            &["bogus".into()]
        )),
        KafkaCode::INVALID_CONFIG
    );
    assert!(
        check_config_change(&BTreeMap::new(), &BTreeMap::new(), &["retention.ms".into()]).is_ok()
    );
}

#[test]
fn partitions_are_capped_per_topic_and_per_broker_with_policy_violation() {
    let image = image_with_brokers(&[1, 2]);
    let limits = PartitionLimits {
        per_topic: 5,
        per_broker: 6,
    };
    // 3 existing + 2 = the per-topic cap: fine; one more is not.
    assert!(check_partition_limits(&image, "existing", &[vec![2], vec![2]], limits).is_ok());
    let refused =
        check_partition_limits(&image, "existing", &vec![vec![2]; 3], limits).expect_err("over");
    assert_eq!(refused.code, KafkaCode::POLICY_VIOLATION);
    assert!(
        refused
            .message
            .contains("gregor.max.partitions.per.topic=5"),
        "{}",
        refused.message
    );
    // Broker 1 hosts 3 already: 3 more fit, 4 do not, whichever topic.
    assert!(check_partition_limits(&image, "new", &vec![vec![1, 2]; 3], limits).is_ok());
    let refused =
        check_partition_limits(&image, "new", &vec![vec![1]; 4], limits).expect_err("over");
    assert_eq!(refused.code, KafkaCode::POLICY_VIOLATION);
    assert!(refused.message.contains("broker 1"), "{}", refused.message);
    assert!(check_partition_limits(&image, "new", &vec![vec![2]; 5], limits).is_ok());
}

#[test]
fn producer_id_requests_must_ask_for_kafkas_block_size() {
    assert!(check_producer_id_count(PRODUCER_ID_BLOCK_SIZE).is_ok());
    for count in [0, -1, 1, 1001, i64::MAX / 2, i64::MAX] {
        assert_eq!(
            code(check_producer_id_count(count)),
            KafkaCode::INVALID_REQUEST
        );
    }
}

mod manual_assignments {
    use super::image_with_brokers;
    use crate::cluster::policy::manual_assignments;
    use crate::cluster::{KafkaCode, ReplicaAssignment};

    /// Partition index and replicas, per partition.
    type Plan<'a> = [(i32, &'a [i32])];

    fn plan(parts: &Plan) -> Vec<ReplicaAssignment> {
        parts
            .iter()
            .map(|(p, b)| ReplicaAssignment {
                partition_index: *p,
                broker_ids: b.to_vec(),
            })
            .collect()
    }

    #[test]
    fn a_valid_assignment_is_returned_in_partition_order() {
        let image = image_with_brokers(&[0, 1]);
        let placed = manual_assignments(&image, &plan(&[(1, &[1, 0]), (0, &[0, 1])])).unwrap();
        assert_eq!(placed, vec![vec![0, 1], vec![1, 0]]);
    }

    #[test]
    fn bad_assignments_get_kafkas_code_and_message() {
        let image = image_with_brokers(&[1, 2]);
        let cases: &[(&Plan, &str)] = &[
            (
                &[(0, &[1, 2]), (0, &[2, 1])],
                "Found multiple manual partition assignments for partition 0",
            ),
            (
                &[(0, &[])],
                "The manual partition assignment includes an empty replica list.",
            ),
            (
                &[(0, &[9, 1, 7])],
                "The manual partition assignment includes broker 7, but no such broker is \
                 registered.",
            ),
            (
                &[(0, &[2, 1, 2])],
                "The manual partition assignment includes the broker 2 more than once.",
            ),
            (
                &[(0, &[1, 2]), (1, &[1])],
                "The manual partition assignment includes a partition with 1 replica(s), but \
                 this is not consistent with previous partitions, which have 2 replica(s).",
            ),
            (
                &[(0, &[1]), (2, &[2])],
                "partitions should be a consecutive 0-based integer sequence",
            ),
        ];
        for (parts, message) in cases {
            let refused = manual_assignments(&image, &plan(parts)).unwrap_err();
            assert_eq!(refused.code, KafkaCode::INVALID_REPLICA_ASSIGNMENT);
            assert_eq!(refused.message, *message);
        }
    }
}

#[test]
fn create_partitions_assignments_match_the_count_and_the_replication_factor() {
    let image = image_with_brokers(&[1, 2]);
    let placed = manual_partition_assignments(&image, &[vec![2, 1], vec![1, 2]], 2, 2).unwrap();
    assert_eq!(placed, vec![vec![2, 1], vec![1, 2]]);
    let refused = manual_partition_assignments(&image, &[vec![1, 2]], 2, 2).unwrap_err();
    assert_eq!(refused.code, KafkaCode::INVALID_REPLICA_ASSIGNMENT);
    assert_eq!(
        refused.message,
        "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
    );
    let refused = manual_partition_assignments(&image, &[vec![1]], 1, 2).unwrap_err();
    assert!(
        refused.message.contains("which have 2 replica(s)"),
        "{}",
        refused.message
    );
    let refused = manual_partition_assignments(&image, &[vec![1, 3]], 1, 2).unwrap_err();
    assert!(refused.message.contains("broker 3"), "{}", refused.message);
}
