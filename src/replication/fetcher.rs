//! One replica fetcher per leader broker (Kafka's `ReplicaFetcherThread`):
//! a connection to the leader's inter-broker listener (with TLS and SASL
//! as that listener is configured here) and a loop of Fetch
//! requests with this broker's id as `replica_id`, each partition's
//! `current_leader_epoch`, and its `last_fetched_epoch` (the newest epoch
//! in its log), from each partition's log end offset. The leader's batches
//! are appended as they are, offsets and leader epochs and all.
//!
//! Truncation is KIP-595's: when the leader finds that this log diverges
//! from its own it answers `diverging_epoch` {epoch, end offset}, and the
//! log is cut where that epoch ends here or there, whichever is first
//! (the next fetch, with the epoch now newest here, checks again). Nothing
//! below the high watermark is ever cut: that is committed, so a leader
//! asking for it (an unclean election) is refused with an error at every
//! retry, and the replica stays out of sync until an operator looks. A
//! log with no leader epochs at all (written before batches carried them)
//! falls back to Kafka's pre-KIP-101 rule: cut to the high watermark
//! before following a new leader epoch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{ApiKey, BrokerId as WireBrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use uuid::Uuid;

use super::follower::{
    self, FetchPosition, FetchedPartition, FollowerLog, FollowerStep, answer_is_current,
};
use super::inter_broker::InterBrokerClient;
use super::state::BrokerId;
use crate::broker::partition::Partition;
use crate::cli::client::Connection;
use crate::cluster::ClusterCoordinator;

/// How long the leader may hold a fetch with nothing new (Kafka's
/// `replica.fetch.wait.max.ms` default).
const FETCH_WAIT_MAX_MS: i32 = 500;
/// `replica.fetch.max.bytes` and `replica.fetch.response.max.bytes`.
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
/// Pause after an error before fetching again (`replica.fetch.backoff.ms`).
const BACKOFF: Duration = Duration::from_secs(1);

/// A partition this broker follows, as its fetcher fetches it.
#[derive(Clone)]
pub struct Followed {
    pub leader_epoch: i32,
    pub topic_id: Uuid,
    pub partition: Arc<Partition>,
}

pub struct FetcherConfig {
    pub local: BrokerId,
    pub leader: BrokerId,
    pub inter_broker: InterBrokerClient,
    pub coordinator: Arc<dyn ClusterCoordinator>,
    pub assignment: watch::Receiver<Vec<Followed>>,
    pub shutdown: watch::Receiver<bool>,
}

/// Fetches from `leader` until the assignment's sender is dropped (this
/// broker follows nothing there any more) or shutdown.
pub async fn run(mut config: FetcherConfig) {
    let leader = config.leader;
    tracing::info!(leader, "replica fetcher started");
    // Said once per outage: a dead leader is retried every second until
    // the controller moves leadership away.
    let mut reported = false;
    loop {
        let Some(address) = config
            .inter_broker
            .address(&config.coordinator.image(), leader)
        else {
            if !std::mem::replace(&mut reported, true) {
                let listener = config.inter_broker.listener_name().unwrap_or("PLAINTEXT");
                tracing::warn!(
                    leader,
                    listener,
                    "the leader has no inter-broker listener of that name (set \
                     inter.broker.listener.name to a listener every broker has); retrying"
                );
            }
            if pause(&mut config).await {
                break;
            }
            continue;
        };
        let client_id = format!("gregor-replica-{}", config.local);
        let security = config.inter_broker.security();
        let connected = tokio::select! {
            connected = Connection::connect(&address, &client_id, security) => connected,
            _ = config.shutdown.changed() => break,
        };
        let mut connection = match connected {
            Ok(connection) => {
                reported = false;
                connection
            }
            Err(error) => {
                if !std::mem::replace(&mut reported, true) {
                    tracing::info!(leader, %address, %error, "replica fetcher cannot reach the leader; retrying");
                }
                if pause(&mut config).await {
                    break;
                }
                continue;
            }
        };
        match fetch_until_error(&mut config, &mut connection).await {
            Stop::Done => break,
            Stop::Reconnect(error) => {
                tracing::info!(leader, %address, %error, "replica fetcher reconnects");
                if pause(&mut config).await {
                    break;
                }
            }
        }
    }
    tracing::info!(leader, "replica fetcher stopped");
}

enum Stop {
    /// Shutdown, or nothing to follow at this leader any more.
    Done,
    Reconnect(String),
}

/// Sleeps [`BACKOFF`]; true when the fetcher should stop instead.
async fn pause(config: &mut FetcherConfig) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(BACKOFF) => config.assignment.has_changed().is_err(),
        _ = config.shutdown.changed() => true,
    }
}

async fn fetch_until_error(config: &mut FetcherConfig, connection: &mut Connection) -> Stop {
    // Said once per connection: the follower retries every second.
    let mut refusal_reported = false;
    loop {
        let followed = config.assignment.borrow_and_update().clone();
        if followed.is_empty() {
            tokio::select! {
                changed = config.assignment.changed() => if changed.is_err() { return Stop::Done },
                _ = config.shutdown.changed() => return Stop::Done,
            }
            continue;
        }
        for f in &followed {
            if f.partition.replication.needs_truncation(f.leader_epoch)
                && !truncate_without_epochs(f).await
            {
                return Stop::Reconnect("a follower's log could not be truncated".into());
            }
        }
        let version = connection.version(ApiKey::Fetch).unwrap_or(0);
        let broker_epoch = config
            .coordinator
            .image()
            .broker(config.local)
            .map_or(-1, |b| b.epoch);
        let request = fetch_request(config.local, broker_epoch, &followed, version);
        let positions: HashMap<(String, i32), FetchPosition> = request
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(|p| {
                    let position = FetchPosition {
                        leader_epoch: p.current_leader_epoch,
                        fetch_offset: p.fetch_offset,
                    };
                    ((topic.topic.0.to_string(), p.partition), position)
                })
            })
            .collect();
        let sent = tokio::select! {
            sent = connection.send(|_| request) => sent,
            _ = config.shutdown.changed() => return Stop::Done,
        };
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Stop::Reconnect(error.to_string()),
        };
        if response.error_code != 0 {
            let error = crate::cli::client::describe_code(response.error_code);
            return Stop::Reconnect(error);
        }
        let by_name: HashMap<(&str, i32), &Followed> = followed
            .iter()
            .map(|f| ((f.partition.topic.as_str(), f.partition.index), f))
            .collect();
        let mut any_error = false;
        for topic in &response.responses {
            // From v13 the answer names topics by id only.
            let name = if version >= 13 {
                followed
                    .iter()
                    .find(|f| f.topic_id == topic.topic_id)
                    .map_or("", |f| f.partition.topic.as_str())
            } else {
                topic.topic.0.as_str()
            };
            for data in &topic.partitions {
                let Some(followed) = by_name.get(&(name, data.partition_index)) else {
                    continue;
                };
                let Some(sent) = positions
                    .get(&(name.to_string(), data.partition_index))
                    .copied()
                else {
                    continue;
                };
                // An answer for a partition that moved on while it was in
                // flight (now following another leader or epoch, or its log
                // end changed) is dropped, as Kafka's fetcher does.
                let now = config
                    .assignment
                    .borrow()
                    .iter()
                    .find(|f| Arc::ptr_eq(&f.partition, &followed.partition))
                    .map(|f| FetchPosition {
                        leader_epoch: f.leader_epoch,
                        fetch_offset: f.partition.log_end_offset(),
                    });
                if !answer_is_current(sent, now) {
                    continue;
                }
                if data.error_code == ResponseError::ClusterAuthorizationFailed.code()
                    && !std::mem::replace(&mut refusal_reported, true)
                {
                    let login = config.inter_broker.security().sasl.as_ref();
                    tracing::warn!(
                        leader = config.leader,
                        username = login.map(|l| l.username.as_str()),
                        "the leader refused this broker's replica fetch (CLUSTER_AUTHORIZATION_FAILED): \
                         the broker's principal needs ClusterAction on the cluster (super.users or an ACL)"
                    );
                }
                if !apply(followed, data).await {
                    any_error = true;
                }
            }
        }
        if any_error && pause(config).await {
            return Stop::Done;
        }
        if config.assignment.has_changed().is_err() {
            return Stop::Done;
        }
    }
}

/// The partition's log as the follower's decisions see it.
fn follower_log(partition: &Partition) -> FollowerLog {
    FollowerLog {
        log_start_offset: partition.log_start_offset(),
        log_end_offset: partition.log_end_offset(),
        high_watermark: partition.high_watermark(),
        latest_epoch: partition.latest_epoch(),
    }
}

/// Before a partition follows a new leader epoch: a log without leader
/// epochs is cut back to its high watermark (see [`follower`](super::follower)).
async fn truncate_without_epochs(followed: &Followed) -> bool {
    let partition = &followed.partition;
    let before = follower_log(partition);
    if let Some(target) = follower::cut_before_following(before) {
        match partition.truncate_to(target).await {
            Ok(Ok(end)) => tracing::info!(
                topic = %partition.topic, partition = partition.index,
                from = before.log_end_offset, to = end, leader_epoch = followed.leader_epoch,
                "truncated the log to the high watermark to follow a new leader"
            ),
            Ok(Err(error)) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "truncation failed; partition offline");
                return false;
            }
            Err(_) => return false,
        }
    }
    partition
        .replication
        .truncated(followed.leader_epoch, partition.log_end_offset());
    true
}

/// Carries out the follower's decision on one partition's answer; false
/// on an error that calls for a pause (the metadata is probably about to
/// change).
async fn apply(
    followed: &Followed,
    data: &kafka_protocol::messages::fetch_response::PartitionData,
) -> bool {
    let partition = &followed.partition;
    let records = data.records.as_ref().filter(|r| !r.is_empty());
    let fetched = FetchedPartition {
        error_code: data.error_code,
        diverging_epoch: (data.diverging_epoch.epoch, data.diverging_epoch.end_offset),
        high_watermark: data.high_watermark,
        log_start_offset: data.log_start_offset,
        first_base_offset: records
            .and_then(|r| crate::records::BatchHeader::parse(r))
            .map(|h| h.base_offset),
    };
    let before = follower_log(partition);
    let step = follower::next_step(before, &fetched, |epoch, end_offset| {
        partition.truncation_offset(epoch, end_offset)
    });
    match step {
        FollowerStep::TruncateDiverging { offset } => {
            truncate_diverging(followed, before, offset, fetched.diverging_epoch).await
        }
        FollowerStep::RefuseBelowHighWatermark { offset } => {
            let (epoch, end_offset) = fetched.diverging_epoch;
            tracing::error!(
                topic = %partition.topic, partition = partition.index,
                leader_epoch = followed.leader_epoch, diverging_epoch = epoch,
                diverging_end_offset = end_offset, high_watermark = before.high_watermark,
                log_end_offset = before.log_end_offset, target = offset,
                "the leader's log lacks committed records of this replica (an unclean election?); \
                 refusing to truncate below the high watermark; this replica stays out of sync"
            );
            false
        }
        FollowerStep::RestartAt { offset } => move_log_end(
            followed,
            before,
            fetched,
            partition.restart_at(offset).await,
        ),
        FollowerStep::TruncateTo { offset } => move_log_end(
            followed,
            before,
            fetched,
            partition.truncate_to(offset).await,
        ),
        FollowerStep::NoDataAtLogEnd => {
            tracing::warn!(
                topic = %partition.topic, partition = partition.index,
                log_end_offset = before.log_end_offset,
                leader_log_start_offset = fetched.log_start_offset,
                leader_high_watermark = fetched.high_watermark,
                "the leader has no data at this replica's log end"
            );
            false
        }
        FollowerStep::Pause { error } => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, ?error, "replica fetch error");
            false
        }
        FollowerStep::Append { restart_at } => {
            if let Some(records) = records {
                if let Some(offset) = restart_at
                    && !matches!(partition.restart_at(offset).await, Ok(Ok(_)))
                {
                    return false;
                }
                match partition.append_replicated(records.clone()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        tracing::error!(topic = %partition.topic, partition = partition.index, %error, "could not append the leader's batches");
                        return false;
                    }
                    Err(_) => return false,
                }
            }
            partition
                .replication
                .follower_high_watermark(data.high_watermark, partition.log_end_offset());
            follow_log_start(partition, data.log_start_offset).await;
            true
        }
    }
}

/// Cuts the log to `offset` where it diverges from the leader's (the
/// diverging epoch is only for the log lines). False when nothing was
/// cut, so the fetcher pauses before asking again.
async fn truncate_diverging(
    followed: &Followed,
    before: FollowerLog,
    offset: i64,
    (epoch, end_offset): (i32, i64),
) -> bool {
    let partition = &followed.partition;
    // Even with no batch to cut, an epoch this replica recorded as leader
    // and never wrote under goes (see `PartitionLog::truncate_to`).
    match partition.truncate_to(offset).await {
        Ok(Ok(end)) => {
            if end < before.log_end_offset {
                tracing::info!(
                    topic = %partition.topic, partition = partition.index,
                    from = before.log_end_offset, to = end, diverging_epoch = epoch,
                    diverging_end_offset = end_offset, leader_epoch = followed.leader_epoch,
                    "truncated the log where it diverges from the leader's"
                );
            }
            partition.replication.truncated(followed.leader_epoch, end);
            follower::cut_changed(before, end, partition.latest_epoch())
        }
        Ok(Err(error)) => {
            tracing::error!(topic = %partition.topic, partition = partition.index, %error, "truncation failed; partition offline");
            false
        }
        Err(_) => false,
    }
}

/// The leader's log start moved up (DeleteRecords, retention): so does
/// this replica's, as far as its log reaches.
async fn follow_log_start(partition: &Arc<Partition>, leader_log_start_offset: i64) {
    if leader_log_start_offset <= partition.log_start_offset()
        || leader_log_start_offset > partition.log_end_offset()
    {
        return;
    }
    let replica = partition.clone();
    let moved =
        tokio::task::spawn_blocking(move || replica.delete_records(leader_log_start_offset)).await;
    if let Ok(Err(error)) = moved {
        tracing::debug!(topic = %partition.topic, partition = partition.index, ?error, "could not follow the leader's log start");
    }
}

/// The outcome of moving the log end to where the leader's log has data
/// (an OFFSET_OUT_OF_RANGE answer).
fn move_log_end(
    followed: &Followed,
    before: FollowerLog,
    fetched: FetchedPartition,
    outcome: Result<
        Result<i64, crate::storage::StorageError>,
        tokio::sync::oneshot::error::RecvError,
    >,
) -> bool {
    let partition = &followed.partition;
    match outcome {
        Ok(Ok(end)) => {
            tracing::info!(
                topic = %partition.topic, partition = partition.index,
                from = before.log_end_offset, to = end,
                leader_log_start_offset = fetched.log_start_offset,
                "moved this replica's log end to where the leader's log has data"
            );
            partition.replication.truncated(followed.leader_epoch, end);
            true
        }
        Ok(Err(error)) => {
            tracing::error!(topic = %partition.topic, partition = partition.index, %error, "could not move the log end; partition offline");
            false
        }
        Err(_) => false,
    }
}

/// The fetch for every followed partition, at the negotiated `version`:
/// from v13 topics go by id, from v15 the replica states its broker epoch
/// (KIP-903) so the leader can name it in ISR changes.
fn fetch_request(
    local: BrokerId,
    broker_epoch: i64,
    followed: &[Followed],
    version: i16,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for f in followed {
        let partition = FetchPartition::default()
            .with_partition(f.partition.index)
            .with_current_leader_epoch(f.leader_epoch)
            .with_fetch_offset(f.partition.log_end_offset())
            .with_last_fetched_epoch(f.partition.latest_epoch())
            .with_log_start_offset(f.partition.log_start_offset())
            .with_partition_max_bytes(PARTITION_MAX_BYTES);
        match topics
            .iter_mut()
            .find(|t| t.topic.0.as_str() == f.partition.topic)
        {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(f.partition.topic.clone())))
                    .with_topic_id(f.topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_max_wait_ms(FETCH_WAIT_MAX_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    if version >= 15 {
        request.with_replica_state(
            ReplicaState::default()
                .with_replica_id(WireBrokerId(local))
                .with_replica_epoch(broker_epoch),
        )
    } else {
        request.with_replica_id(WireBrokerId(local))
    }
}
