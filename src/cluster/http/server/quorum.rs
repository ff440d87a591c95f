//! What the coordinator server does when it is one member of a quorum
//! (`server.N` lines): open the raft member, follow its leadership (broker
//! leases belong to the leader alone), and keep `meta.json` in agreement
//! with the cluster id the quorum decided.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::routes::{Failure, HttpResponse, invalid, json};
use super::{CoordinatorError, Service};
use crate::cluster::bootstrap;
use crate::cluster::command_log::{METADATA_DIR, agree_marker};
use crate::cluster::http::CoordinatorTls;
use crate::cluster::http::ensemble::EnsembleSettings;
use crate::cluster::http::settings::CoordinatorSettings;
use crate::cluster::http::wire::{AddVoterRequest, QuorumView, VoterView, WriteResponse};
use crate::cluster::raft::{Member, MemberId, MembershipChange, RaftNode};
use crate::cluster::{ClusterCoordinator, ClusterError, EmbeddedCoordinator, QuorumLeader};
use crate::config::CoordinatorTlsSettings;

/// The raft member's files, under the metadata directory.
const RAFT_DIR: &str = "raft";

/// The proposer: over the single node's command log, or over the quorum
/// member `ensemble` describes.
pub(super) async fn open_metadata(
    settings: &CoordinatorSettings,
) -> Result<EmbeddedCoordinator, CoordinatorError> {
    let data_dir = settings.data_dir.clone();
    let dir_failed = |reason: String| CoordinatorError::DataDir {
        path: settings.data_dir.clone(),
        reason,
    };
    let Some(ensemble) = &settings.ensemble else {
        let node_id = settings.node_id;
        let metadata =
            tokio::task::spawn_blocking(move || EmbeddedCoordinator::open(&data_dir, node_id))
                .await
                .map_err(|e| dir_failed(format!("opening the metadata log failed: {e}")))??;
        return Ok(metadata.with_partition_limits(settings.partition_limits));
    };
    let member_id = member_node_id(ensemble);
    let check_dir = data_dir.clone();
    tokio::task::spawn_blocking(move || agree_marker(&check_dir, member_id, ""))
        .await
        .map_err(|e| dir_failed(e.to_string()))??;
    let tls = peer_tls(settings)?;
    let client_port = settings
        .listen
        .or(settings.secure.as_ref().map(|s| s.listen))
        .map_or(2181, |a| a.port());
    let mut raft_settings = ensemble.raft_settings(client_port);
    let read_dir = data_dir.clone();
    let formatted = tokio::task::spawn_blocking(move || bootstrap::read(&read_dir))
        .await
        .map_err(|e| dir_failed(e.to_string()))??;
    if let Some(formatted) = &formatted
        && raft_settings.voters.is_empty()
    {
        // A dynamic quorum's initial voters (`format --standalone` or
        // `--initial-controllers`), one port each for raft and clients.
        raft_settings.voters = formatted
            .initial_voters
            .iter()
            .map(|(id, address)| {
                let member = Member {
                    peer_address: address.clone(),
                    client_address: address.clone(),
                };
                (*id, member)
            })
            .collect();
    }
    let raft_dir = data_dir.join(METADATA_DIR).join(RAFT_DIR);
    let node = RaftNode::start(&raft_dir, &raft_settings, tls)
        .await
        .map_err(|e| dir_failed(e.to_string()))?;
    tracing::info!(
        member_id = ensemble.my_id,
        voters = raft_settings.voters.len(),
        "coordinator quorum member started"
    );
    let metadata = EmbeddedCoordinator::with_quorum(node)
        .with_formatted_cluster_id(formatted.map(|f| f.cluster_id));
    check_marker(&data_dir, member_id, &metadata).await?;
    Ok(metadata.with_partition_limits(settings.partition_limits))
}

/// `myid` as the marker's node id.
fn member_node_id(ensemble: &EnsembleSettings) -> i32 {
    i32::try_from(ensemble.my_id).unwrap_or(i32::MAX)
}

/// Raft RPCs to peers go through TLS when the coordinator has it: as
/// [`SecureListen::peer_client`] says, else with this coordinator's
/// certificate as the client certificate and its truststore for the
/// peers'. Peers are then dialled by the addresses in `server.N` lines,
/// which need not be the names in their certificates, so the chain is
/// checked, not the host name.
///
/// [`SecureListen::peer_client`]: crate::cluster::http::settings::SecureListen::peer_client
fn peer_tls(settings: &CoordinatorSettings) -> Result<Option<CoordinatorTls>, CoordinatorError> {
    let Some(secure) = &settings.secure else {
        return Ok(None);
    };
    let client = match &secure.peer_client {
        Some(client) => client.clone(),
        None => CoordinatorTlsSettings {
            keystore: Some(secure.tls.keystore.clone()),
            truststore: secure.tls.truststore.clone().ok_or_else(|| {
                CoordinatorError::DataDir {
                    path: settings.data_dir.clone(),
                    reason: "a coordinator quorum with TLS needs ssl.trustStore.location: the CA that signs the members' certificates".to_owned(),
                }
            })?,
            verify_hostname: false,
        },
    };
    Ok(Some(CoordinatorTls::new(&client)?))
}

/// Refuses a `meta.json` that names another cluster than the quorum's;
/// writes it once the quorum's cluster id is known.
async fn check_marker(
    data_dir: &Path,
    member_id: i32,
    metadata: &EmbeddedCoordinator,
) -> Result<(), CoordinatorError> {
    let cluster_id = metadata.image().cluster_id.clone();
    let data_dir = data_dir.to_owned();
    let checked =
        tokio::task::spawn_blocking(move || agree_marker(&data_dir, member_id, &cluster_id))
            .await
            .map_err(|e| CoordinatorError::DataDir {
                path: PathBuf::new(),
                reason: e.to_string(),
            })?;
    Ok(checked?)
}

/// Follows this member's leadership: on becoming leader, every broker
/// lease restarts (no mass fencing after a failover) and the cluster id is
/// committed if no leader did it yet. Also writes `meta.json` once the
/// cluster id arrives (the next start refuses one that disagrees).
pub(super) async fn follow_leadership(service: Arc<Service>, data_dir: PathBuf, member_id: i32) {
    let Some(node) = service.metadata.quorum() else {
        return;
    };
    let mut leadership = node.leadership();
    let mut images = service.metadata.watch();
    let mut seen = (false, 0);
    let mut marked = !service.metadata.image().cluster_id.is_empty();
    loop {
        tokio::select! {
            now = leadership.changed(seen) => {
                let Some(now) = now else { return };
                seen = now;
                let (leading, term) = now;
                if !leading {
                    tracing::info!(term, leader = ?node.leader().map(|(id, _)| id), "following the coordinator quorum");
                    continue;
                }
                tracing::info!(term, "this coordinator leads the quorum");
                if let Ok(mut leases) = service.leases.lock() {
                    leases.reset(&service.metadata.image(), Instant::now());
                }
                if let Err(error) = service.metadata.take_lead().await {
                    tracing::warn!(%error, "could not confirm the quorum lead");
                }
            }
            changed = images.changed(), if !marked => {
                if changed.is_err() {
                    return;
                }
                if service.metadata.image().cluster_id.is_empty() {
                    continue;
                }
                marked = true;
                if let Err(error) = check_marker(&data_dir, member_id, &service.metadata).await {
                    // Checked again, and refused, at the next start.
                    tracing::error!(%error, "this data directory belongs to another cluster");
                }
            }
        }
    }
}

/// `GET /v1/quorum`, from this member's raft metrics.
pub(super) fn view(service: &Service) -> Option<QuorumView> {
    let status = service.metadata.quorum()?.status();
    let high_watermark = status.applied_index;
    let voters: Vec<VoterView> = status
        .voters
        .into_iter()
        .map(|voter| VoterView {
            id: voter.member_id,
            peer_address: voter.member.peer_address,
            client_address: voter.member.client_address,
            log_end_offset: voter.matched_index,
            lag: match (high_watermark, voter.matched_index) {
                (Some(hw), Some(matched)) => Some(hw.saturating_sub(matched)),
                _ => None,
            },
        })
        .collect();
    let image = service.metadata.image();
    let observers = image
        .brokers()
        .filter(|broker| !broker.fenced)
        .filter_map(|broker| u64::try_from(broker.id).ok())
        // A KRaft node (one port for raft and clients) is broker and voter
        // at once; a ZooKeeper-shaped member's id is no broker's.
        .filter(|id| {
            !voters
                .iter()
                .any(|v| v.id == *id && v.peer_address == v.client_address)
        })
        .collect();
    Some(QuorumView {
        observers,
        cluster_id: image.cluster_id.clone(),
        member_id: status.member_id,
        leader_id: status.leader_id,
        leader_epoch: status.term,
        high_watermark,
        voters,
    })
}

/// Broker leases live on the quorum leader alone: a follower sends
/// registrations and heartbeats there (NOT_CONTROLLER with the leader).
pub(super) fn require_leader(service: &Service) -> Result<(), ClusterError> {
    let Some(node) = service.metadata.quorum() else {
        return Ok(());
    };
    if node.is_leader() {
        return Ok(());
    }
    Err(ClusterError::NotController {
        leader: node.leader().map(|(id, member)| QuorumLeader {
            id,
            client_address: member.client_address,
        }),
    })
}

/// `POST /v1/quorum/voters` (`add-controller`): on the leader.
pub(super) async fn add_voter(
    service: &Service,
    req: AddVoterRequest,
) -> Result<HttpResponse, Failure> {
    crate::config::parse_voters(&crate::config::RawValue {
        value: format!("{}@{}", req.id, req.address),
        from: crate::config::Source::Flag,
    })
    .map_err(|e| invalid(e.to_string()))?;
    let member = Member {
        peer_address: req.address.clone(),
        client_address: req.address,
    };
    let change = MembershipChange::Add {
        member_id: req.id,
        member,
    };
    service.metadata.change_voters(change).await?;
    voters_changed(service)
}

/// `DELETE /v1/quorum/voters/{id}` (`remove-controller`): on the leader.
pub(super) async fn remove_voter(
    service: &Service,
    member_id: MemberId,
) -> Result<HttpResponse, Failure> {
    let change = MembershipChange::Remove { member_id };
    service.metadata.change_voters(change).await?;
    voters_changed(service)
}

fn voters_changed(service: &Service) -> Result<HttpResponse, Failure> {
    json(&WriteResponse {
        error: crate::cluster::http::wire::ErrorBody::none(),
        metadata_offset: service.metadata.image().last_applied,
    })
}
