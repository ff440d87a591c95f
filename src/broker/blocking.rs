//! Blocking file I/O from async code.
//!
//! Two ways, by what the operation costs:
//! - [`off_the_workers`] for work that can take long (disk reads, fsync,
//!   decompression, large writes): the worker hands its other tasks to
//!   another thread first, so no unrelated connection waits behind it;
//! - [`InlineWrite`] for a small buffered write on a healthy disk: a copy
//!   into the page cache that takes microseconds, where handing the worker
//!   away would cost more than the write (measured: the end-to-end p50 at
//!   10k msg/s went from 0.12 to 0.17 ms with every write handed off). At
//!   most one worker writes inline at a time, and never for a while after
//!   an inline write turned out slow, so a disk that stalls holds up at
//!   most one worker, once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock, RwLockWriteGuard, TryLockError};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which blocks on file I/O or heavy CPU work, on this thread
/// after handing this worker's other tasks to another thread (tokio's
/// `block_in_place`): no unrelated connection waits behind the disk, and
/// the caller pays no thread hop — measured against `spawn_blocking` on the
/// produce path, a hop per group cost 18% of acks=all throughput and
/// doubled the end-to-end p50 at 10k msg/s. A current-thread runtime (unit
/// tests, the CLI) has no other worker to hand tasks to, so `f` just runs.
pub fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Writes larger than this are handed off: their copy alone takes long
/// enough that the hand-off is cheap beside it.
pub const INLINE_WRITE_MAX_BYTES: usize = 256 * 1024;
/// An inline write slower than this means the disk (or the page cache's
/// write-back throttling) is not fast right now...
const SLOW_WRITE: Duration = Duration::from_millis(1);
/// ...so every write is handed off for this long.
const SLOW_BACKOFF: Duration = Duration::from_secs(10);

/// Permission to write `RwLock`-guarded file state on this async worker;
/// dropping it (after the write) records how long the write took.
pub struct InlineWrite<'g> {
    gate: &'g InlineGate,
    started: Instant,
}

impl InlineWrite<'static> {
    /// Write-locks `lock` for an inline write of `bytes`, or `None` when
    /// the write must go [`off_the_workers`]: it is large, another worker
    /// is writing inline, a recent inline write was slow, the lock is held
    /// (by someone who may be doing slow I/O under it), or there is no
    /// other worker to keep serving while this one writes.
    pub fn try_lock<T>(
        lock: &RwLock<T>,
        bytes: usize,
    ) -> Option<(InlineWrite<'static>, RwLockWriteGuard<'_, T>)> {
        GATE.try_lock(lock, bytes)
    }
}

impl Drop for InlineWrite<'_> {
    fn drop(&mut self) {
        self.gate.leave(self.started, Instant::now());
    }
}

static GATE: LazyLock<InlineGate> = LazyLock::new(InlineGate::new);

/// Who may write inline: one worker at a time, and no one while the disk
/// is slow.
struct InlineGate {
    busy: AtomicBool,
    epoch: Instant,
    /// Milliseconds after `epoch` before which every write is handed off.
    slow_until_ms: AtomicU64,
}

impl InlineGate {
    fn new() -> Self {
        InlineGate {
            busy: AtomicBool::new(false),
            epoch: Instant::now(),
            slow_until_ms: AtomicU64::new(0),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn try_lock<'l, T>(
        &self,
        lock: &'l RwLock<T>,
        bytes: usize,
    ) -> Option<(InlineWrite<'_>, RwLockWriteGuard<'l, T>)> {
        let workers = Handle::try_current().ok().and_then(|handle| {
            (handle.runtime_flavor() == RuntimeFlavor::MultiThread)
                .then(|| handle.metrics().num_workers())
        })?;
        if workers < 2 || bytes > INLINE_WRITE_MAX_BYTES {
            return None;
        }
        let permit = self.enter(Instant::now())?;
        match lock.try_write() {
            Ok(guard) => Some((permit, guard)),
            Err(TryLockError::Poisoned(poisoned)) => Some((permit, poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn enter(&self, now: Instant) -> Option<InlineWrite<'_>> {
        if self.millis(now) < self.slow_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(InlineWrite {
            gate: self,
            started: now,
        })
    }

    fn leave(&self, started: Instant, now: Instant) {
        let took = now.saturating_duration_since(started);
        if took > SLOW_WRITE {
            tracing::debug!(?took, "slow inline write; handing writes off for a while");
            self.slow_until_ms
                .fetch_max(self.millis(now + SLOW_BACKOFF), Ordering::Relaxed);
        }
        self.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_inline_writer_at_a_time() {
        let gate = InlineGate::new();
        let now = Instant::now();
        let first = gate.enter(now).expect("a free gate admits");
        assert!(gate.enter(now).is_none(), "a second writer is handed off");
        drop(first);
        assert!(gate.enter(Instant::now()).is_some());
    }

    #[test]
    fn a_slow_write_hands_writes_off_for_the_backoff() {
        let gate = InlineGate::new();
        let start = Instant::now();
        let permit = gate.enter(start).unwrap();
        gate.leave(start, start + SLOW_WRITE * 5);
        std::mem::forget(permit); // left by hand above, with a chosen clock
        let after = start + SLOW_WRITE * 5;
        assert!(gate.enter(after + Duration::from_secs(1)).is_none());
        assert!(
            gate.enter(after + SLOW_BACKOFF + Duration::from_millis(2))
                .is_some()
        );
    }

    #[test]
    fn fast_writes_keep_the_gate_open() {
        let gate = InlineGate::new();
        let start = Instant::now();
        for i in 0..100 {
            let at = start + Duration::from_micros(i * 50);
            let permit = gate.enter(at).expect("admitted");
            gate.leave(at, at + Duration::from_micros(20));
            std::mem::forget(permit);
        }
    }

    #[test]
    fn no_inline_write_outside_a_multi_thread_runtime() {
        let lock = RwLock::new(0);
        assert!(InlineGate::new().try_lock(&lock, 10).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_writes_and_held_locks_are_handed_off() {
        let (gate, lock) = (InlineGate::new(), RwLock::new(0));
        assert!(gate.try_lock(&lock, INLINE_WRITE_MAX_BYTES + 1).is_none());
        let held = lock.read().unwrap();
        assert!(gate.try_lock(&lock, 10).is_none());
        drop(held);
        assert!(gate.try_lock(&lock, 10).is_some());
    }
}
