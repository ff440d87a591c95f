//! What `kafka-storage.sh format` leaves in a KRaft controller's data
//! directory before its first start (Kafka's `bootstrap.checkpoint`): the
//! cluster id to use and, for a dynamic quorum, the initial voters
//! (`--standalone`: the node alone; `--initial-controllers`: a list;
//! `--no-initial-controllers`: none, the node waits to be added).
//!
//! Read only while the quorum store is empty: the first leader commits the
//! formatted cluster id, and a member whose store has state never
//! initializes again, so the file changes nothing afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClusterError;
use super::command_log::{METADATA_DIR, write_atomically};

const BOOTSTRAP_FILE: &str = "bootstrap.json";

/// A formatted directory's start-up choices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// `--cluster-id`; the quorum's first leader commits it.
    pub cluster_id: String,
    /// `host:port` of each initial voter's controller listener, by node id;
    /// empty when the voters come from `controller.quorum.voters` or the
    /// node joins with `add-controller`.
    #[serde(default)]
    pub initial_voters: BTreeMap<u64, String>,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(METADATA_DIR).join(BOOTSTRAP_FILE)
}

/// Whether `data_dir` holds anything of a metadata quorum or of a format.
pub fn is_formatted(data_dir: &Path) -> bool {
    let dir = data_dir.join(METADATA_DIR);
    ["meta.json", BOOTSTRAP_FILE, "raft", "log"]
        .iter()
        .any(|name| dir.join(name).exists())
}

/// The format of `data_dir`, if it was formatted.
pub fn read(data_dir: &Path) -> Result<Option<Bootstrap>, ClusterError> {
    let path = path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClusterError::storage(&path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ClusterError::InconsistentMetadata {
            path,
            reason: format!("{BOOTSTRAP_FILE} is unreadable: {e}"),
        })
}

/// Writes the format of `data_dir` (crash-safely).
pub fn write(data_dir: &Path, bootstrap: &Bootstrap) -> Result<(), ClusterError> {
    let dir = data_dir.join(METADATA_DIR);
    let path = path(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| ClusterError::storage(&dir, e))?;
    let json =
        serde_json::to_vec_pretty(bootstrap).map_err(|e| ClusterError::storage(&path, e.into()))?;
    write_atomically(&dir, &path, &json)
}
