//! Spawned tasks that belong to whoever holds them.
//!
//! `tokio::spawn` detaches: the task outlives the code that started it
//! unless someone aborts it. An [`OwnedTask`] aborts its task when dropped,
//! so a task lives exactly as long as its owner — a connection owns its
//! request handlers and its response writer, the broker owns its
//! coordinator client's loops — and stopping an owner stops everything
//! under it: shutdown is a tree, not a hope.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A spawned task, aborted when this handle is dropped. Awaiting it gives
/// the task's output, as awaiting a [`JoinHandle`] does.
#[derive(Debug)]
pub struct OwnedTask<T>(JoinHandle<T>);

impl<T: Send + 'static> OwnedTask<T> {
    /// Spawns `future` on the current runtime, owned by the returned handle.
    pub fn spawn<F>(future: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        OwnedTask(tokio::spawn(future))
    }
}

impl<T> OwnedTask<T> {
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Future for OwnedTask<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for OwnedTask<T> {
    fn drop(&mut self) {
        // A no-op for a task that already finished.
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// Sets its flag when dropped: a task's future is dropped when it is
    /// aborted (or finishes).
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_task() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let task = OwnedTask::spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        assert!(!dropped.load(Ordering::SeqCst));
        drop(task);
        for _ in 0..100 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the task outlived its handle");
    }

    #[tokio::test]
    async fn awaiting_gives_the_output() {
        let task = OwnedTask::spawn(async { 7 });
        assert!(matches!(task.await, Ok(7)));
    }
}
