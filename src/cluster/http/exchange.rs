//! [`HttpClient`]: JSON requests to one coordinator address, over
//! keep-alive connections.
//!
//! Raft sends heartbeats every 150 ms to each peer and brokers heartbeat
//! and long-poll all the time, so a connection (and with mutual TLS, a
//! handshake) per request would be most of the work. A finished exchange
//! leaves its connection in a small idle pool for the next call. The
//! coordinator closes connections idle for its request timeout, so an idle
//! one is kept only for [`MAX_IDLE`], and a request that a closed pooled
//! connection never sent is sent again on a fresh one. A request that was
//! sent is never sent twice: what failed then is reported.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use super::client_tls::CoordinatorTls;
use super::wire::ErrorBody;
use crate::cluster::{ClusterError, KafkaCode};
use crate::task::OwnedTask;

/// Added to a request's own wait before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted (a snapshot of a big cluster).
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// Idle connections kept per address: a broker's pull, heartbeat and a
/// write or two run at once.
const MAX_IDLE_CONNECTIONS: usize = 4;
/// How long an idle connection is kept: half the coordinator's request
/// timeout, after which it closes idle connections itself.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// A failed call to the coordinator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No answer: refused, reset, timed out. Worth retrying.
    #[error("{reason}")]
    Unreachable { reason: String },
    /// An answer carrying a Kafka error, or one that could not be read.
    #[error(transparent)]
    Refused(#[from] ClusterError),
}

/// Sends JSON requests to one coordinator address. Clones share the idle
/// connections.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    address: String,
    /// `zookeeper.ssl.*`: TLS to the coordinator's `secureClientPort`.
    tls: Option<CoordinatorTls>,
    idle: Arc<StdMutex<Vec<IdleConnection>>>,
}

/// An open HTTP/1 connection between two exchanges.
#[derive(Debug)]
struct IdleConnection {
    sender: SendRequest<Full<Bytes>>,
    /// Drives the connection; dropping it closes the connection.
    _connection: OwnedTask<()>,
    since: Instant,
}

impl HttpClient {
    pub(crate) fn new(address: String, tls: Option<CoordinatorTls>) -> Self {
        Self {
            address,
            tls,
            idle: Arc::default(),
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        wait: Duration,
    ) -> Result<T, CallError> {
        self.call_within(method, path, body, wait + REQUEST_TIMEOUT)
            .await
    }

    /// [`HttpClient::call`] that gives up after `timeout` in all.
    pub(crate) async fn call_within<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let body = match body {
            Some(body) => serde_json::to_vec(body).map_err(|e| refused(format!("encode: {e}")))?,
            None => Vec::new(),
        };
        let (status, bytes) =
            tokio::time::timeout(timeout, self.exchange(method, path, Bytes::from(body)))
                .await
                .map_err(|_| CallError::Unreachable {
                    reason: "no answer in time".to_owned(),
                })??;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| refused(format!("unreadable answer to {path}: {e}")));
        }
        let error: ErrorBody = serde_json::from_slice(&bytes)
            .map_err(|_| refused(format!("HTTP {status} from {path}")))?;
        Err(match error.into_result() {
            Err(error) => CallError::Refused(error),
            Ok(()) => refused(format!("HTTP {status} from {path}")),
        })
    }

    /// One request and its whole response, on an idle connection if one
    /// is still open, else on a new one.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), CallError> {
        while let Some(mut idle) = self.take_idle() {
            let request = self.request(method.clone(), path, body.clone())?;
            match idle.sender.try_send_request(request).await {
                Ok(response) => return self.finish(response, idle).await,
                // Closed before the request left: nothing was sent.
                Err(error) if error.message().is_some() => continue,
                Err(error) => return Err(lost(error.error())),
            }
        }
        let mut connection = self.connect().await?;
        let request = self.request(method, path, body)?;
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|e| lost(&e))?;
        self.finish(response, connection).await
    }

    /// Reads the response body, then gives the connection back to the pool.
    async fn finish(
        &self,
        response: Response<hyper::body::Incoming>,
        mut connection: IdleConnection,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| lost(&e))?
            .to_bytes();
        connection.since = Instant::now();
        self.put_idle(connection);
        Ok((status, bytes))
    }

    fn take_idle(&self) -> Option<IdleConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(connection) = idle.pop() {
            if connection.since.elapsed() < MAX_IDLE && connection.sender.is_ready() {
                return Some(connection);
            }
        }
        None
    }

    fn put_idle(&self, connection: IdleConnection) {
        if !connection.sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|c| c.since.elapsed() < MAX_IDLE && !c.sender.is_closed());
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(connection);
        }
    }

    async fn connect(&self) -> Result<IdleConnection, CallError> {
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => handshake(stream).await,
            Some(tls) => {
                let stream = tls.connect(&self.address, stream).await.map_err(|e| {
                    CallError::Unreachable {
                        reason: format!("TLS handshake failed: {e}"),
                    }
                })?;
                handshake(stream).await
            }
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, CallError> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.address.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| refused(format!("bad request {path}: {e}")))
    }
}

async fn handshake<S>(stream: S) -> Result<IdleConnection, CallError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| lost(&e))?;
    Ok(IdleConnection {
        sender,
        _connection: OwnedTask::spawn(async move {
            let _ = connection.await;
        }),
        since: Instant::now(),
    })
}

fn lost(error: &dyn std::fmt::Display) -> CallError {
    CallError::Unreachable {
        reason: error.to_string(),
    }
}

pub(crate) fn refused(message: String) -> CallError {
    CallError::Refused(ClusterError::Rejected {
        code: KafkaCode::UNKNOWN_SERVER_ERROR,
        message,
    })
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn unreachable(error: &std::io::Error) -> CallError {
    use std::io::ErrorKind;
    let reason = match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "connection reset".to_owned(),
        ErrorKind::TimedOut => "timed out".to_owned(),
        ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        _ => error.to_string(),
    };
    CallError::Unreachable { reason }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;

    /// An HTTP server answering `{}` that counts the connections it
    /// accepted; with `close_after_each`, it closes each after one answer.
    async fn counting_server(close_after_each: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(|_request| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(!close_after_each)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (address, accepted)
    }

    async fn call(client: &HttpClient) -> Result<serde_json::Value, CallError> {
        client
            .call(Method::GET, "/v1/cluster", None::<&()>, Duration::ZERO)
            .await
    }

    #[tokio::test]
    async fn consecutive_calls_share_one_connection() {
        let (address, accepted) = counting_server(false).await;
        let client = HttpClient::new(address, None);
        for _ in 0..5 {
            call(&client).await.unwrap();
        }
        call(&client.clone()).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        let (address, accepted) = counting_server(true).await;
        let client = HttpClient::new(address, None);
        for _ in 0..3 {
            call(&client).await.unwrap();
            // Let the server's close arrive, as it would between heartbeats.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_calls_open_their_own_connections_and_keep_a_few() {
        let (address, accepted) = counting_server(false).await;
        let client = HttpClient::new(address, None);
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let client = client.clone();
            calls.spawn(async move { call(&client).await.map(|_| ()) });
        }
        while let Some(result) = calls.join_next().await {
            result.unwrap().unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8);
        assert!(client.idle.lock().unwrap().len() <= MAX_IDLE_CONNECTIONS);
        call(&client).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 8, "an idle one was reused");
    }
}
