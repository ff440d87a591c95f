//! One client connection: frames in, responses out, in request order.
//!
//! The reader decodes each request and starts its handler at once, so a
//! client may pipeline; the writer awaits handlers in the order their
//! requests arrived and coalesces the responses that are ready into one
//! write. A malformed frame closes the connection after the responses
//! already owed have been written; nothing else is affected.
//!
//! Limits (see the README's Limits table): each frame takes its declared
//! size from the broker-wide [`RequestBudget`] before the rest of it is
//! read; a request must arrive within `gregor.request.receive.timeout.ms`
//! of its first byte; a connection with nothing in flight is closed after
//! `connections.max.idle.ms`.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use tokio::time::Instant;

use super::BrokerContext;
use super::authentication::{Admission, Authenticator};
use super::dispatch::{Reply, dispatch};
use super::limits::RequestBudget;
use super::offset_order::OffsetRequestOrder;
use crate::protocol::{
    FrameError, FrameReader, RequestError, api_versions_body, decode_request, encode_response_parts,
};
use crate::security::tls::TlsAcceptorHandle;
use crate::security::{KafkaPrincipal, SecurityProtocol};
use crate::task::OwnedTask;

/// Requests a connection may have in flight before the reader waits.
const MAX_IN_FLIGHT: usize = 128;
/// Request bytes a connection may have in flight (in KiB). Past it the
/// reader stops reading, so a fast producer meets TCP backpressure instead
/// of growing the broker's heap.
const IN_FLIGHT_KIB: u32 = 16 * 1024;

/// What a connection knows about where it was accepted.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub listener: String,
    pub peer: std::net::SocketAddr,
    pub security_protocol: SecurityProtocol,
    /// Who the client authenticated as; `User:ANONYMOUS` until it does.
    pub principal: KafkaPrincipal,
}

/// A request's response frame, as buffers to write in order (`None` closes
/// the connection).
/// A request's handler: owned by the connection, so a client that goes
/// away (or a shutdown that gives up waiting) stops what it started.
pub(super) type Pending = OwnedTask<Option<Vec<Bytes>>>;

/// When the connection last did anything: read bytes, or wrote a response.
/// Shared by the reader and the writer task.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Why the reader stopped reading.
#[derive(Debug, thiserror::Error)]
enum Closing {
    #[error("no complete request within gregor.request.receive.timeout.ms ({0:?})")]
    RequestTimeout(Duration),
    #[error("idle for connections.max.idle.ms ({0:?})")]
    Idle(Duration),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Logged where it happened (see `authentication.rs`).
    #[error("{0}")]
    Authentication(String),
}

/// Serves one connection until the client closes it, it breaks a limit,
/// or the broker shuts down. `budget` is the broker-wide request budget.
pub async fn serve(
    ctx: Arc<BrokerContext>,
    socket: TcpStream,
    info: ConnectionInfo,
    budget: RequestBudget,
    shutdown: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    // Owned halves need no lock between the reader and the writer task.
    serve_halves(ctx, socket.into_split(), info, budget, shutdown).await;
}

/// [`serve`] on a TLS listener: the handshake first, in this connection's
/// task and within `gregor.request.receive.timeout.ms`, then the requests,
/// as the principal the client's certificate maps to.
pub async fn serve_tls(
    ctx: Arc<BrokerContext>,
    socket: TcpStream,
    mut info: ConnectionInfo,
    budget: RequestBudget,
    mut shutdown: watch::Receiver<bool>,
    tls: TlsAcceptorHandle,
) {
    let _ = socket.set_nodelay(true);
    let deadline = ctx.settings.connections.request_receive_timeout;
    let accepted = tokio::select! {
        accepted = tls.accept(socket, deadline) => accepted,
        _ = shutdown.changed() => return,
    };
    let stream = match accepted {
        Ok((stream, principal)) => {
            info.principal = principal;
            stream
        }
        // A connection closed before it said anything (a TCP health check,
        // a port scan) is routine.
        Err(error) if error.is_silent_close() => {
            tracing::debug!(peer = %info.peer, listener = %info.listener, %error, "closing connection");
            return;
        }
        Err(error) => {
            // Kafka logs failed authentications at INFO too: they are the
            // client's problem, but the operator is the one asked about them.
            tracing::info!(peer = %info.peer, listener = %info.listener, %error, "closing connection");
            return;
        }
    };
    tracing::debug!(peer = %info.peer, listener = %info.listener, principal = %info.principal, "TLS connection");
    serve_halves(ctx, tokio::io::split(stream), info, budget, shutdown).await;
}

/// Serves requests read from `socket_reader`, answering on `writer`.
async fn serve_halves<R, W>(
    ctx: Arc<BrokerContext>,
    (mut socket_reader, writer): (R, W),
    info: ConnectionInfo,
    budget: RequestBudget,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (responses, pending) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    let activity = Arc::new(Activity::new());
    let writer_task = OwnedTask::spawn(write_responses(writer, pending, activity.clone()));
    let mut reader = Reader {
        frames: FrameReader::new(ctx.settings.socket_request_max_bytes),
        authenticator: Authenticator::for_connection(&ctx, &info),
        ctx,
        info,
        reserved: None,
        receiving_since: None,
        budget,
        own_budget: Arc::new(Semaphore::new(IN_FLIGHT_KIB as usize)),
        responses,
        activity,
        offset_order: OffsetRequestOrder::default(),
    };
    let closing = loop {
        if let Err(closing) = reader.start_arrived_requests(&mut shutdown).await {
            break closing;
        }
        let deadline = reader.deadline();
        let expires = deadline.as_ref().map(|(at, _)| *at);
        tokio::select! {
            read = socket_reader.read_buf(reader.frames.read_space()) => match read {
                Ok(0) | Err(_) => break None,
                Ok(_) => reader.bytes_arrived(),
            },
            () = sleep_until_some(expires) => {
                if let Some((_, reason)) = deadline
                    && let Some(closing) = reader.expired(reason)
                {
                    break Some(closing);
                }
            }
            _ = shutdown.changed() => break None,
        }
    };
    let refused = matches!(closing, Some(Closing::Authentication(_)));
    match closing {
        // Closing idle connections is routine, as in Kafka.
        Some(reason @ (Closing::Idle(_) | Closing::Authentication(_))) => {
            tracing::debug!(peer = %reader.info.peer, %reason, "closing connection")
        }
        Some(reason) => tracing::warn!(
            peer = %reader.info.peer,
            listener = %reader.info.listener,
            protocol = %reader.info.security_protocol,
            principal = %reader.info.principal,
            %reason,
            "closing connection"
        ),
        None => {}
    }
    // Dropping the reader gives back its buffer and ends the writer once
    // the responses owed are written.
    drop(reader);
    let Ok(Some(mut writer)) = writer_task.await else {
        return;
    };
    if refused {
        // The client learns why from the last response, so the broker lets
        // it read that first: it waits (briefly) for the client to close,
        // dropping what it still sends. A FIN arriving with the response
        // made kafka-python 3 drop the response (its read loop discards
        // what it read once it meets EOF), and closing with unread bytes
        // sends a reset that can destroy the response outright.
        let mut sink = [0u8; 4096];
        let drain =
            async { while matches!(socket_reader.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(AUTH_FAILURE_LINGER, drain).await;
    }
    let _ = writer.shutdown().await;
}

/// How long a connection refused for its credentials waits for the client
/// to close after its answer (and drops what it reads meanwhile).
const AUTH_FAILURE_LINGER: Duration = Duration::from_millis(500);

/// The read side of a connection and what it owes to limits.
struct Reader {
    ctx: Arc<BrokerContext>,
    info: ConnectionInfo,
    frames: FrameReader,
    /// Broker budget for the front frame, taken once its size is known.
    reserved: Option<OwnedSemaphorePermit>,
    /// When the front request's first byte arrived; `None` between requests.
    receiving_since: Option<Instant>,
    budget: RequestBudget,
    /// This connection's own in-flight budget, in KiB.
    own_budget: Arc<Semaphore>,
    responses: mpsc::Sender<Pending>,
    activity: Arc<Activity>,
    /// Keeps offset commits and fetches in request order (see [`OffsetRequestOrder`]).
    offset_order: OffsetRequestOrder,
    /// On a SASL listener, the exchange and its session.
    authenticator: Option<Authenticator>,
}

impl Reader {
    /// Starts every request that has fully arrived, taking budget for each
    /// frame as soon as its size is known (which may wait). `Err(None)`
    /// stops quietly (shutdown, or the writer is gone).
    async fn start_arrived_requests(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Option<Closing>> {
        while let Some(size) = self.frames.front_size().map_err(Closing::from)? {
            if self.reserved.is_none() {
                tokio::select! {
                    permit = self.budget.reserve(4 + size) => self.reserved = Some(permit),
                    _ = shutdown.changed() => return Err(None),
                }
                // Waiting for the budget is the broker's doing, not the client's.
                self.receiving_since = Some(Instant::now());
            }
            let Some(frame) = self.frames.next_frame().map_err(Closing::from)? else {
                return Ok(());
            };
            self.ctx.metrics.bytes_in(frame.len() + 4);
            let kib = (frame.len() / 1024).clamp(1, IN_FLIGHT_KIB as usize) as u32;
            let Ok(own) = self.own_budget.clone().acquire_many_owned(kib).await else {
                return Err(None);
            };
            let permits = (self.reserved.take(), own);
            let admission = match self.authenticator.as_mut() {
                Some(authenticator) => authenticator.admit(&self.ctx, &mut self.info, frame),
                None => Admission::Serve(frame),
            };
            let (handle, close) = match admission {
                Admission::Serve(frame) => {
                    let handle = start_request(
                        &self.ctx,
                        &self.info,
                        &mut self.offset_order,
                        frame,
                        permits,
                    )
                    .map_err(Closing::from)?;
                    (handle, None)
                }
                Admission::Answered { response, close } => (response, close),
                Admission::Close(reason) => return Err(Some(Closing::Authentication(reason))),
            };
            if self.responses.send(handle).await.is_err() {
                return Err(None);
            }
            if let Some(reason) = close {
                return Err(Some(Closing::Authentication(reason)));
            }
            // Bytes already here belong to the next request.
            self.receiving_since = (self.frames.buffered() > 0).then(Instant::now);
        }
        Ok(())
    }

    fn bytes_arrived(&mut self) {
        self.activity.touch();
        self.receiving_since.get_or_insert_with(Instant::now);
    }

    /// When the connection must close unless something happens first: the
    /// request being received must be complete, or an idle connection
    /// must have been used.
    fn deadline(&self) -> Option<(Instant, Closing)> {
        let limits = &self.ctx.settings.connections;
        match (self.receiving_since, limits.idle_timeout) {
            (Some(since), _) => Some((
                since + limits.request_receive_timeout,
                Closing::RequestTimeout(limits.request_receive_timeout),
            )),
            (None, Some(idle)) => Some((self.activity.last() + idle, Closing::Idle(idle))),
            (None, None) => None,
        }
    }

    /// Whether a deadline that passed closes the connection.
    fn expired(&self, reason: Closing) -> Option<Closing> {
        let busy = self.own_budget.available_permits() < IN_FLIGHT_KIB as usize;
        match reason {
            // A request still being handled (a long poll, a join waiting
            // for a rebalance) is not idleness.
            Closing::Idle(_) if busy => {
                self.activity.touch();
                None
            }
            // The writer may have written since the deadline was set.
            Closing::Idle(idle) if self.activity.last() + idle > Instant::now() => None,
            reason => Some(reason),
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Decodes a frame and spawns its handler. Returns an error when the
/// connection must close.
fn start_request(
    ctx: &Arc<BrokerContext>,
    info: &ConnectionInfo,
    offset_order: &mut OffsetRequestOrder,
    frame: Bytes,
    permits: (Option<OwnedSemaphorePermit>, OwnedSemaphorePermit),
) -> Result<Pending, RequestError> {
    let started = std::time::Instant::now();
    let request = match decode_request(frame) {
        Ok(request) => request,
        Err(RequestError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // Kafka's answer to a too-new ApiVersions: error 35 and a v0 body
            // listing what is supported, so the client can retry lower.
            let body = ResponseKind::ApiVersions(api_versions_body(
                ResponseError::UnsupportedVersion.code(),
            ));
            return Ok(OwnedTask::spawn(async move {
                encode_response_parts(correlation_id, 0, &body, 0).ok()
            }));
        }
        Err(error) => return Err(error),
    };
    let api_key = request.api_key;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let Some(response) = dispatch(ctx, info, offset_order, request) else {
        return Err(RequestError::UnknownApiKey {
            api_key: api_key as i16,
            correlation_id,
        });
    };
    let ctx = ctx.clone();
    Ok(OwnedTask::spawn(async move {
        let reply = response.await;
        drop(permits);
        let body = match reply {
            Reply::Respond(body) => body,
            Reply::Nothing => {
                ctx.metrics.request_done(api_key, started.elapsed(), 0);
                return Some(Vec::new());
            }
            Reply::Close => {
                ctx.metrics.request_done(api_key, started.elapsed(), 0);
                return None;
            }
        };
        let header_version = api_key.response_header_version(version);
        let parts = match encode_response_parts(correlation_id, header_version, &body, version) {
            Ok(parts) => parts,
            Err(error) => {
                tracing::error!(?api_key, version, %error, "could not encode response");
                return None;
            }
        };
        let size = parts.iter().map(Bytes::len).sum();
        ctx.metrics.request_done(api_key, started.elapsed(), size);
        Some(parts)
    }))
}

/// Writes each response as it is ready, in request order. A response that
/// closes the connection (there is none to write) shuts the writer down
/// here; once the reader is gone and every response is written, the
/// writer is given back for the reader's side to shut down. `None` when
/// writing failed or the writer was shut down here.
async fn write_responses<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut pending: mpsc::Receiver<Pending>,
    activity: Arc<Activity>,
) -> Option<W> {
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut out: Vec<Bytes> = Vec::new();
    loop {
        if queue.is_empty() {
            match pending.recv().await {
                Some(handle) => queue.push_back(handle),
                None => break,
            }
        }
        while queue.len() < MAX_IN_FLIGHT {
            match pending.try_recv() {
                Ok(handle) => queue.push_back(handle),
                Err(_) => break,
            }
        }
        let Some(first) = queue.pop_front() else {
            continue;
        };
        let mut close = !take_response(&mut out, first.await);
        // Coalesce whatever else is already answered into the same write.
        while !close && queue.front().is_some_and(|h| h.is_finished()) {
            if let Some(next) = queue.pop_front() {
                close = !take_response(&mut out, next.await);
            }
        }
        // TLS may keep records it could not send yet until flushed; on TCP
        // the flush costs nothing.
        let written = write_all_vectored(&mut writer, &mut out).await;
        if written.is_err() || writer.flush().await.is_err() {
            return None;
        }
        activity.touch();
        if close {
            let _ = writer.shutdown().await;
            return None;
        }
    }
    Some(writer)
}

/// Writes every buffer with as few syscalls as the socket allows, without
/// copying responses into one buffer first. Empties `buffers`.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buffers: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    // Linux accepts at most 1024 slices per writev.
    const MAX_SLICES: usize = 1024;
    let mut first = 0;
    while first < buffers.len() {
        let slices: Vec<IoSlice<'_>> = buffers[first..]
            .iter()
            .take(MAX_SLICES)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 && first < buffers.len() {
            let len = buffers[first].len();
            if written >= len {
                written -= len;
                first += 1;
            } else {
                buffers[first] = buffers[first].slice(written..);
                written = 0;
            }
        }
    }
    buffers.clear();
    Ok(())
}

fn take_response(
    out: &mut Vec<Bytes>,
    response: Result<Option<Vec<Bytes>>, tokio::task::JoinError>,
) -> bool {
    match response {
        Ok(Some(parts)) => {
            out.extend(parts.into_iter().filter(|part| !part.is_empty()));
            true
        }
        Ok(None) => false,
        Err(error) => {
            tracing::error!(%error, "request handler failed");
            false
        }
    }
}
