//! The group coordinator's way to `__consumer_offsets`: the partitions this
//! broker hosts, behind the normal append path ([`OffsetsLog`], which the
//! broker implements), and the reading of one partition into the groups
//! and committed offsets it holds.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::records::{CommittedOffset, GroupMetadata, GroupRecord};
use crate::cluster::BoxFuture;
use crate::records::{BatchHeader, FilterScratch, for_each_record};

/// Bytes read from a partition at a time while loading it.
const LOAD_READ_BYTES: usize = 1 << 20;

/// `__consumer_offsets` as the group coordinator sees it.
pub trait OffsetsLog: Send + Sync {
    /// Appends `batch` (one v2 record batch, see [`encode_batch`]) to
    /// `partition` if this broker leads it, and waits until the in-sync
    /// replicas have it (`acks=all`), at most `timeout`. Returns the offset
    /// of its first record, or the produce path's error
    /// (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, MESSAGE_TOO_LARGE,
    /// REQUEST_TIMED_OUT, …).
    fn append(
        &self,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<i64, ResponseError>>;

    /// Whether this broker leads `partition` at `leader_epoch` and acts as
    /// its leader already (appends wait for its followers): loading may
    /// begin.
    fn ready(&self, partition: i32, leader_epoch: i32) -> bool;

    /// The partition's log start and log end offsets, if it is hosted here.
    fn bounds(&self, partition: i32) -> Option<(i64, i64)>;

    /// Whole batches from the one holding `offset`, up to about
    /// `max_bytes` (at least one). Blocking.
    fn read(&self, partition: i32, offset: i64, max_bytes: usize) -> Result<Vec<Bytes>, String>;

    /// The most a compressed batch may decompress to.
    fn max_decompressed(&self) -> usize;
}

/// Milliseconds since the epoch: commit timestamps and record times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `records` as one uncompressed v2 batch with CreateTime `timestamp_ms`,
/// offsets from 0 (the partition's writer assigns the real ones).
pub fn encode_batch(records: &[GroupRecord], timestamp_ms: i64) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, record)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // No producer: the batch's base sequence is -1. The encoder
            // keeps records in one batch while offset - sequence is
            // constant.
            sequence: index as i32 - 1,
            timestamp: timestamp_ms,
            key: Some(Bytes::from(record.key())),
            value: record.value().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    // Encoding into memory fails only for values the encoder cannot size,
    // which a record of strings and integers never is.
    if let Err(error) = RecordBatchEncoder::encode(&mut buf, &records, &options) {
        tracing::error!(%error, "could not encode offsets records");
    }
    buf.freeze()
}

/// One committed offset (or its tombstone) in memory, with the offset of
/// the record it came from: of two records for the same key, the one
/// further in the log wins, whatever order their appends completed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub value: Option<CommittedOffset>,
    pub log_offset: i64,
}

/// A group's offsets by (topic, partition).
pub type GroupOffsets = HashMap<(String, i32), Slot>;

/// Applies an offset record at `log_offset` unless a later one is there.
pub fn apply_offset(
    groups: &mut HashMap<String, GroupOffsets>,
    group: &str,
    key: (String, i32),
    value: Option<CommittedOffset>,
    log_offset: i64,
) {
    let offsets = groups.entry(group.to_string()).or_default();
    match offsets.get(&key) {
        Some(slot) if slot.log_offset > log_offset => {}
        _ => {
            offsets.insert(key, Slot { value, log_offset });
        }
    }
}

/// Applies the offset commits among `records`, appended as one batch at
/// `base_offset` (record `i` at `base_offset + i`).
pub fn apply_commits(
    groups: &mut HashMap<String, GroupOffsets>,
    records: Vec<GroupRecord>,
    base_offset: i64,
) {
    for (index, record) in records.into_iter().enumerate() {
        if let GroupRecord::OffsetCommit {
            group,
            topic,
            partition,
            value,
        } = record
        {
            let at = base_offset + index as i64;
            apply_offset(groups, &group, (topic, partition), value, at);
        }
    }
}

/// What one offsets partition holds, read up to its log end.
#[derive(Debug, Default)]
pub struct LoadedPartition {
    /// Live committed offsets (tombstones dropped).
    pub offsets: HashMap<String, GroupOffsets>,
    /// Each group's last metadata, deleted groups dropped.
    pub groups: HashMap<String, GroupMetadata>,
    /// Records that could not be read, skipped.
    pub skipped: usize,
}

/// Reads `partition` from its log start to its log end into memory
/// (Kafka's `doLoadGroupsAndOffsets`). `cancelled` is asked between reads.
/// Blocking.
pub fn read_partition(
    log: &dyn OffsetsLog,
    partition: i32,
    cancelled: &dyn Fn() -> bool,
) -> Result<LoadedPartition, String> {
    let (log_start, log_end) = log
        .bounds(partition)
        .ok_or_else(|| format!("partition {partition} is not hosted here"))?;
    let mut loaded = LoadedPartition::default();
    let mut scratch = FilterScratch::default();
    let cap = log.max_decompressed();
    let mut offset = log_start;
    while offset < log_end {
        if cancelled() {
            return Err("the load was cancelled".to_string());
        }
        let batches = log.read(partition, offset, LOAD_READ_BYTES)?;
        let before = offset;
        for batch in batches {
            let header = BatchHeader::parse(&batch)
                .ok_or_else(|| format!("a truncated batch at offset {offset}"))?;
            if header.base_offset >= log_end {
                break;
            }
            offset = offset.max(header.last_offset() + 1);
            for_each_record(&batch, &header, cap, &mut scratch, |key, value, at| {
                if at >= log_end {
                    return;
                }
                match GroupRecord::decode(key, value) {
                    Ok(record) => apply_loaded(&mut loaded, record, at),
                    Err(error) => {
                        loaded.skipped += 1;
                        tracing::warn!(partition, offset = at, %error, "skipped an unreadable record of the offsets topic");
                    }
                }
            })
            .map_err(|error| error.to_string())?;
        }
        if offset == before {
            // Nothing readable where the log says there is more.
            break;
        }
    }
    for offsets in loaded.offsets.values_mut() {
        offsets.retain(|_, slot| slot.value.is_some());
    }
    loaded.offsets.retain(|_, offsets| !offsets.is_empty());
    Ok(loaded)
}

fn apply_loaded(loaded: &mut LoadedPartition, record: GroupRecord, at: i64) {
    match record {
        GroupRecord::OffsetCommit {
            group,
            topic,
            partition,
            value,
        } => apply_offset(&mut loaded.offsets, &group, (topic, partition), value, at),
        GroupRecord::GroupMetadata { group, value } => match value {
            Some(metadata) => {
                loaded.groups.insert(group, metadata);
            }
            None => {
                loaded.groups.remove(&group);
            }
        },
    }
}

#[cfg(test)]
pub(crate) mod fake;
