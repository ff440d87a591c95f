//! The async shell around the group state machines: one task owns every
//! [`Group`], feeds it requests and clock ticks, and routes the effects to
//! the requests waiting for them. Parked JoinGroup and SyncGroup requests
//! are just oneshot senders held here until their group answers them.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::offsets::{OffsetStore, OffsetStoreError};
use super::state::{
    Effect, Event, Group, GroupLimits, GroupState, JoinOutcome, JoinRequest, MemberRef, ReplyId,
    SyncOutcome, SyncRequest,
};
use crate::config::GroupSettings;
use crate::record_log::RecordLogError;

/// How often offsets of empty groups are checked for expiry (Kafka's
/// `offsets.retention.check.interval.ms` default).
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    /// `None`: the coordinator knows nothing of the group (Kafka: "Dead").
    pub state: Option<GroupState>,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

enum Command {
    Event {
        group: String,
        event: Event,
        reply: oneshot::Sender<Effect>,
    },
    ValidateCommit {
        group: String,
        member: MemberRef,
        generation_id: i32,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    Describe {
        groups: Vec<String>,
        reply: oneshot::Sender<Vec<GroupDescription>>,
    },
    List {
        reply: oneshot::Sender<Vec<GroupListing>>,
    },
    /// Removes the groups that have no members; per group, whether it did.
    Delete {
        groups: Vec<String>,
        reply: oneshot::Sender<Vec<Result<(), ResponseError>>>,
    },
}

/// The cloneable front of the coordinator task.
pub struct GroupCoordinator {
    commands: mpsc::UnboundedSender<Command>,
    pub offsets: Arc<OffsetStore>,
    /// The coordinator task and what stops it, for [`close`](Self::close).
    task: std::sync::Mutex<Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
}

impl GroupCoordinator {
    /// Opens the offset store under `data_dir` and starts the coordinator
    /// task, which runs until `shutdown` turns true.
    pub fn start(
        data_dir: &Path,
        settings: GroupSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<GroupCoordinator, OffsetStoreError> {
        let offsets = Arc::new(OffsetStore::open(&data_dir.join("__consumer_offsets"))?);
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = Task {
            groups: HashMap::new(),
            parked: HashMap::new(),
            next_reply: 0,
            limits: GroupLimits {
                min_session_timeout: settings.min_session_timeout,
                max_session_timeout: settings.max_session_timeout,
                initial_rebalance_delay: settings.initial_rebalance_delay,
            },
            offsets: offsets.clone(),
            retention: settings.offsets_retention,
            expiring: JoinSet::new(),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(task.run(receiver, shutdown, stopped));
        Ok(GroupCoordinator {
            commands,
            offsets,
            task: std::sync::Mutex::new(Some((stop, task))),
        })
    }

    pub fn is_loaded(&self) -> bool {
        self.offsets.is_loaded()
    }

    pub async fn join(&self, group: &str, request: JoinRequest) -> JoinOutcome {
        match self.event(group, |reply| Event::Join(reply, request)).await {
            Some(Effect::Join(_, outcome)) => outcome,
            _ => JoinOutcome {
                error: Some(ResponseError::CoordinatorNotAvailable),
                generation_id: -1,
                ..JoinOutcome::default()
            },
        }
    }

    pub async fn sync(&self, group: &str, request: SyncRequest) -> SyncOutcome {
        match self.event(group, |reply| Event::Sync(reply, request)).await {
            Some(Effect::Sync(_, outcome)) => outcome,
            _ => SyncOutcome {
                error: Some(ResponseError::CoordinatorNotAvailable),
                ..SyncOutcome::default()
            },
        }
    }

    pub async fn heartbeat(
        &self,
        group: &str,
        member: MemberRef,
        generation_id: i32,
    ) -> Option<ResponseError> {
        match self
            .event(group, |reply| {
                Event::Heartbeat(reply, member, generation_id)
            })
            .await
        {
            Some(Effect::Heartbeat(_, error)) => error,
            _ => Some(ResponseError::CoordinatorNotAvailable),
        }
    }

    /// The group-level error and each member's.
    pub async fn leave(
        &self,
        group: &str,
        members: Vec<MemberRef>,
    ) -> (
        Option<ResponseError>,
        Vec<(String, Option<String>, Option<ResponseError>)>,
    ) {
        match self
            .event(group, |reply| Event::Leave(reply, members))
            .await
        {
            Some(Effect::Leave(_, error, results)) => (error, results),
            _ => (Some(ResponseError::CoordinatorNotAvailable), Vec::new()),
        }
    }

    pub async fn validate_commit(
        &self,
        group: &str,
        member: MemberRef,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::ValidateCommit {
            group: group.to_string(),
            member,
            generation_id,
            reply,
        });
        answer
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    }

    pub async fn describe(&self, groups: Vec<String>) -> Vec<GroupDescription> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Describe { groups, reply });
        answer.await.unwrap_or_default()
    }

    /// Every group with members or committed offsets.
    pub async fn list(&self) -> Vec<GroupListing> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::List { reply });
        answer.await.unwrap_or_default()
    }

    /// DeleteGroups: a group with members is refused (NON_EMPTY_GROUP), an
    /// unknown one is GROUP_ID_NOT_FOUND; otherwise its offsets go too.
    pub async fn delete(&self, groups: Vec<String>) -> Vec<(String, Option<ResponseError>)> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Delete {
            groups: groups.clone(),
            reply,
        });
        let removed = answer.await.unwrap_or_default();
        let mut results = Vec::new();
        for (group, removed) in groups.into_iter().zip(removed) {
            let error = match removed {
                Err(error) => Some(error),
                Ok(()) => {
                    let tombstone = vec![super::Record::DeleteGroup {
                        group: group.clone(),
                    }];
                    self.offsets.append(tombstone).await.err().map(store_error)
                }
            };
            results.push((group, error));
        }
        results
    }

    /// Stops the coordinator task and waits for it (and any offset expiry
    /// it started), then stops the offset store's writer after queued
    /// commits.
    pub async fn close(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, task)) = task {
            let _ = stop.send(());
            if let Err(error) = task.await {
                tracing::error!(%error, "group coordinator task failed");
            }
        }
        self.offsets.close();
    }

    async fn event(&self, group: &str, event: impl FnOnce(ReplyId) -> Event) -> Option<Effect> {
        let (reply, answer) = oneshot::channel();
        // The task assigns the real reply id; 0 is replaced there.
        self.send(Command::Event {
            group: group.to_string(),
            event: event(0),
            reply,
        });
        answer.await.ok()
    }

    fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

/// The wire error for a store failure, as Kafka maps a failed append to
/// `__consumer_offsets` (`GroupMetadataManager.storeOffsets`): a storage
/// error (`KAFKA_STORAGE_ERROR`) becomes NOT_COORDINATOR, a record too large
/// to append INVALID_COMMIT_OFFSET_SIZE; a store that is not running is
/// COORDINATOR_NOT_AVAILABLE, one still loading COORDINATOR_LOAD_IN_PROGRESS.
/// All but the size error are retriable, so clients retry the commit.
pub fn store_error(error: OffsetStoreError) -> ResponseError {
    match error {
        OffsetStoreError::Loading => ResponseError::CoordinatorLoadInProgress,
        OffsetStoreError::WriteFailed(cause) => match *cause {
            RecordLogError::UnframeableRecord { .. } => ResponseError::InvalidCommitOffsetSize,
            _ => ResponseError::NotCoordinator,
        },
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

struct Task {
    groups: HashMap<String, Group>,
    parked: HashMap<ReplyId, oneshot::Sender<Effect>>,
    next_reply: ReplyId,
    limits: GroupLimits,
    offsets: Arc<OffsetStore>,
    retention: Duration,
    /// Offset expiry runs beside the task, which waits for it before it ends.
    expiring: JoinSet<()>,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut shutdown: watch::Receiver<bool>,
        mut stop: oneshot::Receiver<()>,
    ) {
        if let Err(error) = self.offsets.wait_loaded().await {
            // Requests then fail with COORDINATOR_NOT_AVAILABLE; the broker
            // refuses to start on this error anyway.
            tracing::error!(%error, "group coordinator not started");
            return;
        }
        let mut expiry = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
        tokio::select! {
            () = self.serve(&mut commands, &mut shutdown, &mut expiry) => {}
            _ = &mut stop => {}
        }
        while self.expiring.join_next().await.is_some() {}
    }

    async fn serve(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        shutdown: &mut watch::Receiver<bool>,
        expiry: &mut tokio::time::Interval,
    ) {
        loop {
            let deadline = self.groups.values().filter_map(Group::deadline).min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => return,
                },
                _ = sleep => self.tick(),
                _ = expiry.tick() => self.expire(),
                Some(_) = self.expiring.join_next(), if !self.expiring.is_empty() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Event {
                group,
                event,
                reply,
            } => {
                self.next_reply += 1;
                let id = self.next_reply;
                self.parked.insert(id, reply);
                let event = match event {
                    Event::Join(_, request) => Event::Join(id, request),
                    Event::Sync(_, request) => Event::Sync(id, request),
                    Event::Heartbeat(_, member, generation) => {
                        Event::Heartbeat(id, member, generation)
                    }
                    Event::Leave(_, members) => Event::Leave(id, members),
                    Event::Tick => Event::Tick,
                };
                let creates = matches!(event, Event::Join(..));
                let effects = match self.groups.get_mut(&group) {
                    Some(existing) => existing.on_event(event, Instant::now()),
                    None if creates => {
                        let mut fresh = Group::new(&group, self.limits);
                        let effects = fresh.on_event(event, Instant::now());
                        self.groups.insert(group, fresh);
                        effects
                    }
                    // Answered by a throwaway group: UNKNOWN_MEMBER_ID.
                    None => Group::new(&group, self.limits).on_event(event, Instant::now()),
                };
                self.deliver(effects);
            }
            Command::ValidateCommit {
                group,
                member,
                generation_id,
                reply,
            } => {
                let result = match self.groups.get(&group) {
                    Some(existing) => existing.validate_commit(&member, generation_id),
                    None => Group::new(&group, self.limits).validate_commit(&member, generation_id),
                };
                let _ = reply.send(result);
            }
            Command::Describe { groups, reply } => {
                let described = groups.into_iter().map(|g| self.describe(g)).collect();
                let _ = reply.send(described);
            }
            Command::List { reply } => {
                let mut listed: Vec<GroupListing> = self
                    .groups
                    .values()
                    .map(|g| GroupListing {
                        group_id: g.group_id.clone(),
                        protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                        state: g.state(),
                    })
                    .collect();
                for group in self.offsets.groups() {
                    if !self.groups.contains_key(&group) {
                        listed.push(GroupListing {
                            group_id: group,
                            protocol_type: String::new(),
                            state: GroupState::Empty,
                        });
                    }
                }
                let _ = reply.send(listed);
            }
            Command::Delete { groups, reply } => {
                let results = groups
                    .iter()
                    .map(|group| match self.groups.get(group) {
                        Some(existing) if !existing.is_empty() => Err(ResponseError::NonEmptyGroup),
                        Some(_) => {
                            self.groups.remove(group);
                            Ok(())
                        }
                        None if self.offsets.has_group(group) => Ok(()),
                        None => Err(ResponseError::GroupIdNotFound),
                    })
                    .collect();
                let _ = reply.send(results);
            }
        }
    }

    fn describe(&self, group_id: String) -> GroupDescription {
        let Some(group) = self.groups.get(&group_id) else {
            let state = self
                .offsets
                .has_group(&group_id)
                .then_some(GroupState::Empty);
            return GroupDescription {
                group_id,
                state,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = group.protocol_name().unwrap_or_default().to_string();
        // Kafka shows member metadata only once a protocol is chosen.
        let members = group
            .members()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect();
        GroupDescription {
            group_id,
            state: Some(group.state()),
            protocol_type: group.protocol_type().unwrap_or_default().to_string(),
            protocol_name: if group.state() == GroupState::Stable {
                protocol
            } else {
                String::new()
            },
            members,
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(group) = self.groups.get_mut(&id) {
                let effects = group.on_event(Event::Tick, now);
                self.deliver(effects);
            }
        }
    }

    /// Expires offsets of groups without members, and forgets empty
    /// groups that no longer have offsets.
    fn expire(&mut self) {
        let active: HashSet<String> = self
            .groups
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        let offsets = self.offsets.clone();
        self.groups
            .retain(|id, g| !g.is_empty() || offsets.has_group(id));
        let retention = self.retention;
        self.expiring.spawn(async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            match offsets.expire(now, retention, &active).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "expired committed offsets"),
                Err(error) => tracing::warn!(%error, "could not expire committed offsets"),
            }
        });
    }

    fn deliver(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            let id = match &effect {
                Effect::Join(id, _)
                | Effect::Sync(id, _)
                | Effect::Heartbeat(id, _)
                | Effect::Leave(id, _, _) => *id,
            };
            if let Some(reply) = self.parked.remove(&id) {
                let _ = reply.send(effect);
            }
        }
    }
}
