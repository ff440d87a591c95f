//! The task's side of `__consumer_offsets` leadership: loading the
//! partitions an image makes this broker lead, unloading the others, and
//! the outcomes of loads and group stores.

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::error::ResponseError;

use super::Task;
use crate::group::loader::{self, LoadOutcome};
use crate::group::offsets::Load;
use crate::group::ownership::{OFFSETS_TOPIC, offsets_partition};
use crate::group::state::{Event, Group};

impl Task {
    /// Loads the offsets partitions the image makes this broker lead (at
    /// their current leader epoch) and unloads the others.
    pub(super) fn sync_partitions(&mut self) {
        let Some(image) = self.image.clone() else {
            return;
        };
        let wanted: HashMap<i32, i32> = match image.topic(OFFSETS_TOPIC) {
            Some(topic) => {
                let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
                self.offsets.set_partition_count(count);
                topic
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, state)| state.leader == self.broker_id)
                    .map(|(index, state)| (index as i32, state.leader_epoch))
                    .collect()
            }
            None => HashMap::new(),
        };
        for (partition, load) in self.offsets.loads() {
            if wanted.get(&partition) != Some(&load.leader_epoch) {
                self.unload(partition);
            }
        }
        let loads = self.offsets.loads();
        for (partition, leader_epoch) in wanted {
            if loads.contains_key(&partition) {
                continue;
            }
            let token = self.offsets.begin_load(partition, leader_epoch);
            let load = Load {
                leader_epoch,
                token,
                loaded: false,
            };
            tracing::info!(
                partition,
                leader_epoch,
                "loading the groups of an offsets partition"
            );
            self.loads.spawn(loader::load(
                self.offsets.clone(),
                partition,
                load,
                self.legacy.clone(),
            ));
        }
    }

    /// This broker no longer leads `partition`: its groups go, and whoever
    /// waits on them is told NOT_COORDINATOR.
    fn unload(&mut self, partition: i32) {
        self.offsets.unload(partition);
        let count = self.partition_count();
        let leaving: Vec<String> = self
            .groups
            .keys()
            .filter(|group| offsets_partition(group, count) == partition)
            .cloned()
            .collect();
        for group in &leaving {
            if let Some(mut evicted) = self.groups.remove(group) {
                let effects = evicted.evict();
                self.deliver(group, effects);
            }
        }
        tracing::info!(
            partition,
            groups = leaving.len(),
            "unloaded the groups of an offsets partition"
        );
    }

    fn partition_count(&self) -> i32 {
        self.image
            .as_ref()
            .and_then(|image| image.topic(OFFSETS_TOPIC))
            .map_or(0, |topic| {
                i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX)
            })
    }

    /// A load ended: its offsets are served and its groups restored, unless
    /// the partition was unloaded (or loaded again) meanwhile. A failed
    /// load is dropped; the retry tick starts it again.
    pub(super) fn loaded(&mut self, outcome: LoadOutcome) {
        let LoadOutcome {
            partition,
            token,
            result,
        } = outcome;
        match result {
            Ok(loaded) => {
                let (offsets, groups) = (loaded.offsets.len(), loaded.groups.len());
                if !self.offsets.finish_load(partition, token, loaded.offsets) {
                    return;
                }
                let now = Instant::now();
                for (group, metadata) in loaded.groups {
                    let restored = Group::restore(&group, &metadata, self.limits, now);
                    self.groups.insert(group, restored);
                }
                if groups + offsets + loaded.skipped > 0 {
                    tracing::info!(
                        partition,
                        groups = groups,
                        groups_with_offsets = offsets,
                        skipped_records = loaded.skipped,
                        "loaded the groups of an offsets partition"
                    );
                }
            }
            Err(error) => {
                if self.offsets.is_current(partition, token) {
                    tracing::warn!(partition, %error, "could not load an offsets partition; trying again");
                    self.offsets.unload(partition);
                }
            }
        }
    }

    /// A group's metadata write ended: the group learns how.
    pub(super) fn stored(&mut self, group: &str, generation_id: i32, error: Option<ResponseError>) {
        if let Some(error) = error {
            tracing::info!(%group, generation_id, code = error.code(), "could not store the group's metadata");
        }
        let Some(existing) = self.groups.get_mut(group) else {
            return;
        };
        let effects = existing.on_event(
            Event::Stored {
                generation_id,
                error,
            },
            Instant::now(),
        );
        self.deliver(group, effects);
    }
}
