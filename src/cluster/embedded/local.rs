//! The single node's committer: proposals made durable in its own
//! [`CommandLog`] before the image moves past them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LOG_TAIL_ENTRIES;
use crate::cluster::ClusterError;
use crate::cluster::command_log::{CommandLog, LogEntry};
use crate::cluster::metadata::{ApplyOutcome, Command, MetadataImage};

/// The local committer's state, changed together: `image` reflects exactly
/// the log's entries, so the next command's index is
/// `image.last_applied + 1`.
pub(super) struct Committed {
    pub(super) image: Arc<MetadataImage>,
    /// The std mutex only lets a blocking thread borrow the log for the
    /// `fdatasync`; the async mutex around `Committed` orders proposals.
    pub(super) log: Arc<StdMutex<CommandLog>>,
    pub(super) log_path: PathBuf,
    /// The append in flight. It outlives its proposer if that is cancelled,
    /// and is then settled by the next proposer's turn.
    pub(super) pending: Option<PendingAppend>,
    /// The newest committed entries, oldest first, ending at `image`; what
    /// [`EmbeddedCoordinator::read_log`] serves without touching the disk.
    pub(super) tail: VecDeque<LogEntry>,
}

/// An append running on a blocking thread and the image it commits.
pub(super) struct PendingAppend {
    image: Arc<MetadataImage>,
    entry: LogEntry,
    task: JoinHandle<Result<(), ClusterError>>,
}

impl Committed {
    /// Makes `image` (the result of `entry`) the committed state.
    fn commit(&mut self, image: Arc<MetadataImage>, entry: LogEntry) {
        self.image = image;
        if self.tail.len() >= LOG_TAIL_ENTRIES {
            self.tail.pop_front();
        }
        self.tail.push_back(entry);
    }

    /// Settles an append left behind by a cancelled proposal: its image is
    /// committed exactly when it succeeded, so the image keeps matching
    /// the log.
    pub(super) async fn settle(&mut self, images: &watch::Sender<Arc<MetadataImage>>) {
        // Awaited in place, so cancelling this wait leaves it for the next.
        let outcome = match self.pending.as_mut() {
            Some(pending) => Some((&mut pending.task).await),
            None => None,
        };
        if let (Some(outcome), Some(pending)) = (outcome, self.pending.take()) {
            match outcome {
                Ok(Ok(())) => {
                    self.commit(pending.image, pending.entry);
                    images.send_replace(Arc::clone(&self.image));
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "an abandoned metadata log append failed");
                }
                Err(error) => {
                    tracing::error!(%error, "an abandoned metadata log append panicked");
                }
            }
        }
    }

    /// Logs `command` (already checked against `self.image`), then commits
    /// and publishes the image it yields.
    pub(super) async fn append(
        &mut self,
        images: &watch::Sender<Arc<MetadataImage>>,
        command: Command,
    ) -> Result<ApplyOutcome, ClusterError> {
        let index = self.image.last_applied + 1;
        let mut next = MetadataImage::clone(&self.image);
        let outcome = next.apply(index, &command)?;
        let entry = LogEntry { index, command };
        let log = Arc::clone(&self.log);
        let log_path = self.log_path.clone();
        let next = Arc::new(next);
        let to_write = entry.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut log = log.lock().map_err(|_| poisoned(&log_path))?;
            log.append(&to_write)
        });
        // Kept in `self` while awaited: if this future is dropped, the
        // append still finishes and `settle` commits or discards its image.
        let pending = self.pending.insert(PendingAppend {
            image: Arc::clone(&next),
            entry: entry.clone(),
            task,
        });
        let written = (&mut pending.task).await;
        self.pending = None;
        written.map_err(|e| task_failed(&self.log_path, &e))??;
        self.commit(next, entry);
        images.send_replace(Arc::clone(&self.image));
        Ok(outcome)
    }
}

fn poisoned(log_path: &Path) -> ClusterError {
    ClusterError::storage(
        log_path,
        std::io::Error::other("log lock poisoned by a panic during an earlier append"),
    )
}

fn task_failed(log_path: &Path, error: &tokio::task::JoinError) -> ClusterError {
    ClusterError::storage(
        log_path,
        std::io::Error::other(format!("log task failed: {error}")),
    )
}
