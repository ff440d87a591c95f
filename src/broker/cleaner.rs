//! The log cleaner's threads: `log.cleaner.threads` OS threads (never the
//! async workers) that each pick the log most in need of compaction, clean
//! it (see `storage::Cleaner`), and sleep `log.cleaner.backoff.ms` when no
//! log needs it. The dedupe buffer and the I/O rate are shared out evenly
//! between the threads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::partition::{Partition, now_ms};
use super::partitions::{Partitions, TopicPartition};
use crate::config::CleanerSettings;
use crate::storage::{CleanError, Cleaner};

/// The running cleaner threads; [`stop`](Self::stop) ends them.
pub struct LogCleaner {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct Shared {
    partitions: Arc<Partitions>,
    /// Logs a thread is cleaning now, so no two threads take the same one.
    busy: Mutex<HashSet<TopicPartition>>,
    /// Logs whose batches could not be read; left alone until restart, as
    /// Kafka marks a partition uncleanable.
    uncleanable: Mutex<HashSet<TopicPartition>>,
    stop: Arc<AtomicBool>,
    /// Wakes sleeping threads when `stop` is raised.
    wake: (Mutex<()>, Condvar),
    backoff: std::time::Duration,
}

impl LogCleaner {
    /// Starts the cleaner threads, unless `log.cleaner.enable` is false or
    /// there are none. Stored batches decompress to at most `max_decompressed`.
    pub fn start(
        settings: &CleanerSettings,
        max_decompressed: usize,
        partitions: Arc<Partitions>,
    ) -> Option<Self> {
        if !settings.enable || settings.threads == 0 {
            return None;
        }
        let shared = Arc::new(Shared {
            partitions,
            busy: Mutex::new(HashSet::new()),
            uncleanable: Mutex::new(HashSet::new()),
            stop: Arc::new(AtomicBool::new(false)),
            wake: (Mutex::new(()), Condvar::new()),
            backoff: settings.backoff,
        });
        let threads = settings.threads;
        let rate = settings.io_max_bytes_per_second.map(|r| r / threads as f64);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let cleaner = Cleaner::new(
                settings.dedupe_buffer_size / threads,
                rate,
                max_decompressed,
                shared.stop.clone(),
            );
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("log-cleaner-{index}"))
                .spawn(move || run(&shared, cleaner));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(error) => tracing::error!(%error, "could not start a log cleaner thread"),
            }
        }
        Some(LogCleaner {
            shared,
            threads: handles,
        })
    }

    /// Stops the threads (a clean in progress is abandoned, leaving its log
    /// as it was) and waits for them. Blocking.
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _guard = self.shared.wake.0.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.1.notify_all();
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, mut cleaner: Cleaner) {
    while !shared.stop.load(Ordering::Acquire) {
        match pick(shared) {
            Some((key, partition)) => {
                clean(shared, &key, &partition, &mut cleaner);
                shared
                    .busy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            }
            None => {
                let guard = shared.wake.0.lock().unwrap_or_else(|p| p.into_inner());
                if !shared.stop.load(Ordering::Acquire) {
                    let _ = shared.wake.1.wait_timeout(guard, shared.backoff);
                }
            }
        }
    }
}

/// The log most in need of cleaning that no other thread is cleaning: an
/// overdue one first (`max.compaction.lag.ms`, tombstones due), then the
/// dirtiest. Marked busy.
fn pick(shared: &Shared) -> Option<(TopicPartition, Arc<Partition>)> {
    let now = now_ms();
    let mut busy = shared.busy.lock().unwrap_or_else(|p| p.into_inner());
    let uncleanable = shared.uncleanable.lock().unwrap_or_else(|p| p.into_inner());
    let best = shared
        .partitions
        .all()
        .into_iter()
        .filter_map(|partition| {
            let key = TopicPartition {
                topic: partition.topic.clone(),
                partition: partition.index,
            };
            if busy.contains(&key) || uncleanable.contains(&key) {
                return None;
            }
            let cleanable = partition.cleanable(now)?;
            Some((cleanable, key, partition))
        })
        .max_by(|a, b| {
            (a.0.overdue, a.0.dirty_ratio)
                .partial_cmp(&(b.0.overdue, b.0.dirty_ratio))
                .unwrap_or(std::cmp::Ordering::Equal)
        })?;
    busy.insert(best.1.clone());
    Some((best.1, best.2))
}

fn clean(shared: &Shared, key: &TopicPartition, partition: &Partition, cleaner: &mut Cleaner) {
    let started = std::time::Instant::now();
    match partition.clean(cleaner, now_ms()) {
        Ok(stats) => {
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                topic = %key.topic, partition = key.partition,
                read_bytes = stats.bytes_read, written_bytes = stats.bytes_written,
                records_removed = stats.records_removed,
                segments_replaced = stats.segments_replaced,
                first_dirty_offset = stats.first_dirty,
                mb_per_second = stats.bytes_read as f64 / 1e6 / seconds.max(1e-9),
                "cleaned log"
            );
        }
        Err(CleanError::Stopped) => {}
        Err(error @ CleanError::UnreadableBatch { .. }) => {
            tracing::error!(%error, topic = %key.topic, partition = key.partition,
                "log cannot be cleaned; leaving it uncompacted until restart");
            shared
                .uncleanable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone());
        }
        Err(error) => {
            tracing::error!(%error, topic = %key.topic, partition = key.partition, "cleaning failed");
        }
    }
}
