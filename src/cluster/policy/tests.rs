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
        ("preallocate", "true"),
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
    let stored = configs(&[("preallocate", "true")]);
    assert!(check_config_change(&stored, &BTreeMap::new(), &["preallocate".into()]).is_ok());
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
