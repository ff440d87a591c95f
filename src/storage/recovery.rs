//! Opening a log directory: loading segments, crash recovery and checkpoint files.
//!
//! Clean shutdown is recorded by the marker file [`CLEAN_SHUTDOWN_FILE`]. When it is present the
//! segments are trusted: indexes are loaded and only the tail after the last index entry is
//! replayed (header checks, no CRC). When it is absent, every segment at or after the persisted
//! recovery point is scanned batch by batch (length, magic, offset continuity, CRC-32C), its
//! indexes are rebuilt, and the log is truncated at the first torn or corrupt batch; segments
//! after a truncation point are deleted because their offsets no longer follow.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::batch::{BatchHeader, crc_matches};
use super::index::{OffsetIndex, TimeIndex};
use super::segment::{self, Segment};
use super::{StorageError, log_dir_io, segment_io};

/// Marker written by a clean close; its absence at open means the process crashed.
pub(super) const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
/// Decimal offset below which every batch is known to be fsynced.
pub(super) const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Decimal log start offset.
pub(super) const LOG_START_FILE: &str = "log-start-offset";
/// Decimal offset where the log cleaner's last clean ended.
pub(super) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// State reconstructed from a log directory.
pub(super) struct Recovered {
    pub segments: BTreeMap<i64, Segment>,
    pub log_start: i64,
    /// Whether a crash was detected (callers flush so the recovered state becomes durable).
    pub was_unclean: bool,
    /// (leader epoch, base offset) of each replayed batch that started a
    /// newer epoch than the batches replayed before it: what the
    /// leader-epoch checkpoint may not have recorded yet.
    pub replayed_epochs: Vec<(i32, i64)>,
}

/// Reads a checkpoint. `None` if missing or unreadable as a number: callers fall back to the
/// conservative value, which is always safe (a lower recovery point just scans more).
pub(super) fn read_checkpoint(dir: &Path, name: &str) -> Option<i64> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).ok()?;
    let parsed = text.trim().parse().ok();
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "ignoring unparsable checkpoint");
    }
    parsed
}

/// Atomically replaces a checkpoint via write-to-temp + rename. With `durable`, the temp file
/// and the directory are fsynced so the new value survives a crash.
pub(super) fn write_checkpoint(
    dir: &Path,
    name: &str,
    value: i64,
    durable: bool,
) -> Result<(), StorageError> {
    write_checkpoint_text(dir, name, &format!("{value}\n"), durable)
}

/// [`write_checkpoint`] of any text.
pub(super) fn write_checkpoint_text(
    dir: &Path,
    name: &str,
    text: &str,
    durable: bool,
) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::File::create(&tmp).map_err(log_dir_io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(log_dir_io(&tmp))?;
    if durable {
        f.sync_data().map_err(log_dir_io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(log_dir_io(&path))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(log_dir_io(dir))
}

/// Opens or creates the log in `dir`, recovering from a crash if needed.
pub(super) fn recover(
    dir: &Path,
    index_interval: u64,
    now_ms: i64,
) -> Result<Recovered, StorageError> {
    std::fs::create_dir_all(dir).map_err(log_dir_io(dir))?;
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    if clean {
        // Durably forget the clean state before accepting writes, so a later crash is noticed.
        std::fs::remove_file(&marker).map_err(log_dir_io(&marker))?;
        sync_dir(dir)?;
    }
    let recovery_point = if clean {
        i64::MAX
    } else {
        read_checkpoint(dir, RECOVERY_POINT_FILE).unwrap_or(0)
    };
    finish_swaps(dir)?;
    let bases = segment_bases(dir)?;
    let mut segments = BTreeMap::new();
    let mut replayed_epochs = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        let verify = !clean && (is_last || bases[i + 1] > recovery_point);
        let load = Load {
            verify,
            index_interval,
            now_ms,
        };
        let (seg, truncated) = load_segment(dir, base, load, &mut replayed_epochs)?;
        segments.insert(base, seg);
        if truncated && !is_last {
            for &later in &bases[i + 1..] {
                tracing::warn!(dir = %dir.display(), base = later, "deleting segment after truncation point");
                remove_segment_files(dir, later)?;
            }
            break;
        }
    }
    let checkpoint_start = read_checkpoint(dir, LOG_START_FILE).unwrap_or(0).max(0);
    if segments.is_empty() {
        let seg = Segment::create(dir, checkpoint_start, now_ms)?;
        segments.insert(checkpoint_start, seg);
    }
    let first_base = segments.keys().next().copied().unwrap_or(0);
    let log_end = segments
        .values()
        .next_back()
        .map_or(first_base, |s| s.next_offset);
    let mut log_start = checkpoint_start.max(first_base);
    if log_start > log_end {
        tracing::warn!(dir = %dir.display(), log_start, log_end, "log start beyond recovered log end; clamping");
        log_start = log_end;
    }
    Ok(Recovered {
        segments,
        log_start,
        was_unclean: !clean,
        replayed_epochs,
    })
}

/// Completes what a crash interrupted in the log cleaner (see the
/// `cleaner` module): a `.log.cleaned` file was never swapped in and is
/// deleted; a `.log.swap` file was fsynced before it got that name, so the
/// swap is finished: the old segments it replaces (the first one and those
/// whose base offset its records reach) are deleted and it becomes `.log`.
fn finish_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut swaps = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(log_dir_io(dir))? {
        let entry = entry.map_err(log_dir_io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".log.cleaned") {
            tracing::warn!(dir = %dir.display(), file = name, "deleting an unfinished cleaned segment");
            segment::remove_if_exists(&entry.path())?;
        } else if let Some(stem) = name.strip_suffix(".log.swap")
            && let Ok(base) = stem.parse::<i64>()
        {
            swaps.push((base, entry.path()));
        }
    }
    if swaps.is_empty() {
        return Ok(());
    }
    let bases = segment_bases(dir)?;
    for (base, swap) in swaps {
        let end = swap_end_offset(&swap)?;
        tracing::warn!(dir = %dir.display(), base, end, "finishing an interrupted segment swap");
        for &old in bases.iter().filter(|&&b| b > base && b < end) {
            remove_segment_files(dir, old)?;
        }
        segment::remove_if_exists(&segment::index_path(dir, base))?;
        segment::remove_if_exists(&segment::time_index_path(dir, base))?;
        sync_dir(dir)?;
        let log = segment::log_path(dir, base);
        std::fs::rename(&swap, &log).map_err(segment_io(&log))?;
        sync_dir(dir)?;
    }
    Ok(())
}

/// One past the last offset of the batches in a swap file.
fn swap_end_offset(path: &Path) -> Result<i64, StorageError> {
    let file = std::fs::File::open(path).map_err(segment_io(path))?;
    let size = file.metadata().map_err(segment_io(path))?.len();
    let mut header = [0u8; super::BATCH_HEADER_LEN];
    let (mut pos, mut end) = (0u64, 0i64);
    while pos + header.len() as u64 <= size {
        file.read_exact_at(&mut header, pos)
            .map_err(segment_io(path))?;
        let Some(h) = BatchHeader::parse(&header).filter(|h| h.check_structure().is_ok()) else {
            break;
        };
        end = end.max(h.last_offset() + 1);
        pos += h.total_len() as u64;
    }
    Ok(end)
}

/// Base offsets of all `.log` files in `dir`, ascending.
fn segment_bases(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(log_dir_io(dir))? {
        let entry = entry.map_err(log_dir_io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 20
            && let Ok(base) = stem.parse::<i64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn remove_segment_files(dir: &Path, base: i64) -> Result<(), StorageError> {
    segment::remove_if_exists(&segment::log_path(dir, base))?;
    segment::remove_if_exists(&segment::index_path(dir, base))?;
    segment::remove_if_exists(&segment::time_index_path(dir, base))
}

/// How one segment is loaded.
struct Load {
    /// Scan every batch with its CRC (after a crash), not just the tail.
    verify: bool,
    index_interval: u64,
    now_ms: i64,
}

/// Loads one segment. Returns whether its file had to be truncated.
fn load_segment(
    dir: &Path,
    base: i64,
    load: Load,
    epochs: &mut Vec<(i32, i64)>,
) -> Result<(Segment, bool), StorageError> {
    let Load {
        verify,
        index_interval,
        now_ms,
    } = load;
    let path = segment::log_path(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(segment_io(&path))?;
    let file_size = file.metadata().map_err(segment_io(&path))?.len();
    let mut seg = Segment::with_file(dir, base, file, now_ms);
    let mut seeded = false;
    if !verify && let Some((offsets, times)) = load_indexes(dir, base, file_size)? {
        seg.seed_from_indexes(offsets, times);
        seeded = true;
    }
    let start = seg.size;
    let mut fault = replay(&mut seg, file_size, verify, index_interval, epochs)?;
    if seeded && start > 0 && fault.is_some_and(|(pos, _)| pos == start) {
        // The index points somewhere that is not a batch boundary: distrust it and rebuild.
        tracing::warn!(path = %path.display(), "index inconsistent with segment; rebuilding");
        seg.reset();
        fault = replay(&mut seg, file_size, verify, index_interval, epochs)?;
    }
    if seg.first_batch_timestamp.is_none() && seg.size > 0 {
        seg.first_batch_timestamp = Some(seg.read_header(0)?.max_timestamp);
    }
    let truncated = match fault {
        Some((pos, reason)) => {
            tracing::warn!(
                path = %path.display(), position = pos, file_size, reason,
                "truncating segment at first invalid batch"
            );
            seg.truncate_file()?;
            true
        }
        None => false,
    };
    if verify || truncated {
        // Indexes were rebuilt (or may reference cut data): rewrite them from scratch.
        seg.offset_index.force_rewrite();
        seg.time_index.force_rewrite();
        seg.needs_sync = true;
        seg.persist(false)?;
    }
    Ok((seg, truncated))
}

/// Loads both index files if present and consistent with a segment of `file_size` bytes.
fn load_indexes(
    dir: &Path,
    base: i64,
    file_size: u64,
) -> Result<Option<(OffsetIndex, TimeIndex)>, StorageError> {
    let ip = segment::index_path(dir, base);
    let tp = segment::time_index_path(dir, base);
    let offsets = OffsetIndex::read_file(&ip).map_err(segment_io(&ip))?;
    let times = TimeIndex::read_file(&tp).map_err(segment_io(&tp))?;
    let (Some(offsets), Some(times)) = (offsets, times) else {
        return Ok(None);
    };
    let max_rel = offsets.last().map_or(0, |e| e.rel);
    if !OffsetIndex::is_consistent(&offsets, file_size)
        || !TimeIndex::is_consistent(&times, max_rel)
    {
        return Ok(None);
    }
    Ok(Some((
        OffsetIndex::loaded(offsets),
        TimeIndex::loaded(times),
    )))
}

/// Replays batches from `seg.size` to `file_size`, updating `seg` and noting in `epochs` each
/// batch that starts a newer leader epoch. Stops at the first batch that is torn or invalid
/// and returns its position and why; `seg.size` is then the valid length.
fn replay(
    seg: &mut Segment,
    file_size: u64,
    verify_crc: bool,
    index_interval: u64,
    epochs: &mut Vec<(i32, i64)>,
) -> Result<Option<(u64, &'static str)>, StorageError> {
    let path = seg.log_path();
    let mut header = [0u8; super::BATCH_HEADER_LEN];
    let mut body = Vec::new();
    loop {
        let pos = seg.size;
        if pos == file_size {
            return Ok(None);
        }
        if pos + header.len() as u64 > file_size {
            return Ok(Some((pos, "torn batch header")));
        }
        seg.file
            .read_exact_at(&mut header, pos)
            .map_err(segment_io(&path))?;
        let Some(h) = BatchHeader::parse(&header) else {
            return Ok(Some((pos, "short header")));
        };
        if let Err(reason) = h.check_structure() {
            return Ok(Some((pos, reason)));
        }
        // Compaction leaves gaps (Kafka's cleaner keeps offsets), but
        // offsets never go back.
        if h.base_offset < seg.next_offset {
            return Ok(Some((pos, "base offset goes back from previous batch")));
        }
        if h.last_offset() - seg.base_offset > i64::from(u32::MAX) {
            return Ok(Some((pos, "offset beyond segment's relative range")));
        }
        let total = h.total_len() as u64;
        if pos + total > file_size {
            return Ok(Some((pos, "torn batch body")));
        }
        if verify_crc {
            body.resize(total as usize, 0);
            seg.file
                .read_exact_at(&mut body, pos)
                .map_err(segment_io(&path))?;
            if !crc_matches(&body) {
                return Ok(Some((pos, "CRC-32C mismatch")));
            }
        }
        seg.note_batch(pos, &h, index_interval);
        let epoch = h.partition_leader_epoch;
        if epoch >= 0 && epochs.last().is_none_or(|(last, _)| epoch > *last) {
            epochs.push((epoch, h.base_offset));
        }
    }
}
