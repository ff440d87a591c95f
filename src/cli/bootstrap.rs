//! Finding a broker: `--bootstrap-server`/`--broker-list`, or
//! `--zookeeper HOST:PORT` (gregor's coordinator, asked over HTTP with
//! `GET /v1/cluster`, over TLS with `--zk-tls-config-file`), or
//! `$kafka_host_url`.

use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::http::CoordinatorTls;
use crate::config::{RawConfig, resolve_coordinator_tls};

use super::ToolError;
use super::args::ServerArgs;

const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CLUSTER_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct ClusterView {
    #[serde(default)]
    brokers: Vec<BrokerView>,
}

#[derive(Debug, Deserialize)]
struct BrokerView {
    /// A fenced broker is registered but not serving.
    #[serde(default)]
    fenced: bool,
    #[serde(default)]
    listeners: Vec<ListenerView>,
}

#[derive(Debug, Deserialize)]
struct ListenerView {
    #[serde(default)]
    name: String,
    host: String,
    port: u16,
}

/// The bootstrap addresses to try, in order.
pub async fn resolve(
    server: &ServerArgs,
    broker_list: Option<&str>,
) -> Result<Vec<String>, ToolError> {
    if let Some(list) = broker_list.or(server.bootstrap_server.as_deref()) {
        return split_addresses(list);
    }
    if let Some(coordinator) = &server.zookeeper {
        let tls = match &server.zk_tls_config_file {
            Some(path) => coordinator_tls(path)?,
            None => None,
        };
        return brokers_from_coordinator(coordinator, tls.as_ref()).await;
    }
    match std::env::var("kafka_host_url") {
        Ok(list) if !list.trim().is_empty() => split_addresses(&list),
        _ => Err(ToolError::Usage(
            "Missing required argument \"[bootstrap-server]\" (or set $kafka_host_url)".to_string(),
        )),
    }
}

/// `a:1,b:2` (an optional `scheme://` prefix on each is dropped).
fn split_addresses(list: &str) -> Result<Vec<String>, ToolError> {
    let addresses: Vec<String> = list
        .split(',')
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| a.split_once("://").map(|(_, rest)| rest).unwrap_or(a))
        .map(|a| a.trim_end_matches('/').to_string())
        .collect();
    if addresses.is_empty() || addresses.iter().any(|a| !a.contains(':')) {
        return Err(ToolError::Usage(format!(
            "bootstrap server '{list}' is not HOST:PORT[,HOST:PORT...]"
        )));
    }
    Ok(addresses)
}

/// `--zk-tls-config-file`: Kafka's `zookeeper.ssl.*` keys, as
/// kafka-topics.sh and kafka-configs.sh read them.
pub(crate) fn coordinator_tls(path: &std::path::Path) -> Result<Option<CoordinatorTls>, ToolError> {
    let usage = |e: &dyn std::fmt::Display| ToolError::Usage(format!("--zk-tls-config-file: {e}"));
    let raw = RawConfig::from_file(path).map_err(|e| usage(&e))?;
    match resolve_coordinator_tls(&raw).map_err(|e| usage(&e))? {
        Some(settings) => Ok(Some(CoordinatorTls::new(&settings).map_err(|e| usage(&e))?)),
        None => Err(usage(&format!(
            "{} does not set zookeeper.ssl.client.enable=true",
            path.display()
        ))),
    }
}

async fn brokers_from_coordinator(
    coordinator: &str,
    tls: Option<&CoordinatorTls>,
) -> Result<Vec<String>, ToolError> {
    let (address, cluster) = cluster_view(coordinator, tls).await?;
    let mut addresses = Vec::new();
    for broker in cluster.brokers.iter().filter(|b| !b.fenced) {
        let listener = broker
            .listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case("PLAINTEXT"))
            .or_else(|| broker.listeners.first());
        if let Some(l) = listener {
            addresses.push(format!("{}:{}", l.host, l.port));
        }
    }
    if addresses.is_empty() {
        return Err(ToolError::Failed(format!(
            "coordinator at {address} knows no live brokers"
        )));
    }
    Ok(addresses)
}

/// `GET /v1/cluster` from the first of the coordinator's members (a
/// quorum's, comma separated) that answers: one that does not answer is
/// skipped, and a quorum follower's NOT_CONTROLLER answer names the leader,
/// which is asked next. Returns the address that answered and its view.
async fn cluster_view(
    coordinator: &str,
    tls: Option<&CoordinatorTls>,
) -> Result<(String, ClusterView), ToolError> {
    let mut queue: std::collections::VecDeque<String> = split_addresses(coordinator)?.into();
    let mut failure = ToolError::Failed(format!("no coordinator at {coordinator} answered"));
    let mut asked = 0;
    while let Some(address) = queue.pop_front() {
        asked += 1;
        if asked > 8 {
            break;
        }
        let answer =
            tokio::time::timeout(COORDINATOR_TIMEOUT, http_get(&address, "/v1/cluster", tls))
                .await
                .map_err(|_| {
                    ToolError::Failed(format!(
                        "coordinator at {address} did not answer within {COORDINATOR_TIMEOUT:?}"
                    ))
                })
                .and_then(|answer| answer);
        match answer {
            Ok((200, body)) => {
                let cluster = serde_json::from_slice(&body).map_err(|e| {
                    ToolError::Failed(format!(
                        "coordinator at {address} sent an unreadable cluster view: {e}"
                    ))
                })?;
                return Ok((address, cluster));
            }
            Ok((status, body)) => {
                let leader = serde_json::from_slice::<LeaderHint>(&body)
                    .ok()
                    .and_then(|hint| hint.leader_address);
                if let Some(leader) = leader.filter(|l| *l != address) {
                    queue.push_front(leader);
                }
                failure = ToolError::Failed(format!(
                    "coordinator at {address}: GET /v1/cluster answered HTTP {status}"
                ));
            }
            Err(error) => failure = error,
        }
    }
    Err(failure)
}

/// The leader a quorum follower names in its NOT_CONTROLLER answer.
#[derive(Deserialize)]
struct LeaderHint {
    leader_address: Option<String>,
}

/// A minimal HTTP/1.1 GET: `Connection: close`, read to the end; the
/// status code and the (plain or chunked) body.
async fn http_get(
    address: &str,
    path: &str,
    tls: Option<&CoordinatorTls>,
) -> Result<(u16, Vec<u8>), ToolError> {
    let failed = |what: String| ToolError::Failed(format!("coordinator at {address}: {what}"));
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    match tls {
        None => exchange(address, path, stream).await,
        Some(tls) => {
            let stream = tls
                .connect(address, stream)
                .await
                .map_err(|e| failed(format!("TLS handshake failed: {e}")))?;
            exchange(address, path, stream).await
        }
    }
}

async fn exchange<S>(address: &str, path: &str, mut stream: S) -> Result<(u16, Vec<u8>), ToolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let failed = |what: String| ToolError::Failed(format!("coordinator at {address}: {what}"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut raw = Vec::new();
    match (&mut stream)
        .take(MAX_CLUSTER_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .await
    {
        // A TLS peer that closes without close_notify: the body is
        // complete when the headers and content say so, checked below.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(failed(e.to_string())),
        Ok(_) => {}
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| failed("incomplete HTTP response".to_string()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let status_line = head.lines().next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| failed(format!("GET {path} answered '{status_line}'")))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| failed("malformed chunked body".to_string()))?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_and_lose_their_scheme() {
        assert_eq!(
            split_addresses("PLAINTEXT://a:1, b:2").unwrap(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(split_addresses("nohost").is_err());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
    }

    #[tokio::test]
    async fn coordinator_cluster_view_yields_plaintext_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let body = r#"{"cluster_id":"c","brokers":[{"id":1,"fenced":true,"listeners":[{"name":"PLAINTEXT","host":"f","port":1}]},{"id":0,"epoch":3,"fenced":false,"listeners":[{"name":"INTERNAL","host":"x","port":1},{"name":"PLAINTEXT","host":"h","port":9092}]}]}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.unwrap();
        });
        let brokers = brokers_from_coordinator(&address, None).await.unwrap();
        assert_eq!(brokers, vec!["h:9092".to_string()]);
    }
}
