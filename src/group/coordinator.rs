//! The async shell around the group state machines: one task owns every
//! [`Group`], feeds it requests and clock ticks, and routes the effects to
//! the requests waiting for them. Parked JoinGroup and SyncGroup requests
//! are just oneshot senders held here until their group answers them.
//!
//! The task also follows the metadata images: for each `__consumer_offsets`
//! partition this broker comes to lead it loads the partition (its groups'
//! offsets and last metadata, see `loader`), and for each it stops leading
//! it unloads them, answering the parked requests of their groups with
//! NOT_COORDINATOR. A group's metadata effects ([`Effect::StoreGroup`]) are
//! written to its partition here and their outcome fed back to the group.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::legacy::LegacyOffsets;
use super::loader::{LoadOutcome, SharedLegacy};
use super::log::{OffsetsLog, now_ms};
use super::offsets::{OffsetStore, Ownership};
use super::ownership::{GroupOwner, group_owner};
use super::state::{
    Effect, Event, Group, GroupLimits, GroupState, JoinOutcome, JoinRequest, MemberRef, ReplyId,
    SyncOutcome, SyncRequest,
};
use crate::cluster::MetadataImage;
use crate::config::GroupSettings;

/// How often offsets of empty groups are checked for expiry (Kafka's
/// `offsets.retention.check.interval.ms` default).
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(600);
/// How soon a failed load of an offsets partition is tried again.
const LOAD_RETRY_INTERVAL: Duration = Duration::from_secs(2);

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
    /// A metadata image the hosted partitions now match.
    Image(Arc<MetadataImage>),
}

/// The cloneable front of the coordinator task.
pub struct GroupCoordinator {
    commands: mpsc::UnboundedSender<Command>,
    pub offsets: Arc<OffsetStore>,
    broker_id: i32,
    /// The coordinator task and what stops it, for [`close`](Self::close).
    task: std::sync::Mutex<Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
}

impl GroupCoordinator {
    /// Starts the coordinator task, which runs until `shutdown` turns true.
    /// It coordinates the groups of the offsets partitions `broker_id`
    /// leads, reached through `log`; `legacy` is the old offsets file of
    /// this data directory, still to be migrated.
    pub fn start(
        settings: GroupSettings,
        broker_id: i32,
        log: Arc<dyn OffsetsLog>,
        legacy: Option<LegacyOffsets>,
        shutdown: watch::Receiver<bool>,
    ) -> GroupCoordinator {
        let offsets = Arc::new(OffsetStore::new(log, settings.offsets_commit_timeout));
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = Task {
            broker_id,
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
            legacy: legacy.map(|legacy| Arc::new(Mutex::new(legacy))),
            image: None,
            expiring: JoinSet::new(),
            stores: JoinSet::new(),
            loads: JoinSet::new(),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(task.run(receiver, shutdown, stopped));
        GroupCoordinator {
            commands,
            offsets,
            broker_id,
            task: std::sync::Mutex::new(Some((stop, task))),
        }
    }

    /// The partitions now match `image`: load the offsets partitions it
    /// makes this broker lead, unload the others.
    pub fn image_reconciled(&self, image: Arc<MetadataImage>) {
        self.send(Command::Image(image));
    }

    /// Why this broker cannot serve `group` now (Kafka's
    /// `validateGroupStatus`): another broker leads the group's offsets
    /// partition, or none does, or the offsets topic does not exist yet
    /// (NOT_COORDINATOR, so the client looks its coordinator up again); or
    /// this broker leads it but is still loading it
    /// (COORDINATOR_LOAD_IN_PROGRESS).
    pub fn refusal(&self, image: &MetadataImage, group: &str) -> Option<ResponseError> {
        match group_owner(image, group) {
            GroupOwner::Broker(owner) if owner == self.broker_id => {
                match self.offsets.ownership(group) {
                    Ownership::Loaded => None,
                    Ownership::Loading | Ownership::NotOwned => {
                        Some(ResponseError::CoordinatorLoadInProgress)
                    }
                }
            }
            _ => Some(ResponseError::NotCoordinator),
        }
    }

    /// Waits (at most `timeout`) until this broker, which leads `group`'s
    /// offsets partition, has loaded it.
    pub async fn until_loaded(&self, group: &str, timeout: Duration) {
        self.offsets.until_loaded(group, timeout).await;
    }

    /// Whether an offsets partition led here is still loading.
    pub fn any_loading(&self) -> bool {
        self.offsets.any_loading()
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
                Ok(()) => self.offsets.delete_group(&group).await.err(),
            };
            results.push((group, error));
        }
        results
    }

    /// Stops the coordinator task and waits for it; loads and writes it
    /// started stop with it.
    pub async fn close(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, task)) = task {
            let _ = stop.send(());
            if let Err(error) = task.await {
                tracing::error!(%error, "group coordinator task failed");
            }
        }
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

/// A group's metadata store that ended: (group, generation, error).
type StoreOutcome = (String, i32, Option<ResponseError>);

struct Task {
    broker_id: i32,
    groups: HashMap<String, Group>,
    parked: HashMap<ReplyId, oneshot::Sender<Effect>>,
    next_reply: ReplyId,
    limits: GroupLimits,
    offsets: Arc<OffsetStore>,
    retention: Duration,
    /// The old offsets file, while it still holds groups to migrate.
    legacy: Option<SharedLegacy>,
    /// The last metadata image: which offsets partitions this broker leads.
    image: Option<Arc<MetadataImage>>,
    /// Offset expiry runs beside the task, which waits for it before it ends.
    expiring: JoinSet<()>,
    /// Group metadata writes, whose outcome goes back to the group.
    stores: JoinSet<StoreOutcome>,
    /// Offsets partitions being loaded.
    loads: JoinSet<LoadOutcome>,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut shutdown: watch::Receiver<bool>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut expiry = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
        tokio::select! {
            () = self.serve(&mut commands, &mut shutdown, &mut expiry) => {}
            _ = &mut stop => {}
        }
        // Writes still waiting for followers would wait in vain once the
        // connections are drained: they stop here. Whatever reached the log
        // is loaded by the next leader; nothing was applied in memory.
        self.loads.shutdown().await;
        self.stores.shutdown().await;
        self.expiring.shutdown().await;
    }

    async fn serve(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        shutdown: &mut watch::Receiver<bool>,
        expiry: &mut tokio::time::Interval,
    ) {
        let mut retry = tokio::time::interval(LOAD_RETRY_INTERVAL);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                _ = retry.tick() => self.sync_partitions(),
                Some(_) = self.expiring.join_next(), if !self.expiring.is_empty() => {}
                Some(stored) = self.stores.join_next(), if !self.stores.is_empty() => {
                    if let Ok((group, generation_id, error)) = stored {
                        self.stored(&group, generation_id, error);
                    }
                }
                Some(loaded) = self.loads.join_next(), if !self.loads.is_empty() => {
                    if let Ok(outcome) = loaded {
                        self.loaded(outcome);
                    }
                }
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
                if self.offsets.ownership(&group) != Ownership::Loaded {
                    let _ = reply.send(refused(&event, ResponseError::NotCoordinator));
                    return;
                }
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
                    other => other,
                };
                let creates = matches!(event, Event::Join(..));
                let effects = match self.groups.get_mut(&group) {
                    Some(existing) => existing.on_event(event, Instant::now()),
                    None if creates => {
                        let mut fresh = Group::new(&group, self.limits);
                        let effects = fresh.on_event(event, Instant::now());
                        self.groups.insert(group.clone(), fresh);
                        effects
                    }
                    // Answered by a throwaway group: UNKNOWN_MEMBER_ID.
                    None => Group::new(&group, self.limits).on_event(event, Instant::now()),
                };
                self.deliver(&group, effects);
            }
            Command::ValidateCommit {
                group,
                member,
                generation_id,
                reply,
            } => {
                if self.offsets.ownership(&group) != Ownership::Loaded {
                    let _ = reply.send(Err(ResponseError::NotCoordinator));
                    return;
                }
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
            Command::Image(image) => {
                self.image = Some(image);
                self.sync_partitions();
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
                self.deliver(&id, effects);
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
        // A group with neither members nor offsets is dead: its metadata
        // gets a tombstone, as Kafka's `cleanupGroupMetadata` writes.
        let dead: Vec<String> = self
            .groups
            .iter()
            .filter(|(id, g)| g.is_empty() && !offsets.has_group(id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            self.groups.remove(id);
        }
        let retention = self.retention;
        self.expiring.spawn(async move {
            match offsets.expire(now_ms(), retention, &active).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "expired committed offsets"),
                Err(error) => {
                    tracing::warn!(code = error.code(), "could not expire committed offsets")
                }
            }
            for group in dead {
                if let Err(error) = offsets.delete_group(&group).await {
                    tracing::debug!(%group, code = error.code(), "could not write a dead group's tombstone");
                }
            }
        });
    }

    fn deliver(&mut self, group: &str, effects: Vec<Effect>) {
        for effect in effects {
            let id = match &effect {
                Effect::Join(id, _)
                | Effect::Sync(id, _)
                | Effect::Heartbeat(id, _)
                | Effect::Leave(id, _, _) => *id,
                Effect::StoreGroup(metadata) => {
                    let mut metadata = metadata.clone();
                    metadata.current_state_timestamp = now_ms();
                    let offsets = self.offsets.clone();
                    let group = group.to_string();
                    self.stores.spawn(async move {
                        let generation_id = metadata.generation_id;
                        let error = offsets.store_group(&group, metadata).await.err();
                        (group, generation_id, error)
                    });
                    continue;
                }
            };
            if let Some(reply) = self.parked.remove(&id) {
                let _ = reply.send(effect);
            }
        }
    }
}

/// The answer to a request for a group this broker does not serve.
fn refused(event: &Event, error: ResponseError) -> Effect {
    match event {
        Event::Join(id, request) => Effect::Join(
            *id,
            JoinOutcome {
                error: Some(error),
                generation_id: -1,
                member_id: request.member_id.clone(),
                ..JoinOutcome::default()
            },
        ),
        Event::Sync(id, _) => Effect::Sync(
            *id,
            SyncOutcome {
                error: Some(error),
                ..SyncOutcome::default()
            },
        ),
        Event::Heartbeat(id, ..) => Effect::Heartbeat(*id, Some(error)),
        Event::Leave(id, _) => Effect::Leave(*id, Some(error), Vec::new()),
        Event::Tick | Event::Stored { .. } => Effect::Heartbeat(0, Some(error)),
    }
}

mod loading;
#[cfg(test)]
mod tests;
