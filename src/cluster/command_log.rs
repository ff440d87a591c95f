//! The durable log of accepted metadata commands.
//!
//! On disk, under `<data_dir>/__cluster_metadata/`:
//! - `meta.json` — the format marker `{cluster_id, node_id}`, written last
//!   when a directory is formatted;
//! - `commands.log` — a [`RecordLog`]: the first record is the header
//!   `{version, cluster_id, node_id}` as JSON, then one [`LogEntry`] as JSON
//!   per accepted command, with contiguous indexes starting at 1.
//!
//! Recovery is the record log's: a crash can leave at most a torn last
//! record, which opening cuts off with a warning; a damaged record with
//! intact ones after it, or an intact record that does not parse, is
//! corruption and stops start-up with the byte position.
//!
//! Data directories written before the record log hold `commands.log` as
//! JSON lines (header line, then one entry per line). Such a file starts
//! with `{`; a framed one never does, as its first byte is the high byte of
//! the header's length. Opening converts it once: the lines are read with
//! the old rules (a torn last line is dropped, any other bad line refused)
//! and written as records to a temporary file renamed over the old one, so a
//! crash during the conversion leaves the old file or the new, not a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ClusterError;
use super::metadata::Command;
use crate::record_log::{RecordLog, RecordLogError, frame};

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
    /// Cuts back a failed append itself, and refuses appends if it cannot.
    log: RecordLog,
    marker: MetaMarker,
    last_index: u64,
    /// Byte positions of the entries read at open (entry `i` at `i - 1`),
    /// to name them when replaying one fails.
    replayed_positions: Vec<u64>,
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
        match fs::read(&log_path) {
            Ok(bytes) if bytes.first() == Some(&b'{') => {
                convert_json_lines(&log_path, &bytes)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClusterError::InconsistentMetadata {
                    path: log_path,
                    reason: "meta.json exists but the command log is missing".to_owned(),
                });
            }
            Err(e) => return Err(ClusterError::storage(&log_path, e)),
        }
        let recovered = RecordLog::open(&log_path).map_err(log_error)?;
        let parsed = parse_records(&log_path, &recovered.records)?;
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
        let last_index = parsed.entries.last().map_or(0, |e| e.index);
        let log = Self {
            log: recovered.log,
            marker,
            last_index,
            replayed_positions: parsed.positions,
        };
        Ok((log, parsed.entries))
    }

    pub fn marker(&self) -> &MetaMarker {
        &self.marker
    }

    pub fn path(&self) -> &Path {
        self.log.path()
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
    /// On failure the partial record is cut off again, so the log stays
    /// appendable; if even that fails, every later append fails too.
    pub fn append(&mut self, entry: &LogEntry) -> Result<(), ClusterError> {
        if entry.index != self.next_index() {
            return Err(ClusterError::storage(
                self.path(),
                io::Error::other(format!(
                    "entry index {} does not follow last index {}",
                    entry.index, self.last_index
                )),
            ));
        }
        let record = serde_json::to_vec(entry)
            .map_err(|e| ClusterError::storage(self.path(), io::Error::other(e)))?;
        self.log.append(&[record]).map_err(log_error)?;
        self.last_index = entry.index;
        Ok(())
    }

    /// The error for an entry read at open that parsed but cannot be
    /// replayed.
    pub fn corrupt_entry(&self, index: u64, reason: impl Into<String>) -> ClusterError {
        let position = usize::try_from(index.saturating_sub(1))
            .ok()
            .and_then(|i| self.replayed_positions.get(i))
            .copied()
            .unwrap_or(self.log.len());
        ClusterError::CorruptLog {
            path: self.path().to_owned(),
            position,
            reason: format!("entry {index}: {}", reason.into()),
        }
    }
}

/// A record log failure as the coordinator reports it.
fn log_error(error: RecordLogError) -> ClusterError {
    match error {
        RecordLogError::CorruptRecord {
            path,
            position,
            defect,
            next_intact,
        } => ClusterError::CorruptLog {
            path,
            position,
            reason: format!(
                "{defect}, and intact records follow from byte {next_intact}, so it is not a torn tail"
            ),
        },
        RecordLogError::OpenFailed { path, source }
        | RecordLogError::AppendFailed { path, source, .. }
        | RecordLogError::RewriteFailed { path, source } => ClusterError::storage(path, source),
        RecordLogError::CutBackFailed { ref path, .. }
        | RecordLogError::UnframeableRecord { ref path, .. } => {
            ClusterError::storage(path.clone(), io::Error::other(error.to_string()))
        }
    }
}

/// For a quorum member, whose cluster id the quorum decides: writes
/// `meta.json` the first time the id is known, and afterwards refuses a
/// directory whose marker names another cluster or node. A directory that
/// holds a single coordinator's command log is refused too: its commands
/// are not in the quorum's log.
pub fn agree_marker(data_dir: &Path, node_id: i32, cluster_id: &str) -> Result<(), ClusterError> {
    let dir = data_dir.join(METADATA_DIR);
    let meta_path = dir.join(META_FILE);
    if dir.join(LOG_FILE).exists() {
        return Err(ClusterError::InconsistentMetadata {
            path: dir.join(LOG_FILE),
            reason: "this directory holds a single coordinator's command log; a quorum member needs a directory of its own".to_owned(),
        });
    }
    let wanted = MetaMarker {
        cluster_id: cluster_id.to_owned(),
        node_id,
    };
    match read_marker(&meta_path)? {
        Some(marker) if marker == wanted => Ok(()),
        // The quorum has not told this member the id yet.
        Some(marker) if cluster_id.is_empty() && marker.node_id == node_id => Ok(()),
        // Claimed by a KRaft broker (no cluster id yet): now a member.
        Some(marker) if marker.cluster_id.is_empty() && marker.node_id == node_id => {
            let json = serde_json::to_vec_pretty(&wanted)
                .map_err(|e| ClusterError::storage(&meta_path, e.into()))?;
            write_atomically(&dir, &meta_path, &json)
        }
        Some(marker) => Err(ClusterError::InconsistentMetadata {
            path: meta_path,
            reason: format!(
                "directory belongs to cluster {} node {}, but the quorum is cluster {cluster_id} and this is node {node_id}",
                marker.cluster_id, marker.node_id
            ),
        }),
        None if cluster_id.is_empty() => Ok(()),
        None => {
            fs::create_dir_all(&dir).map_err(|e| ClusterError::storage(&dir, e))?;
            let json = serde_json::to_vec_pretty(&wanted)
                .map_err(|e| ClusterError::storage(&meta_path, e.into()))?;
            write_atomically(&dir, &meta_path, &json)
        }
    }
}

/// For a KRaft broker that is not a controller: records `node_id` in
/// `meta.json` on first start and refuses a directory that another node id
/// recorded (Kafka's `meta.properties` check), so two brokers cannot share
/// one directory by a typo in `node.id`.
pub fn claim_node_id(data_dir: &Path, node_id: i32) -> Result<(), ClusterError> {
    let dir = data_dir.join(METADATA_DIR);
    let meta_path = dir.join(META_FILE);
    match read_marker(&meta_path)? {
        Some(marker) if marker.node_id == node_id => Ok(()),
        Some(marker) => Err(ClusterError::InconsistentMetadata {
            path: meta_path,
            reason: format!(
                "directory belongs to cluster {} node {}, but this is node {node_id}",
                marker.cluster_id, marker.node_id
            ),
        }),
        None => {
            fs::create_dir_all(&dir).map_err(|e| ClusterError::storage(&dir, e))?;
            let marker = MetaMarker {
                cluster_id: String::new(),
                node_id,
            };
            let json = serde_json::to_vec_pretty(&marker)
                .map_err(|e| ClusterError::storage(&meta_path, e.into()))?;
            write_atomically(&dir, &meta_path, &json)
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
        Ok(bytes) if holds_entries(&bytes) => {
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
    let header_record =
        serde_json::to_vec(&header).map_err(|e| ClusterError::storage(log_path, e.into()))?;
    RecordLog::create(log_path, &[header_record]).map_err(log_error)?;
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

/// Whether a log file holds more than its header, in either format; a
/// damaged one counts as holding entries, since guessing would be wrong.
fn holds_entries(bytes: &[u8]) -> bool {
    if bytes.first() == Some(&b'{') {
        return bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            > 1;
    }
    frame::scan(bytes).map_or(true, |scan| scan.frames.len() > 1)
}

/// Replaces `path` with `bytes` via a synced temporary file and a rename, so
/// readers see the old content or the new, never a mix.
pub(crate) fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
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
    /// Where each entry's record starts.
    positions: Vec<u64>,
}

/// Checks the header record and the contiguity of the entries after it.
fn parse_records(
    path: &Path,
    records: &[crate::record_log::StoredRecord],
) -> Result<ParsedLog, ClusterError> {
    let corrupt = |position: u64, reason: String| ClusterError::CorruptLog {
        path: path.to_owned(),
        position,
        reason,
    };
    // The header is written with a rename, so it is never torn.
    let (first, rest) = records
        .split_first()
        .ok_or_else(|| corrupt(0, "missing header record".to_owned()))?;
    let header: LogHeader = serde_json::from_slice(&first.payload)
        .map_err(|e| corrupt(first.position, format!("bad header: {e}")))?;
    if header.version != FORMAT_VERSION {
        return Err(corrupt(
            first.position,
            format!("unsupported log format version {}", header.version),
        ));
    }
    let mut entries: Vec<LogEntry> = Vec::with_capacity(rest.len());
    for record in rest {
        let entry = serde_json::from_slice::<LogEntry>(&record.payload)
            .map_err(|e| corrupt(record.position, e.to_string()))?;
        let expected = entries.last().map_or(1, |e| e.index + 1);
        if entry.index != expected {
            return Err(corrupt(
                record.position,
                format!("entry index {} where {expected} was expected", entry.index),
            ));
        }
        entries.push(entry);
    }
    Ok(ParsedLog {
        header,
        entries,
        positions: rest.iter().map(|r| r.position).collect(),
    })
}

/// Rewrites a JSON-lines log (the format before the record log) as records.
fn convert_json_lines(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    let lines = json_lines::complete_lines(path, bytes)?;
    RecordLog::create(path, &lines).map_err(log_error)?;
    tracing::info!(
        path = %path.display(),
        records = lines.len(),
        "converted the cluster metadata log from JSON lines to framed records"
    );
    Ok(())
}

/// The JSON-lines format, read only to convert it.
mod json_lines {
    use std::path::Path;

    use super::{FORMAT_VERSION, LogEntry, LogHeader};
    use crate::cluster::ClusterError;

    /// The header line and the entry lines, checked as the old format was:
    /// only the last line may be torn (it is dropped), and indexes run
    /// from 1 without gaps. The position in errors is the line's byte.
    pub(super) fn complete_lines<'a>(
        path: &Path,
        bytes: &'a [u8],
    ) -> Result<Vec<&'a [u8]>, ClusterError> {
        let corrupt = |position: usize, reason: String| ClusterError::CorruptLog {
            path: path.to_owned(),
            position: position as u64,
            reason: format!("(JSON-lines format) {reason}"),
        };
        let header_end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt(0, "missing header line".to_owned()))?;
        let header: LogHeader = serde_json::from_slice(&bytes[..header_end])
            .map_err(|e| corrupt(0, format!("bad header: {e}")))?;
        if header.version != FORMAT_VERSION {
            return Err(corrupt(
                0,
                format!("unsupported log format version {}", header.version),
            ));
        }
        let mut lines = vec![&bytes[..header_end]];
        let mut last_index = 0;
        let mut offset = header_end + 1;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let Some(len) = rest.iter().position(|b| *b == b'\n') else {
                break; // no newline: the append never finished
            };
            let is_last = offset + len + 1 == bytes.len();
            let entry = match serde_json::from_slice::<LogEntry>(&rest[..len]) {
                Ok(entry) => entry,
                // A crash may leave a full-length but garbled last line.
                Err(_) if is_last => break,
                Err(e) => return Err(corrupt(offset, e.to_string())),
            };
            if entry.index != last_index + 1 {
                return Err(corrupt(
                    offset,
                    format!(
                        "entry index {} where {} was expected",
                        entry.index,
                        last_index + 1
                    ),
                ));
            }
            last_index = entry.index;
            lines.push(&rest[..len]);
            offset += len + 1;
        }
        Ok(lines)
    }
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
    fn a_kraft_brokers_claim_refuses_another_node_id_and_becomes_a_members_marker() {
        let dir = tempfile::tempdir().unwrap();
        claim_node_id(dir.path(), 4).unwrap();
        claim_node_id(dir.path(), 4).unwrap();
        let refused = claim_node_id(dir.path(), 6).unwrap_err().to_string();
        assert!(refused.contains("node 4, but this is node 6"), "{refused}");
        // The same node later a quorum member: the cluster id is filled in.
        agree_marker(dir.path(), 4, "").unwrap();
        agree_marker(dir.path(), 4, "abc").unwrap();
        agree_marker(dir.path(), 4, "abc").unwrap();
        assert!(agree_marker(dir.path(), 4, "other").is_err());
        assert!(claim_node_id(dir.path(), 5).is_err());
    }

    fn delete_topic(index: u64) -> LogEntry {
        LogEntry {
            index,
            command: Command::DeleteTopic {
                topic_id: Uuid::from_u128(u128::from(index)),
            },
        }
    }

    #[test]
    fn a_damaged_last_record_is_dropped_but_an_earlier_one_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, entries) = CommandLog::open(dir.path(), 0).expect("format");
        assert!(entries.is_empty());
        log.append(&delete_topic(1)).expect("append");
        let path = log.path().to_owned();
        drop(log);
        let intact = fs::read(&path).expect("read");
        let mut damaged = intact.clone();
        frame::encode(
            &serde_json::to_vec(&delete_topic(2)).expect("json"),
            &mut damaged,
        );
        let last = damaged.len() - 1;
        damaged[last] ^= 0x01;
        fs::write(&path, &damaged).expect("write");
        let (log, entries) = CommandLog::open(dir.path(), 0).expect("reopen");
        assert_eq!(entries, vec![delete_topic(1)]);
        assert_eq!(log.next_index(), 2);
        assert_eq!(fs::read(&path).expect("read"), intact);

        frame::encode(
            &serde_json::to_vec(&delete_topic(2)).expect("json"),
            &mut damaged,
        );
        fs::write(&path, &damaged).expect("write");
        let error = CommandLog::open(dir.path(), 0).expect_err("refused");
        let position = intact.len() as u64;
        assert!(
            matches!(error, ClusterError::CorruptLog { position: p, .. } if p == position),
            "{error}"
        );
        assert!(
            error.to_string().contains(&format!("at byte {position}")),
            "{error}"
        );
    }

    #[test]
    fn a_json_lines_log_from_before_the_record_log_is_converted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = CommandLog::open(dir.path(), 7).expect("format");
        let marker = log.marker().clone();
        let path = log.path().to_owned();
        drop(log);
        // What the JSON-lines writer left: header, two entries, a torn line.
        let header = LogHeader {
            version: FORMAT_VERSION,
            cluster_id: marker.cluster_id.clone(),
            node_id: 7,
        };
        let mut old = serde_json::to_vec(&header).expect("json");
        for index in [1, 2] {
            old.push(b'\n');
            old.extend(serde_json::to_vec(&delete_topic(index)).expect("json"));
        }
        old.extend_from_slice(b"\n{\"index\":3,\"comm");
        fs::write(&path, &old).expect("write");

        let (mut log, entries) = CommandLog::open(dir.path(), 7).expect("convert");
        assert_eq!(entries, vec![delete_topic(1), delete_topic(2)]);
        assert_eq!(log.marker(), &marker);
        log.append(&delete_topic(3))
            .expect("append after conversion");
        drop(log);
        assert_ne!(fs::read(&path).expect("read")[0], b'{', "now framed");
        let (_, entries) = CommandLog::open(dir.path(), 7).expect("reopen");
        assert_eq!(entries.len(), 3);
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert!(names.iter().all(|n| !n.contains("rewrite")), "{names:?}");
    }

    #[test]
    fn a_json_lines_log_with_a_bad_line_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = CommandLog::open(dir.path(), 0).expect("format");
        let marker = log.marker().clone();
        let path = log.path().to_owned();
        drop(log);
        let header = LogHeader {
            version: FORMAT_VERSION,
            cluster_id: marker.cluster_id,
            node_id: 0,
        };
        let mut old = serde_json::to_vec(&header).expect("json");
        old.push(b'\n');
        let bad_at = old.len() as u64;
        old.extend_from_slice(b"garbage\n");
        old.extend(serde_json::to_vec(&delete_topic(1)).expect("json"));
        old.push(b'\n');
        fs::write(&path, &old).expect("write");
        let error = CommandLog::open(dir.path(), 0).expect_err("refused");
        assert!(
            matches!(error, ClusterError::CorruptLog { position, .. } if position == bad_at),
            "{error}"
        );
        assert_eq!(fs::read(&path).expect("read"), old, "left as it was");
    }

    #[test]
    fn base64url_matches_known_vectors() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
