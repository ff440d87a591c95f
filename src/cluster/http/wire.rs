//! The coordinator's HTTP/JSON wire format.
//!
//! Field names follow Kafka's RPCs (BrokerRegistration, BrokerHeartbeat,
//! CreateTopics, AllocateProducerIds), so a later move to Kafka's binary
//! encoding is mechanical. Every response carries `error_code` (a Kafka
//! code, 0 for none) and, on failure, `error_message`. Writes also answer
//! with `metadata_offset`: the log index the change is committed at (or a
//! later one), which a broker waits for in its own image before it answers
//! its client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cluster::metadata::{KafkaCode, Listener, MetadataImage};
use crate::cluster::policy::PRODUCER_ID_BLOCK_SIZE;
use crate::cluster::{ClusterError, LogEntry};
use crate::security::sasl::{ScramCredential, ScramMechanism};

/// The error part every response has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error_code: i16,
    /// Kafka's name for `error_code`, for people reading `curl` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// With NOT_CONTROLLER: the quorum leader's `myid`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
    /// With NOT_CONTROLLER: where brokers and tools reach the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_address: Option<String>,
}

impl ErrorBody {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn from_error(error: &ClusterError) -> Self {
        let mut body = Self::new(error.code(), error.message());
        if let ClusterError::NotController {
            leader: Some(leader),
        } = error
        {
            body.leader_id = Some(leader.id);
            body.leader_address = Some(leader.client_address.clone());
        }
        body
    }

    pub fn new(code: KafkaCode, message: impl Into<String>) -> Self {
        Self {
            error_code: code.0,
            error_name: Some(code.name().to_owned()),
            error_message: Some(message.into()),
            leader_id: None,
            leader_address: None,
        }
    }

    /// `Err` with the carried code when it is not 0.
    pub fn into_result(self) -> Result<(), ClusterError> {
        if self.error_code == KafkaCode::NONE.0 {
            return Ok(());
        }
        if self.error_code == KafkaCode::NOT_CONTROLLER.0 {
            let leader = match (self.leader_id, self.leader_address) {
                (Some(id), Some(client_address)) => {
                    Some(crate::cluster::QuorumLeader { id, client_address })
                }
                _ => None,
            };
            return Err(ClusterError::NotController { leader });
        }
        Err(ClusterError::Rejected {
            code: KafkaCode(self.error_code),
            message: self.error_message.unwrap_or_default(),
        })
    }
}

/// `POST /v1/brokers/register` (BrokerRegistrationRequest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationRequest {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub rack: Option<String>,
    /// The broker's data directory id; nil (or absent, from older brokers)
    /// when unknown.
    #[serde(default)]
    pub directory_id: Uuid,
    /// The broker epoch of its last clean shutdown, -1 after a crash;
    /// absent from older brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_broker_epoch: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    /// The registration's log index; -1 on error.
    pub broker_epoch: i64,
}

/// `POST /v1/brokers/heartbeat` (BrokerHeartbeatRequest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The last log index the broker's image has applied.
    pub current_metadata_offset: u64,
    #[serde(default)]
    pub want_fence: bool,
    #[serde(default)]
    pub want_shut_down: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    /// The broker's image has reached its own registration.
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
    /// The coordinator's metadata log offset when it answered: a broker
    /// back from a stall leads again once its image has reached it.
    #[serde(default)]
    pub metadata_offset: u64,
}

/// `POST /v1/topics` (a CreateTopics `CreatableTopic`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatableTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// A manual placement; empty or absent to let the coordinator place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<crate::cluster::ReplicaAssignment>,
    #[serde(default)]
    pub validate_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub name: String,
    /// Nil for `validate_only` and on error.
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub metadata_offset: u64,
}

/// `DELETE /v1/topics/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub name: String,
    pub topic_id: Uuid,
    pub metadata_offset: u64,
}

/// `POST /v1/topics/{name}/partitions` (a CreatePartitions topic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsRequest {
    /// The new total number of partitions.
    pub count: i32,
    /// The replicas of each new partition; absent to let the coordinator
    /// place them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<Vec<Vec<i32>>>,
    #[serde(default)]
    pub validate_only: bool,
}

/// The answer to writes that return nothing but where they committed:
/// create partitions and alter configs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub metadata_offset: u64,
}

/// The answer to `POST /v1/partitions/elect` (ElectLeaders): each
/// partition's own result, and where the last change committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub results: Vec<crate::cluster::ElectionResult>,
    pub metadata_offset: u64,
}

/// `POST /v1/partitions/reassign` (AlterPartitionReassignments): the
/// partitions to move, or whose move to cancel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartitionsRequest {
    pub topics: Vec<crate::cluster::ReassignmentTopic>,
}

/// The answer to `POST /v1/partitions/reassign`: each partition's own
/// result, and where the last change committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartitionsResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub results: Vec<crate::cluster::ReassignmentResult>,
    pub metadata_offset: u64,
}

/// `PUT /v1/configs/topic/{name}`: entries to set, then keys to reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsRequest {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub delete: Vec<String>,
}

/// `POST /v1/scram-credentials`: set (`credential`) or delete (`null`) one
/// user's credential for one mechanism.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterScramCredentialRequest {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: Option<ScramCredential>,
}

/// `POST /v1/acls` (bindings to add) and `POST /v1/acls/delete` (bindings
/// to remove, already resolved from DeleteAcls filters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBindingsRequest {
    pub bindings: Vec<crate::security::acl::AclBinding>,
}

/// `POST /v1/producer-ids` (AllocateProducerIdsRequest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIdsRequest {
    pub broker_id: i32,
    /// How many ids to reserve. Kafka's controller always hands out blocks
    /// of [`PRODUCER_ID_BLOCK_SIZE`]; any other count is refused.
    #[serde(default = "default_producer_id_block")]
    pub count: i64,
}

fn default_producer_id_block() -> i64 {
    PRODUCER_ID_BLOCK_SIZE
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIdsResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub producer_id_start: i64,
    pub producer_id_len: i64,
    pub metadata_offset: u64,
}

/// `GET /v1/metadata/log?from=IDX&wait_ms=MS`: on the wire
/// `{"cluster_id", "last_index", "entries": [...]}` or
/// `{"cluster_id", "last_index", "snapshot": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LogResponseFields", into = "LogResponseFields")]
pub struct MetadataLogResponse {
    pub cluster_id: String,
    /// The coordinator's newest committed index when it answered.
    pub last_index: u64,
    pub batch: LogBatch,
}

/// Either the entries from the requested index, or the whole image when
/// the coordinator cannot serve that index.
#[derive(Clone, Debug, PartialEq)]
pub enum LogBatch {
    Entries(Vec<LogEntry>),
    Snapshot(Box<MetadataImage>),
}

/// The JSON form of [`MetadataLogResponse`]. Not `#[serde(flatten)]`: that
/// buffers values and then cannot read the image's integer map keys.
#[derive(Serialize, Deserialize)]
struct LogResponseFields {
    cluster_id: String,
    last_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entries: Option<Vec<LogEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Box<MetadataImage>>,
}

impl TryFrom<LogResponseFields> for MetadataLogResponse {
    type Error = &'static str;

    fn try_from(fields: LogResponseFields) -> Result<Self, Self::Error> {
        let batch = match (fields.entries, fields.snapshot) {
            (Some(entries), None) => LogBatch::Entries(entries),
            (None, Some(snapshot)) => LogBatch::Snapshot(snapshot),
            _ => return Err("expected exactly one of \"entries\" and \"snapshot\""),
        };
        Ok(Self {
            cluster_id: fields.cluster_id,
            last_index: fields.last_index,
            batch,
        })
    }
}

impl From<MetadataLogResponse> for LogResponseFields {
    fn from(response: MetadataLogResponse) -> Self {
        let (entries, snapshot) = match response.batch {
            LogBatch::Entries(entries) => (Some(entries), None),
            LogBatch::Snapshot(snapshot) => (None, Some(snapshot)),
        };
        Self {
            cluster_id: response.cluster_id,
            last_index: response.last_index,
            entries,
            snapshot,
        }
    }
}

/// `GET /v1/quorum`: the coordinator quorum as `kafka-metadata-quorum.sh
/// describe --status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumView {
    pub cluster_id: String,
    /// The member that answered.
    pub member_id: u64,
    /// `None` while no leader is known.
    pub leader_id: Option<u64>,
    /// The raft term: Kafka's leader epoch of the metadata quorum.
    pub leader_epoch: u64,
    /// The raft index committed (and applied) on the leader; on a follower
    /// the index it applied.
    pub high_watermark: Option<u64>,
    pub voters: Vec<VoterView>,
    /// Kafka's observers: the live brokers that are not voters (they read
    /// the metadata log without voting).
    #[serde(default)]
    pub observers: Vec<u64>,
}

/// `POST /v1/quorum/voters`: Kafka's AddRaftVoter, as `add-controller`
/// sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddVoterRequest {
    /// The new controller's `node.id`.
    pub id: u64,
    /// `host:port` of its controller listener, which carries raft RPCs and
    /// the coordinator API alike.
    pub address: String,
}

/// One voter of [`QuorumView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterView {
    pub id: u64,
    pub peer_address: String,
    pub client_address: String,
    /// The last raft index known to be on the voter (the leader knows).
    pub log_end_offset: Option<u64>,
    /// `high_watermark - log_end_offset`, where both are known.
    pub lag: Option<u64>,
}

/// `GET /v1/cluster`: what `--zookeeper HOST:2181` tools read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster_id: String,
    /// The log index this view reflects.
    pub metadata_offset: u64,
    pub brokers: Vec<BrokerView>,
    pub topics: Vec<TopicView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerView {
    pub id: i32,
    pub epoch: i64,
    pub fenced: bool,
    pub listeners: Vec<Listener>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub name: String,
    pub topic_id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966); empty with the feature off.
    #[serde(default)]
    pub elr: Vec<i32>,
    #[serde(default)]
    pub last_known_elr: Vec<i32>,
}

impl ClusterView {
    pub fn of(image: &MetadataImage) -> Self {
        Self {
            cluster_id: image.cluster_id.clone(),
            metadata_offset: image.last_applied,
            brokers: image
                .brokers()
                .map(|b| BrokerView {
                    id: b.id,
                    epoch: b.epoch,
                    fenced: b.fenced,
                    listeners: b.listeners.clone(),
                })
                .collect(),
            topics: image
                .topics()
                .map(|t| TopicView {
                    name: t.name.clone(),
                    topic_id: t.id,
                    configs: t.configs.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .zip(0..)
                        .map(|(p, partition)| PartitionView {
                            partition,
                            leader: p.leader,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replicas.clone(),
                            isr: p.isr.clone(),
                            elr: p.elr.clone(),
                            last_known_elr: p.last_known_elr.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cluster::metadata::{Command, SecurityProtocol};

    fn listener() -> Listener {
        Listener {
            name: "PLAINTEXT".to_owned(),
            host: "h".to_owned(),
            port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
        }
    }

    #[test]
    fn registration_request_uses_kafka_field_names() {
        let request = BrokerRegistrationRequest {
            broker_id: 0,
            incarnation_id: Uuid::nil(),
            listeners: vec![listener()],
            rack: None,
            directory_id: Uuid::nil(),
            previous_broker_epoch: None,
        };
        let value = serde_json::to_value(&request).expect("encode");
        assert_eq!(
            value,
            json!({
                "broker_id": 0,
                "incarnation_id": "00000000-0000-0000-0000-000000000000",
                "listeners": [{"name": "PLAINTEXT", "host": "h", "port": 9092, "security_protocol": "PLAINTEXT"}],
                "rack": null,
                "directory_id": "00000000-0000-0000-0000-000000000000",
            })
        );
        let back: BrokerRegistrationRequest = serde_json::from_value(value).expect("decode");
        assert_eq!(back, request);
    }

    #[test]
    fn error_fields_are_flattened_and_omitted_when_none() {
        let ok = WriteResponse {
            error: ErrorBody::none(),
            metadata_offset: 7,
        };
        assert_eq!(
            serde_json::to_value(&ok).expect("encode"),
            json!({"error_code": 0, "metadata_offset": 7})
        );
        let failed = WriteResponse {
            error: ErrorBody::new(KafkaCode::TOPIC_ALREADY_EXISTS, "topic 't' already exists"),
            metadata_offset: 0,
        };
        let value = serde_json::to_value(&failed).expect("encode");
        assert_eq!(value["error_code"], 36);
        assert_eq!(value["error_name"], "TOPIC_ALREADY_EXISTS");
        let back: WriteResponse = serde_json::from_value(value).expect("decode");
        match back.error.into_result() {
            Err(ClusterError::Rejected { code, message }) => {
                assert_eq!(code, KafkaCode::TOPIC_ALREADY_EXISTS);
                assert_eq!(message, "topic 't' already exists");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn heartbeat_request_defaults_the_optional_flags() {
        let request: BrokerHeartbeatRequest = serde_json::from_value(
            json!({"broker_id": 1, "broker_epoch": 5, "current_metadata_offset": 9}),
        )
        .expect("decode");
        assert!(!request.want_fence && !request.want_shut_down);
    }

    #[test]
    fn log_response_is_entries_or_snapshot() {
        let entries = MetadataLogResponse {
            cluster_id: "c".to_owned(),
            last_index: 1,
            batch: LogBatch::Entries(vec![LogEntry {
                index: 1,
                command: Command::AllocateProducerIds {
                    broker_id: 0,
                    count: 10,
                },
            }]),
        };
        let value = serde_json::to_value(&entries).expect("encode");
        assert_eq!(
            value["entries"][0]["command"]["type"],
            "allocate_producer_ids"
        );
        assert!(value.get("snapshot").is_none());
        let back: MetadataLogResponse = serde_json::from_value(value).expect("decode");
        assert_eq!(back, entries);

        let snapshot = MetadataLogResponse {
            cluster_id: "c".to_owned(),
            last_index: 3,
            batch: LogBatch::Snapshot(Box::new(image_with_a_broker())),
        };
        let value = serde_json::to_value(&snapshot).expect("encode");
        assert_eq!(value["snapshot"]["cluster_id"], "c");
        let back: MetadataLogResponse = serde_json::from_value(value).expect("decode");
        assert_eq!(back, snapshot);
    }

    fn image_with_a_broker() -> MetadataImage {
        let mut image = MetadataImage::new("c");
        image
            .apply(
                1,
                &Command::RegisterBroker {
                    broker_id: 3,
                    incarnation_id: Uuid::nil(),
                    listeners: vec![listener()],
                    rack: None,
                    previous_broker_epoch: None,
                },
            )
            .expect("register");
        image
    }

    #[test]
    fn a_log_answer_with_neither_or_both_batches_is_refused() {
        let neither = json!({"cluster_id": "c", "last_index": 0});
        assert!(serde_json::from_value::<MetadataLogResponse>(neither).is_err());
        let both = json!({"cluster_id": "c", "last_index": 0, "entries": [], "snapshot": MetadataImage::new("c")});
        assert!(serde_json::from_value::<MetadataLogResponse>(both).is_err());
    }

    #[test]
    fn cluster_view_has_the_shape_tools_rely_on() {
        let mut image = MetadataImage::new("abc");
        image
            .apply(
                1,
                &Command::RegisterBroker {
                    broker_id: 0,
                    incarnation_id: Uuid::nil(),
                    listeners: vec![listener()],
                    rack: None,
                    previous_broker_epoch: None,
                },
            )
            .expect("register");
        let view = serde_json::to_value(ClusterView::of(&image)).expect("encode");
        assert_eq!(
            view,
            json!({
                "cluster_id": "abc",
                "metadata_offset": 1,
                "brokers": [{
                    "id": 0, "epoch": 1, "fenced": true,
                    "listeners": [{"name": "PLAINTEXT", "host": "h", "port": 9092, "security_protocol": "PLAINTEXT"}],
                }],
                "topics": [],
            })
        );
    }
}
