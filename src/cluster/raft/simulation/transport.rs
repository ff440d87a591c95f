//! The members' wire inside the simulation: raft RPCs (and the client's
//! proposals) as length-prefixed JSON frames over turmoil's TCP, so its
//! partitions, broken links and delays hit them. The JSON bodies and the
//! client side of the calls ([`PeerClient`](super::super::network)) are
//! production's; only the HTTP framing is replaced.

use std::io;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

use super::super::network::{CallError, RaftRpc, RaftTransport};
use super::super::{Applied, Member, MemberId, Proposal, QuorumError, RaftNode};
use crate::cluster::{ClusterError, KafkaCode};

/// Where a member serves raft RPCs.
pub const PEER_PORT: u16 = 9000;
/// Where a member takes the client's proposals.
pub const CLIENT_PORT: u16 = 9001;

/// Largest frame read; a larger length is refused before any allocation.
const MAX_FRAME: u32 = 16 << 20;

fn rpc_tag(rpc: RaftRpc) -> u8 {
    match rpc {
        RaftRpc::Append => 0,
        RaftRpc::Vote => 1,
        RaftRpc::Snapshot => 2,
    }
}

fn rpc_from_tag(tag: u8) -> Option<RaftRpc> {
    match tag {
        0 => Some(RaftRpc::Append),
        1 => Some(RaftRpc::Vote),
        2 => Some(RaftRpc::Snapshot),
        _ => None,
    }
}

async fn write_frame(stream: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u32().await?;
    if len > MAX_FRAME {
        return Err(io::Error::other(format!("frame of {len} bytes")));
    }
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// Raft RPCs over turmoil's TCP; a peer is its `host:port`.
#[derive(Clone)]
pub struct SimulatedTransport;

impl RaftTransport for SimulatedTransport {
    type Peer = String;

    fn peer(&self, member: &Member) -> String {
        member.peer_address.clone()
    }

    async fn call<Req, Resp>(
        peer: &String,
        rpc: RaftRpc,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError>
    where
        Req: Serialize + Sync,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(request).map_err(|e| refused(format!("encode: {e}")))?;
        let exchange = async {
            let mut stream = TcpStream::connect(peer.as_str()).await?;
            stream.write_u8(rpc_tag(rpc)).await?;
            write_frame(&mut stream, &body).await?;
            read_frame(&mut stream).await
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| CallError::Unreachable {
                reason: "no answer in time".to_owned(),
            })?
            .map_err(|e| CallError::Unreachable {
                reason: e.to_string(),
            })?;
        serde_json::from_slice(&answer).map_err(|e| refused(format!("unreadable answer: {e}")))
    }
}

fn refused(message: String) -> CallError {
    CallError::Refused(ClusterError::Rejected {
        code: KafkaCode::UNKNOWN_SERVER_ERROR,
        message,
    })
}

/// Serves raft RPCs to the other members until the host stops.
pub async fn serve_peers(node: RaftNode) -> io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", PEER_PORT)).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let node = node.clone();
        tokio::task::spawn_local(async move {
            let served = async {
                let rpc = rpc_from_tag(stream.read_u8().await?)
                    .ok_or_else(|| io::Error::other("unknown raft RPC"))?;
                let body = read_frame(&mut stream).await?;
                let answer = node.serve_rpc(rpc, &body).await.map_err(io::Error::other)?;
                write_frame(&mut stream, &answer).await
            };
            // A broken link just drops the call, as it would over HTTP.
            let _ = served.await;
        });
    }
}

/// The answer to a client's proposal.
#[derive(Debug, Serialize, Deserialize)]
pub enum ClientAnswer {
    Applied(Applied),
    NotLeader(Option<MemberId>),
    Unavailable(String),
}

/// Takes the client's proposals until the host stops: each is
/// [`RaftNode::propose`], as the coordinator's handlers call it.
pub async fn serve_client(node: RaftNode) -> io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", CLIENT_PORT)).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let node = node.clone();
        tokio::task::spawn_local(async move {
            let served = async {
                let body = read_frame(&mut stream).await?;
                let proposal: Proposal = serde_json::from_slice(&body).map_err(io::Error::other)?;
                let answer = match node.propose(proposal).await {
                    Ok(applied) => ClientAnswer::Applied(applied),
                    Err(QuorumError::NotLeader { leader }) => {
                        ClientAnswer::NotLeader(leader.map(|(id, _)| id))
                    }
                    // The simulation proposes no voter changes; a refusal is
                    // an unacknowledged proposal like any other.
                    Err(
                        QuorumError::Unavailable(reason) | QuorumError::MembershipRefused(reason),
                    ) => ClientAnswer::Unavailable(reason),
                };
                let answer = serde_json::to_vec(&answer).map_err(io::Error::other)?;
                write_frame(&mut stream, &answer).await
            };
            let _ = served.await;
        });
    }
}

/// Sends `proposal` to the member at `address` and reads its answer.
pub async fn propose(address: &str, proposal: &Proposal) -> io::Result<ClientAnswer> {
    let mut stream = TcpStream::connect(address).await?;
    let body = serde_json::to_vec(proposal).map_err(io::Error::other)?;
    write_frame(&mut stream, &body).await?;
    let answer = read_frame(&mut stream).await?;
    serde_json::from_slice(&answer).map_err(io::Error::other)
}
