//! Consumer-group membership with the classic protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup), the range assignor when this member
//! leads, and the offset APIs (OffsetFetch, OffsetCommit) that
//! `console-consumer` and `consumer-groups` share.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::client::{Client, ClientError, check, split_version};

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const JOIN_RETRY_BACKOFF: Duration = Duration::from_millis(200);
const MAX_JOIN_ATTEMPTS: u32 = 50;
const PROTOCOL_TYPE: &str = "consumer";
const RANGE: &str = "range";
/// What OffsetFetch answers for a partition with no committed offset.
pub const NO_OFFSET: i64 = -1;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn group_id(s: &str) -> GroupId {
    GroupId(text(s))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

/// A topic and partition.
pub type TopicPartition = (String, i32);

/// Encodes a consumer-protocol payload with its version prefix.
fn encode_versioned<T: Encodable>(message: &T, version: i16) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| ClientError::Codec {
            api: kafka_protocol::messages::ApiKey::JoinGroup,
            version,
            reason: e.to_string(),
        })?;
    Ok(buf.freeze())
}

/// The topics a member subscribes to, from its JoinGroup metadata. Newer
/// versions only append fields, so reading at our highest is safe.
pub fn decode_subscription(metadata: &Bytes) -> Vec<String> {
    let mut bytes = metadata.clone();
    let Some(version) = split_version(&mut bytes) else {
        return Vec::new();
    };
    ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3))
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// The partitions in a member's assignment.
pub fn decode_assignment(assignment: &Bytes) -> Vec<TopicPartition> {
    let mut bytes = assignment.clone();
    let Some(version) = split_version(&mut bytes) else {
        return Vec::new();
    };
    ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|tp| {
                    let topic = tp.topic.0.to_string();
                    tp.partitions.iter().map(move |p| (topic.clone(), *p))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Kafka's RangeAssignor: per topic, partitions in order are split into
/// contiguous ranges over the subscribed members sorted by member id; the
/// first `partitions % members` members get one extra.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &HashMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = subscriptions
        .keys()
        .map(|member| (member.clone(), Vec::new()))
        .collect();
    let topics: BTreeSet<&String> = subscriptions.values().flatten().collect();
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        let per_member = count / members.len() as i32;
        let extra = count % members.len() as i32;
        for (i, member) in members.into_iter().enumerate() {
            let i = i as i32;
            let start = per_member * i + i.min(extra);
            let length = per_member + i32::from(i < extra);
            if let Some(assigned) = out.get_mut(member) {
                assigned.extend((start..start + length).map(|p| (topic.clone(), p)));
            }
        }
    }
    out
}

/// What a heartbeat found out.
#[derive(Debug, PartialEq, Eq)]
pub enum Heartbeat {
    Ok,
    /// The group is rebalancing (or forgot us): rejoin.
    Rejoin,
}

/// This process as a member of one consumer group.
pub struct GroupMember {
    pub group: String,
    coordinator: i32,
    member_id: String,
    generation_id: i32,
    topics: Vec<String>,
    pub assignment: Vec<TopicPartition>,
}

impl GroupMember {
    /// Finds the coordinator, joins and syncs.
    pub async fn join(
        client: &mut Client,
        group: &str,
        topics: Vec<String>,
    ) -> Result<GroupMember, ClientError> {
        let coordinator = client.group_coordinator(group).await?;
        let mut member = GroupMember {
            group: group.to_string(),
            coordinator,
            member_id: String::new(),
            generation_id: -1,
            topics,
            assignment: Vec::new(),
        };
        member.rejoin(client).await?;
        Ok(member)
    }

    /// JoinGroup then SyncGroup, retried through the errors a rebalance
    /// produces.
    pub async fn rejoin(&mut self, client: &mut Client) -> Result<(), ClientError> {
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(self.topics.iter().map(|t| text(t)).collect());
        let metadata = encode_versioned(&subscription, 0)?;
        for _ in 0..MAX_JOIN_ATTEMPTS {
            let connection = client.broker(self.coordinator).await?;
            let response = connection
                .send(|version| {
                    let request = JoinGroupRequest::default()
                        .with_group_id(group_id(&self.group))
                        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                        .with_member_id(text(&self.member_id))
                        .with_protocol_type(text(PROTOCOL_TYPE))
                        .with_protocols(vec![
                            JoinGroupRequestProtocol::default()
                                .with_name(text(RANGE))
                                .with_metadata(metadata.clone()),
                        ]);
                    if version >= 1 {
                        request.with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                    } else {
                        request
                    }
                })
                .await?;
            match ResponseError::try_from_code(response.error_code) {
                None => {}
                Some(ResponseError::MemberIdRequired) => {
                    self.member_id = response.member_id.to_string();
                    continue;
                }
                Some(ResponseError::UnknownMemberId) => {
                    self.member_id.clear();
                    continue;
                }
                Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable) => {
                    tokio::time::sleep(JOIN_RETRY_BACKOFF).await;
                    self.coordinator = client.group_coordinator(&self.group).await?;
                    continue;
                }
                Some(
                    ResponseError::RebalanceInProgress | ResponseError::CoordinatorLoadInProgress,
                ) => {
                    tokio::time::sleep(JOIN_RETRY_BACKOFF).await;
                    continue;
                }
                Some(_) => check(response.error_code, || {
                    format!("joining group '{}'", self.group)
                })?,
            }
            self.member_id = response.member_id.to_string();
            self.generation_id = response.generation_id;
            let assignments = if response.leader == response.member_id {
                let subscriptions: BTreeMap<String, Vec<String>> = response
                    .members
                    .iter()
                    .map(|m| (m.member_id.to_string(), decode_subscription(&m.metadata)))
                    .collect();
                self.leader_assignments(client, &subscriptions).await?
            } else {
                Vec::new()
            };
            let member_id = self.member_id.clone();
            let connection = client.broker(self.coordinator).await?;
            let synced = connection
                .send(|version| {
                    let request = SyncGroupRequest::default()
                        .with_group_id(group_id(&self.group))
                        .with_generation_id(self.generation_id)
                        .with_member_id(text(&member_id))
                        .with_assignments(assignments.clone());
                    if version >= 5 {
                        request
                            .with_protocol_type(Some(text(PROTOCOL_TYPE)))
                            .with_protocol_name(Some(text(RANGE)))
                    } else {
                        request
                    }
                })
                .await?;
            match ResponseError::try_from_code(synced.error_code) {
                None => {
                    self.assignment = decode_assignment(&synced.assignment);
                    return Ok(());
                }
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                    self.member_id.clear();
                    continue;
                }
                Some(_) => check(synced.error_code, || {
                    format!("syncing group '{}'", self.group)
                })?,
            }
        }
        Err(ClientError::Kafka {
            context: format!(
                "joining group '{}' ({MAX_JOIN_ATTEMPTS} attempts)",
                self.group
            ),
            code: ResponseError::RebalanceInProgress.code(),
        })
    }

    async fn leader_assignments(
        &self,
        client: &mut Client,
        subscriptions: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let topics: Vec<String> = subscriptions
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (_, infos) = client.metadata(Some(&topics)).await?;
        let counts: HashMap<String, i32> = infos
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let plan = range_assign(subscriptions, &counts);
        let mut assignments = Vec::new();
        for (member, partitions) in plan {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in partitions {
                by_topic.entry(topic).or_default().push(partition);
            }
            let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        AssignedPartitions::default()
                            .with_topic(topic_name(&topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
            assignments.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(text(&member))
                    .with_assignment(encode_versioned(&assignment, 0)?),
            );
        }
        Ok(assignments)
    }

    pub async fn heartbeat(&mut self, client: &mut Client) -> Result<Heartbeat, ClientError> {
        let connection = client.broker(self.coordinator).await?;
        let response = connection
            .send(|_| {
                HeartbeatRequest::default()
                    .with_group_id(group_id(&self.group))
                    .with_generation_id(self.generation_id)
                    .with_member_id(text(&self.member_id))
            })
            .await?;
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(Heartbeat::Ok),
            Some(
                ResponseError::RebalanceInProgress
                | ResponseError::IllegalGeneration
                | ResponseError::UnknownMemberId
                | ResponseError::NotCoordinator,
            ) => Ok(Heartbeat::Rejoin),
            Some(_) => check(response.error_code, || {
                format!("heartbeat to group '{}'", self.group)
            })
            .map(|()| Heartbeat::Ok),
        }
    }

    /// Commits `offsets` as this member of the current generation.
    pub async fn commit(
        &self,
        client: &mut Client,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ClientError> {
        commit_offsets(
            client,
            self.coordinator,
            &self.group,
            self.generation_id,
            &self.member_id,
            offsets,
        )
        .await
    }

    pub async fn committed(
        &self,
        client: &mut Client,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        fetch_offsets(client, self.coordinator, &self.group, Some(partitions)).await
    }

    pub async fn leave(&self, client: &mut Client) -> Result<(), ClientError> {
        let connection = client.broker(self.coordinator).await?;
        let response = connection
            .send(|version| {
                let request = LeaveGroupRequest::default().with_group_id(group_id(&self.group));
                if version >= 3 {
                    request.with_members(vec![
                        MemberIdentity::default().with_member_id(text(&self.member_id)),
                    ])
                } else {
                    request.with_member_id(text(&self.member_id))
                }
            })
            .await?;
        check(response.error_code, || {
            format!("leaving group '{}'", self.group)
        })
    }
}

/// OffsetCommit; `generation_id` -1 with an empty member id commits as an
/// admin (the group must have no active members).
pub async fn commit_offsets(
    client: &mut Client,
    coordinator: i32,
    group: &str,
    generation_id: i32,
    member_id: &str,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), ClientError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in offsets {
        by_topic.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset),
        );
    }
    let topics: Vec<OffsetCommitRequestTopic> = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    let connection = client.broker(coordinator).await?;
    let response = connection
        .send(|version| {
            let request = OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_topics(topics.clone());
            if version >= 1 {
                request
                    .with_generation_id_or_member_epoch(generation_id)
                    .with_member_id(text(member_id))
            } else {
                request
            }
        })
        .await?;
    for topic in response.topics {
        for p in topic.partitions {
            check(p.error_code, || {
                format!(
                    "committing offsets of group '{group}' for {}-{}",
                    topic.name.0, p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

/// OffsetFetch for `partitions`, or every partition the group has
/// committed when `None`. Partitions without a commit are left out.
pub async fn fetch_offsets(
    client: &mut Client,
    coordinator: i32,
    group: &str,
    partitions: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
    let topics = partitions.map(|partitions| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        by_topic
            .into_iter()
            .map(|(topic, indexes)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(indexes)
            })
            .collect::<Vec<_>>()
    });
    let connection = client.broker(coordinator).await?;
    let response = connection
        .send(|_| {
            OffsetFetchRequest::default()
                .with_group_id(group_id(group))
                .with_topics(topics.clone())
        })
        .await?;
    check(response.error_code, || {
        format!("fetching offsets of group '{group}'")
    })?;
    let mut out = BTreeMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            check(p.error_code, || {
                format!(
                    "fetching offsets of group '{group}' for {}-{}",
                    topic.name.0, p.partition_index
                )
            })?;
            if p.committed_offset != NO_OFFSET {
                out.insert(
                    (topic.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_gives_the_first_members_the_extra_partitions() {
        let plan = range_assign(
            &subs(&[("b", &["t"]), ("a", &["t"])]),
            &HashMap::from([("t".to_string(), 3)]),
        );
        assert_eq!(plan["a"], vec![("t".to_string(), 0), ("t".to_string(), 1)]);
        assert_eq!(plan["b"], vec![("t".to_string(), 2)]);
    }

    #[test]
    fn range_leaves_extra_members_empty() {
        let plan = range_assign(
            &subs(&[("a", &["t"]), ("b", &["t"])]),
            &HashMap::from([("t".to_string(), 1)]),
        );
        assert_eq!(plan["a"].len(), 1);
        assert!(plan["b"].is_empty());
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let subscription =
            ConsumerProtocolSubscription::default().with_topics(vec![text("x"), text("y")]);
        let bytes = encode_versioned(&subscription, 0).unwrap();
        assert_eq!(decode_subscription(&bytes), vec!["x", "y"]);
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedPartitions::default()
                .with_topic(topic_name("x"))
                .with_partitions(vec![0, 2]),
        ]);
        let bytes = encode_versioned(&assignment, 0).unwrap();
        assert_eq!(
            decode_assignment(&bytes),
            vec![("x".to_string(), 0), ("x".to_string(), 2)]
        );
    }
}
