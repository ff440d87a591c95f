//! The consumer-group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups and DeleteGroups
//! (FindCoordinator is in `find_coordinator`). These translate between the wire and
//! `crate::group`; the group logic itself lives there.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{since, str_bytes, topic_name};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::broker::partition::now_ms;
use crate::group::{CommittedOffset, GroupState, JoinRequest, MemberRef, SyncRequest};
use crate::security::acl::{AclOperation as Operation, ResourceType};

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_OFFSET_METADATA: usize = 4096;

/// A partition's index and its error.
type PartitionResult = (i32, Option<ResponseError>);

/// Who sent a request: what a group member's description shows.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub client_host: String,
}

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

fn group_name(group: &GroupId) -> String {
    group.0.to_string()
}

/// Why this broker cannot serve `group` now: it is not the group's
/// coordinator (NOT_COORDINATOR, so the client looks the coordinator up
/// again), or its offsets partition is still loading.
fn refusal(ctx: &BrokerContext, group: &str) -> Option<ResponseError> {
    ctx.groups.refusal(&ctx.coordinator.image(), group)
}

/// Join, Sync, Heartbeat and Leave need Read on the group.
pub async fn join(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    caller: &Caller,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group = group_name(&request.group_id);
    let refused = refusal(ctx, &group).or(access.group(Operation::Read, &group).err());
    let outcome = if let Some(error) = refused {
        crate::group::JoinOutcome {
            error: Some(error),
            generation_id: -1,
            ..Default::default()
        }
    } else {
        let session_timeout = millis(request.session_timeout_ms);
        let join = JoinRequest {
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.map(|i| i.to_string()),
            client_id: caller.client_id.clone(),
            client_host: caller.client_host.clone(),
            session_timeout,
            // v0 has no rebalance timeout; Kafka uses the session timeout.
            rebalance_timeout: if version >= 1 {
                millis(request.rebalance_timeout_ms)
            } else {
                session_timeout
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: version >= 4,
        };
        ctx.groups.join(&group, join).await
    };
    let members = outcome
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_group_instance_id(since(
                    version,
                    5,
                    m.group_instance_id.as_deref().map(str_bytes),
                    None,
                ))
                .with_metadata(m.metadata)
        })
        .collect();
    // protocol_name is nullable only from v7 on.
    let protocol_name = match outcome.protocol_name {
        Some(name) => Some(str_bytes(&name)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(code(outcome.error))
        .with_generation_id(outcome.generation_id)
        .with_protocol_type(since(
            version,
            7,
            outcome.protocol_type.as_deref().map(str_bytes),
            None,
        ))
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(&outcome.leader))
        .with_member_id(str_bytes(&outcome.member_id))
        .with_members(members)
}

pub async fn sync(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group = group_name(&request.group_id);
    let refused = refusal(ctx, &group).or(access.group(Operation::Read, &group).err());
    let outcome = if let Some(error) = refused {
        crate::group::SyncOutcome {
            error: Some(error),
            ..Default::default()
        }
    } else {
        let sync = SyncRequest {
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.map(|i| i.to_string()),
            generation_id: request.generation_id,
            protocol_type: request.protocol_type.map(|t| t.to_string()),
            protocol_name: request.protocol_name.map(|n| n.to_string()),
            assignments: request
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        };
        ctx.groups.sync(&group_name(&request.group_id), sync).await
    };
    SyncGroupResponse::default()
        .with_error_code(code(outcome.error))
        .with_protocol_type(since(
            version,
            5,
            outcome.protocol_type.as_deref().map(str_bytes),
            None,
        ))
        .with_protocol_name(since(
            version,
            5,
            outcome.protocol_name.as_deref().map(str_bytes),
            None,
        ))
        .with_assignment(outcome.assignment)
}

pub async fn heartbeat(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let group = group_name(&request.group_id);
    let refused = access
        .group(Operation::Read, &group)
        .err()
        .or_else(|| refusal(ctx, &group));
    let error = match refused {
        // Kafka answers a heartbeat blindly while the group loads: its
        // members keep their places, and clients that do not expect this
        // error from a heartbeat (aiokafka's heartbeat task dies on it)
        // carry on until the group is there.
        Some(ResponseError::CoordinatorLoadInProgress) => None,
        Some(error) => Some(error),
        None => {
            let member = MemberRef {
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.map(|i| i.to_string()),
            };
            ctx.groups
                .heartbeat(
                    &group_name(&request.group_id),
                    member,
                    request.generation_id,
                )
                .await
        }
    };
    HeartbeatResponse::default().with_error_code(code(error))
}

pub async fn leave(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = group_name(&request.group_id);
    let refused = refusal(ctx, &group).or(access.group(Operation::Read, &group).err());
    if let Some(error) = refused {
        return LeaveGroupResponse::default().with_error_code(error.code());
    }
    let members = if version >= 3 {
        request
            .members
            .into_iter()
            .map(|m| MemberRef {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
            })
            .collect()
    } else {
        vec![MemberRef {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let (error, results) = ctx
        .groups
        .leave(&group_name(&request.group_id), members)
        .await;
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(code(error));
    }
    let members = results
        .into_iter()
        .map(|(member_id, instance, error)| {
            MemberResponse::default()
                .with_member_id(str_bytes(&member_id))
                .with_group_instance_id(instance.as_deref().map(str_bytes))
                .with_error_code(code(error))
        })
        .collect();
    // Batch leaves report per member; the top level is for group errors.
    LeaveGroupResponse::default().with_members(members)
}

/// Needs Read on the group and on each topic.
pub async fn offset_commit(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group = group_name(&request.group_id);
    let refused = refusal(ctx, &group).or(access.group(Operation::Read, &group).err());
    let group_error = match refused {
        Some(error) => Some(error),
        None => {
            let member = MemberRef {
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.map(|i| i.to_string()),
            };
            // v0 carries no generation: a standalone consumer's commit.
            let generation = if version >= 1 {
                request.generation_id_or_member_epoch
            } else {
                -1
            };
            ctx.groups
                .validate_commit(&group, member, generation)
                .await
                .err()
        }
    };
    let image = ctx.coordinator.image();
    let now = now_ms();
    let mut records = Vec::new();
    let mut answers: Vec<(String, Vec<PartitionResult>)> = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let partitions_known = image.topic(&name).map(|t| t.partitions.len());
        let topic_error = access.topic(Operation::Read, &name).err();
        let mut results = Vec::new();
        for p in topic.partitions {
            let error = if group_error.is_some() {
                group_error
            } else if topic_error.is_some() {
                topic_error
            } else if !partitions_known
                .is_some_and(|n| p.partition_index >= 0 && (p.partition_index as usize) < n)
            {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_OFFSET_METADATA)
            {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                records.push((
                    name.clone(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.map(|m| m.to_string()),
                        commit_timestamp: now,
                    },
                ));
                None
            };
            results.push((p.partition_index, error));
        }
        answers.push((name, results));
    }
    let write_error = if records.is_empty() {
        None
    } else {
        ctx.groups.offsets.commit(&group, records).await.err()
    };
    let topics = answers
        .into_iter()
        .map(|(name, results)| {
            let partitions = results
                .into_iter()
                .map(|(index, error)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code(error.or(write_error)))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One partition's committed offset as OffsetFetch reports it; -1 with
/// empty metadata when nothing is committed.
fn fetched(ctx: &BrokerContext, group: &str, topic: &str, partition: i32) -> (i64, i32, String) {
    match ctx.groups.offsets.offset(group, topic, partition) {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.unwrap_or_default()),
        None => (-1, -1, String::new()),
    }
}

/// The (topic, partitions) an OffsetFetch asks about; `None` means all
/// the group has offsets for, of the topics the caller may Describe.
fn fetch_targets(
    ctx: &BrokerContext,
    access: &Access,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<i32>)> {
    match topics {
        Some(topics) => topics,
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            let offsets = ctx.groups.offsets.group_offsets(group);
            let visible = offsets
                .into_iter()
                .filter(|(topic, ..)| access.allows_topic(Operation::Describe, topic));
            for (topic, partition, _) in visible {
                match all.last_mut() {
                    Some((t, ps)) if *t == topic => ps.push(partition),
                    _ => all.push((topic, vec![partition])),
                }
            }
            all
        }
    }
}

/// Needs Describe on the group and on each topic (a topic the caller may
/// not describe answers TOPIC_AUTHORIZATION_FAILED, or is left out when all
/// topics are asked for).
pub fn offset_fetch(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let group_error =
        |group: &str| refusal(ctx, group).or(access.group(Operation::Describe, group).err());
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let group = group_name(&g.group_id);
                if let Some(error) = group_error(&group) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(error.code());
                }
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = fetch_targets(ctx, access, &group, wanted)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let denied = access.topic(Operation::Describe, &topic).err();
                        let partitions = partitions
                            .into_iter()
                            .map(|p| {
                                let (offset, epoch, metadata) = match denied {
                                    Some(_) => (-1, -1, String::new()),
                                    None => fetched(ctx, &group, &topic, p),
                                };
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(str_bytes(&metadata)))
                                    .with_error_code(code(denied))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(&topic))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group = group_name(&request.group_id);
    if let Some(error) = group_error(&group) {
        // Before v2 there is no top-level error: report it per partition.
        let topics = request
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partition_indexes
                    .into_iter()
                    .map(|p| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_metadata(Some(StrBytes::default()))
                            .with_error_code(error.code())
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default()
            .with_topics(topics)
            .with_error_code(since(version, 2, error.code(), 0));
    }
    let wanted = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = fetch_targets(ctx, access, &group, wanted)
        .into_iter()
        .map(|(topic, partitions)| {
            let denied = access.topic(Operation::Describe, &topic).err();
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let (offset, epoch, metadata) = match denied {
                        Some(_) => (-1, -1, String::new()),
                        None => fetched(ctx, &group, &topic, p),
                    };
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(since(version, 5, epoch, -1))
                        .with_metadata(Some(str_bytes(&metadata)))
                        .with_error_code(code(denied))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// Needs Describe on each group.
pub async fn describe(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let (names, denied): (Vec<String>, Vec<String>) = request
        .groups
        .iter()
        .map(group_name)
        .partition(|g| access.allows_group(Operation::Describe, g));
    let (names, elsewhere) = served_here(ctx, names);
    let mut groups: Vec<DescribedGroup> = ctx
        .groups
        .describe(names)
        .await
        .into_iter()
        .map(|g| {
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(since(
                            version,
                            4,
                            m.group_instance_id.as_deref().map(str_bytes),
                            None,
                        ))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            let operations = if version >= 3 && request.include_authorized_operations {
                access.authorized_operations(ResourceType::Group, &g.group_id)
            } else {
                i32::MIN
            };
            DescribedGroup::default()
                .with_authorized_operations(operations)
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_group_state(str_bytes(g.state.map_or("Dead", GroupState::as_str)))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_protocol_data(str_bytes(&g.protocol_name))
                .with_members(members)
        })
        .collect();
    groups.extend(denied.into_iter().map(|g| {
        DescribedGroup::default()
            .with_group_id(GroupId(str_bytes(&g)))
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
    }));
    groups.extend(elsewhere.into_iter().map(|(g, error)| {
        DescribedGroup::default()
            .with_group_id(GroupId(str_bytes(&g)))
            .with_error_code(error.code())
    }));
    DescribeGroupsResponse::default().with_groups(groups)
}

/// `groups` split into those this broker serves now and the others, each
/// with why not (NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS).
fn served_here(
    ctx: &BrokerContext,
    groups: Vec<String>,
) -> (Vec<String>, Vec<(String, ResponseError)>) {
    let image = ctx.coordinator.image();
    let mut served = Vec::new();
    let mut refused = Vec::new();
    for group in groups {
        match ctx.groups.refusal(&image, &group) {
            None => served.push(group),
            Some(error) => refused.push((group, error)),
        }
    }
    (served, refused)
}

/// Lists the groups the caller may Describe (all of them with Describe on
/// the cluster).
pub async fn list(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    if ctx.groups.any_loading() {
        return ListGroupsResponse::default()
            .with_error_code(ResponseError::CoordinatorLoadInProgress.code());
    }
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let all_visible = access.allows_cluster(Operation::Describe);
    let mut listed = ctx.groups.list().await;
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let groups = listed
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_ascii_lowercase()))
        .filter(|g| all_visible || access.allows_group(Operation::Describe, &g.group_id))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_group_state(since(
                    version,
                    4,
                    str_bytes(g.state.as_str()),
                    StrBytes::default(),
                ))
                .with_group_type(since(version, 5, str_bytes("classic"), StrBytes::default()))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Needs Delete on each group.
pub async fn delete(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let (names, denied): (Vec<String>, Vec<String>) = request
        .groups_names
        .iter()
        .map(group_name)
        .partition(|g| access.allows_group(Operation::Delete, g));
    let (names, elsewhere) = served_here(ctx, names);
    let mut results: Vec<(String, Option<ResponseError>)> = ctx.groups.delete(names).await;
    results.extend(elsewhere.into_iter().map(|(g, error)| (g, Some(error))));
    results.extend(
        denied
            .into_iter()
            .map(|g| (g, Some(ResponseError::GroupAuthorizationFailed))),
    );
    let results = results
        .into_iter()
        .map(|(group, error)| {
            DeletableGroupResult::default()
                .with_group_id(GroupId(str_bytes(&group)))
                .with_error_code(code(error))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
