//! The broker epoch of the last clean shutdown (KIP-966), Kafka's
//! `.kafka_cleanshutdown` file in the data directory.
//!
//! A broker that stopped cleanly flushed every partition; one that crashed
//! may have lost records it had acknowledged to a leader's fetch but not
//! flushed, so with eligible leader replicas on it must not lead as one.
//! The file is written, synced, once every partition is closed; at the next
//! start its epoch goes with the registration, and the controller compares
//! it with the registration it replaces. A stale file (a crash after a
//! start that could not remove it) names an epoch older than that
//! registration, so it is taken for the crash it was.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = ".kafka_cleanshutdown";

#[derive(Serialize, Deserialize)]
struct CleanShutdown {
    version: i32,
    #[serde(rename = "brokerEpoch")]
    broker_epoch: i64,
}

/// The broker epoch the last clean shutdown recorded in `data_dir`, or -1
/// (it crashed, or never ran). Blocking.
pub fn previous_broker_epoch(data_dir: &Path) -> i64 {
    std::fs::read(data_dir.join(FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CleanShutdown>(&bytes).ok())
        .map_or(-1, |file| file.broker_epoch)
}

/// Forgets the recorded shutdown once the registration carried it: a crash
/// from here on must not look clean. Blocking.
pub fn forget(data_dir: &Path) {
    let path = data_dir.join(FILE);
    if let Err(error) = std::fs::remove_file(&path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "could not remove the clean-shutdown file");
    }
}

/// Records a clean shutdown at `broker_epoch`. Blocking.
pub fn record(data_dir: &Path, broker_epoch: i64) -> std::io::Result<()> {
    let staged = data_dir.join(format!("{FILE}.tmp"));
    let body = serde_json::to_vec(&CleanShutdown {
        version: 0,
        broker_epoch,
    })?;
    let mut file = std::fs::File::create(&staged)?;
    file.write_all(&body)?;
    file.sync_all()?;
    std::fs::rename(&staged, data_dir.join(FILE))?;
    std::fs::File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_shutdown_is_read_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(previous_broker_epoch(dir.path()), -1);
        record(dir.path(), 42).unwrap();
        assert_eq!(previous_broker_epoch(dir.path()), 42);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, r#"{"version":0,"brokerEpoch":42}"#);
        forget(dir.path());
        assert_eq!(previous_broker_epoch(dir.path()), -1);
        std::fs::write(dir.path().join(FILE), "not json").unwrap();
        assert_eq!(previous_broker_epoch(dir.path()), -1);
    }
}
