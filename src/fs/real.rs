//! Production: std's file system and tokio's blocking pool, unchanged.

use std::io;
use std::path::Path;

pub use std::fs::{File, OpenOptions, create_dir_all, read, remove_file, rename};

/// Whether `path` exists (`Path::exists`).
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Makes the entries of directory `path` (files created, renamed or
/// removed in it) durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Runs blocking file work off the async workers.
pub async fn blocking<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await
}
