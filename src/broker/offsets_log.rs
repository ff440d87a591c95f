//! `__consumer_offsets` for the group coordinator: its writes go through the
//! same append path as a produce with `acks=all` (the partition's writer,
//! then the wait for the high watermark), so replication carries them, and
//! its loads read the hosted log.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::Partitions;
use super::acks::await_high_watermark;
use crate::cluster::{BoxFuture, ClusterCoordinator};
use crate::config::{LogDefaults, ProduceLimits, ProduceRefusal};
use crate::group::OffsetsLog;
use crate::group::ownership::OFFSETS_TOPIC;
use crate::records::split_batches;

pub struct PartitionsOffsetsLog {
    broker_id: i32,
    partitions: Arc<Partitions>,
    coordinator: Arc<dyn ClusterCoordinator>,
    defaults: LogDefaults,
    max_decompressed: usize,
}

impl PartitionsOffsetsLog {
    pub fn new(
        broker_id: i32,
        partitions: Arc<Partitions>,
        coordinator: Arc<dyn ClusterCoordinator>,
        defaults: LogDefaults,
        max_decompressed: usize,
    ) -> Self {
        PartitionsOffsetsLog {
            broker_id,
            partitions,
            coordinator,
            defaults,
            max_decompressed,
        }
    }
}

impl OffsetsLog for PartitionsOffsetsLog {
    fn append(
        &self,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<i64, ResponseError>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let image = self.coordinator.image();
        let queued = (|| {
            let hosted = self.partitions.led(&image, OFFSETS_TOPIC, partition)?;
            let configs = image
                .topic(OFFSETS_TOPIC)
                .map(|t| t.configs.clone())
                .unwrap_or_default();
            let limits = ProduceLimits::of_topic(&self.defaults, &configs);
            // As a produce with acks=all: refused below min.insync.replicas.
            let in_sync = image
                .partition(OFFSETS_TOPIC, partition)
                .map_or(1, |p| p.isr.len());
            limits
                .check(batch.len(), -1, in_sync)
                .map_err(|refusal| match refusal {
                    ProduceRefusal::TooLarge { .. } => ResponseError::MessageTooLarge,
                    ProduceRefusal::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
                })?;
            let batches = split_batches(&batch).map_err(|_| ResponseError::CorruptMessage)?;
            let min_insync = usize::try_from(limits.min_insync_replicas).unwrap_or(1);
            // Stamped with the epoch this broker leads under, as a produce.
            let leader_epoch = image
                .partition(OFFSETS_TOPIC, partition)
                .map_or(-1, |state| state.leader_epoch);
            let done = hosted.append(batches, None, leader_epoch);
            Ok((hosted.clone(), done, min_insync))
        })();
        Box::pin(async move {
            let (hosted, done, min_insync) = queued?;
            let appended = done
                .await
                .map_err(|_| ResponseError::NotLeaderOrFollower)??;
            await_high_watermark(&hosted, appended.end_offset, min_insync, deadline).await?;
            Ok(appended.base_offset)
        })
    }

    fn ready(&self, partition: i32, leader_epoch: i32) -> bool {
        let image = self.coordinator.image();
        let Some(state) = image.partition(OFFSETS_TOPIC, partition) else {
            return false;
        };
        if state.leader != self.broker_id || state.leader_epoch != leader_epoch {
            return false;
        }
        let Some(hosted) = self.partitions.get(OFFSETS_TOPIC, partition) else {
            return false;
        };
        // With followers, the replica manager must have taken up the
        // leadership first, or an append would count as committed at once.
        state.replicas.len() <= 1 || hosted.replication.leader_epoch() == Some(leader_epoch)
    }

    fn bounds(&self, partition: i32) -> Option<(i64, i64)> {
        let hosted = self.partitions.get(OFFSETS_TOPIC, partition)?;
        Some((hosted.log_start_offset(), hosted.log_end_offset()))
    }

    fn read(&self, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Bytes>, String> {
        let hosted = self
            .partitions
            .get(OFFSETS_TOPIC, partition)
            .ok_or_else(|| format!("{OFFSETS_TOPIC}-{partition} is not hosted here"))?;
        hosted
            .read(offset, max_bytes)
            .map_err(|error| error.to_string())
    }

    fn max_decompressed(&self) -> usize {
        self.max_decompressed
    }
}
