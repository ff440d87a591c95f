//! The admin HTTP listener (hyper): `/healthz`, `/readyz` and `/metrics`
//! in Prometheus text format. `gregor healthcheck` probes it, which is how
//! a `FROM scratch` image gets a Docker HEALTHCHECK without curl.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accept::Acceptor;
use crate::broker::BrokerContext;

pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves until `shutdown`; open connections are closed with it.
///
/// A client must send a request's headers within
/// `gregor.request.receive.timeout.ms` (idle keep-alive connections
/// included), like a Kafka request. No route reads a body, and hyper
/// closes a connection whose request body was left unread, so a trickled
/// body cannot hold one open either.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<BrokerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut acceptor = Acceptor::new(listener, "admin");
    let header_timeout = ctx.settings.connections.request_receive_timeout;
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = shutdown.changed() => return,
        };
        let ctx = ctx.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| respond(ctx.clone(), request));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    ctx: Arc<BrokerContext>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match request.uri().path() {
        "/healthz" | "/readyz" => (StatusCode::OK, "ok\n".to_string()),
        "/metrics" => {
            let partitions: Vec<_> = ctx
                .partitions
                .all()
                .iter()
                .map(|p| {
                    (
                        p.topic.clone(),
                        p.index,
                        p.log_start_offset(),
                        p.log_end_offset(),
                        p.size_bytes(),
                    )
                })
                .collect();
            let mut body = ctx.metrics.render(&partitions);
            body.push_str(&ctx.replicas.render_metrics(
                ctx.settings.broker_id,
                &ctx.coordinator.image(),
                &ctx.partitions.all(),
            ));
            (StatusCode::OK, body)
        }
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

/// `gregor healthcheck`: exit 0 when `/healthz` answers 200.
pub fn probe(address: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut stream =
        std::net::TcpStream::connect(address).map_err(|e| format!("{address}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    if reply.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "{address}: unhealthy: {}",
            reply.lines().next().unwrap_or("no reply")
        ))
    }
}
