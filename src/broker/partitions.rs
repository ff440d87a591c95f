//! The partitions this broker hosts, kept in step with the cluster metadata
//! image: a partition appears when its topic is created with this broker
//! among its replicas, and its files go when the topic is deleted. Which
//! of them this broker may serve is the image's leader, see
//! [`Partitions::led`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::partition::{Partition, WritePolicy};
use crate::cluster::MetadataImage;
use crate::cluster::stall::StallGuard;
use crate::config::{LogDefaults, resolve_stored_topic_log};
use crate::storage::LogConfig;

/// A topic partition: Kafka's `TopicPartition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

struct Hosted {
    topic_id: Uuid,
    partition: Arc<Partition>,
}

/// Memory all partitions' caches of recent batches may hold together: the
/// heap stays bounded however many partitions there are, and the page
/// cache serves what the caches do not.
const CACHE_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// The most one partition's cache holds.
const CACHE_MAX_PER_PARTITION: usize = 8 * 1024 * 1024;

pub struct Partitions {
    /// This broker: only partitions it is a replica of are opened here.
    broker_id: i32,
    data_dir: PathBuf,
    defaults: LogDefaults,
    hosted: RwLock<HashMap<TopicPartition, Hosted>>,
    /// The index of the last metadata image reconciled; held for the whole
    /// of a reconcile, so reconciles run one at a time.
    applied: Mutex<Option<u64>>,
    /// Back from a stall, this broker leads nothing until its metadata
    /// has caught up (none: in process, with the coordinator).
    stall_guard: Option<Arc<StallGuard>>,
}

impl Partitions {
    pub fn new(broker_id: i32, data_dir: &Path, defaults: LogDefaults) -> Self {
        Partitions {
            broker_id,
            data_dir: data_dir.to_path_buf(),
            defaults,
            hosted: RwLock::new(HashMap::new()),
            applied: Mutex::new(None),
            stall_guard: None,
        }
    }

    /// Leads only while `guard` allows (see [`StallGuard`]).
    pub fn guarded_by(mut self, guard: Option<Arc<StallGuard>>) -> Self {
        self.stall_guard = guard;
        self
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let key = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        self.read().get(&key).map(|hosted| hosted.partition.clone())
    }

    /// The partition, if `image` names this broker its leader: a client
    /// may write and read only there. UNKNOWN_TOPIC_OR_PARTITION when the
    /// image has no such partition; NOT_LEADER_OR_FOLLOWER (so the client
    /// refreshes its metadata) when another broker leads it, none does
    /// (leader -1), or this broker has not opened it yet.
    pub fn led(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        let Some(state) = image.partition(topic, partition) else {
            return Err(ResponseError::UnknownTopicOrPartition);
        };
        if state.leader != self.broker_id {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        if let Some(guard) = &self.stall_guard
            && !guard.may_lead(Instant::now(), image.last_applied)
        {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        self.get(topic, partition)
            .ok_or(ResponseError::NotLeaderOrFollower)
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.read().values().map(|h| h.partition.clone()).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Hosted>> {
        self.hosted.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Hosted>> {
        self.hosted.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves a topic's log settings from broker defaults and its configs.
    fn log_settings(
        &self,
        configs: &std::collections::BTreeMap<String, String>,
        cache_bytes: usize,
    ) -> (LogConfig, WritePolicy) {
        // Entries an older version accepted keep their defaults; the
        // coordinator warns about them once when it loads.
        let (resolved, _skipped) = resolve_stored_topic_log(&self.defaults, configs);
        let config = LogConfig {
            segment_bytes: resolved.segment_bytes,
            segment_roll: resolved.segment_roll,
            retention: resolved.retention,
            retention_bytes: resolved.retention_bytes,
            flush_interval_messages: resolved.flush_interval_messages,
            flush_interval: resolved.flush_interval,
            index_interval_bytes: resolved.index_interval_bytes,
            cache_bytes,
            delete: resolved.deletes(),
            compact: resolved.compacts(),
            delete_retention: resolved.delete_retention,
            min_cleanable_dirty_ratio: resolved.min_cleanable_dirty_ratio,
            min_compaction_lag: resolved.min_compaction_lag,
            max_compaction_lag: resolved.max_compaction_lag,
        };
        let policy = WritePolicy {
            log_append_time: resolved.message_timestamp_type
                == crate::config::TimestampType::LogAppendTime,
        };
        (config, policy)
    }

    /// Opens partitions new in `image`, applies config changes, and deletes
    /// partitions whose topic is gone (or was re-created with a new id).
    ///
    /// Images are applied strictly in order: one older than the last one
    /// applied is ignored, so a stale image can never delete a topic a
    /// newer one created. The partitions map is locked only to read the
    /// plan and to insert or remove entries; recovery on open and file
    /// deletion run without it, so requests to other partitions go on.
    /// Blocking: call [`reconcile_off_workers`](Self::reconcile_off_workers)
    /// from async code.
    fn reconcile(&self, image: &MetadataImage) {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if applied.is_some_and(|last| image.last_applied < last) {
            tracing::debug!(
                image = image.last_applied,
                applied = ?*applied,
                "ignored a metadata image older than the one applied"
            );
            return;
        }
        let mut wanted = HashMap::new();
        for topic in image.topics() {
            for (index, state) in topic.partitions.iter().enumerate() {
                if !state.replicas.contains(&self.broker_id) {
                    continue;
                }
                let key = TopicPartition {
                    topic: topic.name.clone(),
                    partition: index as i32,
                };
                wanted.insert(key, (topic.id, &topic.configs));
            }
        }
        let stale: Vec<Hosted> = {
            let mut hosted = self.write();
            let keys: Vec<TopicPartition> = hosted
                .iter()
                .filter(|(key, h)| wanted.get(*key).map(|(id, _)| *id) != Some(h.topic_id))
                .map(|(key, _)| key.clone())
                .collect();
            keys.iter().filter_map(|key| hosted.remove(key)).collect()
        };
        for gone in stale {
            let (topic, index) = (gone.partition.topic.clone(), gone.partition.index);
            let dir = gone.partition.dir.clone();
            match gone.partition.delete() {
                Ok(()) => tracing::info!(%topic, partition = index, "deleted partition"),
                Err(error) => {
                    tracing::error!(%error, dir = %dir.display(), "could not delete partition files")
                }
            }
        }
        let cache_bytes = (CACHE_BUDGET_BYTES / wanted.len().max(1)).min(CACHE_MAX_PER_PARTITION);
        for (key, (topic_id, configs)) in wanted {
            let (config, policy) = self.log_settings(configs, cache_bytes);
            let existing = self.read().get(&key).map(|h| h.partition.clone());
            if let Some(existing) = existing {
                existing.set_config(config);
                continue;
            }
            let dir = self
                .data_dir
                .join(format!("{}-{}", key.topic, key.partition));
            match Partition::open(&key.topic, key.partition, dir, config, policy) {
                Ok(partition) => {
                    self.write().insert(
                        key,
                        Hosted {
                            topic_id,
                            partition,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(%error, topic = %key.topic, partition = key.partition, "could not open partition");
                }
            }
        }
        *applied = Some(image.last_applied);
    }

    /// Opens the partitions `image` has this broker lead that it has not
    /// opened yet. The image a request reads can be newer than the last
    /// reconcile, and a client told that this broker leads a partition
    /// writes there next: answered NOT_LEADER_OR_FOLLOWER, an acks=0
    /// producer would have its connection closed and its records dropped.
    pub async fn open_led(self: &Arc<Self>, image: &Arc<MetadataImage>) {
        let missing = {
            let hosted = self.read();
            image.topics().any(|topic| {
                topic.partitions.iter().enumerate().any(|(index, state)| {
                    state.leader == self.broker_id
                        && !hosted.contains_key(&TopicPartition {
                            topic: topic.name.clone(),
                            partition: index as i32,
                        })
                })
            })
        };
        if missing {
            self.reconcile_off_workers(image.clone()).await;
        }
    }

    /// [`reconcile`](Self::reconcile) on the blocking pool.
    pub async fn reconcile_off_workers(self: &Arc<Self>, image: Arc<MetadataImage>) {
        let partitions = self.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || partitions.reconcile(&image)).await
        {
            tracing::error!(%error, "reconciling partitions with the metadata failed");
        }
    }

    /// Flush by time on every partition, and enforce retention when due.
    pub fn tick(&self, now_ms: i64, retention_due: bool) {
        for partition in self.all() {
            match partition.tick(now_ms, retention_due) {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(
                    topic = %partition.topic,
                    partition = partition.index,
                    deleted,
                    log_start_offset = partition.log_start_offset(),
                    "retention deleted segments"
                ),
                Err(error) => {
                    tracing::error!(%error, topic = %partition.topic, "housekeeping failed")
                }
            }
        }
    }

    /// Stops every partition's writer, then flushes every log and writes
    /// its clean-shutdown marker.
    /// Returns whether every partition closed cleanly.
    pub async fn close_all(&self) -> bool {
        let drained: Vec<Hosted> = self.write().drain().map(|(_, h)| h).collect();
        let mut clean = true;
        for hosted in drained {
            let topic = hosted.partition.topic.clone();
            if let Err(error) = hosted.partition.close().await {
                tracing::error!(%error, %topic, "could not close partition cleanly");
                clean = false;
            }
        }
        clean
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::cluster::metadata::Command;

    /// An empty data directory and the partitions `broker_id` hosts there.
    fn hosting(broker_id: i32) -> (tempfile::TempDir, Arc<Partitions>) {
        let dir = tempfile::tempdir().unwrap();
        let defaults = crate::config::RawConfig::new()
            .validate_with(&|| "h".to_string())
            .unwrap()
            .log;
        let partitions = Arc::new(Partitions::new(broker_id, dir.path(), defaults));
        (dir, partitions)
    }

    fn create(image: &mut MetadataImage, index: u64, name: &str) {
        let cmd = Command::CreateTopic {
            name: name.into(),
            topic_id: Uuid::from_u128(index as u128),
            configs: BTreeMap::new(),
            assignments: vec![vec![0]],
        };
        image.apply(index, &cmd).expect("created");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn only_partitions_this_broker_is_a_replica_of_are_opened() {
        let (dir, partitions) = hosting(7);
        let mut image = crate::properties::image_with_live_broker();
        create(&mut image, 3, "elsewhere");
        partitions
            .reconcile_off_workers(Arc::new(image.clone()))
            .await;
        assert!(partitions.get("elsewhere", 0).is_none());
        assert!(!dir.path().join("elsewhere-0").exists());
        assert_eq!(
            partitions.led(&image, "elsewhere", 0).err(),
            Some(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(
            partitions.led(&image, "missing", 0).err(),
            Some(ResponseError::UnknownTopicOrPartition)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_led_partition_newer_than_the_last_reconcile_is_opened_on_demand() {
        let (_dir, partitions) = hosting(0);
        let older = crate::properties::image_with_live_broker();
        partitions
            .reconcile_off_workers(Arc::new(older.clone()))
            .await;
        let mut newer = older;
        create(&mut newer, 3, "fresh");
        let newer = Arc::new(newer);
        assert_eq!(
            partitions.led(&newer, "fresh", 0).err(),
            Some(ResponseError::NotLeaderOrFollower)
        );
        partitions.open_led(&newer).await;
        assert!(partitions.led(&newer, "fresh", 0).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_older_image_never_undoes_a_newer_one() {
        let (dir, partitions) = hosting(0);
        let older = crate::properties::image_with_live_broker();
        let mut newer = older.clone();
        create(&mut newer, 3, "fresh");

        partitions.reconcile_off_workers(Arc::new(newer)).await;
        assert!(partitions.get("fresh", 0).is_some());
        // A reconcile that read the image before the topic was created
        // arrives late: it must not delete the topic.
        partitions.reconcile_off_workers(Arc::new(older)).await;
        assert!(partitions.get("fresh", 0).is_some());
        assert!(dir.path().join("fresh-0").exists());
    }
}
