//! The coordinator's members as a broker or tool reaches them: one
//! address, or a quorum's (`zookeeper.connect=zk1:2181,zk2:2181,zk3:2181`).
//!
//! Calls go to the member that answered last. One that does not answer is
//! left for the next; one that answers NOT_CONTROLLER names the leader, and
//! the call goes there (writes and heartbeats only succeed on the leader;
//! the metadata log is served by any member).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::{CallError, HttpClient};
use super::client_tls::CoordinatorTls;
use super::wire::{AddVoterRequest, QuorumView, WriteResponse};
use crate::cluster::ClusterError;
use crate::cluster::raft::MembershipChange;

/// How long to wait before asking again while the quorum has no leader.
const NO_LEADER_DELAY: Duration = Duration::from_millis(250);
/// How long a call waits for the quorum to have a leader: a few election
/// timeouts (1-2 s each).
const NO_LEADER_PATIENCE: Duration = Duration::from_secs(6);

/// The members and which one is tried first.
#[derive(Debug)]
pub(crate) struct Members {
    clients: Vec<HttpClient>,
    tls: Option<CoordinatorTls>,
    /// The member tried first: the last one that answered, or the leader
    /// a follower named (not necessarily one of `clients`).
    current: Mutex<HttpClient>,
}

impl Members {
    /// `addresses`: `host:port`, comma separated.
    pub(crate) fn new(addresses: &str, tls: Option<CoordinatorTls>) -> Self {
        let mut clients: Vec<HttpClient> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| HttpClient::new(a.to_owned(), tls.clone()))
            .collect();
        if clients.is_empty() {
            clients.push(HttpClient::new(addresses.to_owned(), tls.clone()));
        }
        Self {
            current: Mutex::new(clients[0].clone()),
            clients,
            tls,
        }
    }

    fn current(&self) -> HttpClient {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, client: HttpClient) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = client;
    }

    /// The address calls go to first, for log lines.
    pub(crate) fn address(&self) -> String {
        self.current().address().to_owned()
    }

    /// The member after `failed` in the configured order.
    fn next_after(&self, failed: &HttpClient) -> HttpClient {
        let at = self
            .clients
            .iter()
            .position(|c| c.address() == failed.address());
        let next = at.map_or(0, |i| (i + 1) % self.clients.len());
        self.clients[next].clone()
    }

    /// [`HttpClient::call`] on the current member, moving on as the module
    /// docs say. Gives up after trying every member twice, or when no
    /// member has named a leader for [`NO_LEADER_PATIENCE`] (an election),
    /// and returns the last failure.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        wait: Duration,
    ) -> Result<T, CallError> {
        let max_hops = self.clients.len() * 2;
        let patience = Instant::now() + NO_LEADER_PATIENCE;
        let mut client = self.current();
        let mut hops = 0;
        let failure = loop {
            let error = match client.call(method.clone(), path, body, wait).await {
                Ok(answer) => {
                    self.set_current(client);
                    return Ok(answer);
                }
                Err(error) => error,
            };
            match &error {
                CallError::Refused(ClusterError::NotController { leader }) => match leader {
                    Some(leader) if leader.client_address != client.address() => {
                        // The first hop to a named leader is immediate;
                        // more mean an election is moving it.
                        if hops > 0 {
                            tokio::time::sleep(NO_LEADER_DELAY).await;
                        }
                        hops += 1;
                        client = HttpClient::new(leader.client_address.clone(), self.tls.clone());
                    }
                    _ => {
                        if Instant::now() >= patience {
                            break error;
                        }
                        tokio::time::sleep(NO_LEADER_DELAY).await;
                        client = self.next_after(&client);
                    }
                },
                CallError::Unreachable { .. } if self.clients.len() > 1 => {
                    tracing::debug!(coordinator = client.address(), %error, "coordinator member not answering; trying the next");
                    hops += 1;
                    client = self.next_after(&client);
                }
                _ => return Err(error),
            }
            if hops > max_hops {
                break error;
            }
        };
        self.set_current(client);
        Err(failure)
    }
}

/// `GET /v1/quorum` from the quorum's leader, reached through any of
/// `addresses` (comma separated): a follower's view names the leader, whose
/// view has every voter's progress. The view of the member that answered
/// when the leader does not.
pub async fn quorum_view(
    addresses: &str,
    tls: Option<CoordinatorTls>,
) -> Result<QuorumView, ClusterError> {
    let members = Members::new(addresses, tls.clone());
    let unreachable = |error: CallError| match error {
        CallError::Refused(error) => error,
        CallError::Unreachable { reason } => ClusterError::QuorumUnavailable {
            reason: format!("no coordinator at {addresses} answered: {reason}"),
        },
    };
    let view: QuorumView = members
        .call(Method::GET, "/v1/quorum", None::<&()>, Duration::ZERO)
        .await
        .map_err(unreachable)?;
    let leader = view
        .leader_id
        .filter(|id| *id != view.member_id)
        .and_then(|id| view.voters.iter().find(|v| v.id == id));
    let Some(leader) = leader else {
        return Ok(view);
    };
    let from_leader = HttpClient::new(leader.client_address.clone(), tls)
        .call(Method::GET, "/v1/quorum", None::<&()>, Duration::ZERO)
        .await;
    Ok(from_leader.unwrap_or(view))
}

/// How long an `add-controller` may take: the new controller catches up as
/// a learner (up to 30 s) before the voters change.
const VOTER_CHANGE_WAIT: Duration = Duration::from_secs(40);

/// `add-controller` / `remove-controller`, sent to the quorum's leader
/// through any of `addresses` (comma separated).
pub async fn change_voters(
    addresses: &str,
    tls: Option<CoordinatorTls>,
    change: &MembershipChange,
) -> Result<(), ClusterError> {
    let members = Members::new(addresses, tls);
    let answer: Result<WriteResponse, CallError> = match change {
        MembershipChange::Add { member_id, member } => {
            let request = AddVoterRequest {
                id: *member_id,
                address: member.client_address.clone(),
            };
            members
                .call(
                    Method::POST,
                    "/v1/quorum/voters",
                    Some(&request),
                    VOTER_CHANGE_WAIT,
                )
                .await
        }
        MembershipChange::Remove { member_id } => {
            let path = format!("/v1/quorum/voters/{member_id}");
            members
                .call(Method::DELETE, &path, None::<&()>, VOTER_CHANGE_WAIT)
                .await
        }
    };
    match answer {
        Ok(_) => Ok(()),
        Err(CallError::Refused(error)) => Err(error),
        Err(CallError::Unreachable { reason }) => Err(ClusterError::QuorumUnavailable {
            reason: format!("no controller at {addresses} answered: {reason}"),
        }),
    }
}
