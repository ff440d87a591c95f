//! An in-memory [`OffsetsLog`] for tests: each partition a list of batches
//! with offsets assigned on append, and failures injected on demand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;

use super::OffsetsLog;
use crate::cluster::BoxFuture;
use crate::records::BatchHeader;

#[derive(Default)]
pub(crate) struct FakeLog {
    partitions: Mutex<HashMap<i32, Vec<Bytes>>>,
    /// The next append fails with this, written or not.
    next_error: Mutex<Option<(ResponseError, bool)>>,
    not_ready: AtomicBool,
    /// The next append is written at once but answered only when this is
    /// released.
    held: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl FakeLog {
    /// The next append fails with `error`; `written` says whether its
    /// batch reaches the log anyway (as after NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// or a timeout).
    pub fn fail_next(&self, error: ResponseError, written: bool) {
        *self.next_error.lock().unwrap() = Some((error, written));
    }

    /// Holds the answer of the next append until the sender is used.
    pub fn hold_next(&self) -> tokio::sync::oneshot::Sender<()> {
        let (release, held) = tokio::sync::oneshot::channel();
        *self.held.lock().unwrap() = Some(held);
        release
    }

    pub fn set_ready(&self, ready: bool) {
        self.not_ready.store(!ready, Ordering::SeqCst);
    }

    pub fn batches(&self, partition: i32) -> Vec<Bytes> {
        self.partitions
            .lock()
            .unwrap()
            .get(&partition)
            .cloned()
            .unwrap_or_default()
    }

    pub fn log_end(&self, partition: i32) -> i64 {
        self.batches(partition)
            .last()
            .and_then(|b| BatchHeader::parse(b))
            .map_or(0, |h| h.last_offset() + 1)
    }

    fn write(&self, partition: i32, batch: &Bytes) -> i64 {
        let base = self.log_end(partition);
        let mut stored = BytesMut::from(&batch[..]);
        // The base offset is outside the CRC, as the partition writer's
        // offset assignment relies on.
        stored[..8].copy_from_slice(&base.to_be_bytes());
        self.partitions
            .lock()
            .unwrap()
            .entry(partition)
            .or_default()
            .push(stored.freeze());
        base
    }
}

impl OffsetsLog for FakeLog {
    fn append(
        &self,
        partition: i32,
        batch: Bytes,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<i64, ResponseError>> {
        let failure = self.next_error.lock().unwrap().take();
        let result = match failure {
            Some((error, written)) => {
                if written {
                    self.write(partition, &batch);
                }
                Err(error)
            }
            None => Ok(self.write(partition, &batch)),
        };
        let held = self.held.lock().unwrap().take();
        Box::pin(async move {
            if let Some(held) = held {
                let _ = held.await;
            }
            result
        })
    }

    fn ready(&self, _partition: i32, _leader_epoch: i32) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }

    fn bounds(&self, partition: i32) -> Option<(i64, i64)> {
        Some((0, self.log_end(partition)))
    }

    fn read(&self, partition: i32, offset: i64, _max_bytes: usize) -> Result<Vec<Bytes>, String> {
        Ok(self
            .batches(partition)
            .into_iter()
            .filter(|b| BatchHeader::parse(b).is_some_and(|h| h.last_offset() >= offset))
            .take(2)
            .collect())
    }

    fn max_decompressed(&self) -> usize {
        1 << 20
    }
}
