//! [`PartitionLog`]: the append-only log of one partition, made of segments.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::batch::BatchHeader;
use super::cache::BatchCache;
use super::leader_epoch::LeaderEpochCache;
use super::recovery::{self, CLEAN_SHUTDOWN_FILE, CLEANER_CHECKPOINT_FILE, RECOVERY_POINT_FILE};
use super::segment::Segment;
use super::{BatchStamp, LogChunk, PendingBatch};
use super::{StorageError, log_dir_io, segment_io};

/// Per-partition log settings (Kafka topic configs). Defaults are Kafka's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll when the active segment would exceed this size (`segment.bytes`). Capped at
    /// `u32::MAX` because index positions are 32-bit.
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is older than this (`segment.ms`), measured
    /// against the timestamps of incoming batches as Kafka does.
    pub segment_roll: Duration,
    /// Delete closed segments whose newest timestamp is older than this; `None` keeps forever.
    pub retention: Option<Duration>,
    /// Delete oldest segments while the log stays at least this big; `None` is unlimited.
    pub retention_bytes: Option<u64>,
    /// A durable commit is due after this many records were appended since the last one
    /// ([`PartitionLog::sync_due`]; the caller syncs the ticket, outside the lock).
    pub flush_interval_messages: u64,
    /// fsync (via [`PartitionLog::maybe_flush`]) when the oldest unflushed append is older.
    pub flush_interval: Option<Duration>,
    /// Approximate bytes of log between sparse index entries.
    pub index_interval_bytes: u64,
    /// Bytes of recently appended batches kept in memory to serve fetches; 0 disables.
    pub cache_bytes: usize,
    /// `cleanup.policy` lists `delete`: retention by time and size applies.
    pub delete: bool,
    /// `cleanup.policy` lists `compact`: the log cleaner keeps the latest record per key.
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone stays once the cleaner kept it.
    pub delete_retention: Duration,
    /// `min.cleanable.dirty.ratio`: clean once this share of the log is dirty.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: segments with newer records are not cleaned.
    pub min_compaction_lag: Duration,
    /// `max.compaction.lag.ms`: clean whatever the ratio once dirty records are older.
    pub max_compaction_lag: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        Self {
            segment_bytes: 1 << 30,
            segment_roll: Duration::from_secs(168 * HOUR),
            retention: Some(Duration::from_secs(168 * HOUR)),
            retention_bytes: None,
            flush_interval_messages: i64::MAX as u64,
            flush_interval: None,
            index_interval_bytes: 4096,
            cache_bytes: 8 << 20,
            delete: true,
            compact: false,
            delete_retention: Duration::from_secs(24 * HOUR),
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: Duration::from_millis(i64::MAX as u64),
        }
    }
}

/// Result of appending one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Wall-clock time of the append in ms since the epoch. The broker reports it only for
    /// topics with `LogAppendTime` (and -1 otherwise, as Kafka does).
    pub log_append_time: i64,
}

/// An append that stopped at a write error after its first `written` batches,
/// which are in the log (and in its state) as if appended alone.
#[derive(Debug, thiserror::Error)]
#[error("append stopped after {written} batches: {source}")]
pub struct AppendError {
    pub written: usize,
    #[source]
    pub source: StorageError,
}

/// Current wall-clock time in ms since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(super) fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The data files a durable commit must fdatasync. Taken under the log's lock
/// ([`PartitionLog::take_sync_ticket`]) and synced outside it, so the next
/// appends are written while the disk flushes the previous ones.
#[derive(Debug, Default)]
pub struct SyncTicket {
    files: Vec<(Arc<File>, PathBuf)>,
    /// The partition directory, once a new segment file was created in it.
    dir: Option<PathBuf>,
    up_to: i64,
}

impl SyncTicket {
    /// Every offset below this is durable once [`sync`](Self::sync) returns.
    pub fn up_to(&self) -> i64 {
        self.up_to
    }

    /// How many files the sync will flush (tests).
    #[cfg(test)]
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Whether the sync also flushes the directory (tests).
    #[cfg(test)]
    pub fn syncs_dir(&self) -> bool {
        self.dir.is_some()
    }

    /// A ticket for these files (tests: a pipe, whose fsync fails, stands in
    /// for a disk that fails one).
    #[cfg(test)]
    pub fn for_files(files: Vec<(Arc<File>, PathBuf)>, up_to: i64) -> Self {
        SyncTicket {
            files,
            dir: None,
            up_to,
        }
    }

    /// Takes over a later ticket: one sync then covers both.
    pub fn absorb(&mut self, later: SyncTicket) {
        for (file, path) in later.files {
            if !self.files.iter().any(|(f, _)| Arc::ptr_eq(f, &file)) {
                self.files.push((file, path));
            }
        }
        self.dir = self.dir.take().or(later.dir);
        self.up_to = self.up_to.max(later.up_to);
    }

    /// One fdatasync per file written since the last ticket, then the
    /// directory if a segment was created (so the new file's name survives).
    pub fn sync(&self) -> Result<(), StorageError> {
        for (file, path) in &self.files {
            file.sync_data().map_err(segment_io(path))?;
        }
        if let Some(dir) = &self.dir {
            recovery::sync_dir(dir)?;
        }
        Ok(())
    }
}

/// What roll decisions need to know about the segment a batch would go into.
struct RollState {
    base: i64,
    size: u64,
    first_ts: Option<i64>,
    created_ms: i64,
}

/// The log of one partition: closed segments plus one active segment receiving appends.
///
/// Not internally synchronized: appends need `&mut self`, reads take `&self` and use positioned
/// reads, so a `RwLock` around it gives concurrent fetches.
/// How an append's base offsets must follow the log end.
#[derive(Debug, Clone, Copy)]
enum Offsets {
    Consecutive,
    Increasing,
}

#[derive(Debug)]
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Segments no longer appended to, by base offset.
    pub(super) closed: BTreeMap<i64, Segment>,
    pub(super) active: Segment,
    pub(super) log_start: i64,
    pub(super) size_bytes: u64,
    pub(super) cache: BatchCache,
    /// The persisted `recovery-point` checkpoint.
    recovery_point: i64,
    /// Every offset below this is fsynced; the checkpoint catches up on the next tick.
    synced_offset: i64,
    /// A segment file was created since the directory was last fsynced.
    dir_needs_sync: bool,
    unflushed_records: u64,
    first_unflushed_ms: Option<i64>,
    /// Where the last clean ended (the `cleaner-offset-checkpoint`): below
    /// it, every key's latest record as of that clean is all there is.
    pub(super) cleaner_checkpoint: i64,
    /// When the earliest tombstone the last clean kept may go.
    pub(super) tombstone_deadline: Option<i64>,
    /// Closed or deleted: the cleaner must not swap segments any more.
    pub(super) retired: bool,
    /// Where each leader epoch starts (see the `epochs` module).
    pub(super) leader_epochs: LeaderEpochCache,
    /// A save of `leader_epochs` failed: the recovery point waits for one.
    pub(super) epochs_unsaved: bool,
}

impl PartitionLog {
    /// Opens or creates the log in `dir`, recovering after a crash (see the `recovery`
    /// module: the `.clean_shutdown` marker decides whether segments are trusted or scanned
    /// from the `recovery-point` checkpoint on). After an unclean open the recovered state is
    /// flushed, so the recovery point equals the log end either way.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, StorageError> {
        let now = now_ms();
        let mut rec = recovery::recover(dir, config.index_interval_bytes, now)?;
        let active = match rec.segments.pop_last() {
            Some((_, seg)) => seg,
            None => Segment::create(dir, rec.log_start, now)?,
        };
        let size_bytes = rec.segments.values().map(|s| s.size).sum::<u64>() + active.size;
        let mut log = Self {
            dir: dir.to_path_buf(),
            cache: BatchCache::new(config.cache_bytes),
            config,
            closed: rec.segments,
            recovery_point: active.next_offset,
            synced_offset: active.next_offset,
            dir_needs_sync: true,
            active,
            log_start: rec.log_start,
            size_bytes,
            unflushed_records: 0,
            first_unflushed_ms: None,
            cleaner_checkpoint: recovery::read_checkpoint(dir, CLEANER_CHECKPOINT_FILE)
                .unwrap_or(0),
            tombstone_deadline: None,
            retired: false,
            leader_epochs: LeaderEpochCache::default(),
            epochs_unsaved: false,
        };
        log.load_leader_epochs(&rec.replayed_epochs)?;
        if rec.was_unclean {
            log.recovery_point = -1;
            log.flush()?;
        }
        tracing::debug!(
            dir = %dir.display(), log_start = log.log_start, log_end = log.log_end_offset(),
            segments = log.segment_count(), "opened partition log"
        );
        Ok(log)
    }

    /// Whether `cleanup.policy` lists `delete`: only then may records be
    /// deleted before the retention limits say (DeleteRecords), as in Kafka.
    pub fn policy_allows_deletion(&self) -> bool {
        self.config.delete
    }

    /// Applies a changed topic config; takes effect for the next append/retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.cache.set_capacity(config.cache_bytes);
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start
    }

    /// Next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    /// Total bytes of all segment `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn segment_count(&self) -> usize {
        self.closed.len() + 1
    }

    /// The base offset of the segment appends go to: it changes when the log rolls.
    pub fn active_segment_base(&self) -> i64 {
        self.active.base_offset
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends batches whose base offsets already continue the log end consecutively. Every
    /// batch is validated before anything is written, so an error leaves the log unchanged.
    /// Batches going to the same segment are written with one positioned write; a batch never
    /// spans segments. Applies the message-count flush policy. One [`AppendInfo`] per batch.
    pub fn append(&mut self, batches: &[Bytes]) -> Result<Vec<AppendInfo>, StorageError> {
        let pending: Vec<PendingBatch> = batches
            .iter()
            .map(|bytes| {
                PendingBatch::verbatim(bytes.clone()).unwrap_or(PendingBatch {
                    stamp: BatchStamp {
                        base_offset: -1,
                        partition_leader_epoch: -1,
                    },
                    bytes: bytes.clone(),
                })
            })
            .collect();
        self.append_pending(&pending).map_err(|e| e.source)
    }

    /// [`append`](Self::append) for batches as clients sent them: each is written with its
    /// stamp (base offset, partition leader epoch) in place of the fields in its bytes (a
    /// vectored write, no copy), and the cache keeps the client's bytes beside that stamp.
    ///
    /// Validation failures leave the log unchanged. A write failure can leave the batches
    /// before it written (a call spanning a segment roll writes one run per segment): the
    /// error says how many, and the log's state covers exactly those, so the caller can
    /// record them and refuse the rest.
    pub fn append_pending(
        &mut self,
        batches: &[PendingBatch],
    ) -> Result<Vec<AppendInfo>, AppendError> {
        self.append_checked(batches, Offsets::Consecutive)
    }

    /// [`append_pending`](Self::append_pending) for a follower copying its
    /// leader: offsets only have to go up, since a compacted leader's log
    /// has gaps between batches.
    pub fn append_replicated(
        &mut self,
        batches: &[PendingBatch],
    ) -> Result<Vec<AppendInfo>, AppendError> {
        self.append_checked(batches, Offsets::Increasing)
    }

    fn append_checked(
        &mut self,
        batches: &[PendingBatch],
        offsets: Offsets,
    ) -> Result<Vec<AppendInfo>, AppendError> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let headers = self
            .validate_append(batches, offsets)
            .map_err(|source| AppendError { written: 0, source })?;
        let now = now_ms();
        let (written, failure) = self.write_runs(batches, &headers, now);
        let mut records = 0u64;
        let infos = batches[..written]
            .iter()
            .zip(&headers)
            .map(|(b, h)| {
                records += h.record_count.max(0) as u64;
                self.cache.push(b.stamp, h.last_offset(), b.bytes.clone());
                AppendInfo {
                    base_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    log_append_time: now,
                }
            })
            .collect();
        if written > 0 {
            self.unflushed_records = self.unflushed_records.saturating_add(records);
            self.first_unflushed_ms.get_or_insert(now);
            self.note_appended_epochs(
                headers[..written]
                    .iter()
                    .map(|h| (h.partition_leader_epoch, h.base_offset)),
            );
        }
        match failure {
            None => Ok(infos),
            Some(source) => Err(AppendError { written, source }),
        }
    }

    /// Writes `batches` one run per segment, rolling between runs; returns how many
    /// were written and the error that stopped the rest, if any.
    fn write_runs(
        &mut self,
        batches: &[PendingBatch],
        headers: &[BatchHeader],
        now: i64,
    ) -> (usize, Option<StorageError>) {
        let mut i = 0;
        while i < batches.len() {
            if self.needs_roll(&self.roll_state(), &headers[i], now)
                && let Err(error) = self.roll(now)
            {
                return (i, Some(error));
            }
            let mut state = self.roll_state();
            let mut end = i;
            while end < batches.len() && (end == i || !self.needs_roll(&state, &headers[end], now))
            {
                state.size += batches[end].bytes.len() as u64;
                state.first_ts.get_or_insert(headers[end].max_timestamp);
                end += 1;
            }
            if let Err(error) = self.write_run(&batches[i..end], &headers[i..end]) {
                return (i, Some(error));
            }
            i = end;
        }
        (i, None)
    }

    /// Whether `flush.interval.messages` asks for a durable commit now.
    pub fn sync_due(&self) -> bool {
        self.unflushed_records > 0 && self.unflushed_records >= self.config.flush_interval_messages
    }

    /// Starts a durable commit of everything appended so far: the files to
    /// fdatasync, handed to the caller so the sync can run without the lock.
    /// Report completion with [`note_synced`](Self::note_synced).
    pub fn take_sync_ticket(&mut self) -> SyncTicket {
        let mut files = Vec::new();
        for seg in self
            .closed
            .values_mut()
            .chain(std::iter::once(&mut self.active))
        {
            if std::mem::take(&mut seg.needs_sync) {
                files.push((seg.file.clone(), seg.log_path()));
            }
        }
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        SyncTicket {
            files,
            dir: std::mem::take(&mut self.dir_needs_sync).then(|| self.dir.clone()),
            up_to: self.log_end_offset(),
        }
    }

    /// Records that a ticket's sync completed; the recovery-point checkpoint
    /// follows on the next [`maybe_flush`](Self::maybe_flush) or flush.
    pub fn note_synced(&mut self, up_to: i64) {
        self.synced_offset = self.synced_offset.max(up_to);
    }

    /// Every offset below this is durable (its sync completed).
    pub fn synced_offset(&self) -> i64 {
        self.synced_offset
    }

    /// A durable commit in place: take a ticket, sync it, note it.
    pub fn commit(&mut self) -> Result<(), StorageError> {
        let ticket = self.take_sync_ticket();
        ticket.sync()?;
        self.note_synced(ticket.up_to());
        Ok(())
    }

    fn validate_append(
        &self,
        batches: &[PendingBatch],
        offsets: Offsets,
    ) -> Result<Vec<BatchHeader>, StorageError> {
        let malformed = |reason: &str| StorageError::MalformedBatch {
            reason: reason.to_string(),
        };
        let mut expected = self.log_end_offset();
        let mut headers = Vec::with_capacity(batches.len());
        for b in batches {
            let mut h = BatchHeader::parse(&b.bytes)
                .ok_or_else(|| malformed("shorter than a v2 header"))?;
            h.base_offset = b.stamp.base_offset;
            h.partition_leader_epoch = b.stamp.partition_leader_epoch;
            h.check_structure().map_err(malformed)?;
            if h.total_len() != b.bytes.len() {
                return Err(malformed("batch length field disagrees with buffer size"));
            }
            let in_order = match offsets {
                Offsets::Consecutive => h.base_offset == expected,
                Offsets::Increasing => h.base_offset >= expected,
            };
            if !in_order {
                return Err(StorageError::NonConsecutiveOffset {
                    expected,
                    found: h.base_offset,
                });
            }
            expected = h.last_offset() + 1;
            headers.push(h);
        }
        Ok(headers)
    }

    fn roll_state(&self) -> RollState {
        RollState {
            base: self.active.base_offset,
            size: self.active.size,
            first_ts: self.active.first_batch_timestamp,
            created_ms: self.active.created_ms,
        }
    }

    /// Whether `h` must go to a new segment. An empty segment always takes the batch.
    fn needs_roll(&self, seg: &RollState, h: &BatchHeader, now: i64) -> bool {
        if seg.size == 0 {
            return false;
        }
        let limit = self.config.segment_bytes.min(u64::from(u32::MAX));
        let roll_ms = millis(self.config.segment_roll);
        let waited = match seg.first_ts {
            Some(t) if t >= 0 => h.max_timestamp.saturating_sub(t),
            _ => now - seg.created_ms,
        };
        seg.size + h.total_len() as u64 > limit
            || h.last_offset() - seg.base > i64::from(u32::MAX)
            || waited > roll_ms
    }

    /// Writes consecutive batches that all belong to the active segment in one call.
    fn write_run(
        &mut self,
        batches: &[PendingBatch],
        headers: &[BatchHeader],
    ) -> Result<(), StorageError> {
        self.active.write_batches_at_end(batches)?;
        let interval = self.config.index_interval_bytes;
        for h in headers {
            let pos = self.active.size;
            self.active.note_batch(pos, h, interval);
            self.size_bytes += h.total_len() as u64;
        }
        Ok(())
    }

    /// Closes the active segment (writing its indexes; fsync is left to the next flush) and
    /// starts a new one at the log end. No-op on an empty active segment.
    pub(super) fn roll(&mut self, now: i64) -> Result<(), StorageError> {
        if self.active.is_empty() {
            return Ok(());
        }
        let fresh = Segment::create(&self.dir, self.log_end_offset(), now)?;
        let old = std::mem::replace(&mut self.active, fresh);
        self.dir_needs_sync = true;
        let base = old.base_offset;
        let old = self.closed.entry(base).or_insert(old);
        // The roll stands even if the indexes cannot be written now: they are
        // written again on the next flush and rebuilt from the segment at recovery.
        if let Err(error) = old.persist(false) {
            tracing::warn!(%error, "could not write the indexes of a rolled segment");
        }
        tracing::debug!(dir = %self.dir.display(), base = self.active.base_offset, "rolled segment");
        Ok(())
    }

    /// Segments in offset order, the active one last.
    pub(super) fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.closed.values().chain(std::iter::once(&self.active))
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` in total but always at
    /// least that first batch. Empty at the log end; `OffsetOutOfRange` outside
    /// `[log_start, log_end]`. Served from memory when the cache reaches back far enough,
    /// otherwise from a single segment file (the next fetch continues in the next one).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Bytes>, StorageError> {
        let mut batches = Vec::new();
        for chunk in self.read_chunks(offset, max_bytes)? {
            match chunk.stamp {
                Some(_) => batches.push(chunk.into_bytes()),
                None => batches.extend(crate::records::whole_batches(chunk.bytes)),
            }
        }
        Ok(batches)
    }

    /// Whether [`read_chunks`](Self::read_chunks) at `offset` needs no file I/O: an
    /// offset out of range, the log end, or batches the cache holds.
    pub fn reads_from_memory(&self, offset: i64) -> bool {
        offset < self.log_start || offset >= self.log_end_offset() || self.cache.covers(offset)
    }

    /// [`read_chunks`](Self::read_chunks) where it needs no file I/O (see
    /// [`reads_from_memory`](Self::reads_from_memory)); `None` when the segment files
    /// must be read.
    fn read_in_memory(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Option<Result<Vec<LogChunk>, StorageError>> {
        let log_end = self.log_end_offset();
        if offset < self.log_start || offset > log_end {
            return Some(Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start,
                log_end,
            }));
        }
        if offset == log_end {
            return Some(Ok(Vec::new()));
        }
        self.cache.read(offset, max_bytes).map(Ok)
    }

    /// What [`read`](Self::read) returns, without copying: cached batches as clients sent
    /// them with the offsets they were given, or one span of a segment file.
    pub fn read_chunks(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<LogChunk>, StorageError> {
        if let Some(answer) = self.read_in_memory(offset, max_bytes) {
            return answer;
        }
        let floor = self.closed.range(..=offset).next_back().map(|(b, _)| *b);
        let from = floor.unwrap_or(i64::MIN);
        for seg in self.segments().filter(|s| s.base_offset >= from) {
            if seg.next_offset > offset {
                let span = seg.read_span(offset, max_bytes)?;
                return Ok(span.map(LogChunk::exact).into_iter().collect());
            }
        }
        Ok(Vec::new())
    }

    /// Kafka ListOffsets by timestamp: the first batch (at or after the log start) whose max
    /// timestamp is `>= timestamp_ms`, as `(offset, that batch's max timestamp)`. The offset is
    /// the batch's base offset, raised to the log start if the batch straddles it.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        self.offset_for_timestamp_from(timestamp_ms, self.log_start)
    }

    /// [`offset_for_timestamp`](Self::offset_for_timestamp) among the batches ending at or
    /// after `from` (raised to the log start): where a lookup goes on when the records of
    /// the batch found that reach the timestamp all lie below the log start.
    pub fn offset_for_timestamp_from(
        &self,
        timestamp_ms: i64,
        from: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let from = from.max(self.log_start);
        for seg in self.segments() {
            if seg.next_offset <= from || seg.max_timestamp < timestamp_ms {
                continue;
            }
            if let Some((offset, ts)) = seg.find_timestamp(timestamp_ms, from)? {
                return Ok(Some((offset.max(from), ts)));
            }
        }
        Ok(None)
    }

    /// fsyncs every segment with unsynced data (normally just the active one and any segment
    /// rolled since the last flush) and its indexes, then advances and persists the recovery
    /// point to the log end.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.commit()?;
        for seg in self.closed.values_mut() {
            seg.persist(true)?;
        }
        self.active.persist(true)?;
        self.checkpoint_recovery_point()
    }

    /// Flushes if `flush_interval` has elapsed since the oldest unflushed append;
    /// otherwise brings the recovery-point checkpoint up to the last durable commit.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if let (Some(interval), Some(first)) = (self.config.flush_interval, self.first_unflushed_ms)
            && now_ms - first >= millis(interval)
        {
            return self.flush();
        }
        if self.recovery_point != self.synced_offset {
            // Recovery trusts segments below the checkpoint and still checks their indexes,
            // so those need writing but not syncing.
            for seg in self.closed.values_mut() {
                seg.persist(false)?;
            }
            self.active.persist(false)?;
            self.checkpoint_recovery_point()?;
        }
        Ok(())
    }

    fn checkpoint_recovery_point(&mut self) -> Result<(), StorageError> {
        if self.recovery_point != self.synced_offset {
            self.save_owed_leader_epochs()?;
            // Not fsynced: a lost update only makes the next recovery scan more.
            recovery::write_checkpoint(&self.dir, RECOVERY_POINT_FILE, self.synced_offset, false)?;
            self.recovery_point = self.synced_offset;
        }
        Ok(())
    }

    /// Flushes and writes the clean shutdown marker, so the next open skips recovery.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.close_in_place()
    }

    /// [`close`](Self::close) for a log shared behind a lock: after it, the
    /// caller must not append again (the marker would then lie).
    pub fn close_in_place(&mut self) -> Result<(), StorageError> {
        self.retired = true;
        self.flush()?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(log_dir_io(&marker))?;
        recovery::sync_dir(&self.dir)
    }

    /// Deletes the whole log directory (topic deletion).
    pub fn delete(mut self) -> Result<(), StorageError> {
        self.delete_in_place()
    }

    /// [`delete`](Self::delete) for a log shared behind a lock; the log
    /// must not be used afterwards.
    pub fn delete_in_place(&mut self) -> Result<(), StorageError> {
        self.retired = true;
        std::fs::remove_dir_all(&self.dir).map_err(log_dir_io(&self.dir))
    }
}
