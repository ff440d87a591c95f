//! The state machine on its own: commands in, image and codes out.

use super::*;

/// Applies commands at consecutive indexes, like a log would.
struct Harness {
    image: MetadataImage,
    index: u64,
}

impl Harness {
    fn new() -> Self {
        Self {
            image: MetadataImage::new("test-cluster-id-00000A"),
            index: 0,
        }
    }

    /// A harness with brokers `ids` registered and unfenced.
    fn with_brokers(ids: &[i32]) -> Self {
        let mut h = Self::new();
        for &id in ids {
            h.register(id);
        }
        h
    }

    fn apply(&mut self, cmd: Command) -> Result<ApplyOutcome, Rejection> {
        self.index += 1;
        self.image.apply(self.index, &cmd)
    }

    fn ok(&mut self, cmd: Command) -> ApplyOutcome {
        self.apply(cmd).expect("command accepted")
    }

    fn code(&mut self, cmd: Command) -> KafkaCode {
        let before = self.image.clone();
        let code = self.apply(cmd).expect_err("command rejected").code;
        assert_eq!(
            self.image, before,
            "a rejected command must not change the image"
        );
        code
    }

    fn register(&mut self, id: i32) -> i64 {
        let ApplyOutcome::BrokerRegistered { broker_epoch } = self.ok(Command::RegisterBroker {
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
        }) else {
            panic!("registration outcome");
        };
        self.ok(Command::UnfenceBroker {
            broker_id: id,
            broker_epoch,
        });
        broker_epoch
    }

    fn create(&mut self, name: &str, id: u128, assignments: Vec<Vec<i32>>) -> Uuid {
        let topic_id = Uuid::from_u128(id);
        self.ok(Command::CreateTopic {
            name: name.into(),
            topic_id,
            configs: BTreeMap::new(),
            assignments,
        });
        topic_id
    }

    fn partition(&self, topic: &str, index: i32) -> &PartitionState {
        self.image
            .partition(topic, index)
            .expect("partition exists")
    }
}

fn create_cmd(name: &str, id: u128, assignments: Vec<Vec<i32>>) -> Command {
    Command::CreateTopic {
        name: name.into(),
        topic_id: Uuid::from_u128(id),
        configs: BTreeMap::new(),
        assignments,
    }
}

fn change(topic_id: Uuid, epoch: i32, leader: Option<i32>, isr: Option<Vec<i32>>) -> Command {
    Command::PartitionChange {
        topic_id,
        partition: 0,
        expected_partition_epoch: epoch,
        leader,
        isr,
        isr_broker_epochs: Vec::new(),
    }
}

#[test]
fn create_topic_makes_first_replica_leader_with_full_isr() {
    let mut h = Harness::with_brokers(&[1, 2]);
    let id = h.create("orders", 7, vec![vec![1, 2], vec![2, 1]]);
    let topic = h.image.topic("orders").expect("topic");
    assert_eq!(topic.id, id);
    assert_eq!(
        h.image.topic_by_id(id).map(|t| t.name.as_str()),
        Some("orders")
    );
    let p1 = h.partition("orders", 1);
    assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2, 1]));
    assert_eq!((p1.leader_epoch, p1.partition_epoch), (0, 0));
    assert_eq!(h.image.last_applied, h.index);
}

#[test]
fn duplicate_topic_is_topic_already_exists() {
    let mut h = Harness::with_brokers(&[1]);
    h.create("orders", 7, vec![vec![1]]);
    assert_eq!(
        h.code(create_cmd("orders", 8, vec![vec![1]])),
        KafkaCode::TOPIC_ALREADY_EXISTS
    );
}

#[test]
fn bad_topic_names_are_invalid_topic_exception() {
    let mut h = Harness::with_brokers(&[1]);
    let too_long = "a".repeat(MAX_TOPIC_NAME_LEN + 1);
    for name in ["", ".", "..", "a b", "naïve", "x/y", too_long.as_str()] {
        assert_eq!(
            h.code(create_cmd(name, 9, vec![vec![1]])),
            KafkaCode::INVALID_TOPIC_EXCEPTION,
            "{name:?}"
        );
    }
    assert!(validate_topic_name(&"a".repeat(MAX_TOPIC_NAME_LEN)).is_ok());
    assert!(validate_topic_name("Ab.9_-").is_ok());
}

#[test]
fn topic_differing_only_in_dot_or_underscore_collides() {
    let mut h = Harness::with_brokers(&[1]);
    h.create("a.b", 7, vec![vec![1]]);
    assert_eq!(
        h.code(create_cmd("a_b", 8, vec![vec![1]])),
        KafkaCode::INVALID_TOPIC_EXCEPTION
    );
}

#[test]
fn create_topic_checks_partitions_replicas_and_configs() {
    let mut h = Harness::with_brokers(&[1, 2]);
    assert_eq!(
        h.code(create_cmd("t", 7, vec![])),
        KafkaCode::INVALID_PARTITIONS
    );
    assert_eq!(
        h.code(create_cmd("t", 7, vec![vec![]])),
        KafkaCode::INVALID_REPLICATION_FACTOR
    );
    assert_eq!(
        h.code(create_cmd("t", 7, vec![vec![1], vec![1, 2]])),
        KafkaCode::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        h.code(create_cmd("t", 7, vec![vec![1, 1]])),
        KafkaCode::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        h.code(create_cmd("t", 7, vec![vec![5]])),
        KafkaCode::INVALID_REPLICA_ASSIGNMENT
    );
    // Which configs are supported is the proposer's check (`policy`): a
    // log holding what an older version accepted must still replay.
    let from_older_version = Command::CreateTopic {
        name: "t".into(),
        topic_id: Uuid::from_u128(7),
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
        assignments: vec![vec![1]],
    };
    h.ok(from_older_version);
}

#[test]
fn placement_refuses_more_replicas_than_available_brokers() {
    let h = Harness::with_brokers(&[1]);
    let err = h
        .image
        .place_replicas(1, 3, PlacementStart::fixed(0), 0)
        .expect_err("rejected");
    assert_eq!(err.code, KafkaCode::INVALID_REPLICATION_FACTOR);
    assert_eq!(
        err.message,
        "replication factor 3 larger than available brokers 1"
    );
    assert_eq!(
        h.image
            .place_replicas(0, 1, PlacementStart::fixed(0), 0)
            .map_err(|e| e.code),
        Err(KafkaCode::INVALID_PARTITIONS)
    );
    assert_eq!(
        h.image
            .place_replicas(MAX_NEW_PARTITIONS + 1, 1, PlacementStart::fixed(0), 0)
            .map_err(|e| e.code),
        Err(KafkaCode::INVALID_PARTITIONS)
    );
}

#[test]
fn placement_is_kafkas_round_robin_from_the_start_index() {
    let h = Harness::with_brokers(&[3, 1, 2]);
    assert_eq!(
        h.image.place_replicas(4, 2, PlacementStart::fixed(1), 0),
        Ok(vec![vec![2, 1], vec![3, 2], vec![1, 3], vec![2, 3]])
    );
}

#[test]
fn fenced_brokers_get_no_replicas() {
    let mut h = Harness::with_brokers(&[1, 2]);
    let epoch = h.image.broker(2).expect("broker").epoch;
    h.ok(Command::FenceBroker {
        broker_id: 2,
        broker_epoch: epoch,
    });
    assert_eq!(h.image.available_brokers(), vec![1]);
    assert_eq!(
        h.code(create_cmd("t", 7, vec![vec![2]])),
        KafkaCode::INVALID_REPLICA_ASSIGNMENT
    );
}

#[test]
fn delete_topic_removes_both_indexes() {
    let mut h = Harness::with_brokers(&[1]);
    let id = h.create("orders", 7, vec![vec![1]]);
    assert_eq!(
        h.ok(Command::DeleteTopic { topic_id: id }),
        ApplyOutcome::TopicDeleted {
            topic_id: id,
            name: "orders".into()
        }
    );
    assert!(h.image.topic("orders").is_none());
    assert!(h.image.topic_by_id(id).is_none());
    assert_eq!(
        h.code(Command::DeleteTopic { topic_id: id }),
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn create_partitions_only_adds() {
    let mut h = Harness::with_brokers(&[1, 2]);
    h.create("orders", 7, vec![vec![1, 2]]);
    h.ok(Command::CreatePartitions {
        name: "orders".into(),
        new_assignments: vec![vec![2, 1]],
    });
    assert_eq!(h.image.topic("orders").map(|t| t.partitions.len()), Some(2));
    assert_eq!(h.partition("orders", 1).leader, 2);
    let none = Command::CreatePartitions {
        name: "orders".into(),
        new_assignments: vec![],
    };
    assert_eq!(h.code(none), KafkaCode::INVALID_PARTITIONS);
    let wrong_rf = Command::CreatePartitions {
        name: "orders".into(),
        new_assignments: vec![vec![1]],
    };
    assert_eq!(h.code(wrong_rf), KafkaCode::INVALID_REPLICA_ASSIGNMENT);
    let unknown = Command::CreatePartitions {
        name: "nope".into(),
        new_assignments: vec![vec![1]],
    };
    assert_eq!(h.code(unknown), KafkaCode::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn stale_partition_epoch_is_invalid_update_version() {
    let mut h = Harness::with_brokers(&[1, 2]);
    let id = h.create("t", 7, vec![vec![1, 2]]);
    h.ok(change(id, 0, None, Some(vec![1])));
    assert_eq!(
        h.code(change(id, 0, None, Some(vec![1, 2]))),
        KafkaCode::INVALID_UPDATE_VERSION
    );
}

#[test]
fn leader_change_bumps_leader_and_partition_epochs() {
    let mut h = Harness::with_brokers(&[1, 2]);
    let id = h.create("t", 7, vec![vec![1, 2]]);
    h.ok(change(id, 0, Some(2), None));
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 1));
}

#[test]
fn isr_only_change_bumps_partition_epoch_only() {
    let mut h = Harness::with_brokers(&[1, 2]);
    let id = h.create("t", 7, vec![vec![1, 2]]);
    h.ok(change(id, 0, None, Some(vec![1])));
    let p = h.partition("t", 0);
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 1));
    assert_eq!(p.isr, vec![1]);
    assert_eq!(
        h.ok(change(id, 1, None, Some(vec![1]))),
        ApplyOutcome::Unchanged
    );
    assert_eq!(h.partition("t", 0).partition_epoch, 1);
}

#[test]
fn partition_change_requires_leader_in_isr_and_isr_within_replicas() {
    let mut h = Harness::with_brokers(&[1, 2, 3]);
    let id = h.create("t", 7, vec![vec![1, 2]]);
    assert_eq!(
        h.code(change(id, 0, Some(2), Some(vec![1]))),
        KafkaCode::INVALID_REQUEST
    );
    assert_eq!(
        h.code(change(id, 0, None, Some(vec![1, 3]))),
        KafkaCode::INELIGIBLE_REPLICA
    );
    let mut other_partition = change(id, 0, Some(1), None);
    if let Command::PartitionChange { partition, .. } = &mut other_partition {
        *partition = 4;
    }
    assert_eq!(
        h.code(other_partition),
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn broker_commands_for_an_old_epoch_are_stale() {
    let mut h = Harness::with_brokers(&[1]);
    let old = h.image.broker(1).expect("broker").epoch;
    let new = h.register(1);
    assert!(new > old, "a re-registration gets a higher epoch");
    assert_eq!(
        h.code(Command::FenceBroker {
            broker_id: 1,
            broker_epoch: old
        }),
        KafkaCode::STALE_BROKER_EPOCH
    );
    assert_eq!(
        h.code(Command::FenceBroker {
            broker_id: 9,
            broker_epoch: old
        }),
        KafkaCode::BROKER_NOT_AVAILABLE
    );
    h.ok(Command::BeginShutdown {
        broker_id: 1,
        broker_epoch: new,
    });
    assert!(h.image.available_brokers().is_empty());
    h.ok(Command::UnregisterBroker {
        broker_id: 1,
        broker_epoch: new,
    });
    assert!(h.image.brokers().next().is_none());
}

#[test]
fn producer_id_blocks_are_contiguous_and_monotonic() {
    let mut h = Harness::with_brokers(&[1]);
    let alloc = |count| Command::AllocateProducerIds {
        broker_id: 1,
        count,
    };
    assert_eq!(h.ok(alloc(1000)), ApplyOutcome::ProducerIds(0..1000));
    assert_eq!(h.ok(alloc(10)), ApplyOutcome::ProducerIds(1000..1010));
    assert_eq!(h.code(alloc(0)), KafkaCode::INVALID_REQUEST);
    assert_eq!(
        h.code(Command::AllocateProducerIds {
            broker_id: 5,
            count: 1
        }),
        KafkaCode::BROKER_NOT_AVAILABLE
    );
    assert_eq!(h.image.next_producer_id, 1010);
}

#[test]
fn alter_configs_sets_and_deletes() {
    let mut h = Harness::with_brokers(&[1]);
    h.create("t", 7, vec![vec![1]]);
    let alter = |set: &[(&str, &str)], delete: &[&str]| Command::AlterConfigs {
        resource: ConfigResource::Topic("t".into()),
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        delete: delete.iter().map(|k| k.to_string()).collect(),
    };
    h.ok(alter(
        &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
        &[],
    ));
    h.ok(alter(&[], &["cleanup.policy"]));
    let configs = &h.image.topic("t").expect("topic").configs;
    assert_eq!(
        configs,
        &BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())])
    );
    assert_eq!(
        h.code(alter(&[("retention.ms", "5")], &["retention.ms"])),
        KafkaCode::INVALID_CONFIG
    );
    h.ok(Command::AlterConfigs {
        resource: ConfigResource::Broker(1),
        set: BTreeMap::from([("log.retention.ms".to_owned(), "5".to_owned())]),
        delete: vec![],
    });
    assert_eq!(h.image.broker_configs.get(&1).map(BTreeMap::len), Some(1));
}

#[test]
fn out_of_order_index_is_refused() {
    let mut h = Harness::with_brokers(&[1]);
    let before = h.image.clone();
    let result = h.image.apply(
        h.index,
        &Command::DeleteTopic {
            topic_id: Uuid::from_u128(1),
        },
    );
    assert_eq!(
        result.map_err(|e| e.code),
        Err(KafkaCode::UNKNOWN_SERVER_ERROR)
    );
    assert_eq!(h.image, before);
}

#[test]
fn replaying_the_same_commands_gives_an_identical_image() {
    let mut h = Harness::new();
    let mut log = Vec::new();
    let mut record = |h: &mut Harness, cmd: Command| {
        if h.apply(cmd.clone()).is_ok() {
            log.push((h.index, cmd));
        }
    };
    for id in [1, 2, 3] {
        record(
            &mut h,
            Command::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::from_u128(100 + id as u128),
                listeners: vec![],
                rack: Some(format!("rack-{id}")),
                previous_broker_epoch: None,
            },
        );
        let broker_epoch = h.index as i64;
        record(
            &mut h,
            Command::UnfenceBroker {
                broker_id: id,
                broker_epoch,
            },
        );
    }
    let placement = h
        .image
        .place_replicas(3, 2, PlacementStart::fixed(5), 0)
        .expect("placement");
    record(&mut h, create_cmd("a", 1, placement));
    record(&mut h, create_cmd("a", 2, vec![vec![1]])); // rejected, not logged
    record(&mut h, change(Uuid::from_u128(1), 0, None, Some(vec![3])));
    record(
        &mut h,
        Command::AllocateProducerIds {
            broker_id: 2,
            count: 50,
        },
    );
    record(
        &mut h,
        Command::DeleteTopic {
            topic_id: Uuid::from_u128(1),
        },
    );
    record(&mut h, create_cmd("a", 3, vec![vec![2, 3]]));

    let mut replayed = MetadataImage::new(h.image.cluster_id.clone());
    for (index, cmd) in &log {
        replayed
            .apply(*index, cmd)
            .expect("replay accepts logged commands");
    }
    assert_eq!(replayed, h.image);
    let json = serde_json::to_string(&replayed).expect("serialize");
    let parsed: MetadataImage = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(parsed, replayed);
}

#[test]
fn commands_round_trip_through_json() {
    let cmd = Command::AlterConfigs {
        resource: ConfigResource::Broker(3),
        set: BTreeMap::from([("a".to_owned(), "b".to_owned())]),
        delete: vec!["c".into()],
    };
    let json = serde_json::to_string(&cmd).expect("serialize");
    assert!(json.contains(r#""type":"alter_configs""#), "{json}");
    assert_eq!(serde_json::from_str::<Command>(&json).expect("parse"), cmd);
}

mod acls {
    use super::*;
    use crate::security::acl::{
        AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType,
        ResourcePattern, ResourceType,
    };

    fn read(topic: &str) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern::literal(ResourceType::Topic, topic),
            entry: AccessControlEntry {
                principal: "User:alice".into(),
                host: "*".into(),
                operation: AclOperation::Read,
                permission: AclPermissionType::Allow,
            },
        }
    }

    #[test]
    fn create_and_delete_acls_change_the_image() {
        let mut h = Harness::new();
        let bindings = vec![read("a"), read("b")];
        assert_eq!(
            h.ok(Command::CreateAcls {
                bindings: bindings.clone()
            }),
            ApplyOutcome::Applied
        );
        assert_eq!(
            h.ok(Command::CreateAcls {
                bindings: vec![read("a")]
            }),
            ApplyOutcome::Unchanged
        );
        assert_eq!(h.image.acls.len(), 2);
        assert_eq!(
            h.ok(Command::DeleteAcls {
                bindings: vec![read("a"), read("gone")]
            }),
            ApplyOutcome::Applied
        );
        assert_eq!(h.image.acls.iter().collect::<Vec<_>>(), vec![read("b")]);
        assert_eq!(
            h.ok(Command::DeleteAcls {
                bindings: vec![read("a")]
            }),
            ApplyOutcome::Unchanged
        );
    }

    #[test]
    fn an_invalid_binding_refuses_the_whole_command() {
        let mut h = Harness::new();
        let mut bad = read("b");
        bad.pattern.pattern_type = PatternType::Match;
        assert_eq!(
            h.code(Command::CreateAcls {
                bindings: vec![read("a"), bad]
            }),
            KafkaCode::INVALID_REQUEST
        );
    }

    #[test]
    fn acls_survive_a_json_round_trip_of_command_and_image() {
        let mut h = Harness::new();
        let cmd = Command::CreateAcls {
            bindings: vec![read("a")],
        };
        let text = serde_json::to_string(&cmd).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), cmd);
        h.ok(cmd);
        let image = serde_json::to_string(&h.image).unwrap();
        assert_eq!(
            serde_json::from_str::<MetadataImage>(&image).unwrap(),
            h.image
        );
    }
}
