//! The durable log of accepted metadata commands.
//!
//! On disk, under `<data_dir>/__cluster_metadata/`:
//! - `meta.json` — the format marker `{cluster_id, node_id}`, written last
//!   when a directory is formatted;
//! - `commands.log` — JSON lines: a header `{version, cluster_id, node_id}`,
//!   then one [`LogEntry`] per accepted command with contiguous indexes
//!   starting at 1.
//!
//! An append is one `write` plus `fdatasync`, so a crash can leave at most a
//! torn last line; opening drops it with a warning. Anything else that does
//! not parse is corruption and stops start-up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ClusterError;
use super::metadata::Command;

/// The directory under the data directory that holds the coordinator's files.
pub const METADATA_DIR: &str = "__cluster_metadata";
const LOG_FILE: &str = "commands.log";
const META_FILE: &str = "meta.json";
const FORMAT_VERSION: u32 = 1;

/// The format marker: which cluster and node a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaMarker {
    pub cluster_id: String,
    pub node_id: i32,
}

#[derive(Serialize, Deserialize)]
struct LogHeader {
    version: u32,
    cluster_id: String,
    node_id: i32,
}

/// One accepted command and its position in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    pub command: Command,
}

/// An open command log, positioned for appending.
#[derive(Debug)]
pub struct CommandLog {
    path: PathBuf,
    file: File,
    marker: MetaMarker,
    /// Bytes of complete lines; a failed append is cut back to this.
    len: u64,
    last_index: u64,
    /// Set when a failed append could not be rolled back: the file may end
    /// in a partial line, and appending after it would corrupt the log.
    unusable: bool,
}

/// A fresh cluster id: a random UUID as 22 characters of unpadded base64url,
/// like Kafka's. Ids starting with `-` are skipped, as Kafka does, because
/// command-line tools would take them for flags.
pub fn new_cluster_id() -> String {
    loop {
        let id = base64url(Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // A chunk of k bytes yields k + 1 significant characters (no padding).
        for i in 0..=chunk.len() {
            let sextet = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    out
}

impl CommandLog {
    /// Opens the log under `data_dir`, formatting the directory with a new
    /// cluster id if it has never been formatted, and returns the entries to
    /// replay, oldest first.
    ///
    /// Fails with [`ClusterError::InconsistentMetadata`] when `meta.json`
    /// and the log name different clusters or nodes, or when `node_id` is
    /// not the node the directory was formatted for.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<(Self, Vec<LogEntry>), ClusterError> {
        let dir = data_dir.join(METADATA_DIR);
        fs::create_dir_all(&dir).map_err(|e| ClusterError::storage(&dir, e))?;
        let log_path = dir.join(LOG_FILE);
        let meta_path = dir.join(META_FILE);

        let marker = match read_marker(&meta_path)? {
            Some(marker) => marker,
            None => format(&dir, &log_path, &meta_path, node_id)?,
        };
        if marker.node_id != node_id {
            return Err(ClusterError::InconsistentMetadata {
                path: meta_path,
                reason: format!(
                    "directory was formatted for node {}, but this is node {node_id}",
                    marker.node_id
                ),
            });
        }
        let bytes = match fs::read(&log_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClusterError::InconsistentMetadata {
                    path: log_path,
                    reason: "meta.json exists but the command log is missing".to_owned(),
                });
            }
            Err(e) => return Err(ClusterError::storage(&log_path, e)),
        };
        let parsed = parse_log(&log_path, &bytes)?;
        if parsed.header.cluster_id != marker.cluster_id || parsed.header.node_id != marker.node_id
        {
            return Err(ClusterError::InconsistentMetadata {
                path: meta_path,
                reason: format!(
                    "meta.json is for cluster {} node {}, but the command log is for cluster {} node {}",
                    marker.cluster_id,
                    marker.node_id,
                    parsed.header.cluster_id,
                    parsed.header.node_id
                ),
            });
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(|e| ClusterError::storage(&log_path, e))?;
        if parsed.valid_len < bytes.len() as u64 {
            tracing::warn!(
                path = %log_path.display(),
                dropped_bytes = bytes.len() as u64 - parsed.valid_len,
                "dropping the torn last line of the cluster metadata log"
            );
            file.set_len(parsed.valid_len)
                .and_then(|()| file.sync_data())
                .map_err(|e| ClusterError::storage(&log_path, e))?;
        }
        let last_index = parsed.entries.last().map_or(0, |e| e.index);
        let log = Self {
            path: log_path,
            file,
            marker,
            len: parsed.valid_len,
            last_index,
            unusable: false,
        };
        Ok((log, parsed.entries))
    }

    pub fn marker(&self) -> &MetaMarker {
        &self.marker
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Index of the newest entry; 0 when the log is empty.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The index the next appended entry must carry.
    pub fn next_index(&self) -> u64 {
        self.last_index + 1
    }

    /// Writes `entry` and waits until it is on disk. `entry.index` must be
    /// [`Self::next_index`]. Blocks on `fdatasync`; async callers should run
    /// it on a blocking thread.
    ///
    /// On failure the partial line is cut off again, so the log stays
    /// appendable; if even that fails, every later append fails too.
    pub fn append(&mut self, entry: &LogEntry) -> Result<(), ClusterError> {
        if self.unusable {
            return Err(ClusterError::storage(
                &self.path,
                io::Error::other("an earlier failed append could not be rolled back"),
            ));
        }
        if entry.index != self.next_index() {
            return Err(ClusterError::storage(
                &self.path,
                io::Error::other(format!(
                    "entry index {} does not follow last index {}",
                    entry.index, self.last_index
                )),
            ));
        }
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| ClusterError::storage(&self.path, io::Error::other(e)))?;
        line.push(b'\n');
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            if let Err(rollback) = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
            {
                tracing::error!(
                    path = %self.path.display(),
                    error = %rollback,
                    "cannot roll back a failed metadata log append; refusing further appends"
                );
                self.unusable = true;
            }
            return Err(ClusterError::storage(&self.path, e));
        }
        self.len += line.len() as u64;
        self.last_index = entry.index;
        Ok(())
    }

    /// The error for an entry that parsed but cannot be replayed.
    pub fn corrupt_entry(&self, index: u64, reason: impl Into<String>) -> ClusterError {
        ClusterError::CorruptLog {
            path: self.path.clone(),
            // Line 1 is the header, entry `i` is line `i + 1`.
            line: usize::try_from(index).map_or(usize::MAX, |i| i.saturating_add(1)),
            reason: reason.into(),
        }
    }
}

fn read_marker(meta_path: &Path) -> Result<Option<MetaMarker>, ClusterError> {
    let bytes = match fs::read(meta_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClusterError::storage(meta_path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ClusterError::InconsistentMetadata {
            path: meta_path.to_owned(),
            reason: format!("meta.json is unreadable: {e}"),
        })
}

/// Formats an unformatted directory: the log header first, the marker last,
/// so a crash in between leaves a directory that is formatted again.
fn format(
    dir: &Path,
    log_path: &Path,
    meta_path: &Path,
    node_id: i32,
) -> Result<MetaMarker, ClusterError> {
    // Without a marker, a log holding entries means the marker was lost, not
    // that formatting was interrupted; guessing a cluster id would be wrong.
    match fs::read(log_path) {
        Ok(bytes)
            if bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                > 1 =>
        {
            return Err(ClusterError::InconsistentMetadata {
                path: meta_path.to_owned(),
                reason: "meta.json is missing but the command log has entries".to_owned(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ClusterError::storage(log_path, e)),
    }
    let marker = MetaMarker {
        cluster_id: new_cluster_id(),
        node_id,
    };
    let header = LogHeader {
        version: FORMAT_VERSION,
        cluster_id: marker.cluster_id.clone(),
        node_id,
    };
    let mut header_line =
        serde_json::to_vec(&header).map_err(|e| ClusterError::storage(log_path, e.into()))?;
    header_line.push(b'\n');
    write_atomically(dir, log_path, &header_line)?;
    let marker_json = serde_json::to_vec_pretty(&marker)
        .map_err(|e| ClusterError::storage(meta_path, e.into()))?;
    write_atomically(dir, meta_path, &marker_json)?;
    tracing::info!(
        cluster_id = %marker.cluster_id,
        node_id,
        dir = %dir.display(),
        "formatted cluster metadata directory"
    );
    Ok(marker)
}

/// Replaces `path` with `bytes` via a synced temporary file and a rename, so
/// readers see the old content or the new, never a mix.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| ClusterError::storage(path, e))
}

struct ParsedLog {
    header: LogHeader,
    entries: Vec<LogEntry>,
    /// Length of the prefix made of complete, valid lines.
    valid_len: u64,
}

fn parse_log(path: &Path, bytes: &[u8]) -> Result<ParsedLog, ClusterError> {
    let corrupt = |line: usize, reason: String| ClusterError::CorruptLog {
        path: path.to_owned(),
        line,
        reason,
    };
    // The header is written with a rename, so it is never torn.
    let header_end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt(1, "missing header line".to_owned()))?;
    let header: LogHeader = serde_json::from_slice(&bytes[..header_end])
        .map_err(|e| corrupt(1, format!("bad header: {e}")))?;
    if header.version != FORMAT_VERSION {
        return Err(corrupt(
            1,
            format!("unsupported log format version {}", header.version),
        ));
    }

    let mut entries: Vec<LogEntry> = Vec::new();
    let mut offset = header_end + 1;
    let mut line_no = 1;
    while offset < bytes.len() {
        line_no += 1;
        let rest = &bytes[offset..];
        let Some(len) = rest.iter().position(|b| *b == b'\n') else {
            break; // no newline: the append never finished
        };
        let is_last = offset + len + 1 == bytes.len();
        let entry = match serde_json::from_slice::<LogEntry>(&rest[..len]) {
            Ok(entry) => entry,
            // A crash may leave a full-length but garbled last line (the
            // file grew, the data did not land); only the last line may be.
            Err(_) if is_last => break,
            Err(e) => return Err(corrupt(line_no, e.to_string())),
        };
        let expected = entries.last().map_or(1, |e| e.index + 1);
        if entry.index != expected {
            return Err(corrupt(
                line_no,
                format!("entry index {} where {expected} was expected", entry.index),
            ));
        }
        entries.push(entry);
        offset += len + 1;
    }
    Ok(ParsedLog {
        header,
        entries,
        valid_len: offset as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_22_chars_of_base64url() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(!id.starts_with('-'));
    }

    #[test]
    fn garbled_complete_last_line_is_dropped_but_earlier_ones_are_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, entries) = CommandLog::open(dir.path(), 0).expect("format");
        assert!(entries.is_empty());
        let entry = LogEntry {
            index: 1,
            command: Command::DeleteTopic {
                topic_id: Uuid::from_u128(1),
            },
        };
        log.append(&entry).expect("append");
        let path = log.path().to_owned();
        drop(log);
        let intact = fs::read(&path).expect("read");
        let mut garbled = intact.clone();
        garbled.extend_from_slice(b"\0\0\0\n");
        fs::write(&path, &garbled).expect("write");
        let (log, entries) = CommandLog::open(dir.path(), 0).expect("reopen");
        assert_eq!(entries, vec![entry]);
        assert_eq!(log.next_index(), 2);
        assert_eq!(fs::read(&path).expect("read"), intact);

        garbled.extend_from_slice(&intact[intact.len() - 10..]);
        fs::write(&path, &garbled).expect("write");
        assert!(matches!(
            CommandLog::open(dir.path(), 0),
            Err(ClusterError::CorruptLog { line: 3, .. })
        ));
    }

    #[test]
    fn base64url_matches_known_vectors() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
