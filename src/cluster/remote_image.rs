//! A broker's own copy of the cluster metadata, kept by pulling the
//! coordinator's command log (see `http::client`) and applying it.
//!
//! This is the deterministic half: given the coordinator's answers, decide
//! what the image becomes. Applying the same entries the coordinator
//! applied yields the same image, because [`MetadataImage::apply`] is pure.

use std::sync::Arc;

use super::LogEntry;
use super::http::wire::{LogBatch, MetadataLogResponse};
use super::metadata::MetadataImage;

/// Why a pulled batch was not applied. After any of these the next pull
/// asks for a snapshot, which always resynchronises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error("metadata log gap: expected index {expected}, the coordinator sent {received}")]
    Gap { expected: u64, received: u64 },
    #[error("metadata log entry {index} does not apply to the local image: {reason}")]
    Diverged { index: u64, reason: String },
    #[error("the coordinator serves cluster {theirs}, the local image is of cluster {ours}")]
    ClusterChanged { ours: String, theirs: String },
}

/// The local image and where pulling continues.
#[derive(Debug)]
pub struct RemoteImage {
    image: Arc<MetadataImage>,
    /// Cleared until a snapshot has been applied: a fresh broker, or one
    /// whose image can no longer be trusted to continue the log.
    synced: bool,
}

impl Default for RemoteImage {
    fn default() -> Self {
        Self::new()
    }
}

impl RemoteImage {
    /// An empty image that has never been synchronised.
    pub fn new() -> Self {
        Self {
            image: Arc::new(MetadataImage::default()),
            synced: false,
        }
    }

    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.image
    }

    /// The `from` of the next pull: the index after the last applied one,
    /// or 0 (which no entry has, so the coordinator answers with a
    /// snapshot) when not synchronised.
    pub fn next_from(&self) -> u64 {
        if self.synced {
            self.image.last_applied + 1
        } else {
            0
        }
    }

    /// Applies one answer of the coordinator. Returns whether the image
    /// changed; the caller then publishes [`Self::image`].
    ///
    /// A batch is applied whole or not at all. On `Err` the image is kept
    /// (brokers go on serving it) and the next pull asks for a snapshot.
    /// Whether `response` is a snapshot of this very cluster older than the
    /// image: a quorum member that lags behind the one pulled from before.
    /// Applying it would move the image back; the caller asks again.
    pub fn is_behind(&self, response: &MetadataLogResponse) -> bool {
        match &response.batch {
            LogBatch::Snapshot(snapshot) => {
                self.synced
                    && snapshot.cluster_id == self.image.cluster_id
                    && snapshot.last_applied < self.image.last_applied
            }
            LogBatch::Entries(_) => false,
        }
    }

    pub fn apply(&mut self, response: MetadataLogResponse) -> Result<bool, PullError> {
        let result = self.apply_batch(response);
        if result.is_err() {
            self.synced = false;
        }
        result
    }

    fn apply_batch(&mut self, response: MetadataLogResponse) -> Result<bool, PullError> {
        match response.batch {
            LogBatch::Snapshot(snapshot) => {
                self.synced = true;
                if *snapshot == *self.image {
                    return Ok(false);
                }
                self.image = Arc::from(snapshot);
                Ok(true)
            }
            LogBatch::Entries(entries) => {
                if !self.synced {
                    // Entries without a base image would build a partial one.
                    return Err(PullError::Gap {
                        expected: 0,
                        received: entries.first().map_or(0, |e| e.index),
                    });
                }
                if response.cluster_id != self.image.cluster_id {
                    return Err(PullError::ClusterChanged {
                        ours: self.image.cluster_id.clone(),
                        theirs: response.cluster_id,
                    });
                }
                self.apply_entries(&entries)
            }
        }
    }

    fn apply_entries(&mut self, entries: &[LogEntry]) -> Result<bool, PullError> {
        let last_applied = self.image.last_applied;
        // A retried pull may overlap what is already applied.
        let fresh: Vec<&LogEntry> = entries.iter().filter(|e| e.index > last_applied).collect();
        if fresh.is_empty() {
            return Ok(false);
        }
        let mut next = MetadataImage::clone(&self.image);
        for entry in fresh {
            let expected = next.last_applied + 1;
            if entry.index != expected {
                return Err(PullError::Gap {
                    expected,
                    received: entry.index,
                });
            }
            next.apply(entry.index, &entry.command)
                .map_err(|rejection| PullError::Diverged {
                    index: entry.index,
                    reason: rejection.to_string(),
                })?;
        }
        self.image = Arc::new(next);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::cluster::metadata::Command;

    fn register(index: u64) -> LogEntry {
        LogEntry {
            index,
            command: Command::RegisterBroker {
                broker_id: 0,
                incarnation_id: Uuid::from_u128(u128::from(index)),
                listeners: Vec::new(),
                rack: None,
                previous_broker_epoch: None,
            },
        }
    }

    /// Unfences the broker registered at index 1, so topics can be placed.
    fn unfence(index: u64) -> LogEntry {
        LogEntry {
            index,
            command: Command::UnfenceBroker {
                broker_id: 0,
                broker_epoch: 1,
            },
        }
    }

    fn create_topic(index: u64, name: &str) -> LogEntry {
        LogEntry {
            index,
            command: Command::CreateTopic {
                name: name.to_owned(),
                topic_id: Uuid::from_u128(u128::from(index) + 100),
                configs: BTreeMap::new(),
                assignments: vec![vec![0]],
            },
        }
    }

    fn entries(list: Vec<LogEntry>) -> MetadataLogResponse {
        MetadataLogResponse {
            cluster_id: "c".to_owned(),
            last_index: list.last().map_or(0, |e| e.index),
            batch: LogBatch::Entries(list),
        }
    }

    fn snapshot(image: MetadataImage) -> MetadataLogResponse {
        MetadataLogResponse {
            cluster_id: image.cluster_id.clone(),
            last_index: image.last_applied,
            batch: LogBatch::Snapshot(Box::new(image)),
        }
    }

    fn synced() -> RemoteImage {
        let mut remote = RemoteImage::new();
        remote
            .apply(snapshot(MetadataImage::new("c")))
            .expect("snapshot");
        remote
    }

    #[test]
    fn a_fresh_image_asks_for_a_snapshot_and_refuses_bare_entries() {
        let mut remote = RemoteImage::new();
        assert_eq!(remote.next_from(), 0);
        assert!(matches!(
            remote.apply(entries(vec![register(1)])),
            Err(PullError::Gap { .. })
        ));
        assert_eq!(remote.next_from(), 0);
        assert!(
            remote
                .apply(snapshot(MetadataImage::new("c")))
                .expect("snapshot")
        );
        assert_eq!(remote.next_from(), 1);
    }

    #[test]
    fn entries_apply_in_order_and_match_the_coordinators_image() {
        let log = vec![
            register(1),
            unfence(2),
            create_topic(3, "a"),
            create_topic(4, "b"),
        ];
        let mut coordinator = MetadataImage::new("c");
        for entry in &log {
            coordinator
                .apply(entry.index, &entry.command)
                .expect("apply");
        }
        let mut remote = synced();
        assert!(
            remote
                .apply(entries(log[..2].to_vec()))
                .expect("first pull")
        );
        // A retried pull overlapping the applied prefix is harmless.
        assert!(
            remote
                .apply(entries(log[1..].to_vec()))
                .expect("second pull")
        );
        assert!(!remote.apply(entries(Vec::new())).expect("empty pull"));
        assert_eq!(**remote.image(), coordinator);
        assert_eq!(remote.next_from(), 5);
    }

    #[test]
    fn a_gap_keeps_the_image_and_falls_back_to_a_snapshot() {
        let mut remote = synced();
        remote.apply(entries(vec![register(1)])).expect("pull");
        let before = Arc::clone(remote.image());
        assert_eq!(
            remote.apply(entries(vec![create_topic(3, "t")])),
            Err(PullError::Gap {
                expected: 2,
                received: 3
            })
        );
        assert_eq!(remote.image(), &before);
        assert_eq!(remote.next_from(), 0);
    }

    #[test]
    fn a_batch_that_does_not_apply_is_rolled_back_whole() {
        let mut remote = synced();
        let bad = LogEntry {
            index: 4,
            command: Command::DeleteTopic {
                topic_id: Uuid::from_u128(9),
            },
        };
        let result = remote.apply(entries(vec![
            register(1),
            unfence(2),
            create_topic(3, "t"),
            bad,
        ]));
        assert!(matches!(result, Err(PullError::Diverged { index: 4, .. })));
        assert_eq!(remote.image().last_applied, 0);
        assert!(remote.image().topics.is_empty());
    }

    #[test]
    fn a_snapshot_replaces_an_image_that_ran_ahead_of_the_coordinator() {
        let mut remote = synced();
        remote
            .apply(entries(vec![
                register(1),
                unfence(2),
                create_topic(3, "lost"),
            ]))
            .expect("pull");
        let mut restored = MetadataImage::new("c");
        restored.apply(1, &register(1).command).expect("apply");
        assert!(remote.apply(snapshot(restored.clone())).expect("snapshot"));
        assert_eq!(**remote.image(), restored);
        assert_eq!(remote.next_from(), 2);
    }

    #[test]
    fn entries_of_another_cluster_are_refused() {
        let mut remote = synced();
        let mut other = entries(vec![register(1)]);
        other.cluster_id = "other".to_owned();
        assert!(matches!(
            remote.apply(other),
            Err(PullError::ClusterChanged { .. })
        ));
        assert_eq!(remote.next_from(), 0);
    }

    #[test]
    fn a_lagging_members_older_snapshot_is_behind_and_a_newer_one_is_not() {
        let mut image = synced();
        image
            .apply(entries(vec![register(1), unfence(2)]))
            .expect("entries");
        let mut older = MetadataImage::new("c");
        older.apply(1, &register(1).command).expect("register");
        assert!(image.is_behind(&snapshot(older)));
        let mut other_cluster = MetadataImage::new("d");
        other_cluster
            .apply(1, &register(1).command)
            .expect("register");
        assert!(!image.is_behind(&snapshot(other_cluster)));
        assert!(!image.is_behind(&entries(vec![create_topic(3, "t")])));
    }
}
