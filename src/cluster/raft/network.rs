//! Raft RPCs over the coordinator's HTTP stack: the same hyper server (on
//! the peer port) and the same client, with mutual TLS when the
//! coordinator has TLS configured.
//!
//! The wire is behind [`RaftTransport`], so the deterministic simulation can
//! carry the same calls over its simulated network.
//!
//! Routes: `POST /v1/raft/append`, `POST /v1/raft/vote`,
//! `POST /v1/raft/snapshot` (openraft's chunked snapshot transfer). The
//! body is openraft's request as JSON; the answer (HTTP 200) is
//! `Result<response, RaftError>` as JSON, so a remote refusal and a lost
//! peer stay apart.

use std::future::Future;
use std::time::Duration;

use hyper::Method;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Member, MemberId, Raft, TypeConfig};
use crate::cluster::http::CoordinatorTls;
pub(crate) use crate::cluster::http::client::CallError;
use crate::cluster::http::client::HttpClient;

/// The raft RPCs, by the last segment of their route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftRpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftRpc {
    /// The RPC a route segment names.
    pub fn from_segment(segment: &str) -> Option<Self> {
        match segment {
            "append" => Some(Self::Append),
            "vote" => Some(Self::Vote),
            "snapshot" => Some(Self::Snapshot),
            _ => None,
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Append => "/v1/raft/append",
            Self::Vote => "/v1/raft/vote",
            Self::Snapshot => "/v1/raft/snapshot",
        }
    }
}

/// Why a raft RPC body could not be served.
#[derive(Debug, thiserror::Error)]
#[error("raft {rpc:?} request: {reason}")]
pub struct BadRaftRequest {
    pub rpc: RaftRpc,
    pub reason: String,
}

/// Serves one raft RPC on this member: decodes `body`, hands it to `raft`,
/// and encodes its answer.
pub async fn serve(raft: &Raft, rpc: RaftRpc, body: &[u8]) -> Result<Vec<u8>, BadRaftRequest> {
    let bad = |reason: String| BadRaftRequest { rpc, reason };
    let decode_failed = |e: serde_json::Error| bad(e.to_string());
    let answer = match rpc {
        RaftRpc::Append => {
            let request: AppendEntriesRequest<TypeConfig> =
                serde_json::from_slice(body).map_err(decode_failed)?;
            serde_json::to_vec(&raft.append_entries(request).await)
        }
        RaftRpc::Vote => {
            let request: VoteRequest<MemberId> =
                serde_json::from_slice(body).map_err(decode_failed)?;
            serde_json::to_vec(&raft.vote(request).await)
        }
        RaftRpc::Snapshot => {
            let request: InstallSnapshotRequest<TypeConfig> =
                serde_json::from_slice(body).map_err(decode_failed)?;
            serde_json::to_vec(&raft.install_snapshot(request).await)
        }
    };
    answer.map_err(|e| bad(format!("cannot encode the answer: {e}")))
}

/// Carries a raft RPC to a peer and brings its answer back: the seam
/// between openraft's calls ([`PeerClient`]) and the wire. Production is
/// [`HttpTransport`]; the deterministic simulation plugs in turmoil's
/// simulated network, so its partitions, losses and delays hit the same
/// client code.
pub(crate) trait RaftTransport: Clone + Send + Sync + 'static {
    /// How one peer is reached.
    type Peer: Send + Sync + 'static;

    fn peer(&self, member: &Member) -> Self::Peer;

    /// Sends `request` (JSON) to `peer` and decodes its answer, within
    /// `timeout`.
    fn call<Req, Resp>(
        peer: &Self::Peer,
        rpc: RaftRpc,
        request: &Req,
        timeout: Duration,
    ) -> impl Future<Output = Result<Resp, CallError>> + Send
    where
        Req: Serialize + Sync,
        Resp: DeserializeOwned;
}

/// Raft RPCs as HTTP POSTs to the peer listener; TLS when the coordinator
/// has it.
#[derive(Clone)]
pub(crate) struct HttpTransport {
    tls: Option<CoordinatorTls>,
}

impl RaftTransport for HttpTransport {
    type Peer = HttpClient;

    fn peer(&self, member: &Member) -> HttpClient {
        HttpClient::new(member.peer_address.clone(), self.tls.clone())
    }

    async fn call<Req, Resp>(
        peer: &HttpClient,
        rpc: RaftRpc,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError>
    where
        Req: Serialize + Sync,
        Resp: DeserializeOwned,
    {
        peer.call_within(Method::POST, rpc.path(), Some(request), timeout)
            .await
    }
}

/// Makes a [`PeerClient`] per peer over transport `T`.
#[derive(Clone)]
pub(crate) struct PeerNetwork<T> {
    transport: T,
}

impl<T: RaftTransport> PeerNetwork<T> {
    pub fn over(transport: T) -> Self {
        Self { transport }
    }
}

/// The production network: HTTP between the members.
pub(crate) type HttpNetwork = PeerNetwork<HttpTransport>;

impl HttpNetwork {
    pub fn new(tls: Option<CoordinatorTls>) -> Self {
        Self::over(HttpTransport { tls })
    }
}

impl<T: RaftTransport> RaftNetworkFactory<TypeConfig> for PeerNetwork<T> {
    type Network = PeerClient<T>;

    async fn new_client(&mut self, target: MemberId, node: &Member) -> PeerClient<T> {
        PeerClient {
            target,
            peer: self.transport.peer(node),
        }
    }
}

/// Sends raft RPCs to one peer.
pub(crate) struct PeerClient<T: RaftTransport> {
    target: MemberId,
    peer: T::Peer,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<MemberId, Member, RaftError<MemberId, E>>>;

impl<T: RaftTransport> PeerClient<T> {
    async fn call<Req, Resp, E>(
        &self,
        rpc: RaftRpc,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize + Sync,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl().max(MIN_RPC_TIMEOUT);
        let answer: Result<Result<Resp, RaftError<MemberId, E>>, CallError> =
            T::call(&self.peer, rpc, request, timeout).await;
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(refused)) => Err(RPCError::RemoteError(RemoteError::new(
                self.target,
                refused,
            ))),
            Err(CallError::Unreachable { reason }) => Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(reason),
            ))),
            Err(CallError::Refused(error)) => Err(RPCError::Network(NetworkError::new(&error))),
        }
    }
}

/// Floor for one RPC's deadline: openraft derives it from the heartbeat
/// interval, which is too short for a TLS handshake on a loaded machine.
const MIN_RPC_TIMEOUT: Duration = Duration::from_millis(500);

impl<T: RaftTransport> RaftNetwork<TypeConfig> for PeerClient<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<MemberId>> {
        self.call(RaftRpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<MemberId>, InstallSnapshotError> {
        self.call(RaftRpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<MemberId>> {
        self.call(RaftRpc::Vote, &rpc, &option).await
    }
}
