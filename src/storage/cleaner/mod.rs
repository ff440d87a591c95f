//! Log compaction: keeping only the latest record of each key in the closed
//! segments of a log whose `cleanup.policy` includes `compact`, as Kafka's
//! log cleaner does.
//!
//! One clean of one log ([`Cleaner::clean`]):
//! 1. Under the log's read lock, a [`CleanPlan`]: the closed segments that
//!    may be cleaned (never the active one, none with records younger than
//!    `min.compaction.lag.ms`) and the first dirty offset, i.e. the end of
//!    the last clean (`cleaner-offset-checkpoint`).
//! 2. Without any lock, an [`OffsetMap`] of key → latest offset over the
//!    dirty records, as many as the map holds (the clean then covers only
//!    that prefix, as in Kafka).
//! 3. Without any lock, each group of consecutive segments (at most
//!    `segment.bytes` together) is rewritten into `<base>.log.cleaned`,
//!    keeping a record only if it is the latest of its key (see
//!    `records::filter_batch`: offsets stay, gaps are left). It is fsynced
//!    and renamed `<base>.log.swap`, and the directory fsynced.
//! 4. Under the write lock, briefly: the old segments' files are unlinked,
//!    the directory fsynced, the swap renamed over `<base>.log`, the
//!    directory fsynced again, and the new segment takes their place in the
//!    log. Readers in flight hold their own `Arc<File>` or bytes already
//!    read, so nothing they hold goes away.
//!
//! A crash leaves at most a `.cleaned` file (deleted at recovery) or a
//! `.swap` file (recovery finishes the swap: see `recovery::finish_swaps`).

mod offset_map;
mod throttle;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

pub use offset_map::{ENTRY_BYTES, OffsetMap};
pub use throttle::Throttle;

use super::batch::{BATCH_HEADER_LEN, BatchHeader};
use super::log::{LogConfig, PartitionLog, millis};
use super::recovery::{self, CLEANER_CHECKPOINT_FILE};
use super::segment::{self, Segment};
use super::{StorageError, segment_io};
use crate::records::{
    FilterScratch, Filtered, RecordError, TombstoneRules, filter_batch, for_each_key,
};

/// Bytes read from a segment file at a time.
const READ_WINDOW: usize = 1 << 20;
/// Bytes of cleaned batches gathered before each write.
const WRITE_CHUNK: usize = 1 << 20;

/// Why a clean stopped.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored batch whose records cannot be read; the log is left as it was.
    #[error("batch at offset {offset} cannot be cleaned: {source}")]
    UnreadableBatch {
        offset: i64,
        #[source]
        source: RecordError,
    },
    /// The broker is shutting down; the log is left as it was.
    #[error("the cleaner was stopped")]
    Stopped,
}

/// How much a log needs cleaning; see [`PartitionLog::cleanable`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Dirty bytes over all cleanable bytes.
    pub dirty_ratio: f64,
    /// `max.compaction.lag.ms` passed, or tombstones are due to go.
    pub overdue: bool,
}

/// What one clean did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    /// Old segments replaced by cleaned ones.
    pub segments_replaced: usize,
    /// The first dirty offset after this clean.
    pub first_dirty: i64,
}

/// A closed segment as the plan saw it; its file stays readable whatever
/// the log does meanwhile.
#[derive(Debug, Clone)]
pub(super) struct SegmentView {
    pub base: i64,
    pub next_offset: i64,
    pub size: u64,
    pub file: Arc<File>,
    pub path: PathBuf,
}

/// What a clean works on, taken under the read lock.
#[derive(Debug)]
struct CleanPlan {
    dir: PathBuf,
    config: LogConfig,
    segments: Vec<SegmentView>,
    first_dirty: i64,
}

impl PartitionLog {
    /// The first offset the cleaner has not cleaned, within the log.
    fn first_dirty_offset(&self) -> i64 {
        let dirty = self.cleaner_checkpoint.max(self.log_start);
        if dirty > self.log_end_offset() {
            self.log_start
        } else {
            dirty
        }
    }

    /// Base of the first segment the cleaner must not touch: the active one,
    /// or an earlier one holding records younger than `min.compaction.lag.ms`.
    fn first_uncleanable_offset(&self, now_ms: i64) -> i64 {
        let newest_allowed = now_ms.saturating_sub(millis(self.config.min_compaction_lag));
        self.closed
            .values()
            .find(|s| s.max_timestamp > newest_allowed)
            .map_or(self.active.base_offset, |s| s.base_offset)
    }

    /// Whether this log should be cleaned now, and how urgently: `None` if
    /// it is not compacted, or its dirty share is below
    /// `min.cleanable.dirty.ratio` and nothing is overdue.
    pub fn cleanable(&self, now_ms: i64) -> Option<Cleanable> {
        if !self.config.compact || self.retired {
            return None;
        }
        let first_dirty = self.first_dirty_offset();
        let uncleanable = self.first_uncleanable_offset(now_ms);
        let (mut clean, mut dirty) = (0u64, 0u64);
        let mut first_dirty_segment = None;
        for seg in self
            .closed
            .values()
            .take_while(|s| s.base_offset < uncleanable)
        {
            if seg.next_offset <= first_dirty {
                clean += seg.size;
            } else {
                dirty += seg.size;
                first_dirty_segment.get_or_insert(seg);
            }
        }
        let lag_passed = first_dirty_segment.is_some_and(|s| {
            let first = s
                .first_batch_timestamp
                .filter(|t| *t >= 0)
                .unwrap_or(s.created_ms);
            now_ms.saturating_sub(first) > millis(self.config.max_compaction_lag)
        });
        let tombstones_due = clean > 0 && self.tombstone_deadline.is_some_and(|t| t <= now_ms);
        let dirty_ratio = if clean + dirty == 0 {
            0.0
        } else {
            dirty as f64 / (clean + dirty) as f64
        };
        let overdue = lag_passed || tombstones_due;
        let worth_it = dirty > 0 && dirty_ratio >= self.config.min_cleanable_dirty_ratio;
        (worth_it || overdue).then_some(Cleanable {
            dirty_ratio,
            overdue,
        })
    }

    fn clean_plan(&self, now_ms: i64) -> CleanPlan {
        let uncleanable = self.first_uncleanable_offset(now_ms);
        CleanPlan {
            dir: self.dir.clone(),
            config: self.config.clone(),
            segments: self
                .closed
                .values()
                .take_while(|s| s.base_offset < uncleanable)
                .map(|s| SegmentView {
                    base: s.base_offset,
                    next_offset: s.next_offset,
                    size: s.size,
                    file: s.file.clone(),
                    path: s.log_path(),
                })
                .collect(),
            first_dirty: self.first_dirty_offset(),
        }
    }

    /// Puts a cleaned segment (or nothing, when every record of the group
    /// went) in place of `group`, whose files are unlinked; `swap` is then
    /// renamed over the first one's `.log`. False, and the swap file
    /// removed, if the log changed meanwhile (retention deleted a segment
    /// of the group, or the log was closed or deleted).
    fn replace_segments(
        &mut self,
        group: &[SegmentView],
        cleaned: Option<(Segment, PathBuf)>,
    ) -> Result<bool, StorageError> {
        let unchanged = group.iter().all(|view| {
            self.closed
                .get(&view.base)
                .is_some_and(|s| Arc::ptr_eq(&s.file, &view.file))
        });
        if self.retired || !unchanged {
            if let Some((_, swap)) = &cleaned {
                segment::remove_if_exists(swap)?;
            }
            return Ok(false);
        }
        let base = group[0].base;
        for view in group {
            segment::remove_if_exists(&segment::index_path(&self.dir, view.base))?;
            segment::remove_if_exists(&segment::time_index_path(&self.dir, view.base))?;
            if view.base != base || cleaned.is_none() {
                segment::remove_if_exists(&view.path)?;
            }
        }
        recovery::sync_dir(&self.dir)?;
        for view in group {
            if let Some(old) = self.closed.remove(&view.base) {
                self.size_bytes -= old.size;
            }
        }
        if let Some((mut seg, swap)) = cleaned {
            let log_path = seg.log_path();
            std::fs::rename(&swap, &log_path).map_err(segment_io(&log_path))?;
            recovery::sync_dir(&self.dir)?;
            self.size_bytes += seg.size;
            seg.offset_index.force_rewrite();
            seg.time_index.force_rewrite();
            // The indexes are rebuilt from the segment if this write is lost.
            if let Err(error) = seg.persist(false) {
                tracing::warn!(%error, "could not write the indexes of a cleaned segment");
            }
            self.closed.insert(base, seg);
        }
        let end = group.last().map_or(base, |v| v.next_offset);
        // Cached batches are what was appended, not what was kept.
        self.cache.evict_before(end);
        Ok(true)
    }

    /// Records where the next clean starts and when tombstones next expire.
    fn finish_clean(&mut self, first_dirty: i64, tombstone_deadline: Option<i64>) {
        self.cleaner_checkpoint = first_dirty;
        self.tombstone_deadline = tombstone_deadline;
        // Not fsynced: if it is lost, the next clean just covers more.
        if let Err(error) =
            recovery::write_checkpoint(&self.dir, CLEANER_CHECKPOINT_FILE, first_dirty, false)
        {
            tracing::warn!(%error, "could not write the cleaner checkpoint");
        }
    }
}

/// One cleaner thread's working memory and I/O budget.
#[derive(Debug)]
pub struct Cleaner {
    map: OffsetMap,
    /// Most keys one clean maps (its share of the dedupe buffer).
    max_map_entries: usize,
    max_decompressed: usize,
    throttle: Throttle,
    stop: Arc<AtomicBool>,
    scratch: FilterScratch,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    batch_buf: Vec<u8>,
}

impl Cleaner {
    /// A cleaner with `dedupe_bytes` for its offset map, `bytes_per_second`
    /// of I/O (`None`: unlimited), stored batches decompressing to at most
    /// `max_decompressed` bytes, stopping early once `stop` is raised.
    pub fn new(
        dedupe_bytes: usize,
        bytes_per_second: Option<f64>,
        max_decompressed: usize,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Cleaner {
            map: OffsetMap::new(),
            max_map_entries: (dedupe_bytes / ENTRY_BYTES).max(1),
            max_decompressed,
            throttle: Throttle::new(bytes_per_second),
            stop,
            scratch: FilterScratch::default(),
            read_buf: Vec::new(),
            write_buf: Vec::new(),
            batch_buf: Vec::new(),
        }
    }

    /// Cleans `log` once (see the module doc). Appends and fetches go on
    /// meanwhile: the log is locked only to plan and to swap segments.
    pub fn clean(
        &mut self,
        log: &RwLock<PartitionLog>,
        now_ms: i64,
    ) -> Result<CleanStats, CleanError> {
        let plan = log
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clean_plan(now_ms);
        self.throttle.reset();
        let mut stats = CleanStats::default();
        let map_end = self.build_offset_map(&plan, &mut stats)?;
        let rules = TombstoneRules {
            now_ms,
            delete_retention_ms: millis(plan.config.delete_retention),
        };
        let cleanable: Vec<SegmentView> = plan
            .segments
            .iter()
            .filter(|s| s.base < map_end)
            .cloned()
            .collect();
        let mut deadline: Option<i64> = None;
        for group in group_segments(&cleanable, plan.config.segment_bytes) {
            let (cleaned, horizon) = self.clean_group(&plan, group, rules, &mut stats)?;
            deadline = min_option(deadline, horizon);
            let Some(cleaned) = cleaned else { continue };
            let replaced = log
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .replace_segments(group, cleaned)?;
            if replaced {
                stats.segments_replaced += group.len();
            }
        }
        log.write()
            .unwrap_or_else(|p| p.into_inner())
            .finish_clean(map_end, deadline);
        stats.first_dirty = map_end;
        Ok(stats)
    }

    /// Maps the keys of the dirty records, from the first dirty offset on,
    /// for as many keys as the map holds; returns the offset the mapped
    /// records end at.
    fn build_offset_map(
        &mut self,
        plan: &CleanPlan,
        stats: &mut CleanStats,
    ) -> Result<i64, CleanError> {
        let first_dirty = plan.first_dirty;
        let dirty: Vec<&SegmentView> = plan
            .segments
            .iter()
            .filter(|s| s.next_offset > first_dirty)
            .collect();
        // Offsets bound the records, so this bounds the map's memory by the work.
        let most_records: i64 = dirty
            .iter()
            .map(|s| s.next_offset - s.base.max(first_dirty))
            .sum();
        let entries = usize::try_from(most_records).unwrap_or(usize::MAX);
        self.map.reset(entries.min(self.max_map_entries));
        let mut end = first_dirty;
        let Cleaner {
            map,
            read_buf,
            scratch,
            throttle,
            stop,
            max_decompressed,
            ..
        } = self;
        for seg in dirty {
            let mut full = false;
            for_each_batch(seg, read_buf, |header, batch| {
                if header.last_offset() < first_dirty {
                    return Ok(true);
                }
                if !map.has_room_for(header.record_count.max(0) as usize) {
                    full = true;
                    return Ok(false);
                }
                for_each_key(batch, &header, *max_decompressed, scratch, |key, offset| {
                    if offset >= first_dirty {
                        map.put(key, offset);
                    }
                })
                .map_err(|source| CleanError::UnreadableBatch {
                    offset: header.base_offset,
                    source,
                })?;
                end = header.last_offset() + 1;
                stats.bytes_read += batch.len() as u64;
                if !throttle.pace(batch.len(), stop) {
                    return Err(CleanError::Stopped);
                }
                Ok(true)
            })?;
            if full {
                break;
            }
        }
        if end == first_dirty && plan.segments.iter().any(|s| s.next_offset > first_dirty) {
            tracing::warn!(dir = %plan.dir.display(), first_dirty,
                "log.cleaner.dedupe.buffer.size holds not even one batch's keys; cleaning only tombstones");
        }
        Ok(end)
    }

    /// Writes the cleaned form of `group` to `<base>.log.cleaned` and, if it
    /// differs from the group, moves it to `<base>.log.swap`. Returns the
    /// replacement (`Some(None)`: every record went) or `None` when nothing
    /// changed, and the earliest delete horizon of the tombstones kept.
    #[allow(clippy::type_complexity)]
    fn clean_group(
        &mut self,
        plan: &CleanPlan,
        group: &[SegmentView],
        rules: TombstoneRules,
        stats: &mut CleanStats,
    ) -> Result<(Option<Option<(Segment, PathBuf)>>, Option<i64>), CleanError> {
        let base = group[0].base;
        let stem = segment::file_stem(&plan.dir, base);
        let cleaned_path = stem.with_extension("log.cleaned");
        let swap_path = stem.with_extension("log.swap");
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&cleaned_path)
            .map_err(segment_io(&cleaned_path))?;
        let mut cleaned = Segment::with_file(&plan.dir, base, file, rules.now_ms);
        let result = self.write_cleaned(plan, group, rules, &mut cleaned, stats);
        let (changed, horizon) = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                let _ = std::fs::remove_file(&cleaned_path);
                return Err(error);
            }
        };
        if !changed {
            segment::remove_if_exists(&cleaned_path)?;
            return Ok((None, horizon));
        }
        // The log's first segment stays, even empty, so that the log start
        // offset does not move after a restart (recovery starts the log no
        // lower than its first segment).
        if cleaned.is_empty() {
            let first_of_log = plan.segments.first().is_some_and(|s| s.base == base);
            if !first_of_log {
                segment::remove_if_exists(&cleaned_path)?;
                return Ok((Some(None), horizon));
            }
            // Renamed over the first segment without a swap: if a crash
            // comes first, recovery deletes it, and what may be gone by then
            // is only records this clean removes.
            return Ok((Some(Some((cleaned, cleaned_path))), horizon));
        }
        cleaned.file.sync_all().map_err(segment_io(&cleaned_path))?;
        std::fs::rename(&cleaned_path, &swap_path).map_err(segment_io(&swap_path))?;
        recovery::sync_dir(&plan.dir)?;
        Ok((Some(Some((cleaned, swap_path))), horizon))
    }

    /// Filters every batch of `group` into `cleaned`; returns whether any
    /// batch changed and the earliest delete horizon kept.
    fn write_cleaned(
        &mut self,
        plan: &CleanPlan,
        group: &[SegmentView],
        rules: TombstoneRules,
        cleaned: &mut Segment,
        stats: &mut CleanStats,
    ) -> Result<(bool, Option<i64>), CleanError> {
        let Cleaner {
            map,
            read_buf,
            write_buf,
            batch_buf,
            scratch,
            throttle,
            stop,
            max_decompressed,
            ..
        } = self;
        let interval = plan.config.index_interval_bytes;
        let (mut changed, mut horizon) = (false, None);
        let mut written = 0u64;
        write_buf.clear();
        for seg in group {
            for_each_batch(seg, read_buf, |header, batch| {
                stats.bytes_read += batch.len() as u64;
                batch_buf.clear();
                let outcome = filter_batch(
                    batch,
                    &header,
                    rules,
                    *max_decompressed,
                    scratch,
                    batch_buf,
                    |key, offset| map.get(key).is_none_or(|latest| offset >= latest),
                )
                .map_err(|source| CleanError::UnreadableBatch {
                    offset: header.base_offset,
                    source,
                })?;
                stats.records_removed += u64::from(outcome.records_removed);
                horizon = min_option(horizon, outcome.delete_horizon);
                let kept: &[u8] = match outcome.filtered {
                    Filtered::Unchanged => batch,
                    Filtered::Rewritten => batch_buf,
                    Filtered::Removed => &[],
                };
                changed |= outcome.filtered != Filtered::Unchanged;
                if let Some(kept_header) = BatchHeader::parse(kept) {
                    cleaned.note_batch(cleaned.size, &kept_header, interval);
                    write_buf.extend_from_slice(kept);
                }
                if write_buf.len() >= WRITE_CHUNK {
                    flush_chunk(cleaned, write_buf, &mut written, stats)?;
                }
                if !throttle.pace(batch.len() + kept.len(), stop) {
                    return Err(CleanError::Stopped);
                }
                Ok(true)
            })?;
        }
        flush_chunk(cleaned, write_buf, &mut written, stats)?;
        Ok((changed, horizon))
    }
}

fn flush_chunk(
    cleaned: &Segment,
    buf: &mut Vec<u8>,
    written: &mut u64,
    stats: &mut CleanStats,
) -> Result<(), CleanError> {
    if buf.is_empty() {
        return Ok(());
    }
    let path = cleaned.log_path().with_extension("log.cleaned");
    cleaned
        .file
        .write_all_at(buf, *written)
        .map_err(segment_io(&path))?;
    *written += buf.len() as u64;
    stats.bytes_written += buf.len() as u64;
    buf.clear();
    Ok(())
}

fn min_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Consecutive segments cleaned into one: together at most `segment_bytes`
/// (always at least one) and spanning offsets a 32-bit index can address.
fn group_segments(segments: &[SegmentView], segment_bytes: u64) -> Vec<&[SegmentView]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut end = start + 1;
        let mut size = segments[start].size;
        while end < segments.len()
            && size + segments[end].size <= segment_bytes
            && segments[end].next_offset - segments[start].base <= i64::from(u32::MAX)
        {
            size += segments[end].size;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

/// Calls `visit(header, batch)` for each batch of a segment in order,
/// reading a window at a time, until it returns `Ok(false)`.
fn for_each_batch(
    seg: &SegmentView,
    buf: &mut Vec<u8>,
    mut visit: impl FnMut(BatchHeader, &[u8]) -> Result<bool, CleanError>,
) -> Result<(), CleanError> {
    let corrupt = |pos: u64, reason: &str| {
        CleanError::Storage(StorageError::CorruptBatch {
            offset: seg.base,
            reason: format!("{} at position {pos}: {reason}", seg.path.display()),
        })
    };
    let mut pos = 0u64;
    while pos < seg.size {
        let want = READ_WINDOW.min((seg.size - pos) as usize);
        read_at(&seg.file, &seg.path, buf, want, pos)?;
        let mut at = 0usize;
        while at + BATCH_HEADER_LEN <= buf.len() {
            let header =
                BatchHeader::parse(&buf[at..]).ok_or_else(|| corrupt(pos, "short header"))?;
            header
                .check_structure()
                .map_err(|reason| corrupt(pos + at as u64, reason))?;
            let len = header.total_len();
            if at + len > buf.len() {
                if at > 0 {
                    break;
                }
                // One batch larger than the window: read it whole. Its
                // length was checked against the segment when it was stored.
                if pos + len as u64 > seg.size {
                    return Err(corrupt(pos, "batch extends beyond segment end"));
                }
                read_at(&seg.file, &seg.path, buf, len, pos)?;
            }
            if !visit(header, &buf[at..at + len])? {
                return Ok(());
            }
            at += len;
        }
        if at == 0 {
            return Err(corrupt(pos, "torn batch"));
        }
        pos += at as u64;
    }
    Ok(())
}

fn read_at(
    file: &File,
    path: &Path,
    buf: &mut Vec<u8>,
    len: usize,
    pos: u64,
) -> Result<(), CleanError> {
    buf.resize(len, 0);
    file.read_exact_at(buf, pos).map_err(segment_io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests;
