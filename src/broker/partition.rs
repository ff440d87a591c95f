//! One partition this broker leads: its log, and the single writer task that
//! appends to it.
//!
//! Produce handlers never touch the log themselves. They send their batches
//! to the partition's writer, which takes everything waiting, assigns
//! offsets, and appends it all with one write (and, where the flush policy
//! asks, one fsync) — group commit — before completing every waiting
//! acknowledgement. Readers take the log's read lock; fetches parked on
//! `max_wait_ms` are woken through `appended`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use tokio::sync::{Notify, mpsc, oneshot};

use super::producer_state::{ProducerStates, SequenceCheck};
use crate::records::{BatchHeader, assign_offsets};
use crate::storage::{LogChunk, LogConfig, PartitionLog, PendingBatch, StorageError};

/// Most appends taken into one group commit.
const MAX_GROUP: usize = 256;

/// The result of appending one produce request's batches to a partition.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

struct AppendJob {
    batches: Vec<(BatchHeader, Bytes)>,
    reply: oneshot::Sender<Result<Appended, ResponseError>>,
}

/// How the writer should treat timestamps and durability.
#[derive(Debug, Clone, Copy)]
pub struct WritePolicy {
    pub log_append_time: bool,
    /// fsync may happen on append: run appends off the async workers.
    pub blocking_appends: bool,
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
        let log = PartitionLog::open(&dir, config)?;
        let mut producers = ProducerStates::default();
        rebuild_producer_state(&log, &mut producers);
        let log_end_offset = Arc::new(AtomicI64::new(log.log_end_offset()));
        let log_start_offset = Arc::new(AtomicI64::new(log.log_start_offset()));
        let log = Arc::new(RwLock::new(log));
        let appended = Arc::new(Notify::new());
        let (appends, jobs) = mpsc::unbounded_channel();
        let writer = Writer {
            log: log.clone(),
            log_end_offset: log_end_offset.clone(),
            log_start_offset: log_start_offset.clone(),
            appended: appended.clone(),
            producers,
            policy,
        };
        tokio::spawn(writer.run(jobs));
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index,
            dir,
            log,
            log_end_offset,
            log_start_offset,
            appended,
            appends,
        }))
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }
    /// Single replica: everything appended is committed.
    pub fn high_watermark(&self) -> i64 {
        self.log_end_offset()
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
    pub fn append(
        &self,
        batches: Vec<(BatchHeader, Bytes)>,
    ) -> oneshot::Receiver<Result<Appended, ResponseError>> {
        let (reply, done) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.appends.send(AppendJob { batches, reply }) {
            let _ = job.reply.send(Err(ResponseError::NotLeaderOrFollower));
        }
        done
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Bytes>, StorageError> {
        self.with_log(|log| log.read(offset, max_bytes))
    }

    /// The same as [`read`](Self::read), uncopied (see [`LogChunk`]).
    pub fn read_chunks(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<LogChunk>, StorageError> {
        self.with_log(|log| log.read_chunks(offset, max_bytes))
    }

    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        self.with_log(|log| log.offset_for_timestamp(timestamp))
    }

    pub fn size_bytes(&self) -> u64 {
        self.with_log(|log| log.size_bytes())
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
        self.with_log_mut(|log| {
            log.maybe_flush(now_ms)?;
            if !retention_due {
                return Ok(0);
            }
            let deleted = log.enforce_retention(now_ms)?;
            self.log_start_offset
                .store(log.log_start_offset(), Ordering::Release);
            Ok(deleted)
        })
    }

    pub fn set_config(&self, config: LogConfig) {
        self.with_log_mut(|log| log.set_config(config));
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        self.with_log_mut(|log| log.flush())
    }

    /// Flushes and marks the log cleanly closed. The writer stops once the
    /// last handle is dropped.
    pub fn close(self: Arc<Self>) -> Result<(), StorageError> {
        self.with_log_mut(|log| log.close_in_place())
    }

    /// Removes the partition's files (topic deletion).
    pub fn delete(self: Arc<Self>) -> Result<(), StorageError> {
        self.with_log_mut(|log| log.delete_in_place())
    }
}

fn rebuild_producer_state(log: &PartitionLog, producers: &mut ProducerStates) {
    // Only a producer's last few batches matter for deduplication, so the
    // tail of the log is enough; this keeps start-up fast on large logs.
    const TAIL_OFFSETS: i64 = 10_000;
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset().max(end - TAIL_OFFSETS);
    while offset < end {
        let Ok(batches) = log.read(offset, 1024 * 1024) else {
            return;
        };
        let before = offset;
        for header in batches.iter().filter_map(|b| BatchHeader::parse(b)) {
            producers.record(&header, header.base_offset);
            offset = header.last_offset() + 1;
        }
        if offset == before {
            return;
        }
    }
}

struct Writer {
    log: Arc<RwLock<PartitionLog>>,
    log_end_offset: Arc<AtomicI64>,
    log_start_offset: Arc<AtomicI64>,
    appended: Arc<Notify>,
    producers: ProducerStates,
    policy: WritePolicy,
}

/// A job accepted into the current group, with where its batches landed.
struct Pending {
    reply: oneshot::Sender<Result<Appended, ResponseError>>,
    outcome: Result<i64, ResponseError>,
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<AppendJob>) {
        let mut group = Vec::new();
        while jobs.recv_many(&mut group, MAX_GROUP).await > 0 {
            self.commit_group(std::mem::take(&mut group)).await;
        }
    }

    async fn commit_group(&mut self, group: Vec<AppendJob>) {
        let now = now_ms();
        let log_append_time = self.policy.log_append_time.then_some(now);
        let mut batches: Vec<PendingBatch> = Vec::new();
        let mut pending = Vec::with_capacity(group.len());
        let mut next_offset = self.log_end_offset.load(Ordering::Acquire);
        for job in group {
            let mut first = None;
            let mut outcome = Ok(0);
            for (header, batch) in &job.batches {
                match self.producers.check(header) {
                    SequenceCheck::Append => {
                        // The log writes the offset beside the client's bytes; only
                        // LogAppendTime changes the body (and its CRC), so only it copies.
                        let bytes = match log_append_time {
                            Some(_) => {
                                let mut out = BytesMut::with_capacity(batch.len());
                                assign_offsets(&mut out, batch, next_offset, log_append_time);
                                out.freeze()
                            }
                            None => batch.clone(),
                        };
                        batches.push(PendingBatch {
                            base_offset: next_offset,
                            bytes,
                        });
                        self.producers.record(header, next_offset);
                        first.get_or_insert(next_offset);
                        next_offset += i64::from(header.last_offset_delta) + 1;
                    }
                    SequenceCheck::Duplicate { base_offset } => {
                        first.get_or_insert(base_offset);
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
            pending.push(Pending {
                reply: job.reply,
                outcome,
            });
        }

        let mut result = Ok(());
        if !batches.is_empty() {
            let log = self.log.clone();
            let append = move || {
                let mut guard = log.write().unwrap_or_else(|p| p.into_inner());
                guard
                    .append_pending(&batches)
                    .map(|_| (guard.log_end_offset(), guard.log_start_offset()))
                    .map_err(|error| error.to_string())
            };
            let appended = if self.policy.blocking_appends {
                tokio::task::spawn_blocking(append)
                    .await
                    .unwrap_or_else(|join| Err(join.to_string()))
            } else {
                append()
            };
            match appended {
                Ok((end, start)) => {
                    self.log_end_offset.store(end, Ordering::Release);
                    self.log_start_offset.store(start, Ordering::Release);
                    self.appended.notify_waiters();
                }
                Err(error) => {
                    tracing::error!(%error, "append failed");
                    result = Err(ResponseError::KafkaStorageError);
                }
            }
        }
        let log_start_offset = self.log_start_offset.load(Ordering::Acquire);
        for job in pending {
            let reply = match (&result, job.outcome) {
                (Err(error), _) => Err(*error),
                (Ok(()), Err(error)) => Err(error),
                (Ok(()), Ok(base_offset)) => Ok(Appended {
                    base_offset,
                    log_append_time: log_append_time.unwrap_or(-1),
                    log_start_offset,
                }),
            };
            let _ = job.reply.send(reply);
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
