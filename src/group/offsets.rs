//! Committed offsets, kept where Kafka keeps them: as records in the group's
//! partition of `__consumer_offsets`, a compacted topic replicated like any
//! other, with the offsets of the partitions this broker leads held in
//! memory for OffsetFetch.
//!
//! A commit is one batch appended through the normal append path with
//! `acks=all` ([`OffsetsLog::append`]); it is answered, and becomes visible
//! to OffsetFetch, only once the partition's high watermark has passed it,
//! or fails after `offsets.commit.timeout.ms` (REQUEST_TIMED_OUT), with the
//! append's error mapped as Kafka's `GroupMetadataManager` maps it. A
//! failed write changes nothing in memory.
//!
//! Each offsets partition is served only once loaded ([`OffsetStore::begin_load`]
//! … [`OffsetStore::finish_load`]): until then its groups get
//! COORDINATOR_LOAD_IN_PROGRESS, and after [`OffsetStore::unload`] (another
//! broker leads it) NOT_COORDINATOR. A write that started under one load
//! and ends after the partition was unloaded (or loaded again) is not
//! applied: the next load reads it from the log.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::log::{GroupOffsets, OffsetsLog, apply_commits, encode_batch, now_ms};
use super::ownership::offsets_partition;
use super::records::{CommittedOffset, GroupMetadata, GroupRecord};

/// Whether this broker serves a group's offsets now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Loaded,
    Loading,
    NotOwned,
}

/// One offsets partition this broker leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub leader_epoch: i32,
    /// Tells this load from an earlier or later one of the same partition.
    pub token: u64,
    pub loaded: bool,
}

#[derive(Default)]
struct State {
    /// Partitions of the offsets topic, which places groups.
    partition_count: i32,
    partitions: HashMap<i32, Load>,
    groups: HashMap<String, GroupOffsets>,
    next_token: u64,
}

/// The committed offsets of the groups this broker coordinates.
pub struct OffsetStore {
    log: Arc<dyn OffsetsLog>,
    commit_timeout: Duration,
    state: RwLock<State>,
    /// Bumped whenever a partition finishes loading.
    loads_done: tokio::sync::watch::Sender<u64>,
}

impl OffsetStore {
    pub fn new(log: Arc<dyn OffsetsLog>, commit_timeout: Duration) -> Self {
        OffsetStore {
            log,
            commit_timeout,
            state: RwLock::new(State::default()),
            loads_done: tokio::sync::watch::Sender::new(0),
        }
    }

    pub fn log(&self) -> &Arc<dyn OffsetsLog> {
        &self.log
    }

    /// The offsets topic has `count` partitions.
    pub fn set_partition_count(&self, count: i32) {
        self.write().partition_count = count;
    }

    /// The offsets partition of `group`.
    pub fn partition_of(&self, group: &str) -> i32 {
        offsets_partition(group, self.read().partition_count)
    }

    pub fn ownership(&self, group: &str) -> Ownership {
        let state = self.read();
        let partition = offsets_partition(group, state.partition_count);
        match state.partitions.get(&partition) {
            Some(load) if load.loaded => Ownership::Loaded,
            Some(_) => Ownership::Loading,
            None => Ownership::NotOwned,
        }
    }

    /// Whether any partition is still loading (ListGroups waits for all).
    pub fn any_loading(&self) -> bool {
        self.read().partitions.values().any(|load| !load.loaded)
    }

    /// Every partition this broker leads or is loading.
    pub fn loads(&self) -> HashMap<i32, Load> {
        self.read().partitions.clone()
    }

    /// Whether `token` is still the load of `partition`.
    pub fn is_current(&self, partition: i32, token: u64) -> bool {
        self.read()
            .partitions
            .get(&partition)
            .is_some_and(|load| load.token == token)
    }

    /// `partition` is led here at `leader_epoch`: its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS until [`finish_load`](Self::finish_load).
    /// Whatever was held of it is dropped. Returns the load's token.
    pub fn begin_load(&self, partition: i32, leader_epoch: i32) -> u64 {
        let mut state = self.write();
        drop_partition(&mut state, partition);
        state.next_token += 1;
        let token = state.next_token;
        state.partitions.insert(
            partition,
            Load {
                leader_epoch,
                token,
                loaded: false,
            },
        );
        token
    }

    /// The load `token` read `offsets`; false (and nothing kept) if the
    /// partition was unloaded or loaded again meanwhile.
    pub fn finish_load(
        &self,
        partition: i32,
        token: u64,
        offsets: HashMap<String, GroupOffsets>,
    ) -> bool {
        let mut state = self.write();
        match state.partitions.get_mut(&partition) {
            Some(load) if load.token == token => load.loaded = true,
            _ => return false,
        }
        state.groups.extend(offsets);
        drop(state);
        self.loads_done.send_modify(|done| *done += 1);
        true
    }

    /// Waits (at most `timeout`) until `group`'s partition is loaded here
    /// (the caller knows this broker leads it: its load may not even have
    /// begun); whether it is loaded.
    pub async fn until_loaded(&self, group: &str, timeout: Duration) -> bool {
        let mut done = self.loads_done.subscribe();
        let wait = done.wait_for(|_| self.ownership(group) == Ownership::Loaded);
        let _ = tokio::time::timeout(timeout, wait).await;
        self.ownership(group) == Ownership::Loaded
    }

    /// This broker no longer leads `partition`: its groups' offsets go.
    pub fn unload(&self, partition: i32) {
        let mut state = self.write();
        drop_partition(&mut state, partition);
        state.partitions.remove(&partition);
    }

    /// The committed offset of one partition.
    pub fn offset(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.read()
            .groups
            .get(group)?
            .get(&(topic.to_string(), partition))?
            .value
            .clone()
    }

    /// Every committed offset of `group`, sorted by topic and partition.
    pub fn group_offsets(&self, group: &str) -> Vec<(String, i32, CommittedOffset)> {
        let mut all: Vec<_> = self
            .read()
            .groups
            .get(group)
            .map(|offsets| {
                offsets
                    .iter()
                    .filter_map(|((t, p), slot)| Some((t.clone(), *p, slot.value.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }

    /// The groups with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        self.read()
            .groups
            .iter()
            .filter(|(_, offsets)| offsets.values().any(|slot| slot.value.is_some()))
            .map(|(group, _)| group.clone())
            .collect()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.read()
            .groups
            .get(group)
            .is_some_and(|offsets| offsets.values().any(|slot| slot.value.is_some()))
    }

    /// OffsetCommit: stores `offsets` of `group` and answers once the
    /// offsets partition's in-sync replicas have them. Errors are Kafka's
    /// answers to a commit ([`commit_error`]).
    pub async fn commit(
        &self,
        group: &str,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        let records = offsets
            .into_iter()
            .map(|(topic, partition, value)| GroupRecord::OffsetCommit {
                group: group.to_string(),
                topic,
                partition,
                value: Some(value),
            })
            .collect();
        self.write_records(self.partition_of(group), records)
            .await
            .map_err(commit_error)
    }

    /// Writes a group's metadata (a settled generation). Errors are Kafka's
    /// answers to a failed group store ([`group_store_error`]).
    pub async fn store_group(
        &self,
        group: &str,
        metadata: GroupMetadata,
    ) -> Result<(), ResponseError> {
        let record = GroupRecord::GroupMetadata {
            group: group.to_string(),
            value: Some(metadata),
        };
        self.write_records(self.partition_of(group), vec![record])
            .await
            .map_err(group_store_error)
    }

    /// DeleteGroups, or a dead group's end: tombstones for the group's
    /// metadata and every offset it has.
    pub async fn delete_group(&self, group: &str) -> Result<(), ResponseError> {
        let mut records: Vec<GroupRecord> = self
            .group_offsets(group)
            .into_iter()
            .map(|(topic, partition, _)| GroupRecord::OffsetCommit {
                group: group.to_string(),
                topic,
                partition,
                value: None,
            })
            .collect();
        records.push(GroupRecord::GroupMetadata {
            group: group.to_string(),
            value: None,
        });
        self.write_records(self.partition_of(group), records)
            .await
            .map_err(commit_error)
    }

    /// Deletes the offsets of groups not in `active` whose commit is older
    /// than `retention` (Kafka 2.1+: offsets of a group with members never
    /// expire), with a tombstone each in their partition.
    pub async fn expire(
        &self,
        now_ms: i64,
        retention: Duration,
        active: &HashSet<String>,
    ) -> Result<usize, ResponseError> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut by_partition: HashMap<i32, Vec<GroupRecord>> = HashMap::new();
        {
            let state = self.read();
            for (group, offsets) in &state.groups {
                if active.contains(group) {
                    continue;
                }
                for ((topic, partition), slot) in offsets {
                    let Some(value) = &slot.value else { continue };
                    if now_ms.saturating_sub(value.commit_timestamp) > retention_ms {
                        by_partition
                            .entry(offsets_partition(group, state.partition_count))
                            .or_default()
                            .push(GroupRecord::OffsetCommit {
                                group: group.clone(),
                                topic: topic.clone(),
                                partition: *partition,
                                value: None,
                            });
                    }
                }
            }
        }
        let mut expired = 0;
        for (partition, records) in by_partition {
            let count = records.len();
            self.write_records(partition, records).await?;
            expired += count;
        }
        Ok(expired)
    }

    /// Appends `records` to `partition` (loaded here) and, once committed,
    /// applies them. Errors are the append path's, unmapped.
    async fn write_records(
        &self,
        partition: i32,
        records: Vec<GroupRecord>,
    ) -> Result<(), ResponseError> {
        let token = match self.read().partitions.get(&partition) {
            Some(load) if load.loaded => load.token,
            Some(_) => return Err(ResponseError::CoordinatorLoadInProgress),
            None => return Err(ResponseError::NotLeaderOrFollower),
        };
        let batch = encode_batch(&records, now_ms());
        let base_offset = self
            .log
            .append(partition, batch, self.commit_timeout)
            .await?;
        let mut state = self.write();
        if state.partitions.get(&partition).map(|load| load.token) != Some(token) {
            return Ok(());
        }
        apply_commits(&mut state.groups, records, base_offset);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn drop_partition(state: &mut State, partition: i32) {
    let count = state.partition_count;
    state
        .groups
        .retain(|group, _| offsets_partition(group, count) != partition);
}

/// A failed commit's answer, as Kafka's `GroupMetadataManager.storeOffsets`
/// maps the append's error: the partition missing or short of in-sync
/// replicas is COORDINATOR_NOT_AVAILABLE, a lost leadership or a storage
/// error NOT_COORDINATOR, a batch too large INVALID_COMMIT_OFFSET_SIZE;
/// anything else (REQUEST_TIMED_OUT after `offsets.commit.timeout.ms`)
/// as it is.
pub fn commit_error(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::InvalidCommitOffsetSize,
        other => other,
    }
}

/// A failed group-metadata store's answer (to the SyncGroup waiting for
/// it), as Kafka's `GroupMetadataManager.storeGroup` maps it: as a commit,
/// except that a timeout is REBALANCE_IN_PROGRESS (the members rejoin) and
/// a record too large UNKNOWN_SERVER_ERROR.
pub fn group_store_error(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::RequestTimedOut => ResponseError::RebalanceInProgress,
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::UnknownServerError,
        other => commit_error(other),
    }
}

#[cfg(test)]
mod tests;
