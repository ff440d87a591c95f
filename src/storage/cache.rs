//! In-memory cache of the most recently appended batches, so consumers near the log end are
//! served without touching the file. Holds `Bytes` clones of what clients sent (no copies);
//! the offset and leader epoch each was given travel beside it as a [`LogChunk`].

use std::collections::VecDeque;

use bytes::Bytes;

use super::{BatchStamp, LogChunk};

#[derive(Debug)]
struct Cached {
    stamp: BatchStamp,
    last_offset: i64,
    bytes: Bytes,
}

/// Consecutive batches ending at the log end, at most `capacity` bytes in total.
#[derive(Debug)]
pub(super) struct BatchCache {
    batches: VecDeque<Cached>,
    bytes: usize,
    capacity: usize,
}

impl BatchCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict();
    }

    /// Adds a batch that was just appended at the log end.
    pub fn push(&mut self, stamp: BatchStamp, last_offset: i64, bytes: Bytes) {
        if self.capacity == 0 {
            return;
        }
        self.bytes += bytes.len();
        self.batches.push_back(Cached {
            stamp,
            last_offset,
            bytes,
        });
        self.evict();
    }

    fn evict(&mut self) {
        while self.bytes > self.capacity {
            match self.batches.pop_front() {
                Some(c) => self.bytes -= c.bytes.len(),
                None => break,
            }
        }
    }

    /// Drops batches that end before `offset` (log start moved past them).
    pub fn evict_before(&mut self, offset: i64) {
        while self.batches.front().is_some_and(|c| c.last_offset < offset) {
            if let Some(c) = self.batches.pop_front() {
                self.bytes -= c.bytes.len();
            }
        }
    }

    /// Whether [`read`](Self::read) at `offset` is served from here.
    pub fn covers(&self, offset: i64) -> bool {
        self.batches
            .front()
            .is_some_and(|c| c.stamp.base_offset <= offset)
    }

    /// Whole batches from the one containing `offset` (same contract as the log's `read`),
    /// or `None` if the cache does not reach back to `offset`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Option<Vec<LogChunk>> {
        if self.batches.front()?.stamp.base_offset > offset {
            return None;
        }
        let start = self.batches.partition_point(|c| c.last_offset < offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for c in self.batches.range(start..) {
            if !out.is_empty() && total + c.bytes.len() > max_bytes {
                break;
            }
            total += c.bytes.len();
            out.push(LogChunk {
                stamp: Some(c.stamp),
                bytes: c.bytes.clone(),
            });
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base_offset: i64) -> BatchStamp {
        BatchStamp {
            base_offset,
            partition_leader_epoch: 0,
        }
    }

    #[test]
    fn evicts_oldest_beyond_capacity_and_serves_only_covered_offsets() {
        let mut c = BatchCache::new(10);
        c.push(at(0), 1, Bytes::from_static(b"aaaa"));
        c.push(at(2), 4, Bytes::from_static(b"bbbb"));
        c.push(at(5), 5, Bytes::from_static(b"cccc"));
        assert!(c.read(1, 100).is_none());
        let got = c.read(3, 100).expect("covered");
        assert_eq!(got.len(), 2);
        assert_eq!(c.read(3, 5).expect("covered").len(), 1);
        assert_eq!(c.read(6, 100).expect("at end"), Vec::<LogChunk>::new());
    }

    #[test]
    fn zero_capacity_disables_cache() {
        let mut c = BatchCache::new(0);
        c.push(at(0), 0, Bytes::from_static(b"x"));
        assert!(c.read(0, 10).is_none());
    }
}
