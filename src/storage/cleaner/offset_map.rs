//! The cleaner's key → latest offset map: a fixed-capacity open-addressing
//! table of 128-bit key hashes, as Kafka's `SkimpyOffsetMap` (which stores
//! MD5 digests). Two independently keyed SipHash values per key make a
//! collision — which would drop a record that is the latest of its key —
//! as unlikely as Kafka's, and random keys per map make it unforceable.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Bytes one entry costs, to size the map from `log.cleaner.dedupe.buffer.size`.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Slot>();
/// Most entries per slot, as Kafka's `log.cleaner.io.buffer.load.factor`.
const LOAD_FACTOR: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    hash: [u64; 2],
    /// -1 marks an empty slot (offsets are never negative).
    offset: i64,
}

const EMPTY: Slot = Slot {
    hash: [0; 2],
    offset: -1,
};

#[derive(Debug)]
pub struct OffsetMap {
    slots: Vec<Slot>,
    len: usize,
    capacity: usize,
    hashers: [RandomState; 2],
}

impl Default for OffsetMap {
    fn default() -> Self {
        Self::new()
    }
}

impl OffsetMap {
    pub fn new() -> Self {
        OffsetMap {
            slots: Vec::new(),
            len: 0,
            capacity: 0,
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    /// Empties the map and sizes it for at most `entries` keys; memory is
    /// `entries / 0.9` slots, reused from the last clean when it fits.
    pub fn reset(&mut self, entries: usize) {
        let slots = ((entries as f64 / LOAD_FACTOR) as usize).max(entries) + 1;
        self.slots.clear();
        self.slots.resize(slots, EMPTY);
        self.slots.shrink_to(slots.max(self.slots.capacity() / 2));
        self.len = 0;
        self.capacity = entries;
        self.hashers = [RandomState::new(), RandomState::new()];
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `more` new keys would certainly fit.
    pub fn has_room_for(&self, more: usize) -> bool {
        self.len.saturating_add(more) <= self.capacity
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        [self.hashers[0].hash_one(key), self.hashers[1].hash_one(key)]
    }

    fn slot_of(&self, hash: [u64; 2]) -> usize {
        let mut at = (hash[0] % self.slots.len() as u64) as usize;
        loop {
            let slot = &self.slots[at];
            if slot.offset < 0 || slot.hash == hash {
                return at;
            }
            at = (at + 1) % self.slots.len();
        }
    }

    /// Records `offset` as the latest of `key` (offsets arrive in order).
    /// False, and nothing recorded, if the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let hash = self.hash(key);
        let at = self.slot_of(hash);
        let slot = &mut self.slots[at];
        if slot.offset < 0 {
            if self.len >= self.capacity {
                return false;
            }
            self.len += 1;
            slot.hash = hash;
        }
        slot.offset = offset;
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        if self.slots.is_empty() {
            return None;
        }
        let slot = self.slots[self.slot_of(self.hash(key))];
        (slot.offset >= 0).then_some(slot.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key_up_to_its_capacity() {
        let mut map = OffsetMap::new();
        map.reset(3);
        assert!(map.put(b"a", 1));
        assert!(map.put(b"b", 2));
        assert!(map.put(b"a", 3));
        assert_eq!(
            (map.get(b"a"), map.get(b"b"), map.get(b"c")),
            (Some(3), Some(2), None)
        );
        assert!(map.put(b"c", 4));
        assert!(!map.put(b"d", 5), "full");
        assert!(map.put(b"c", 6), "a known key still updates");
        assert_eq!(
            (map.len(), map.get(b"d"), map.get(b"c")),
            (3, None, Some(6))
        );
        map.reset(10);
        assert!(map.is_empty());
        assert_eq!(map.get(b"a"), None);
    }

    #[test]
    fn many_keys_all_found() {
        let mut map = OffsetMap::new();
        map.reset(10_000);
        for i in 0..10_000i64 {
            assert!(map.put(&i.to_be_bytes(), i));
        }
        for i in 0..10_000i64 {
            assert_eq!(map.get(&i.to_be_bytes()), Some(i));
        }
        assert_eq!(map.get(b"missing"), None);
    }
}
