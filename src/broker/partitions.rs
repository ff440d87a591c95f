//! The partitions this broker hosts, kept in step with the cluster metadata
//! image: a partition appears when its topic is created and its files go
//! when the topic is deleted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use super::partition::{Partition, WritePolicy};
use crate::cluster::MetadataImage;
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
    data_dir: PathBuf,
    defaults: LogDefaults,
    hosted: RwLock<HashMap<TopicPartition, Hosted>>,
}

impl Partitions {
    pub fn new(data_dir: &Path, defaults: LogDefaults) -> Self {
        Partitions {
            data_dir: data_dir.to_path_buf(),
            defaults,
            hosted: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let key = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        self.read().get(&key).map(|hosted| hosted.partition.clone())
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
        };
        let policy = WritePolicy {
            log_append_time: resolved.message_timestamp_type
                == crate::config::TimestampType::LogAppendTime,
        };
        (config, policy)
    }

    /// Opens partitions new in `image`, applies config changes, and deletes
    /// partitions whose topic is gone (or was re-created with a new id).
    pub fn reconcile(&self, image: &MetadataImage) {
        let mut hosted = self.write();
        let mut wanted = HashMap::new();
        for topic in image.topics() {
            for (index, _) in topic.partitions.iter().enumerate() {
                let key = TopicPartition {
                    topic: topic.name.clone(),
                    partition: index as i32,
                };
                wanted.insert(key, (topic.id, &topic.configs));
            }
        }
        let stale: Vec<TopicPartition> = hosted
            .iter()
            .filter(|(key, h)| wanted.get(*key).map(|(id, _)| *id) != Some(h.topic_id))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(gone) = hosted.remove(&key) {
                let dir = gone.partition.dir.clone();
                if let Err(error) = gone.partition.delete() {
                    tracing::error!(%error, dir = %dir.display(), "could not delete partition files");
                } else {
                    tracing::info!(topic = %key.topic, partition = key.partition, "deleted partition");
                }
            }
        }
        let cache_bytes = (CACHE_BUDGET_BYTES / wanted.len().max(1)).min(CACHE_MAX_PER_PARTITION);
        for (key, (topic_id, configs)) in wanted {
            let (config, policy) = self.log_settings(configs, cache_bytes);
            if let Some(existing) = hosted.get(&key) {
                existing.partition.set_config(config);
                continue;
            }
            let dir = self
                .data_dir
                .join(format!("{}-{}", key.topic, key.partition));
            match Partition::open(&key.topic, key.partition, dir, config, policy) {
                Ok(partition) => {
                    hosted.insert(
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

    /// Flushes every log and writes its clean-shutdown marker.
    pub fn close_all(&self) {
        let drained: Vec<Hosted> = self.write().drain().map(|(_, h)| h).collect();
        for hosted in drained {
            let topic = hosted.partition.topic.clone();
            if let Err(error) = hosted.partition.close() {
                tracing::error!(%error, %topic, "could not close partition cleanly");
            }
        }
    }
}
