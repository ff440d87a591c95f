//! One partition this broker leads: its log, and the single writer task that
//! appends to it.
//!
//! Produce handlers never touch the log themselves. They send their batches
//! to the partition's writer, which takes everything waiting, assigns
//! offsets, and appends it all with one write — group commit — before
//! completing every waiting acknowledgement. Where the flush policy asks for
//! durable commits, the acknowledgements go to the partition's syncer
//! instead: it fdatasyncs once for every group that reached it and then
//! completes them, while the writer already writes the next group. Readers
//! take the log's read lock; fetches parked on `max_wait_ms` are woken
//! through `appended`.

#[cfg(test)]
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use tokio::sync::{Notify, mpsc, oneshot};

use super::blocking::{InlineWrite, off_the_workers};
use super::producer_state::{ProducerStates, SequenceCheck};
use crate::records::{BatchHeader, RecordError, assign_offsets, verify_records, whole_batches};
use crate::replication::Replication;
use crate::storage::{
    AppendError, BatchStamp, CleanError, CleanStats, Cleanable, Cleaner, LogChunk, LogConfig,
    PartitionLog, PendingBatch, StorageError, SyncTicket, latest_valid_snapshot, write_snapshot,
};

/// Most appends taken into one group commit.
const MAX_GROUP: usize = 256;

/// The result of appending one produce request's batches to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The offset after the request's last batch: `acks=all` is answered
    /// once the high watermark reaches it.
    pub end_offset: i64,
}

/// Where an append's outcome goes.
type Reply = oneshot::Sender<Result<Appended, ResponseError>>;

/// A change to the log that follows the partition's leadership: a
/// follower's, in step with its leader's log, or a new leader's epoch.
enum ReplicaWrite {
    /// Batches fetched from the leader, offsets already assigned.
    Append(Bytes),
    /// Drop everything from this offset on (see [`PartitionLog::truncate_to`]).
    TruncateTo(i64),
    /// Drop everything and continue at this offset (see [`PartitionLog::restart_at`]).
    RestartAt(i64),
    /// This broker leads from the log end under this epoch (see
    /// [`PartitionLog::assign_leader_epoch`]).
    LeadUnder(i32),
}

struct ReplicatedJob {
    write: ReplicaWrite,
    /// The log end offset after the write.
    reply: oneshot::Sender<Result<i64, StorageError>>,
}

struct AppendJob {
    batches: Vec<(BatchHeader, Bytes)>,
    /// The leader epoch this broker leads under, as the metadata image the
    /// produce was checked against says: stamped in every batch.
    leader_epoch: i32,
    /// The most its compressed batches may decompress to, when they still
    /// have to be checked against their headers; `None` when none does.
    decompress_cap: Option<usize>,
    reply: Reply,
}

/// The code a produce gets for batches whose records are refused.
pub fn refusal(error: &RecordError) -> ResponseError {
    match error {
        RecordError::UnexpectedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
        RecordError::CountMismatch { .. } => ResponseError::InvalidRecord,
        // Kafka's answer to a batch over its size limit; the Java producer
        // then splits the batch and retries.
        RecordError::DecompressedTooLarge { .. } => ResponseError::MessageTooLarge,
        _ => ResponseError::CorruptMessage,
    }
}

/// How the writer should treat timestamps.
#[derive(Debug, Clone, Copy)]
pub struct WritePolicy {
    pub log_append_time: bool,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub dir: PathBuf,
    log: Arc<RwLock<PartitionLog>>,
    log_end_offset: Arc<AtomicI64>,
    log_start_offset: Arc<AtomicI64>,
    appended: Arc<Notify>,
    appends: mpsc::UnboundedSender<AppendJob>,
    replicated: mpsc::UnboundedSender<ReplicatedJob>,
    /// The high watermark and, while leading with followers, what moves it.
    pub replication: Arc<Replication>,
    /// The leader epoch of the role (leader or follower) this broker last
    /// took up for the partition: produces checked against an older image
    /// are refused, so no batch is stamped with an epoch that is over.
    role_epoch: Arc<AtomicI32>,
    /// The newest epoch in the log's leader-epoch cache (-1: none), as a
    /// follower's fetch names it (`last_fetched_epoch`).
    latest_epoch: Arc<AtomicI32>,
    /// Set when a flush failed: the kernel may have dropped the dirty pages
    /// it could not write, so nothing more is appended or served until the
    /// log is recovered from disk at the next start (Kafka takes the log
    /// directory offline the same way).
    offline: Arc<AtomicBool>,
    /// The writer and syncer; taken when the partition closes or is deleted.
    tasks: std::sync::Mutex<Option<WriterTasks>>,
    /// `cleanup.policy` includes `compact`: produce refuses records without a key.
    compacted: AtomicBool,
}

/// The tasks that append to a partition's log and acknowledge appends.
struct WriterTasks {
    /// Tells the writer to take no more appends and finish those queued.
    stop: oneshot::Sender<()>,
    /// Ends with the producer state of everything it wrote.
    writer: tokio::task::JoinHandle<ProducerStates>,
    /// Ends once the writer has, after completing what it was handed.
    syncer: tokio::task::JoinHandle<()>,
}

impl Partition {
    /// Opens (and recovers) the log in `dir` and starts its writer task.
    pub fn open(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: LogConfig,
        policy: WritePolicy,
    ) -> Result<Arc<Self>, StorageError> {
        let compacted = AtomicBool::new(config.compact);
        let log = PartitionLog::open(&dir, config)?;
        let producers = rebuild_producer_state(&log);
        let active_segment_base = log.active_segment_base();
        let log_end_offset = Arc::new(AtomicI64::new(log.log_end_offset()));
        let latest_epoch = Arc::new(AtomicI32::new(log.latest_leader_epoch().unwrap_or(-1)));
        let role_epoch = Arc::new(AtomicI32::new(-1));
        let log_start_offset = Arc::new(AtomicI64::new(log.log_start_offset()));
        let log = Arc::new(RwLock::new(log));
        let appended = Arc::new(Notify::new());
        let (appends, jobs) = mpsc::unbounded_channel();
        let (replicated, replicated_jobs) = mpsc::unbounded_channel();
        let replication = Arc::new(Replication::open(
            &dir,
            log_end_offset.load(Ordering::Acquire),
        ));
        let (to_syncer, syncs) = mpsc::unbounded_channel();
        let awaiting_sync = Arc::new(AtomicUsize::new(0));
        let offline = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            offline: offline.clone(),
            log: log.clone(),
            log_end_offset: log_end_offset.clone(),
            log_start_offset: log_start_offset.clone(),
            appended: appended.clone(),
            replication: replication.clone(),
            role_epoch: role_epoch.clone(),
            latest_epoch: latest_epoch.clone(),
            producers,
            dir: dir.clone(),
            active_segment_base,
            policy,
            to_syncer,
            awaiting_sync: awaiting_sync.clone(),
        };
        let (stop, stopped) = oneshot::channel();
        let tasks = WriterTasks {
            stop,
            writer: tokio::spawn(writer.run(jobs, replicated_jobs, stopped)),
            syncer: tokio::spawn(run_syncer(
                log.clone(),
                syncs,
                awaiting_sync,
                offline.clone(),
            )),
        };
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index,
            dir,
            log,
            log_end_offset,
            log_start_offset,
            appended,
            appends,
            replicated,
            replication,
            role_epoch,
            latest_epoch,
            offline,
            tasks: std::sync::Mutex::new(Some(tasks)),
            compacted,
        }))
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }
    /// Everything below it is on every ISR member (with one replica: the
    /// log end offset).
    pub fn high_watermark(&self) -> i64 {
        self.replication.high_watermark()
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    /// Queues batches for the writer; the returned receiver completes once
    /// they are in the log. Queuing happens synchronously so that requests
    /// on one connection reach the partition in the order they were sent.
    ///
    /// With `decompress_cap`, the batches' records are first checked against
    /// their headers (see [`verify_records`]) by the writer, off the async
    /// workers: for compressed batches, whose check means decompressing.
    ///
    /// Each batch is stored with `leader_epoch` (the epoch under which this
    /// broker leads the partition) as its partition leader epoch, as Kafka
    /// stamps it.
    pub fn append(
        &self,
        batches: Vec<(BatchHeader, Bytes)>,
        decompress_cap: Option<usize>,
        leader_epoch: i32,
    ) -> oneshot::Receiver<Result<Appended, ResponseError>> {
        let (reply, done) = oneshot::channel();
        let job = AppendJob {
            batches,
            leader_epoch,
            decompress_cap,
            reply,
        };
        if let Err(mpsc::error::SendError(job)) = self.appends.send(job) {
            let _ = job.reply.send(Err(ResponseError::NotLeaderOrFollower));
        }
        done
    }

    /// Appends batches fetched from the leader as they are, offsets and
    /// all (a follower's write); completes with the new log end offset.
    pub fn append_replicated(
        &self,
        records: Bytes,
    ) -> oneshot::Receiver<Result<i64, StorageError>> {
        self.replica_write(ReplicaWrite::Append(records))
    }

    /// Cuts the log back to `offset` (a follower dropping what the leader
    /// may not have); completes with the new log end offset.
    pub fn truncate_to(&self, offset: i64) -> oneshot::Receiver<Result<i64, StorageError>> {
        self.replica_write(ReplicaWrite::TruncateTo(offset))
    }

    /// Empties the log and continues it at `offset` (a follower behind its
    /// leader's log start); completes with the new log end offset.
    pub fn restart_at(&self, offset: i64) -> oneshot::Receiver<Result<i64, StorageError>> {
        self.replica_write(ReplicaWrite::RestartAt(offset))
    }

    /// This broker leads the partition under `leader_epoch`: older
    /// produces are refused from now on, and the epoch starts at the log
    /// end (written by the partition's writer, when new).
    pub fn lead_under(&self, leader_epoch: i32) {
        self.role_epoch.fetch_max(leader_epoch, Ordering::AcqRel);
        if self.latest_epoch() != leader_epoch {
            // The outcome is the log end; a failure is the writer's to log.
            drop(self.replica_write(ReplicaWrite::LeadUnder(leader_epoch)));
        }
    }

    /// This broker follows the partition under `leader_epoch` (or it has
    /// no leader): produces checked against an older image are refused.
    pub fn follow_under(&self, leader_epoch: i32) {
        self.role_epoch.fetch_max(leader_epoch, Ordering::AcqRel);
    }

    /// The newest leader epoch in the log (-1: none).
    pub fn latest_epoch(&self) -> i32 {
        self.latest_epoch.load(Ordering::Acquire)
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch at most `epoch` in
    /// this log and where it ends; (-1, -1) when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.with_log(|log| log.end_offset_for_epoch(epoch))
    }

    /// The leader epoch that wrote `offset`, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.with_log(|log| log.leader_epochs().epoch_for_offset(offset))
    }

    /// Where this follower cuts its log when the leader answers its fetch
    /// with `diverging_epoch` {`epoch`, `end_offset`} (see
    /// [`LeaderEpochCache::truncation_offset`](crate::storage::LeaderEpochCache::truncation_offset)).
    pub fn truncation_offset(&self, epoch: i32, end_offset: i64) -> i64 {
        self.with_log(|log| {
            log.leader_epochs()
                .truncation_offset(epoch, end_offset, log.log_end_offset())
        })
    }

    fn replica_write(&self, write: ReplicaWrite) -> oneshot::Receiver<Result<i64, StorageError>> {
        let (reply, done) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) =
            self.replicated.send(ReplicatedJob { write, reply })
        {
            let _ = job.reply.send(Err(StorageError::Offline));
        }
        done
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Bytes>, StorageError> {
        self.with_online_log(|log| log.read(offset, max_bytes))
    }

    /// The same as [`read`](Self::read), uncopied (see [`LogChunk`]).
    pub fn read_chunks(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<LogChunk>, StorageError> {
        self.with_online_log(|log| log.read_chunks(offset, max_bytes))
    }

    /// Whether a read at `offset` needs no file I/O (see
    /// [`PartitionLog::reads_from_memory`]), so it may run on an async worker.
    pub fn reads_from_memory(&self, offset: i64) -> bool {
        self.is_offline() || self.with_log(|log| log.reads_from_memory(offset))
    }

    /// See [`PartitionLog::offset_for_timestamp_from`].
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        from: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        self.with_online_log(|log| log.offset_for_timestamp_from(timestamp, from))
    }

    pub fn size_bytes(&self) -> u64 {
        self.with_log(|log| log.size_bytes())
    }

    /// Reads only while online: what an offline log holds may not be on disk.
    fn with_online_log<T>(
        &self,
        f: impl FnOnce(&PartitionLog) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if self.is_offline() {
            return Err(StorageError::Offline);
        }
        self.with_log(f)
    }

    fn with_log<T>(&self, f: impl FnOnce(&PartitionLog) -> T) -> T {
        let guard = self
            .log
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }

    fn with_log_mut<T>(&self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        let mut guard = self
            .log
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Periodic housekeeping: time-based flush and retention.
    pub fn tick(&self, now_ms: i64, retention_due: bool) -> Result<usize, StorageError> {
        if self.is_offline() {
            return Ok(0);
        }
        self.with_log_mut(|log| {
            if let Err(error) = log.maybe_flush(now_ms) {
                self.take_offline();
                return Err(error);
            }
            if !retention_due {
                return Ok(0);
            }
            let deleted = log.enforce_retention(now_ms)?;
            self.log_start_offset
                .fetch_max(log.log_start_offset(), Ordering::AcqRel);
            Ok(deleted)
        })
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the
    /// high watermark) and answers the new log start (Kafka's low
    /// watermark) once the move is durable. Blocking: the data below the
    /// new start and the checkpoint are fsynced. Segments entirely below it
    /// go at the next retention check, as in Kafka.
    pub fn delete_records(&self, offset: i64) -> Result<i64, ResponseError> {
        if self.is_offline() {
            return Err(ResponseError::KafkaStorageError);
        }
        let target = if offset == -1 {
            self.high_watermark()
        } else {
            offset
        };
        if target < 0 {
            return Err(ResponseError::OffsetOutOfRange);
        }
        self.with_log_mut(|log| {
            if !log.policy_allows_deletion() {
                // Kafka: "can not be deleted due to the configured policy".
                return Err(ResponseError::PolicyViolation);
            }
            match log.advance_log_start_offset(target) {
                Ok(()) => {
                    let start = log.log_start_offset();
                    self.log_start_offset.fetch_max(start, Ordering::AcqRel);
                    Ok(start)
                }
                Err(StorageError::OffsetOutOfRange { .. }) => Err(ResponseError::OffsetOutOfRange),
                Err(error) => {
                    tracing::error!(%error, topic = %self.topic, partition = self.index, "DeleteRecords failed");
                    if matches!(error, StorageError::SegmentIo { .. }) {
                        // A failed fsync of the log's data: see `offline`.
                        self.take_offline();
                    }
                    Err(ResponseError::KafkaStorageError)
                }
            }
        })
    }

    pub fn set_config(&self, config: LogConfig) {
        self.compacted.store(config.compact, Ordering::Release);
        self.with_log_mut(|log| log.set_config(config));
    }

    /// Whether the topic is compacted, so every record needs a key.
    pub fn is_compacted(&self) -> bool {
        self.compacted.load(Ordering::Acquire)
    }

    /// How much the log needs cleaning (`None`: not compacted or not yet).
    pub fn cleanable(&self, now_ms: i64) -> Option<Cleanable> {
        if self.is_offline() {
            return None;
        }
        self.with_log(|log| log.cleanable(now_ms))
    }

    /// Cleans the log once; blocking, and taking the log's lock only
    /// briefly (see [`Cleaner::clean`]).
    pub fn clean(&self, cleaner: &mut Cleaner, now_ms: i64) -> Result<CleanStats, CleanError> {
        cleaner.clean(&self.log, now_ms)
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        if self.is_offline() {
            return Err(StorageError::Offline);
        }
        self.with_log_mut(|log| log.flush())
            .inspect_err(|_| self.take_offline())
    }

    /// Stops taking appends, then waits until every append queued before
    /// is written and acknowledged (or refused): after this, nothing
    /// touches the log's files but the caller. Answers the writer's
    /// producer state, for the snapshot of a clean shutdown.
    async fn stop_writing(&self) -> Option<ProducerStates> {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        let _ = tasks.stop.send(());
        let producers = tasks.writer.await;
        let synced = tasks.syncer.await;
        if let Some(error) = producers.as_ref().err().or(synced.as_ref().err()) {
            tracing::error!(%error, topic = %self.topic, partition = self.index, "partition writer failed");
        }
        producers.ok()
    }

    /// Stops the writer, then flushes and marks the log cleanly closed, so
    /// no append can land after the marker. An offline log gets no marker,
    /// so the next start recovers it from what really is on disk.
    pub async fn close(self: Arc<Self>) -> Result<(), StorageError> {
        let producers = self.stop_writing().await;
        if self.is_offline() {
            return Err(StorageError::Offline);
        }
        let partition = self.clone();
        tokio::task::spawn_blocking(move || {
            partition.replication.checkpoint(&partition.dir);
            partition.with_log_mut(|log| {
                // Before the clean-shutdown marker: the next start then
                // replays nothing.
                if let Some(producers) = producers {
                    save_snapshot(log.dir(), &producers, log.log_end_offset());
                }
                log.close_in_place()
            })
        })
        .await
        .unwrap_or(Err(StorageError::Offline))
    }

    /// Whether a failed flush took this partition offline (see `offline`).
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    fn take_offline(&self) {
        if !self.offline.swap(true, Ordering::AcqRel) {
            tracing::error!(topic = %self.topic, partition = self.index, "flush failed; partition offline until restart");
        }
    }

    /// Removes the partition's files (topic deletion), once its writer has
    /// stopped. Blocking: called on the blocking pool, inside the runtime.
    pub fn delete(self: Arc<Self>) -> Result<(), StorageError> {
        tokio::runtime::Handle::current().block_on(self.stop_writing());
        self.with_log_mut(|log| log.delete_in_place())
    }
}

/// The producer state of everything in `log`: the newest valid snapshot
/// (see [`latest_valid_snapshot`]), then every batch after it. Without
/// one, the whole log is replayed: a producer idle for long is still known,
/// so its retry is still deduplicated. Blocking.
fn rebuild_producer_state(log: &PartitionLog) -> ProducerStates {
    let started = std::time::Instant::now();
    let end = log.log_end_offset();
    let snapshot = latest_valid_snapshot(log.dir(), end);
    let mut offset = log.log_start_offset();
    if let Some(snapshot) = &snapshot {
        offset = offset.max(snapshot.offset);
    }
    let (snapshot_offset, replayed_from) = (snapshot.as_ref().map(|s| s.offset), offset);
    let mut producers = snapshot
        .map(ProducerStates::from_snapshot)
        .unwrap_or_default();
    while offset < end {
        let Ok(batches) = log.read(offset, 1024 * 1024) else {
            break;
        };
        let before = offset;
        for header in batches.iter().filter_map(|b| BatchHeader::parse(b)) {
            producers.record(&header, header.base_offset);
            offset = header.last_offset() + 1;
        }
        if offset == before {
            break;
        }
    }
    producers.commit();
    tracing::info!(
        dir = %log.dir().display(), snapshot = snapshot_offset.unwrap_or(-1), replayed_from, end,
        elapsed_ms = started.elapsed().as_millis() as u64, "recovered producer state"
    );
    producers
}

/// Writes the committed producer state as the snapshot at `offset`; a
/// failure costs only a longer replay at the next start. Blocking.
fn save_snapshot(dir: &std::path::Path, producers: &ProducerStates, offset: i64) {
    if let Err(error) = write_snapshot(dir, &producers.snapshot(offset)) {
        tracing::warn!(%error, offset, "could not write a producer snapshot");
    }
}

struct Writer {
    log: Arc<RwLock<PartitionLog>>,
    log_end_offset: Arc<AtomicI64>,
    log_start_offset: Arc<AtomicI64>,
    appended: Arc<Notify>,
    replication: Arc<Replication>,
    /// See [`Partition::role_epoch`].
    role_epoch: Arc<AtomicI32>,
    /// See [`Partition::latest_epoch`]: kept by this writer, the only one
    /// to change the newest epoch.
    latest_epoch: Arc<AtomicI32>,
    producers: ProducerStates,
    /// The partition's directory, where producer snapshots go.
    dir: PathBuf,
    /// The active segment's base after the last write: when a write rolls
    /// the log, the producer state is snapshotted.
    active_segment_base: i64,
    policy: WritePolicy,
    to_syncer: mpsc::UnboundedSender<AwaitingSync>,
    /// Groups handed to the syncer and not yet acknowledged. While any are,
    /// later groups queue behind them so acknowledgements stay in order.
    awaiting_sync: Arc<AtomicUsize>,
    offline: Arc<AtomicBool>,
}

/// One group's acknowledgements, to complete once `ticket` (if any) is synced.
struct AwaitingSync {
    ticket: Option<SyncTicket>,
    replies: Vec<(Reply, Result<Appended, ResponseError>)>,
}

/// A job accepted into the current group: its outcome if nothing needs
/// writing, and how many of the group's batches must be written for it.
struct Pending {
    reply: Reply,
    outcome: Result<i64, ResponseError>,
    /// The offset after the job's last batch.
    end_offset: i64,
    /// The job is written once the group's first `written_with` batches are.
    written_with: usize,
}

/// One group, checked and given offsets, waiting to be written.
struct Staged {
    batches: Vec<PendingBatch>,
    headers: Vec<BatchHeader>,
    jobs: Vec<Pending>,
}

impl Writer {
    async fn run(
        mut self,
        mut jobs: mpsc::UnboundedReceiver<AppendJob>,
        mut replicated: mpsc::UnboundedReceiver<ReplicatedJob>,
        mut stop: oneshot::Receiver<()>,
    ) -> ProducerStates {
        let mut group = Vec::new();
        loop {
            tokio::select! {
                taken = jobs.recv_many(&mut group, MAX_GROUP) => {
                    if taken == 0 {
                        return self.producers;
                    }
                    self.commit_group(std::mem::take(&mut group)).await;
                }
                Some(job) = replicated.recv() => {
                    let outcome = match job.write {
                        ReplicaWrite::Append(records) => self.append_replicated(records),
                        ReplicaWrite::TruncateTo(offset) => {
                            self.cut(|log| log.truncate_to(offset))
                        }
                        ReplicaWrite::RestartAt(offset) => self.cut(|log| log.restart_at(offset)),
                        ReplicaWrite::LeadUnder(epoch) => self.lead_under(epoch),
                    };
                    let _ = job.reply.send(outcome);
                }
                _ = &mut stop => break,
            }
        }
        replicated.close();
        // Later appends are refused; those already queued are written, so
        // none is left half-done when the log is closed behind this task.
        jobs.close();
        while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
            self.commit_group(std::mem::take(&mut group)).await;
        }
        self.producers
    }

    async fn commit_group(&mut self, group: Vec<AppendJob>) {
        let now = now_ms();
        let log_append_time = self.policy.log_append_time.then_some(now);
        if self.offline.load(Ordering::Acquire) {
            for job in group {
                let _ = job.reply.send(Err(ResponseError::KafkaStorageError));
            }
            return;
        }
        let group = verify_compressed(group);
        let staged = self.stage(group, log_append_time);
        let (written, ticket) = self.write(&staged);
        let log_start_offset = self.log_start_offset.load(Ordering::Acquire);
        let replies = staged.jobs.into_iter().map(|job| {
            let outcome = match job.outcome {
                Ok(_) if job.written_with > written => Err(ResponseError::KafkaStorageError),
                Ok(base_offset) => Ok(Appended {
                    base_offset,
                    log_append_time: log_append_time.unwrap_or(-1),
                    log_start_offset,
                    end_offset: job.end_offset,
                }),
                Err(error) => Err(error),
            };
            (job.reply, outcome)
        });
        if ticket.is_none() && self.awaiting_sync.load(Ordering::Acquire) == 0 {
            for (reply, outcome) in replies {
                let _ = reply.send(outcome);
            }
            return;
        }
        self.awaiting_sync.fetch_add(1, Ordering::AcqRel);
        let group = AwaitingSync {
            ticket,
            replies: replies.collect(),
        };
        if let Err(mpsc::error::SendError(group)) = self.to_syncer.send(group) {
            // The syncer is gone only if the runtime is shutting down.
            for (reply, _) in group.replies {
                let _ = reply.send(Err(ResponseError::KafkaStorageError));
            }
        }
    }

    /// Checks every batch against its producer's sequence and gives the
    /// accepted ones offsets. Producer state is recorded provisionally (later
    /// batches of the group are checked against it) until [`write`](Self::write).
    fn stage(&mut self, group: Vec<AppendJob>, log_append_time: Option<i64>) -> Staged {
        let mut staged = Staged {
            batches: Vec::new(),
            headers: Vec::new(),
            jobs: Vec::with_capacity(group.len()),
        };
        let mut next_offset = self.log_end_offset.load(Ordering::Acquire);
        // Epochs only go up in the log: a produce checked against an image
        // older than the role this broker holds now, or than a produce
        // before it, is refused, and its client looks for the leader again.
        let mut epoch_floor = self.role_epoch.load(Ordering::Acquire);
        for job in group {
            if job.leader_epoch < epoch_floor {
                staged.jobs.push(Pending {
                    reply: job.reply,
                    outcome: Err(ResponseError::NotLeaderOrFollower),
                    end_offset: next_offset,
                    written_with: staged.batches.len(),
                });
                continue;
            }
            epoch_floor = job.leader_epoch;
            let mut first = None;
            let mut end_offset = next_offset;
            let mut outcome = Ok(0);
            for (header, batch) in &job.batches {
                match self.producers.check(header) {
                    SequenceCheck::Append => {
                        // The log writes the offset and leader epoch beside the
                        // client's bytes; only LogAppendTime changes the body (and
                        // its CRC), so only it copies.
                        let bytes = match log_append_time {
                            Some(_) => {
                                let mut out = BytesMut::with_capacity(batch.len());
                                assign_offsets(&mut out, batch, next_offset, log_append_time);
                                out.freeze()
                            }
                            None => batch.clone(),
                        };
                        staged.batches.push(PendingBatch {
                            stamp: BatchStamp {
                                base_offset: next_offset,
                                partition_leader_epoch: job.leader_epoch,
                            },
                            bytes,
                        });
                        staged.headers.push(*header);
                        self.producers.record(header, next_offset);
                        first.get_or_insert(next_offset);
                        next_offset += i64::from(header.last_offset_delta) + 1;
                        end_offset = next_offset;
                    }
                    SequenceCheck::Duplicate { base_offset } => {
                        first.get_or_insert(base_offset);
                        end_offset = base_offset + i64::from(header.last_offset_delta) + 1;
                    }
                    SequenceCheck::Reject(error) => {
                        outcome = Err(error);
                        break;
                    }
                }
            }
            if outcome.is_ok() {
                outcome = Ok(first.unwrap_or(next_offset));
            }
            staged.jobs.push(Pending {
                reply: job.reply,
                outcome,
                end_offset,
                written_with: staged.batches.len(),
            });
        }
        staged
    }

    /// Writes the staged batches (file I/O: a small write to a fast disk
    /// inline, any other off the async workers; see [`InlineWrite`]); returns how many reached the log and the
    /// durable commit due, if any. Producer state then covers exactly the
    /// batches written, so a retry of one that was not is appended, never
    /// answered as a duplicate of an offset that holds nothing.
    fn write(&mut self, staged: &Staged) -> (usize, Option<SyncTicket>) {
        if staged.batches.is_empty() {
            return (0, None);
        }
        let bytes: usize = staged.batches.iter().map(|batch| batch.bytes.len()).sum();
        let inline = (!self.starts_an_epoch(&staged.batches))
            .then(|| InlineWrite::try_lock(&self.log, bytes))
            .flatten();
        let (written, ticket, ends) = match inline {
            Some((_inline, mut log)) => append_staged(&mut log, &staged.batches),
            None => off_the_workers(|| {
                let mut log = self.log.write().unwrap_or_else(|p| p.into_inner());
                append_staged(&mut log, &staged.batches)
            }),
        };
        // A roll is when the producer state is snapshotted (see `snapshot_producers`).
        let rolled = ends.active_segment_base != self.active_segment_base;
        self.active_segment_base = ends.active_segment_base;
        let (end, start) = self.note_ends(ends);
        if written < staged.batches.len() {
            self.producers.rollback();
            for (header, batch) in staged.headers.iter().zip(&staged.batches).take(written) {
                self.producers.record(header, batch.stamp.base_offset);
            }
        }
        self.producers.commit();
        if rolled {
            self.snapshot_producers(end);
        }
        self.log_end_offset.store(end, Ordering::Release);
        // `fetch_max`: a DeleteRecords may have moved the start since the
        // lock was released, and the start never goes back.
        self.log_start_offset.fetch_max(start, Ordering::AcqRel);
        if written > 0 {
            self.replication.leader_appended(end, now_ms());
            self.appended.notify_waiters();
        }
        (written, ticket)
    }

    /// Whether writing `batches` records a new leader epoch, which saves
    /// the leader-epoch checkpoint with an fsync: never on an async worker.
    fn starts_an_epoch(&self, batches: &[PendingBatch]) -> bool {
        let latest = self.latest_epoch.load(Ordering::Acquire);
        batches.iter().any(|b| {
            let epoch = b.stamp.partition_leader_epoch;
            epoch >= 0 && epoch != latest
        })
    }

    /// Snapshots the producer state at the log end `offset` after a roll
    /// (Kafka does at every roll), so recovery replays at most about a
    /// segment. File I/O and an fsync: off the async workers.
    fn snapshot_producers(&self, offset: i64) {
        off_the_workers(|| save_snapshot(&self.dir, &self.producers, offset));
    }

    /// Takes in the newest epoch after a write; returns the log's end and
    /// start offsets.
    fn note_ends(&self, ends: Ends) -> (i64, i64) {
        self.latest_epoch
            .store(ends.latest_epoch, Ordering::Release);
        (ends.log_end_offset, ends.log_start_offset)
    }

    /// Records that this broker leads from the log end under `epoch`.
    fn lead_under(&mut self, epoch: i32) -> Result<i64, StorageError> {
        if self.offline.load(Ordering::Acquire) {
            return Err(StorageError::Offline);
        }
        let assigned = off_the_workers(|| {
            let mut log = self.log.write().unwrap_or_else(|p| p.into_inner());
            let assigned = log.assign_leader_epoch(epoch);
            (assigned, Ends::of(&log))
        });
        let (end, _) = self.note_ends(assigned.1);
        if let Err(error) = &assigned.0 {
            tracing::warn!(%error, epoch, "could not record the leader epoch's start");
        }
        assigned.0.map(|()| end)
    }

    /// Cuts the log back, then rebuilds the producer state from what is
    /// left, so no producer is deduplicated against batches that are gone.
    fn cut(
        &mut self,
        how: impl FnOnce(&mut PartitionLog) -> Result<(), StorageError> + Send,
    ) -> Result<i64, StorageError> {
        if self.offline.load(Ordering::Acquire) {
            return Err(StorageError::Offline);
        }
        let truncated = off_the_workers(|| {
            let mut log = self.log.write().unwrap_or_else(|p| p.into_inner());
            how(&mut log)?;
            Ok((rebuild_producer_state(&log), Ends::of(&log)))
        });
        match truncated {
            Ok((producers, ends)) => {
                self.producers = producers;
                self.active_segment_base = ends.active_segment_base;
                let (end, start) = self.note_ends(ends);
                self.log_end_offset.store(end, Ordering::Release);
                self.log_start_offset.store(start, Ordering::Release);
                Ok(end)
            }
            Err(error) => {
                // The files may be cut while the log value describes them whole.
                self.offline.store(true, Ordering::Release);
                Err(error)
            }
        }
    }

    /// A follower's append of its leader's batches: written as they are,
    /// with the offsets the leader gave them (no sequence check: the leader
    /// did it), and recorded in the producer state so that this replica,
    /// once leader, deduplicates retries as the old leader would have.
    fn append_replicated(&mut self, records: Bytes) -> Result<i64, StorageError> {
        if self.offline.load(Ordering::Acquire) {
            return Err(StorageError::Offline);
        }
        let mut headers = Vec::new();
        let batches: Vec<PendingBatch> = whole_batches(records)
            .into_iter()
            .filter_map(|bytes| {
                let header = BatchHeader::parse(&bytes)?;
                headers.push(header);
                PendingBatch::verbatim(bytes)
            })
            .collect();
        if batches.is_empty() {
            return Ok(self.log_end_offset.load(Ordering::Acquire));
        }
        let bytes: usize = batches.iter().map(|batch| batch.bytes.len()).sum();
        let inline = (!self.starts_an_epoch(&batches))
            .then(|| InlineWrite::try_lock(&self.log, bytes))
            .flatten();
        let (written, ticket, ends, error) = match inline {
            Some((_inline, mut log)) => append_replicated_batches(&mut log, &batches),
            None => off_the_workers(|| {
                let mut log = self.log.write().unwrap_or_else(|p| p.into_inner());
                append_replicated_batches(&mut log, &batches)
            }),
        };
        // A roll is when the producer state is snapshotted (see `snapshot_producers`).
        let rolled = ends.active_segment_base != self.active_segment_base;
        self.active_segment_base = ends.active_segment_base;
        let (end, start) = self.note_ends(ends);
        for header in headers.iter().take(written) {
            self.producers.record(header, header.base_offset);
        }
        self.producers.commit();
        if rolled {
            self.snapshot_producers(end);
        }
        self.log_end_offset.store(end, Ordering::Release);
        self.log_start_offset.fetch_max(start, Ordering::AcqRel);
        if written > 0 {
            self.appended.notify_waiters();
        }
        if let Some(ticket) = ticket {
            let synced = off_the_workers(|| ticket.sync().map(|()| ticket.up_to()));
            match synced {
                Ok(up_to) => self
                    .log
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .note_synced(up_to),
                Err(error) => {
                    self.offline.store(true, Ordering::Release);
                    return Err(error);
                }
            }
        }
        match error {
            Some(error) => Err(error),
            None => Ok(end),
        }
    }
}

/// What the writer keeps of the log after changing it, read under its lock.
struct Ends {
    log_end_offset: i64,
    log_start_offset: i64,
    /// -1: none.
    latest_epoch: i32,
    active_segment_base: i64,
}

impl Ends {
    fn of(log: &PartitionLog) -> Self {
        Ends {
            log_end_offset: log.log_end_offset(),
            log_start_offset: log.log_start_offset(),
            latest_epoch: log.latest_leader_epoch().unwrap_or(-1),
            active_segment_base: log.active_segment_base(),
        }
    }
}

/// [`append_staged`] for a follower: the leader's offsets, gaps allowed
/// (a compacted leader's log has them).
fn append_replicated_batches(
    log: &mut PartitionLog,
    batches: &[PendingBatch],
) -> (usize, Option<SyncTicket>, Ends, Option<StorageError>) {
    let (written, error) = match log.append_replicated(batches) {
        Ok(_) => (batches.len(), None),
        Err(AppendError { written, source }) => (written, Some(source)),
    };
    let ticket = (written > 0 && log.sync_due()).then(|| log.take_sync_ticket());
    (written, ticket, Ends::of(log), error)
}

/// Appends `batches` to `log`: how many reached it, the durable commit
/// due (if any), and the log's ends after.
fn append_staged(
    log: &mut PartitionLog,
    batches: &[PendingBatch],
) -> (usize, Option<SyncTicket>, Ends) {
    let written = match log.append_pending(batches) {
        Ok(_) => batches.len(),
        Err(AppendError { written, source }) => {
            let refused = batches.len() - written;
            tracing::error!(error = %source, written, refused, "append failed");
            written
        }
    };
    let ticket = (written > 0 && log.sync_due()).then(|| log.take_sync_ticket());
    (written, ticket, Ends::of(log))
}

/// Checks the group's compressed batches (decompression: off the async
/// workers) and answers the jobs whose records are refused; the rest keep
/// their order.
fn verify_compressed(group: Vec<AppendJob>) -> Vec<AppendJob> {
    if group.iter().all(|job| job.decompress_cap.is_none()) {
        return group;
    }
    let verdicts: Vec<Result<(), RecordError>> = off_the_workers(|| {
        group
            .iter()
            .map(|job| {
                // Uncompressed batches were checked by the produce handler.
                job.decompress_cap.map_or(Ok(()), |cap| {
                    job.batches
                        .iter()
                        .filter(|(header, _)| header.is_compressed())
                        .try_for_each(|(header, batch)| verify_records(batch, header, cap))
                })
            })
            .collect()
    });
    let mut accepted = Vec::with_capacity(group.len());
    for (job, verdict) in group.into_iter().zip(verdicts) {
        match verdict {
            Ok(()) => accepted.push(job),
            Err(error) => {
                tracing::debug!(%error, "refused produce");
                let _ = job.reply.send(Err(refusal(&error)));
            }
        }
    }
    accepted
}

/// Completes groups in arrival order, with one fdatasync covering every
/// ticket among those waiting.
async fn run_syncer(
    log: Arc<RwLock<PartitionLog>>,
    mut groups: mpsc::UnboundedReceiver<AwaitingSync>,
    awaiting_sync: Arc<AtomicUsize>,
    offline: Arc<AtomicBool>,
) {
    let mut waiting = Vec::new();
    while groups.recv_many(&mut waiting, MAX_GROUP).await > 0 {
        let mut combined: Option<SyncTicket> = None;
        for group in &mut waiting {
            if let Some(ticket) = group.ticket.take() {
                match &mut combined {
                    Some(first) => first.absorb(ticket),
                    None => combined = Some(ticket),
                }
            }
        }
        // After one failed sync, a later one can succeed without the lost pages.
        let mut failed = offline.load(Ordering::Acquire);
        if let Some(ticket) = combined.filter(|_| !failed) {
            let synced = tokio::task::spawn_blocking(move || {
                ticket
                    .sync()
                    .map(|()| ticket.up_to())
                    .map_err(|error| error.to_string())
            })
            .await
            .unwrap_or_else(|join| Err(join.to_string()));
            match synced {
                Ok(up_to) => log
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .note_synced(up_to),
                Err(error) => {
                    // A failed fsync is not retried: the pages it could not write
                    // may already be marked clean, so a later fsync would succeed
                    // without them.
                    tracing::error!(%error, "durable commit failed; partition offline until restart");
                    offline.store(true, Ordering::Release);
                    failed = true;
                }
            }
        }
        let completed = waiting.len();
        for group in waiting.drain(..) {
            for (reply, outcome) in group.replies {
                let outcome = if failed {
                    Err(ResponseError::KafkaStorageError)
                } else {
                    outcome
                };
                let _ = reply.send(outcome);
            }
        }
        awaiting_sync.fetch_sub(completed, Ordering::AcqRel);
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::split_batches;
    use std::time::Duration;

    fn reply() -> (Reply, oneshot::Receiver<Result<Appended, ResponseError>>) {
        oneshot::channel()
    }

    fn ok() -> Result<Appended, ResponseError> {
        Ok(Appended {
            base_offset: 0,
            log_append_time: -1,
            log_start_offset: 0,
            end_offset: 0,
        })
    }

    #[tokio::test]
    async fn a_failed_fsync_acknowledges_nothing_after_it_and_takes_the_partition_offline() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let log = Arc::new(RwLock::new(log));
        let (to_syncer, groups) = mpsc::unbounded_channel();
        let offline = Arc::new(AtomicBool::new(false));
        let awaiting = Arc::new(AtomicUsize::new(2));
        let syncer = tokio::spawn(run_syncer(log, groups, awaiting, offline.clone()));

        // fsync(2) of a pipe fails with EINVAL, as a failing disk's would with EIO.
        let (pipe, _writer) = std::io::pipe().unwrap();
        let pipe = File::from(std::os::fd::OwnedFd::from(pipe));
        let failing = SyncTicket::for_files(vec![(Arc::new(pipe), "pipe".into())], 1);
        let (first, first_done) = reply();
        to_syncer
            .send(AwaitingSync {
                ticket: Some(failing),
                replies: vec![(first, ok())],
            })
            .unwrap();
        assert_eq!(
            first_done.await.unwrap(),
            Err(ResponseError::KafkaStorageError)
        );
        assert!(offline.load(Ordering::Acquire));

        // A later group whose own sync would succeed is still not
        // acknowledged: the pages the failed fsync lost may be under it.
        let good = SyncTicket::for_files(Vec::new(), 2);
        let (second, second_done) = reply();
        to_syncer
            .send(AwaitingSync {
                ticket: Some(good),
                replies: vec![(second, ok())],
            })
            .unwrap();
        assert_eq!(
            second_done.await.unwrap(),
            Err(ResponseError::KafkaStorageError)
        );
        drop(to_syncer);
        syncer.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_writes_every_queued_append_before_the_clean_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let policy = WritePolicy {
            log_append_time: false,
        };
        let partition =
            Partition::open("t", 0, path.clone(), LogConfig::default(), policy).unwrap();
        let batch = crate::records::v2_batch(&["a", "b"]);
        let pending: Vec<_> = (0..2000)
            .map(|_| partition.append(split_batches(&batch).unwrap(), None, 0))
            .collect();
        partition.clone().close().await.unwrap();

        // Every append was answered by the time close returned, and the log
        // reopened from its clean marker holds exactly the acknowledged ones.
        let mut acknowledged = 0;
        for mut reply in pending {
            match reply.try_recv() {
                Ok(Ok(appended)) => {
                    assert_eq!(appended.base_offset, 2 * acknowledged);
                    acknowledged += 1;
                }
                Ok(Err(_)) => {}
                Err(error) => panic!("an append was still in flight after close: {error}"),
            }
        }
        assert!(path.join(".clean_shutdown").exists());
        let reopened = PartitionLog::open(&path, LogConfig::default()).unwrap();
        assert_eq!(reopened.log_end_offset(), 2 * acknowledged);
        // And nothing more arrives at the files after close.
        let later = partition.append(split_batches(&batch).unwrap(), None, 0);
        assert!(later.await.unwrap().is_err());
    }

    /// Slow I/O under the log's lock (a retention pass deleting a segment,
    /// say) must not stall the workers: the writer, finding the lock held,
    /// hands its write off instead of waiting on a worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_behind_a_held_log_lock_leaves_the_workers_serving() {
        let dir = tempfile::tempdir().unwrap();
        let policy = WritePolicy {
            log_append_time: false,
        };
        // More partitions than workers, each log locked by a slow holder.
        let partitions: Vec<_> = (0..3)
            .map(|i| {
                let path = dir.path().join(format!("t-{i}"));
                Partition::open("t", i, path, LogConfig::default(), policy).unwrap()
            })
            .collect();
        let (locked, is_locked) = std::sync::mpsc::channel();
        let holders: Vec<_> = partitions
            .iter()
            .map(|partition| {
                let (partition, locked) = (partition.clone(), locked.clone());
                std::thread::spawn(move || {
                    partition.with_log_mut(|_| {
                        locked.send(()).unwrap();
                        std::thread::sleep(Duration::from_millis(400));
                    })
                })
            })
            .collect();
        for _ in &partitions {
            is_locked.recv().unwrap();
        }
        let batch = crate::records::v2_batch(&["a"]);
        let appends: Vec<_> = partitions
            .iter()
            .map(|partition| partition.append(split_batches(&batch).unwrap(), None, 0))
            .collect();
        // Meanwhile the runtime keeps running other tasks promptly.
        let mut worst = Duration::ZERO;
        for _ in 0..100 {
            let asked = std::time::Instant::now();
            tokio::spawn(async {}).await.unwrap();
            worst = worst.max(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            worst < Duration::from_millis(200),
            "a task waited {worst:?}"
        );
        for holder in holders {
            holder.join().unwrap();
        }
        for append in appends {
            append.await.unwrap().unwrap();
        }
        for partition in partitions {
            partition.close().await.unwrap();
        }
    }
}
