//! `kafka-console-consumer.sh`: fetch records and print them, one per line.
//!
//! With `--group` the tool joins the group (classic protocol, range
//! assignor), starts from the committed offsets, commits as it goes and on
//! exit, and leaves the group. Without `--group`, unlike Kafka (which joins
//! a generated `console-consumer-NNNNN` group), it reads the partitions
//! directly and commits nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
use tokio::time::Instant;

use super::args::{ConsumerArgs, flag_value, key_values, number_value, properties_file};
use super::client::{Client, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, describe_code};
use super::client_security::ClientSecurity;
use super::group_member::{GroupMember, Heartbeat, TopicPartition};
use super::{ToolError, bootstrap};

const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_MAX_BYTES: i32 = 50 * 1024 * 1024;
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartAt {
    Earliest,
    Latest,
    Offset(i64),
}

/// How records are printed (Kafka's DefaultMessageFormatter properties).
#[derive(Debug)]
struct Format {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_key: bool,
    print_value: bool,
    key_separator: String,
    line_separator: String,
}

#[derive(Debug)]
struct Settings {
    servers: Vec<String>,
    security: ClientSecurity,
    topic: String,
    group: Option<String>,
    partition: Option<i32>,
    start: StartAt,
    /// Where a group member starts a partition with no committed offset.
    reset: StartAt,
    max_messages: Option<u64>,
    timeout: Option<Duration>,
    isolation_level: i8,
    format: Format,
    client_id: String,
}

fn usage(message: &str) -> ToolError {
    ToolError::Usage(message.to_string())
}

async fn settings(args: ConsumerArgs) -> Result<Settings, ToolError> {
    let topic = args
        .topic
        .clone()
        .ok_or_else(|| usage("Exactly one of whitelist/topic is required."))?;
    let props = key_values(&args.property, "--property")?;
    let mut consumer = match &args.consumer_config {
        Some(path) => properties_file(path)?,
        None => BTreeMap::new(),
    };
    consumer.extend(key_values(&args.consumer_property, "--consumer-property")?);
    if let Some(level) = &args.isolation_level {
        consumer.insert("isolation.level".into(), level.clone());
    }
    let group = args
        .group
        .clone()
        .or_else(|| consumer.get("group.id").cloned());
    if args.offset.is_some() && args.partition.is_none() {
        return Err(usage("The partition is required when offset is specified."));
    }
    if args.offset.is_some() && args.from_beginning {
        return Err(usage(
            "Options from-beginning and offset cannot be specified together.",
        ));
    }
    if args.partition.is_some() && group.is_some() {
        return Err(usage(
            "Options group and partition cannot be specified together.",
        ));
    }
    let start = match args.offset.as_deref().map(str::trim) {
        Some("earliest") => StartAt::Earliest,
        Some("latest") | None if !args.from_beginning => StartAt::Latest,
        None => StartAt::Earliest,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n >= 0 => StartAt::Offset(n),
            _ => {
                return Err(ToolError::Usage(format!(
                    "The provided offset value '{n}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long."
                )));
            }
        },
    };
    let reset = match consumer.get("auto.offset.reset").map(String::as_str) {
        Some("earliest") => StartAt::Earliest,
        Some("latest") => StartAt::Latest,
        Some(other) if other != "none" => {
            return Err(ToolError::Usage(format!(
                "auto.offset.reset must be earliest or latest, got '{other}'"
            )));
        }
        _ if args.from_beginning => StartAt::Earliest,
        _ => StartAt::Latest,
    };
    let isolation_level = match consumer.get("isolation.level").map(String::as_str) {
        None | Some("read_uncommitted") => 0,
        Some("read_committed") => 1,
        Some(other) => {
            return Err(ToolError::Usage(format!(
                "isolation level must be read_committed or read_uncommitted, got '{other}'"
            )));
        }
    };
    let format = Format {
        print_timestamp: flag_value(&props, "print.timestamp")?,
        print_partition: flag_value(&props, "print.partition")?,
        print_offset: flag_value(&props, "print.offset")?,
        print_key: flag_value(&props, "print.key")?,
        print_value: !props.contains_key("print.value") || flag_value(&props, "print.value")?,
        key_separator: props
            .get("key.separator")
            .cloned()
            .unwrap_or_else(|| "\t".into()),
        line_separator: props
            .get("line.separator")
            .cloned()
            .unwrap_or_else(|| "\n".into()),
    };
    let timeout = number_value::<u64>(&consumer, "consumer.timeout.ms")?
        .or(args.timeout_ms)
        .map(Duration::from_millis);
    Ok(Settings {
        servers: bootstrap::resolve(&args.server, None).await?,
        security: ClientSecurity::from_properties(&consumer)?,
        topic,
        group,
        partition: args.partition,
        start,
        reset,
        max_messages: args.max_messages,
        timeout,
        isolation_level,
        format,
        client_id: consumer
            .get("client.id")
            .cloned()
            .unwrap_or_else(|| "console-consumer".into()),
    })
}

/// Sets the returned flag on SIGINT or SIGTERM.
fn stop_on_signals() -> Result<Arc<AtomicBool>, ToolError> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = Arc::new(AtomicBool::new(false));
    let install = |kind| {
        signal(kind).map_err(|e| ToolError::Failed(format!("cannot install signal handler: {e}")))
    };
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    let flag = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        flag.store(true, Ordering::SeqCst);
    });
    Ok(stop)
}

pub async fn run(args: ConsumerArgs) -> Result<ExitCode, ToolError> {
    let settings = settings(args).await?;
    let stop = stop_on_signals()?;
    let mut client =
        Client::connect(&settings.servers, &settings.client_id, &settings.security).await?;
    let topic = client.topic(&settings.topic).await?;
    if let Some(p) = settings.partition
        && !topic.partitions.iter().any(|info| info.partition == p)
    {
        return Err(ToolError::Failed(format!(
            "partition {p} of topic '{}' does not exist",
            settings.topic
        )));
    }
    let mut consumer = Consumer {
        settings,
        member: None,
        positions: BTreeMap::new(),
        committed: BTreeMap::new(),
        printed: 0,
        stdout_closed: false,
    };
    let outcome = consumer.consume(&mut client, &stop).await;
    let finished = consumer.finish(&mut client).await;
    eprintln!("Processed a total of {} messages", consumer.printed);
    outcome?;
    finished?;
    Ok(ExitCode::SUCCESS)
}

struct Consumer {
    settings: Settings,
    member: Option<GroupMember>,
    /// Next offset to fetch per assigned partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// What was last committed (to skip needless commits).
    committed: BTreeMap<TopicPartition, i64>,
    printed: u64,
    stdout_closed: bool,
}

impl Consumer {
    fn done(&self) -> bool {
        self.stdout_closed
            || self
                .settings
                .max_messages
                .is_some_and(|max| self.printed >= max)
    }

    /// Joins the group (if any) and sets the starting positions.
    async fn assign(&mut self, client: &mut Client) -> Result<(), ToolError> {
        self.positions.clear();
        let partitions: Vec<TopicPartition> = match &mut self.member {
            Some(member) => member.assignment.clone(),
            None => {
                let topic = client.topic(&self.settings.topic).await?;
                topic
                    .partitions
                    .iter()
                    .filter(|p| {
                        self.settings
                            .partition
                            .is_none_or(|only| only == p.partition)
                    })
                    .map(|p| (self.settings.topic.clone(), p.partition))
                    .collect()
            }
        };
        if partitions.is_empty() {
            return Ok(());
        }
        let mut unresolved = partitions.clone();
        if let Some(member) = &self.member {
            let committed = member.committed(client, &partitions).await?;
            unresolved.retain(|tp| !committed.contains_key(tp));
            self.committed = committed.clone();
            self.positions.extend(committed);
        }
        let start = if self.member.is_some() {
            self.settings.reset
        } else {
            self.settings.start
        };
        let resolved = self.resolve(client, &unresolved, start).await?;
        self.positions.extend(resolved);
        Ok(())
    }

    async fn resolve(
        &self,
        client: &mut Client,
        partitions: &[TopicPartition],
        start: StartAt,
    ) -> Result<BTreeMap<TopicPartition, i64>, ToolError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let level = self.settings.isolation_level;
        Ok(match start {
            StartAt::Earliest => {
                client
                    .list_offsets(partitions, EARLIEST_TIMESTAMP, level)
                    .await?
            }
            StartAt::Latest => {
                client
                    .list_offsets(partitions, LATEST_TIMESTAMP, level)
                    .await?
            }
            StartAt::Offset(n) => partitions.iter().map(|tp| (tp.clone(), n)).collect(),
        })
    }

    async fn consume(&mut self, client: &mut Client, stop: &AtomicBool) -> Result<(), ToolError> {
        if let Some(group) = self.settings.group.clone() {
            let member =
                GroupMember::join(client, &group, vec![self.settings.topic.clone()]).await?;
            self.member = Some(member);
        }
        self.assign(client).await?;
        let mut last_message = Instant::now();
        let mut last_heartbeat = Instant::now();
        let mut last_commit = Instant::now();
        while !stop.load(Ordering::SeqCst) && !self.done() {
            if let Some(timeout) = self.settings.timeout
                && last_message.elapsed() >= timeout
            {
                eprintln!(
                    "[{}] ERROR Error processing message, terminating consumer process: TimeoutException",
                    self.settings.client_id
                );
                break;
            }
            if self.member.is_some() && last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
                last_heartbeat = Instant::now();
                let outcome = match &mut self.member {
                    Some(member) => member.heartbeat(client).await?,
                    None => Heartbeat::Ok,
                };
                if outcome == Heartbeat::Rejoin {
                    self.commit(client).await.ok();
                    if let Some(member) = &mut self.member {
                        member.rejoin(client).await?;
                    }
                    self.assign(client).await?;
                }
            }
            if self.member.is_some() && last_commit.elapsed() >= AUTO_COMMIT_INTERVAL {
                last_commit = Instant::now();
                self.commit(client).await?;
            }
            if self.positions.is_empty() {
                tokio::time::sleep(Duration::from_millis(FETCH_MAX_WAIT_MS as u64)).await;
                continue;
            }
            if self.fetch_once(client).await? {
                last_message = Instant::now();
            }
        }
        Ok(())
    }

    /// One Fetch per leader; returns whether anything was printed.
    async fn fetch_once(&mut self, client: &mut Client) -> Result<bool, ToolError> {
        let topic = client.topic(&self.settings.topic).await?;
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for ((_, partition), offset) in &self.positions {
            if let Some(info) = topic.partitions.iter().find(|p| p.partition == *partition)
                && info.leader >= 0
            {
                by_leader
                    .entry(info.leader)
                    .or_default()
                    .push((*partition, *offset));
            }
        }
        let before = self.printed;
        for (leader, partitions) in by_leader {
            let name = TopicName(StrBytes::from_string(self.settings.topic.clone()));
            let connection = client.broker(leader).await?;
            if !connection.supports(ApiKey::Fetch) {
                return Err(ToolError::Failed(format!(
                    "broker at {} does not support Fetch",
                    connection.address()
                )));
            }
            let isolation_level = self.settings.isolation_level;
            let response = connection
                .send(|version| {
                    let request = FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
                        .with_min_bytes(1)
                        .with_topics(vec![
                            FetchTopic::default()
                                .with_topic(name.clone())
                                .with_topic_id(topic.id)
                                .with_partitions(
                                    partitions
                                        .iter()
                                        .map(|(p, offset)| {
                                            FetchPartition::default()
                                                .with_partition(*p)
                                                .with_fetch_offset(*offset)
                                                .with_partition_max_bytes(PARTITION_MAX_BYTES)
                                        })
                                        .collect(),
                                ),
                        ]);
                    let request = if version >= 3 {
                        request.with_max_bytes(FETCH_MAX_BYTES)
                    } else {
                        request
                    };
                    if version >= 4 {
                        request.with_isolation_level(isolation_level)
                    } else {
                        request
                    }
                })
                .await?;
            if response.error_code != 0 {
                return Err(ToolError::Failed(format!(
                    "fetch from {leader} failed: {}",
                    describe_code(response.error_code)
                )));
            }
            for topic in response.responses {
                for data in topic.partitions {
                    self.handle_partition(client, data).await?;
                    if self.done() {
                        return Ok(self.printed > before);
                    }
                }
            }
        }
        Ok(self.printed > before)
    }

    async fn handle_partition(
        &mut self,
        client: &mut Client,
        data: kafka_protocol::messages::fetch_response::PartitionData,
    ) -> Result<(), ToolError> {
        let tp = (self.settings.topic.clone(), data.partition_index);
        match ResponseError::try_from_code(data.error_code) {
            None => {}
            Some(ResponseError::OffsetOutOfRange) => {
                let start = if self.member.is_some() {
                    self.settings.reset
                } else {
                    self.settings.start
                };
                let start = match start {
                    StartAt::Offset(_) => StartAt::Earliest,
                    other => other,
                };
                let reset = self
                    .resolve(client, std::slice::from_ref(&tp), start)
                    .await?;
                self.positions.extend(reset);
                return Ok(());
            }
            Some(error) if error.is_retriable() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(());
            }
            Some(_) => {
                return Err(ToolError::Failed(format!(
                    "fetching {}-{} failed: {}",
                    tp.0,
                    tp.1,
                    describe_code(data.error_code)
                )));
            }
        }
        let Some(mut records) = data.records else {
            return Ok(());
        };
        let Some(&position) = self.positions.get(&tp) else {
            return Ok(());
        };
        let mut next = position;
        while !records.is_empty() {
            let Ok(set) = RecordBatchDecoder::decode(&mut records) else {
                // A batch cut off at the fetch size limit: fetch it again.
                break;
            };
            for record in set.records {
                if record.offset < next {
                    continue;
                }
                next = record.offset + 1;
                if record.control {
                    continue;
                }
                self.print(&record, tp.1)?;
                if self.done() {
                    break;
                }
            }
            if self.done() {
                break;
            }
        }
        self.positions.insert(tp, next);
        Ok(())
    }

    fn print(
        &mut self,
        record: &kafka_protocol::records::Record,
        partition: i32,
    ) -> Result<(), ToolError> {
        let format = &self.settings.format;
        let mut fields: Vec<Vec<u8>> = Vec::new();
        if format.print_timestamp {
            let kind = match record.timestamp_type {
                TimestampType::Creation => "CreateTime",
                TimestampType::LogAppend => "LogAppendTime",
            };
            fields.push(if record.timestamp < 0 {
                b"NO_TIMESTAMP".to_vec()
            } else {
                format!("{kind}:{}", record.timestamp).into_bytes()
            });
        }
        if format.print_partition {
            fields.push(format!("Partition:{partition}").into_bytes());
        }
        if format.print_offset {
            fields.push(format!("Offset:{}", record.offset).into_bytes());
        }
        let or_null = |b: &Option<Bytes>| b.as_ref().map_or(b"null".to_vec(), |b| b.to_vec());
        if format.print_key {
            fields.push(or_null(&record.key));
        }
        if format.print_value {
            fields.push(or_null(&record.value));
        }
        let mut line = fields.join(format.key_separator.as_bytes());
        line.extend_from_slice(format.line_separator.as_bytes());
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(&line)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader went away (`| head`): stop like Kafka does.
            self.stdout_closed = true;
            return Ok(());
        }
        self.printed += 1;
        Ok(())
    }

    async fn commit(&mut self, client: &mut Client) -> Result<(), ToolError> {
        let Some(member) = &self.member else {
            return Ok(());
        };
        let changed: BTreeMap<TopicPartition, i64> = self
            .positions
            .iter()
            .filter(|(tp, offset)| self.committed.get(*tp) != Some(*offset))
            .map(|(tp, offset)| (tp.clone(), *offset))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        member.commit(client, &changed).await?;
        self.committed.extend(changed);
        Ok(())
    }

    /// Commits and leaves the group (no-op without one).
    async fn finish(&mut self, client: &mut Client) -> Result<(), ToolError> {
        if self.member.is_none() {
            return Ok(());
        }
        let committed = self.commit(client).await;
        if let Some(member) = &self.member {
            member.leave(client).await?;
        }
        committed
    }
}
