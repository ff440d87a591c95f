//! Idempotent producer bookkeeping for one partition: the last few batches
//! of every producer id, so retries are answered with their original offset
//! and gaps are refused with Kafka's error codes.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;

use crate::records::BatchHeader;
use crate::storage::{ProducerSnapshot, SnapshotBatch, SnapshotProducer};

/// Kafka keeps the metadata of the last five batches per producer; clients
/// never have more than five in flight when idempotence is on.
const BATCHES_KEPT: usize = 5;

#[derive(Debug, Clone, Copy)]
struct BatchEntry {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

#[derive(Debug, Default, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchEntry>,
}

/// What to do with an incoming batch.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// A retry of a batch already in the log at this base offset.
    Duplicate { base_offset: i64 },
    /// Refuse it with this error.
    Reject(ResponseError),
}

/// Batches are recorded before their write is known to succeed, so that
/// later batches of the same group are checked against them; until
/// [`commit`](ProducerStates::commit), every producer touched keeps its
/// earlier entry for [`rollback`](ProducerStates::rollback).
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Each producer's entry as it was before the first uncommitted record.
    undo: HashMap<i64, Option<ProducerEntry>>,
}

impl ProducerStates {
    /// Checks `header` against what this producer id appended before.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if !header.has_producer_id() || header.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // A producer unknown here (new, or its state expired) must start a
            // fresh sequence; Kafka 2.5+ accepts any sequence for an unknown
            // producer so that retention cannot make producers fail.
            return SequenceCheck::Append;
        };
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(ResponseError::InvalidProducerEpoch);
        }
        if header.producer_epoch > entry.epoch {
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry.batches.iter().find(|b| {
            b.first_sequence == header.base_sequence && b.last_sequence == header.last_sequence()
        }) {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        let expected = entry
            .batches
            .back()
            .map(|b| next_sequence(b.last_sequence))
            .unwrap_or(0);
        if header.base_sequence == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        }
    }

    /// Records a batch that was appended with `base_offset` (also used to
    /// rebuild the state from the log at start-up).
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        if !header.has_producer_id() || header.base_sequence < 0 {
            return;
        }
        if !self.undo.contains_key(&header.producer_id) {
            let before = self.producers.get(&header.producer_id).cloned();
            self.undo.insert(header.producer_id, before);
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchEntry {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            base_offset,
        });
    }
}

impl ProducerStates {
    /// The recorded batches were written: forget how to undo them.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The recorded batches were not written: every producer is back where
    /// the last [`commit`](Self::commit) left it.
    pub fn rollback(&mut self) {
        for (producer_id, before) in self.undo.drain() {
            match before {
                Some(entry) => self.producers.insert(producer_id, entry),
                None => self.producers.remove(&producer_id),
            };
        }
    }
}

impl ProducerStates {
    /// The committed state as a snapshot at `offset` (the log end it
    /// describes), producers in id order.
    pub fn snapshot(&self, offset: i64) -> ProducerSnapshot {
        let mut producers: Vec<SnapshotProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, entry)| {
                // A producer touched since the last commit is saved as it was then.
                let entry = match self.undo.get(&producer_id) {
                    Some(before) => before.as_ref(),
                    None => Some(entry),
                };
                (producer_id, entry)
            })
            .filter_map(|(producer_id, entry)| {
                let entry = entry?;
                Some(SnapshotProducer {
                    producer_id,
                    epoch: entry.epoch,
                    batches: entry
                        .batches
                        .iter()
                        .map(|b| SnapshotBatch {
                            first_sequence: b.first_sequence,
                            last_sequence: b.last_sequence,
                            base_offset: b.base_offset,
                        })
                        .collect(),
                })
            })
            .collect();
        producers.sort_unstable_by_key(|p| p.producer_id);
        ProducerSnapshot { offset, producers }
    }

    /// The state a snapshot holds, committed. Only a producer's last
    /// [`BATCHES_KEPT`] batches are taken, whatever the file claims.
    pub fn from_snapshot(snapshot: ProducerSnapshot) -> Self {
        let producers = snapshot
            .producers
            .into_iter()
            .map(|p| {
                let skip = p.batches.len().saturating_sub(BATCHES_KEPT);
                let batches = p.batches[skip..]
                    .iter()
                    .map(|b| BatchEntry {
                        first_sequence: b.first_sequence,
                        last_sequence: b.last_sequence,
                        base_offset: b.base_offset,
                    })
                    .collect();
                (
                    p.producer_id,
                    ProducerEntry {
                        epoch: p.epoch,
                        batches,
                    },
                )
            })
            .collect();
        ProducerStates {
            producers,
            undo: HashMap::new(),
        }
    }
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: count,
        }
    }

    #[test]
    fn rolled_back_batch_is_not_a_duplicate_of_itself() {
        let mut states = ProducerStates::default();
        let first = header(7, 0, 0, 3);
        states.record(&first, 100);
        states.commit();
        let second = header(7, 0, 3, 2);
        states.record(&second, 103);
        states.record(&header(8, 0, 0, 1), 105);
        states.rollback();
        // The write of `second` failed: its retry must be appended, not
        // answered with an offset that holds nothing.
        assert_eq!(states.check(&second), SequenceCheck::Append);
        assert_eq!(
            states.check(&first),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert_eq!(states.check(&header(8, 0, 5, 1)), SequenceCheck::Append);
    }

    #[test]
    fn retried_batch_is_answered_with_its_original_offset() {
        let mut states = ProducerStates::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(states.check(&first), SequenceCheck::Append);
        states.record(&first, 100);
        assert_eq!(
            states.check(&first),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert_eq!(states.check(&header(7, 0, 3, 1)), SequenceCheck::Append);
    }

    #[test]
    fn sequence_gap_is_out_of_order() {
        let mut states = ProducerStates::default();
        states.record(&header(7, 0, 0, 3), 0);
        assert_eq!(
            states.check(&header(7, 0, 5, 1)),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn snapshot_restores_what_deduplication_needs() {
        let mut states = ProducerStates::default();
        for (i, producer) in [(0, 7), (1, 8)] {
            for batch in 0..7 {
                states.record(
                    &header(producer, 1, batch * 2, 2),
                    100 * i + 10 * i64::from(batch),
                );
            }
        }
        states.commit();
        // Uncommitted changes stay out of the snapshot.
        states.record(&header(9, 0, 0, 1), 500);
        states.record(&header(7, 1, 14, 1), 501);
        let restored = ProducerStates::from_snapshot(states.snapshot(200));
        assert_eq!(
            restored.check(&header(7, 1, 12, 2)),
            SequenceCheck::Duplicate { base_offset: 60 }
        );
        assert_eq!(
            restored.check(&header(8, 1, 12, 2)),
            SequenceCheck::Duplicate { base_offset: 160 }
        );
        assert_eq!(restored.check(&header(7, 1, 14, 1)), SequenceCheck::Append);
        assert_eq!(
            restored.check(&header(7, 1, 16, 1)),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            restored.check(&header(7, 0, 0, 1)),
            SequenceCheck::Reject(ResponseError::InvalidProducerEpoch)
        );
        assert!(restored.snapshot(200).producers.len() == 2);
        assert_eq!(restored.snapshot(200), states.snapshot(200));
    }

    #[test]
    fn older_epoch_is_fenced() {
        let mut states = ProducerStates::default();
        states.record(&header(7, 2, 0, 1), 0);
        assert_eq!(
            states.check(&header(7, 1, 1, 1)),
            SequenceCheck::Reject(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(states.check(&header(7, 3, 0, 1)), SequenceCheck::Append);
    }
}
