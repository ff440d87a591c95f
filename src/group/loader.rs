//! Loading one offsets partition when this broker becomes its leader: wait
//! until the broker acts as leader (its appends wait for the followers),
//! read the partition to its log end, and move into it the groups of the
//! old per-broker offsets file that belong there ([`LegacyOffsets`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::legacy::LegacyOffsets;
use super::log::{LoadedPartition, apply_commits, encode_batch, now_ms, read_partition};
use super::offsets::{Load, OffsetStore};
use super::records::GroupRecord;

/// How often a load checks whether the broker acts as leader yet.
const READY_POLL: Duration = Duration::from_millis(20);
/// How long one migrated group's write may wait for the in-sync replicas
/// (longer than a commit: the load is retried as a whole when it fails).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How a load of `partition` (its `token`) ended.
pub(super) struct LoadOutcome {
    pub partition: i32,
    pub token: u64,
    pub result: Result<LoadedPartition, String>,
}

pub(super) type SharedLegacy = Arc<Mutex<LegacyOffsets>>;

pub(super) async fn load(
    store: Arc<OffsetStore>,
    partition: i32,
    load: Load,
    legacy: Option<SharedLegacy>,
) -> LoadOutcome {
    let result = read(&store, partition, load, legacy).await;
    LoadOutcome {
        partition,
        token: load.token,
        result,
    }
}

async fn read(
    store: &Arc<OffsetStore>,
    partition: i32,
    load: Load,
    legacy: Option<SharedLegacy>,
) -> Result<LoadedPartition, String> {
    loop {
        if !store.is_current(partition, load.token) {
            return Err("superseded".to_string());
        }
        if store.log().ready(partition, load.leader_epoch) {
            break;
        }
        tokio::time::sleep(READY_POLL).await;
    }
    let reader = store.clone();
    let mut loaded = tokio::task::spawn_blocking(move || {
        let cancelled = || !reader.is_current(partition, load.token);
        read_partition(reader.log().as_ref(), partition, &cancelled)
    })
    .await
    .map_err(|error| error.to_string())??;
    if let Some(legacy) = legacy {
        migrate(store, partition, &mut loaded, legacy).await?;
    }
    Ok(loaded)
}

/// Writes the old file's groups of `partition` into it and drops them from
/// the file. A group the partition already holds anything of was migrated
/// before (the file's rewrite had failed): it is not written again. A
/// failure fails the load, which is retried: no commit is accepted for the
/// partition until the file no longer holds its groups, so the old offsets
/// can never overwrite newer ones.
async fn migrate(
    store: &OffsetStore,
    partition: i32,
    loaded: &mut LoadedPartition,
    legacy: SharedLegacy,
) -> Result<(), String> {
    let picked = legacy
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .groups_where(|group| store.partition_of(group) == partition);
    if picked.is_empty() {
        return Ok(());
    }
    let mut migrated = Vec::new();
    for (group, offsets) in picked {
        migrated.push(group.clone());
        if loaded.offsets.contains_key(&group) || loaded.groups.contains_key(&group) {
            continue;
        }
        let records: Vec<GroupRecord> = offsets
            .into_iter()
            .map(
                |((topic, topic_partition), value)| GroupRecord::OffsetCommit {
                    group: group.clone(),
                    topic,
                    partition: topic_partition,
                    value: Some(value),
                },
            )
            .collect();
        let batch = encode_batch(&records, now_ms());
        let base_offset = store
            .log()
            .append(partition, batch, MIGRATION_TIMEOUT)
            .await
            .map_err(|error| format!("migrating group {group}: {}", error.code()))?;
        apply_commits(&mut loaded.offsets, records, base_offset);
    }
    let count = migrated.len();
    tokio::task::spawn_blocking(move || {
        legacy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(&migrated)
    })
    .await
    .map_err(|error| error.to_string())?
    .map_err(|error| error.to_string())?;
    tracing::info!(
        partition,
        groups = count,
        "migrated committed offsets from the old offsets log"
    );
    Ok(())
}
