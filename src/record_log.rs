//! An append-only file of CRC-framed records: the durable form of the
//! cluster command log and the committed-offsets store.
//!
//! Contract:
//! - [`RecordLog::open`] reads the whole file and recovers it. A torn tail —
//!   a damaged or incomplete frame with no intact frame after it, which is
//!   what a crash during an append leaves — is cut off (and reported in
//!   [`Recovery`]). A damaged frame *followed by* intact frames is not
//!   something a crash leaves; dropping the records after it would silently
//!   roll state back, so opening fails with
//!   [`RecordLogError::CorruptRecord`], naming the file and byte position.
//! - [`RecordLog::append`] writes a batch of records with one `write` and
//!   one `fdatasync`; when it returns `Ok` the batch is durable. When it
//!   fails the file is cut back to its previous length, so the next append
//!   lands right after the last good record; if even that fails, the log
//!   refuses every later append rather than write after a partial frame.
//! - [`RecordLog::rewrite`] replaces the whole content (compaction) through
//!   a synced temporary file and a rename: readers of the path see the old
//!   records or the new, never a mix.
//!
//! Every call blocks on the disk; async code calls it from a blocking
//! thread or a dedicated writer thread. The frame format is in [`frame`].

#[cfg(test)]
pub(crate) mod fault;
pub mod frame;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::fs::{self, File, OpenOptions};

pub use frame::{FrameDefect, MidLogCorruption};

/// What goes wrong with a record log; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RecordLogError {
    #[error("cannot open record log {}: {source}", path.display())]
    OpenFailed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "record log {} is corrupt at byte {position} ({defect}) and intact records follow from byte {next_intact}; refusing to drop them (restore the file, or truncate it to {position} bytes to give them up)",
        path.display()
    )]
    CorruptRecord {
        path: PathBuf,
        position: u64,
        defect: FrameDefect,
        next_intact: u64,
    },
    #[error("cannot append to record log {} at byte {len}: {source}", path.display())]
    AppendFailed {
        path: PathBuf,
        len: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "record log {} refuses appends: a failed append could not be cut back to byte {len}",
        path.display()
    )]
    CutBackFailed { path: PathBuf, len: u64 },
    #[error("cannot rewrite record log {}: {source}", path.display())]
    RewriteFailed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "a record of {len} bytes cannot be framed in {}: records hold 1 to {} bytes",
        path.display(),
        frame::MAX_PAYLOAD_LEN
    )]
    UnframeableRecord { path: PathBuf, len: usize },
}

/// The file operations an append needs; the seam tests use to make them
/// fail. [`File`] (opened for appending) is the real one.
pub trait LogFile: Send {
    /// Writes `bytes` at the end of the file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes appended data durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Shortens the file to `len` bytes and makes that durable.
    fn cut_back(&mut self, len: u64) -> io::Result<()>;
}

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn cut_back(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_data()
    }
}

/// Turns each file the log opens into the [`LogFile`] it writes through.
pub type FileWrapper = Arc<dyn Fn(File) -> Box<dyn LogFile> + Send + Sync>;

/// One recovered record and where its frame starts in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub position: u64,
    pub payload: Bytes,
}

/// What recovery did to the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The file's length after recovery: the end of the last intact record.
    pub valid_len: u64,
    /// The torn tail that was cut off, if there was one.
    pub torn_tail: Option<TornTail>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub position: u64,
    pub dropped_bytes: u64,
    pub defect: FrameDefect,
}

/// An opened log, its records oldest first, and what recovery did.
pub struct Recovered {
    pub log: RecordLog,
    pub records: Vec<StoredRecord>,
    pub recovery: Recovery,
}

/// An open record log, positioned for appending.
pub struct RecordLog {
    path: PathBuf,
    file: Box<dyn LogFile>,
    wrapper: FileWrapper,
    /// Bytes of intact records; a failed append is cut back to this.
    len: u64,
    /// Set when a failed append could not be cut back.
    unusable: bool,
}

impl std::fmt::Debug for RecordLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordLog")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("unusable", &self.unusable)
            .finish_non_exhaustive()
    }
}

impl RecordLog {
    /// Opens (creating it empty if missing) and recovers the log at `path`.
    pub fn open(path: &Path) -> Result<Recovered, RecordLogError> {
        Self::open_wrapped(path, Arc::new(|file| Box::new(file)))
    }

    /// [`RecordLog::open`], writing through `wrapper`'s [`LogFile`]s.
    pub fn open_wrapped(path: &Path, wrapper: FileWrapper) -> Result<Recovered, RecordLogError> {
        let open_failed = |source| RecordLogError::OpenFailed {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(open_failed)?;
        let bytes = Bytes::from(fs::read(path).map_err(open_failed)?);
        let scan = frame::scan(&bytes).map_err(|c| RecordLogError::CorruptRecord {
            path: path.to_owned(),
            position: c.position,
            defect: c.defect,
            next_intact: c.next_intact,
        })?;
        let torn_tail = scan.tail_defect.map(|defect| TornTail {
            position: scan.valid_len,
            dropped_bytes: bytes.len() as u64 - scan.valid_len,
            defect,
        });
        if let Some(torn) = torn_tail {
            tracing::warn!(
                path = %path.display(),
                position = torn.position,
                dropped_bytes = torn.dropped_bytes,
                defect = %torn.defect,
                "cutting off the torn tail of a record log"
            );
            file.set_len(scan.valid_len)
                .and_then(|()| file.sync_data())
                .map_err(open_failed)?;
        }
        let records = scan
            .frames
            .into_iter()
            .map(|(position, payload)| StoredRecord {
                position,
                payload: bytes.slice(payload),
            })
            .collect();
        let log = RecordLog {
            path: path.to_owned(),
            file: wrapper(file),
            wrapper,
            len: scan.valid_len,
            unusable: false,
        };
        Ok(Recovered {
            log,
            records,
            recovery: Recovery {
                valid_len: scan.valid_len,
                torn_tail,
            },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of intact records in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `records` as one write and one `fdatasync`; returns once they
    /// are durable. On failure none of them is in the file. An empty batch
    /// writes nothing.
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), RecordLogError> {
        if self.unusable {
            return Err(RecordLogError::CutBackFailed {
                path: self.path.clone(),
                len: self.len,
            });
        }
        if records.is_empty() {
            return Ok(());
        }
        let buf = encode_all(&self.path, records)?;
        let written = self.file.append(&buf).and_then(|()| self.file.sync());
        if let Err(source) = written {
            if let Err(error) = self.file.cut_back(self.len) {
                tracing::error!(
                    path = %self.path.display(),
                    len = self.len,
                    %error,
                    "cannot cut back a failed record log append; refusing further appends"
                );
                self.unusable = true;
            }
            return Err(RecordLogError::AppendFailed {
                path: self.path.clone(),
                len: self.len,
                source,
            });
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Replaces the log's content with `records`: a temporary file next to
    /// it, synced, renamed over it, and the directory synced. On failure
    /// before the rename the log is unchanged and still appendable.
    pub fn rewrite<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), RecordLogError> {
        let buf = encode_all(&self.path, records)?;
        let rewrite_failed = |source| RecordLogError::RewriteFailed {
            path: self.path.clone(),
            source,
        };
        // Opened for appending before the rename, so the handle is the new
        // file's whatever happens to the path afterwards.
        let file = write_temporary(&self.path, &buf).map_err(rewrite_failed)?;
        if let Err(source) = fs::rename(temporary_path(&self.path), &self.path) {
            let _ = fs::remove_file(temporary_path(&self.path));
            return Err(rewrite_failed(source));
        }
        self.file = (self.wrapper)(file);
        self.len = buf.len() as u64;
        self.unusable = false;
        if let Err(source) = sync_parent(&self.path) {
            // The rename may not survive a crash, and appends to the new file
            // would then be lost: stop appending.
            self.unusable = true;
            return Err(rewrite_failed(source));
        }
        Ok(())
    }

    /// Creates or replaces the file at `path` with exactly `records`,
    /// atomically (temporary file, sync, rename, directory sync).
    pub fn create(path: &Path, records: &[impl AsRef<[u8]>]) -> Result<(), RecordLogError> {
        let buf = encode_all(path, records)?;
        let rewrite_failed = |source| RecordLogError::RewriteFailed {
            path: path.to_owned(),
            source,
        };
        write_temporary(path, &buf).map_err(rewrite_failed)?;
        fs::rename(temporary_path(path), path).map_err(rewrite_failed)?;
        sync_parent(path).map_err(rewrite_failed)
    }
}

/// The frames of `records`, back to back.
pub fn encode_all(path: &Path, records: &[impl AsRef<[u8]>]) -> Result<Vec<u8>, RecordLogError> {
    let mut buf = Vec::new();
    for record in records {
        let payload = record.as_ref();
        if payload.is_empty() || payload.len() > frame::MAX_PAYLOAD_LEN {
            return Err(RecordLogError::UnframeableRecord {
                path: path.to_owned(),
                len: payload.len(),
            });
        }
        frame::encode(payload, &mut buf);
    }
    Ok(buf)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".rewrite");
    path.with_file_name(name)
}

/// Writes and syncs `bytes` to the temporary file beside `path`; returns it
/// opened for appending.
fn write_temporary(path: &Path, bytes: &[u8]) -> io::Result<File> {
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        OpenOptions::new().append(true).open(&tmp)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::sync_dir(dir),
        _ => fs::sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests;
