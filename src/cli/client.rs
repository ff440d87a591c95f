//! A small async Kafka client for the command-line tools: one connection per
//! broker, ApiVersions negotiated on connect, one request in flight at a
//! time. Versions are chosen per request as the highest that both the
//! broker and this client (see [`CLIENT_MAX_VERSIONS`]) speak, and callers
//! build version-dependent fields from that number.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FindCoordinatorRequest,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client_security::{ClientSecurity, SaslLogin};
use crate::security::sasl::Mechanism;
use crate::security::sasl::scram_client::ScramClient;

/// How long a connection attempt or a single response may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Refuse responses bigger than this before allocating for them.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The newest version of each API whose fields this client fills in.
const CLIENT_MAX_VERSIONS: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 9),
    (ApiKey::Fetch, 15),
    (ApiKey::ListOffsets, 7),
    (ApiKey::Metadata, 12),
    (ApiKey::ApiVersions, 3),
    (ApiKey::CreateTopics, 7),
    (ApiKey::DeleteTopics, 5),
    (ApiKey::DeleteRecords, 2),
    (ApiKey::CreatePartitions, 3),
    (ApiKey::ElectLeaders, 2),
    (ApiKey::AlterPartitionReassignments, 0),
    (ApiKey::ListPartitionReassignments, 0),
    (ApiKey::DescribeConfigs, 4),
    (ApiKey::AlterConfigs, 2),
    (ApiKey::IncrementalAlterConfigs, 1),
    (ApiKey::DescribeAcls, 3),
    (ApiKey::CreateAcls, 3),
    (ApiKey::DeleteAcls, 3),
    (ApiKey::FindCoordinator, 3),
    (ApiKey::JoinGroup, 9),
    (ApiKey::SyncGroup, 5),
    (ApiKey::Heartbeat, 4),
    (ApiKey::LeaveGroup, 5),
    (ApiKey::OffsetCommit, 8),
    (ApiKey::OffsetFetch, 7),
    (ApiKey::ListGroups, 4),
    (ApiKey::DescribeGroups, 5),
    (ApiKey::DeleteGroups, 2),
    (ApiKey::DescribeUserScramCredentials, 0),
    (ApiKey::AlterUserScramCredentials, 0),
    (ApiKey::SaslHandshake, 1),
    (ApiKey::SaslAuthenticate, 1),
];

/// What went wrong talking to a broker. Kafka error codes for a single
/// topic or partition are returned by the callers as [`ClientError::Kafka`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to broker at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("connection to broker at {address} failed: {source}")]
    ConnectionLost {
        address: String,
        source: std::io::Error,
    },
    #[error("broker at {address} did not answer {api:?} within {timeout:?}")]
    TimedOut {
        address: String,
        api: ApiKey,
        timeout: Duration,
    },
    #[error("broker at {address} does not support {api:?}")]
    UnsupportedApi { address: String, api: ApiKey },
    #[error("cannot encode or decode {api:?} v{version}: {reason}")]
    Codec {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{context}: {}", describe_code(*.code))]
    Kafka { context: String, code: i16 },
    #[error("broker {node} is not in the cluster metadata")]
    UnknownBroker { node: i32 },
    #[error("TLS handshake with broker at {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error("authentication with {mechanism} to broker at {address} failed: {reason}")]
    AuthenticationFailed {
        address: String,
        mechanism: Mechanism,
        reason: String,
    },
}

/// Kafka's name for an error code, with its description.
pub fn describe_code(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(error) => format!("{error:?} (error code {code})"),
        None => "no error".to_string(),
    }
}

/// Turns a non-zero error code into [`ClientError::Kafka`].
pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<(), ClientError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::Kafka {
            context: context(),
            code,
        })
    }
}

fn client_max_version(api: ApiKey) -> i16 {
    CLIENT_MAX_VERSIONS
        .iter()
        .find(|(key, _)| *key == api)
        .map(|&(_, max)| max)
        .unwrap_or(0)
}

/// A byte stream to a broker: TCP, or TLS over TCP.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// One connection to one broker.
pub struct Connection {
    address: String,
    stream: Box<dyn Transport>,
    correlation_id: i32,
    client_id: StrBytes,
    /// api key -> (broker min, broker max)
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects (with TLS when `security` says so), negotiates versions
    /// with ApiVersions, then logs in with SASL when `security` says so.
    pub async fn connect(
        address: &str,
        client_id: &str,
        security: &ClientSecurity,
    ) -> Result<Connection, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            address: address.to_string(),
            reason,
        };
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(unreachable(error.to_string())),
            Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
        };
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Transport> = match &security.tls {
            None => Box::new(stream),
            Some(connector) => Box::new(tls_handshake(connector, address, stream).await?),
        };
        let mut connection = Connection {
            address: address.to_string(),
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
            versions: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("gregor-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = connection.send_at(&request, 3).await?;
        if response.error_code == ResponseError::UnsupportedVersion.code() {
            // An older broker: it answered v0 with its ranges; ask again at v0.
            response = connection.send_at(&request, 0).await?;
        }
        check(response.error_code, || format!("ApiVersions to {address}"))?;
        connection.versions = response
            .api_keys
            .iter()
            .map(|v| (v.api_key, (v.min_version, v.max_version)))
            .collect();
        if let Some(login) = &security.sasl {
            connection.authenticate(login).await?;
        }
        Ok(connection)
    }

    /// SaslHandshake v1, then the mechanism's tokens in SaslAuthenticate.
    async fn authenticate(&mut self, login: &SaslLogin) -> Result<(), ClientError> {
        let mechanism = login.mechanism;
        let address = self.address.clone();
        let failed = |reason: String| ClientError::AuthenticationFailed {
            address: address.clone(),
            mechanism,
            reason,
        };
        let handshake = self
            .send(|_| {
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism.name()))
            })
            .await?;
        if handshake.error_code != 0 {
            let enabled: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(failed(format!(
                "{}; the listener offers [{}]",
                describe_code(handshake.error_code),
                enabled.join(", ")
            )));
        }
        match mechanism {
            Mechanism::Plain => {
                let token = format!("\0{}\0{}", login.username, login.password);
                self.sasl_token(token.into_bytes(), mechanism).await?;
            }
            Mechanism::Scram(scram) => {
                let nonce = crate::security::sasl::server_nonce();
                let client = ScramClient::new(scram, &login.username, &login.password, &nonce);
                let server_first = self.sasl_token(client.client_first(), mechanism).await?;
                let last = client
                    .client_final(&server_first)
                    .map_err(|e| failed(e.to_string()))?;
                let server_final = self.sasl_token(last.message.clone(), mechanism).await?;
                last.verify_server_final(&server_final)
                    .map_err(|e| failed(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round trip: our token out, the server's back.
    async fn sasl_token(
        &mut self,
        token: Vec<u8>,
        mechanism: Mechanism,
    ) -> Result<Vec<u8>, ClientError> {
        let response = self
            .send(|_| SaslAuthenticateRequest::default().with_auth_bytes(token.into()))
            .await
            .map_err(|error| match error {
                // The broker closes the connection after a failed login.
                ClientError::ConnectionLost { address, .. } => ClientError::AuthenticationFailed {
                    address,
                    mechanism,
                    reason: "the broker closed the connection".to_string(),
                },
                other => other,
            })?;
        if response.error_code != 0 {
            let message = response
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| describe_code(response.error_code));
            return Err(ClientError::AuthenticationFailed {
                address: self.address.clone(),
                mechanism,
                reason: message,
            });
        }
        Ok(response.auth_bytes.to_vec())
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `api` both sides speak, if any.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        let (min, max) = *self.versions.get(&(api as i16))?;
        let chosen = max.min(client_max_version(api));
        (chosen >= min).then_some(chosen)
    }

    pub fn supports(&self, api: ApiKey) -> bool {
        self.version(api).is_some()
    }

    /// Sends a request built for the negotiated version and waits for its
    /// response.
    pub async fn send<R, F>(&mut self, build: F) -> Result<R::Response, ClientError>
    where
        R: Request,
        F: FnOnce(i16) -> R,
    {
        let api = api_key::<R>();
        let version = self
            .version(api)
            .ok_or_else(|| ClientError::UnsupportedApi {
                address: self.address.clone(),
                api,
            })?;
        let request = build(version);
        self.send_at(&request, version).await
    }

    /// Sends a Produce request with acks=0: Kafka sends no response to it.
    pub async fn send_without_response<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(), ClientError> {
        self.write_request(request, version).await.map(|_| ())
    }

    async fn write_request<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<i32, ClientError> {
        let api = api_key::<R>();
        let codec = |reason: anyhow::Error| ClientError::Codec {
            api,
            version,
            reason: reason.to_string(),
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(codec)?;
        request.encode(&mut frame, version).map_err(codec)?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .await
            .map_err(|source| self.lost(source))?;
        Ok(self.correlation_id)
    }

    async fn send_at<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let api = api_key::<R>();
        let correlation_id = self.write_request(request, version).await?;
        let mut body = match tokio::time::timeout(RESPONSE_TIMEOUT, self.read_frame()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ClientError::TimedOut {
                    address: self.address.clone(),
                    api,
                    timeout: RESPONSE_TIMEOUT,
                });
            }
        };
        let codec = |reason: String| ClientError::Codec {
            api,
            version,
            reason,
        };
        let header = ResponseHeader::decode(
            &mut body,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| codec(e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(codec(format!(
                "correlation id {} does not match request {correlation_id}",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut body, version).map_err(|e| codec(e.to_string()))
    }

    async fn read_frame(&mut self) -> Result<bytes::Bytes, ClientError> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .map_err(|source| self.lost(source))?;
        // A TLS record (alert 0x15, handshake 0x16, version 3.x) where a
        // Kafka frame size should be: a plaintext client on a TLS listener.
        if matches!(size, [0x15 | 0x16, 0x03, _, _]) {
            return Err(self.lost(std::io::Error::other(
                "the broker answered with TLS: it is an SSL or SASL_SSL listener, \
                 set security.protocol in the tool's client properties",
            )));
        }
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            return Err(self.lost(std::io::Error::other(format!(
                "response frame of {size} bytes"
            ))));
        }
        let mut body = BytesMut::zeroed(size as usize);
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|source| self.lost(source))?;
        Ok(body.freeze())
    }

    fn lost(&self, source: std::io::Error) -> ClientError {
        ClientError::ConnectionLost {
            address: self.address.clone(),
            source,
        }
    }
}

/// The TLS handshake, naming the broker by the host of `address`.
async fn tls_handshake(
    connector: &tokio_rustls::TlsConnector,
    address: &str,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    let failed = |reason: String| ClientError::Tls {
        address: address.to_string(),
        reason,
    };
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| failed(format!("'{host}' is not a host name: {e}")))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => Err(failed(
            "the broker closed the connection: is it a PLAINTEXT or SASL_PLAINTEXT listener?"
                .to_string(),
        )),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Err(_) => Err(failed(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

/// Where one partition lives, from Metadata.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// One topic's partitions, sorted by partition index.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    /// Nil from a broker too old to say (Metadata before v10).
    pub id: uuid::Uuid,
    pub error_code: i16,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// A client for a whole cluster: a bootstrap connection plus one
/// connection per broker, opened on first use.
pub struct Client {
    client_id: String,
    security: ClientSecurity,
    bootstrap: Connection,
    brokers: HashMap<i32, String>,
    connections: HashMap<i32, Connection>,
    /// Whether Metadata asks the broker to create unknown topics (Kafka's
    /// producers do, so `console-producer` to a new topic creates it).
    auto_create_topics: bool,
}

impl Client {
    /// Connects to the first reachable address in `bootstrap`.
    pub async fn connect(
        bootstrap: &[String],
        client_id: &str,
        security: &ClientSecurity,
    ) -> Result<Client, ClientError> {
        let mut last_error = None;
        for address in bootstrap {
            match Connection::connect(address, client_id, security).await {
                Ok(connection) => {
                    return Ok(Client {
                        client_id: client_id.to_string(),
                        security: security.clone(),
                        bootstrap: connection,
                        brokers: HashMap::new(),
                        connections: HashMap::new(),
                        auto_create_topics: false,
                    });
                }
                // A refused login will be refused by the next broker too.
                Err(error @ ClientError::AuthenticationFailed { .. }) => return Err(error),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Unreachable {
            address: String::new(),
            reason: "no bootstrap server given".to_string(),
        }))
    }

    /// Lets Metadata requests create unknown topics, as a Kafka producer's do.
    pub fn auto_create_topics(&mut self, enabled: bool) {
        self.auto_create_topics = enabled;
    }

    /// The bootstrap connection, for requests any broker can answer.
    pub fn any(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// Metadata for `topics` (all topics when `None`); also refreshes the
    /// broker addresses used by [`Client::broker`].
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<(MetadataResponse, Vec<TopicInfo>), ClientError> {
        let auto_create = self.auto_create_topics;
        let response = self
            .bootstrap
            .send(|version| {
                let topics = topics.map(|names| {
                    names
                        .iter()
                        .map(|n| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                        })
                        .collect()
                });
                let request = MetadataRequest::default().with_topics(topics);
                if version >= 4 {
                    request.with_allow_auto_topic_creation(auto_create)
                } else {
                    request
                }
            })
            .await?;
        for broker in &response.brokers {
            self.brokers
                .insert(broker.node_id.0, format!("{}:{}", broker.host, broker.port));
        }
        let topics = response
            .topics
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        error_code: p.error_code,
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicInfo {
                    name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    id: t.topic_id,
                    error_code: t.error_code,
                    is_internal: t.is_internal,
                    partitions,
                }
            })
            .collect();
        Ok((response, topics))
    }

    /// Metadata for one topic that must exist.
    pub async fn topic(&mut self, topic: &str) -> Result<TopicInfo, ClientError> {
        let (_, topics) = self.metadata(Some(&[topic.to_string()])).await?;
        let info = topics
            .into_iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| ClientError::Kafka {
                context: format!("topic '{topic}'"),
                code: ResponseError::UnknownTopicOrPartition.code(),
            })?;
        check(info.error_code, || format!("topic '{topic}'"))?;
        Ok(info)
    }

    /// The connection to broker `node`, opened if needed.
    pub async fn broker(&mut self, node: i32) -> Result<&mut Connection, ClientError> {
        if !self.connections.contains_key(&node) {
            if self.brokers.is_empty() {
                self.metadata(Some(&[])).await?;
            }
            let address = self
                .brokers
                .get(&node)
                .cloned()
                .ok_or(ClientError::UnknownBroker { node })?;
            let connection = Connection::connect(&address, &self.client_id, &self.security).await?;
            self.connections.insert(node, connection);
        }
        self.connections
            .get_mut(&node)
            .ok_or(ClientError::UnknownBroker { node })
    }

    /// Forgets a broker connection after an error, so the next use reconnects.
    pub fn drop_broker(&mut self, node: i32) {
        self.connections.remove(&node);
    }

    /// The broker coordinating `group` (FindCoordinator, key type 0).
    pub async fn group_coordinator(&mut self, group: &str) -> Result<i32, ClientError> {
        let key = StrBytes::from_string(group.to_string());
        let response = self
            .bootstrap
            .send(|version| {
                let request = FindCoordinatorRequest::default();
                if version >= 4 {
                    request.with_coordinator_keys(vec![key.clone()])
                } else {
                    request.with_key(key.clone())
                }
            })
            .await?;
        let (code, node, host, port) = match response.coordinators.first() {
            Some(c) => (c.error_code, c.node_id, c.host.to_string(), c.port),
            None => (
                response.error_code,
                response.node_id,
                response.host.to_string(),
                response.port,
            ),
        };
        check(code, || {
            format!("finding the coordinator of group '{group}'")
        })?;
        let BrokerId(node) = node;
        self.brokers.insert(node, format!("{host}:{port}"));
        Ok(node)
    }
}

/// ListOffsets timestamps with special meaning.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

impl Client {
    /// The offset for `timestamp` ([`EARLIEST_TIMESTAMP`], [`LATEST_TIMESTAMP`]
    /// or a time in ms) of each partition, asking each partition's leader.
    pub async fn list_offsets(
        &mut self,
        partitions: &[(String, i32)],
        timestamp: i64,
        isolation_level: i8,
    ) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
        let topics: Vec<String> = partitions
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (_, infos) = self.metadata(Some(&topics)).await?;
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for (topic, partition) in partitions {
            let leader = infos
                .iter()
                .find(|t| &t.name == topic)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == *partition))
                .map(|p| p.leader)
                .filter(|leader| *leader >= 0)
                .ok_or_else(|| ClientError::Kafka {
                    context: format!("partition {topic}-{partition}"),
                    code: ResponseError::UnknownTopicOrPartition.code(),
                })?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(topic.clone())
                .or_default()
                .push(*partition);
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request_topics: Vec<ListOffsetsTopic> = topics
                .iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )
                })
                .collect();
            let connection = self.broker(leader).await?;
            let response = connection
                .send(|version| {
                    let request = ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_topics(request_topics.clone());
                    if version >= 2 {
                        request.with_isolation_level(isolation_level)
                    } else {
                        request
                    }
                })
                .await?;
            for topic in response.topics {
                for p in topic.partitions {
                    check(p.error_code, || {
                        format!("listing offsets of {}-{}", topic.name.0, p.partition_index)
                    })?;
                    let offset = if p.old_style_offsets.is_empty() {
                        p.offset
                    } else {
                        p.old_style_offsets[0]
                    };
                    out.insert((topic.name.0.to_string(), p.partition_index), offset);
                }
            }
        }
        Ok(out)
    }
}

/// Reads a big-endian i16 version prefix, as the consumer protocol's
/// embedded payloads carry.
pub fn split_version(bytes: &mut bytes::Bytes) -> Option<i16> {
    (bytes.remaining() >= 2).then(|| bytes.get_i16())
}
