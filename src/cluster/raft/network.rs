//! Raft RPCs over the coordinator's HTTP stack: the same hyper server (on
//! the peer port) and the same client, with mutual TLS when the
//! coordinator has TLS configured.
//!
//! Routes: `POST /v1/raft/append`, `POST /v1/raft/vote`,
//! `POST /v1/raft/snapshot` (openraft's chunked snapshot transfer). The
//! body is openraft's request as JSON; the answer (HTTP 200) is
//! `Result<response, RaftError>` as JSON, so a remote refusal and a lost
//! peer stay apart.

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
use crate::cluster::http::client::{CallError, HttpClient};

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

    fn path(self) -> &'static str {
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

/// Makes a [`PeerClient`] per peer; TLS when the coordinator has it.
#[derive(Clone)]
pub struct HttpNetwork {
    tls: Option<CoordinatorTls>,
}

impl HttpNetwork {
    pub fn new(tls: Option<CoordinatorTls>) -> Self {
        Self { tls }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: MemberId, node: &Member) -> PeerClient {
        PeerClient {
            target,
            http: HttpClient::new(node.peer_address.clone(), self.tls.clone()),
        }
    }
}

/// Sends raft RPCs to one peer.
pub struct PeerClient {
    target: MemberId,
    http: HttpClient,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<MemberId, Member, RaftError<MemberId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        rpc: RaftRpc,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl().max(MIN_RPC_TIMEOUT);
        let answer: Result<Result<Resp, RaftError<MemberId, E>>, CallError> = self
            .http
            .call_within(Method::POST, rpc.path(), Some(request), timeout)
            .await;
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

impl RaftNetwork<TypeConfig> for PeerClient {
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
