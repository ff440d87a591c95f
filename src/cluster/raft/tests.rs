use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, StorageError, Vote};

use super::*;
use crate::cluster::LogRead;
use crate::cluster::metadata::Command;

struct TempStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for TempStores {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<MemberId>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = LogStore::open(dir.path())?;
        let machine = StateMachine::open(dir.path())?;
        Ok((dir, log, machine))
    }
}

#[test]
fn stores_pass_openraft_storage_suite() {
    Suite::test_all(TempStores).expect("openraft storage suite");
}

fn log_id(term: u64, index: u64) -> LogId<MemberId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn command_entry(term: u64, index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Proposal::Command { command }),
    }
}

fn register(broker_id: i32) -> Command {
    Command::RegisterBroker {
        broker_id,
        incarnation_id: uuid::Uuid::new_v4(),
        listeners: Vec::new(),
        rack: None,
        previous_broker_epoch: None,
    }
}

async fn append(store: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
    store.blocking_append(entries).await.expect("append");
}

#[tokio::test]
async fn log_and_vote_survive_reopen_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        let entries = (1..=5).map(|i| command_entry(1, i, register(1))).collect();
        append(&mut store, entries).await;
        store.save_vote(&Vote::new(2, 3)).await.unwrap();
        store.purge(log_id(1, 2)).await.unwrap();
        store.truncate(log_id(1, 5)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(1, 4)));
    let kept = store.try_get_log_entries(0..10).await.unwrap();
    let indexes: Vec<u64> = kept.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, vec![3, 4]);
}

#[tokio::test]
async fn torn_log_tail_is_cut_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        let entries = (1..=3).map(|i| command_entry(1, i, register(1))).collect();
        append(&mut store, entries).await;
    }
    let path = dir.path().join("raft.log");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 3).unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 2)));
}

#[tokio::test]
async fn only_accepted_commands_take_a_command_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut machine = StateMachine::open(dir.path()).unwrap();
    let handle = machine.handle();
    let entries = vec![
        Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Normal(Proposal::ClusterId {
                cluster_id: "first".to_owned(),
            }),
        },
        command_entry(1, 3, register(1)),
        // Refused: a negative broker id.
        command_entry(1, 4, register(-1)),
        Entry {
            log_id: log_id(1, 5),
            payload: EntryPayload::Normal(Proposal::ClusterId {
                cluster_id: "second".to_owned(),
            }),
        },
        command_entry(1, 6, register(2)),
    ];
    let answers = machine.apply(entries).await.unwrap();
    assert!(matches!(answers[0], Applied::NotACommand));
    assert!(matches!(answers[2], Applied::Accepted { index: 1, .. }));
    assert!(matches!(answers[3], Applied::Refused(_)));
    assert!(matches!(answers[5], Applied::Accepted { index: 2, .. }));
    let image = handle.image();
    assert_eq!(image.cluster_id, "first");
    assert_eq!(image.last_applied, 2);
    let LogRead::Entries(read) = handle.read_log(1, 10) else {
        panic!("expected entries");
    };
    assert_eq!(read.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(handle.last_applied_log(), Some(log_id(1, 6)));
}

#[tokio::test]
async fn snapshot_restores_the_image_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let image = {
        let mut machine = StateMachine::open(dir.path()).unwrap();
        machine
            .apply(vec![command_entry(1, 1, register(1))])
            .await
            .unwrap();
        let mut builder = machine.get_snapshot_builder().await;
        openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .unwrap();
        machine.handle().image()
    };
    let mut machine = StateMachine::open(dir.path()).unwrap();
    assert_eq!(machine.handle().image(), image);
    let (applied, _) = machine.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1)));
    let snapshot = machine.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1)));
}
