//! `kafka-console-producer.sh`: each line of standard input becomes one
//! record. Lines are gathered per partition into batches (up to
//! `batch.size` bytes or `linger.ms` after the first) and each flush sends
//! one Produce request per leader, so a pipe costs a few requests, not one
//! per line. Keyed records are placed with Kafka's murmur2 partitioner;
//! keyless ones stick to one partition per flush, moving on after each.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::args::{ProducerArgs, flag_value, key_values, number_value, properties_file};
use super::client::{Client, TopicInfo, describe_code};
use super::client_security::ClientSecurity;
use super::partitioner::partition_for_key;
use super::{ToolError, bootstrap};

/// Retries of a request that failed with a retriable error code.
const RETRIES: u32 = 5;
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Record headers as the codec wants them (the console producer sends none).
type RecordHeaders = kafka_protocol::indexmap::IndexMap<StrBytes, Option<Bytes>>;

/// The producer's resolved settings.
#[derive(Debug)]
struct Settings {
    servers: Vec<String>,
    security: ClientSecurity,
    topic: String,
    parse_key: bool,
    key_separator: String,
    ignore_error: bool,
    acks: i16,
    linger: Duration,
    batch_bytes: usize,
    compression: Compression,
    request_timeout_ms: i32,
    sync: bool,
}

fn compression(name: &str) -> Result<Compression, ToolError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "none" | "" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(ToolError::Usage(format!(
            "compression codec '{other}' is not one of none, gzip, snappy, lz4, zstd"
        ))),
    }
}

fn acks(value: &str) -> Result<i16, ToolError> {
    match value.trim() {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => Err(ToolError::Usage(format!(
            "acks must be all, -1, 0 or 1, got '{other}'"
        ))),
    }
}

async fn settings(args: ProducerArgs) -> Result<Settings, ToolError> {
    let topic = args
        .topic
        .clone()
        .ok_or_else(|| ToolError::Usage("Missing required argument \"[topic]\"".to_string()))?;
    let reader = key_values(&args.property, "--property")?;
    let mut producer = match &args.producer_config {
        Some(path) => properties_file(path)?,
        None => BTreeMap::new(),
    };
    producer.extend(key_values(&args.producer_property, "--producer-property")?);
    if let Some(codec) = &args.compression_codec {
        producer.insert("compression.type".into(), codec.clone());
    }
    if let Some(value) = &args.request_required_acks {
        producer.insert("acks".into(), value.clone());
    }
    if let Some(ms) = args.timeout {
        producer.insert("linger.ms".into(), ms.to_string());
    }
    if let Some(ms) = args.request_timeout_ms {
        producer.insert("request.timeout.ms".into(), ms.to_string());
    }
    let servers = bootstrap::resolve(&args.server, args.broker_list.as_deref()).await?;
    Ok(Settings {
        servers,
        security: ClientSecurity::from_properties(&producer)?,
        topic,
        parse_key: flag_value(&reader, "parse.key")?,
        key_separator: reader
            .get("key.separator")
            .cloned()
            .unwrap_or_else(|| "\t".into()),
        ignore_error: flag_value(&reader, "ignore.error")?,
        acks: acks(producer.get("acks").map(String::as_str).unwrap_or("1"))?,
        linger: Duration::from_millis(number_value(&producer, "linger.ms")?.unwrap_or(1000)),
        batch_bytes: number_value(&producer, "batch.size")?.unwrap_or(16_384),
        compression: compression(
            producer
                .get("compression.type")
                .map(String::as_str)
                .unwrap_or("none"),
        )?,
        request_timeout_ms: number_value(&producer, "request.timeout.ms")?.unwrap_or(30_000),
        sync: args.sync,
    })
}

pub async fn run(args: ProducerArgs) -> Result<ExitCode, ToolError> {
    let settings = settings(args).await?;
    let mut client =
        Client::connect(&settings.servers, "console-producer", &settings.security).await?;
    client.auto_create_topics(true);
    let topic = client.topic(&settings.topic).await?;
    let mut producer = Producer::new(settings, topic);
    let mut lines = spawn_stdin_reader();
    let mut deadline: Option<Instant> = None;
    loop {
        let line = match deadline {
            Some(at) => tokio::select! {
                line = lines.recv() => line,
                _ = tokio::time::sleep_until(at) => {
                    producer.flush(&mut client).await?;
                    deadline = None;
                    continue;
                }
            },
            None => lines.recv().await,
        };
        let Some(line) = line else { break };
        producer.add_line(line?)?;
        // Take whatever else is already waiting, so a pipe fills batches.
        while let Ok(more) = lines.try_recv() {
            producer.add_line(more?)?;
            if producer.full() {
                break;
            }
        }
        if producer.settings.sync || producer.full() {
            producer.flush(&mut client).await?;
            deadline = None;
        } else if deadline.is_none() && producer.has_pending() {
            deadline = Some(Instant::now() + producer.settings.linger);
        }
    }
    producer.flush(&mut client).await?;
    Ok(ExitCode::SUCCESS)
}

/// Reads standard input line by line on its own task; the channel closes
/// at end of input.
fn spawn_stdin_reader() -> mpsc::Receiver<Result<Vec<u8>, ToolError>> {
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(async move {
        let mut reader = BufReader::new(tokio::io::stdin());
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.send(Ok(line)).await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    let _ = tx
                        .send(Err(ToolError::Failed(format!(
                            "cannot read standard input: {error}"
                        ))))
                        .await;
                    break;
                }
            }
        }
    });
    rx
}

struct Producer {
    settings: Settings,
    topic: TopicInfo,
    /// partition -> records waiting to be sent
    pending: BTreeMap<i32, Vec<Record>>,
    pending_bytes: BTreeMap<i32, usize>,
    sticky: usize,
}

impl Producer {
    fn new(settings: Settings, topic: TopicInfo) -> Producer {
        let sticky = super::random_suffix() as usize;
        Producer {
            settings,
            topic,
            pending: BTreeMap::new(),
            pending_bytes: BTreeMap::new(),
            sticky,
        }
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn full(&self) -> bool {
        self.pending_bytes
            .values()
            .any(|b| *b >= self.settings.batch_bytes)
    }

    fn add_line(&mut self, line: Vec<u8>) -> Result<(), ToolError> {
        let (key, value) = if self.settings.parse_key {
            let separator = self.settings.key_separator.as_bytes();
            let at = find(&line, separator).ok_or_else(|| {
                ToolError::Failed(format!(
                    "No key found on line: {}",
                    String::from_utf8_lossy(&line)
                ))
            });
            match at {
                Ok(at) => (
                    Some(Bytes::copy_from_slice(&line[..at])),
                    Bytes::copy_from_slice(&line[at + separator.len()..]),
                ),
                Err(_) if self.settings.ignore_error => (None, Bytes::from(line)),
                Err(error) => return Err(error),
            }
        } else {
            (None, Bytes::from(line))
        };
        let count = self.topic.partitions.len().max(1);
        let partition = match &key {
            Some(key) => partition_for_key(key, count as i32),
            None => self.topic.partitions[self.sticky % count].partition,
        };
        let size = value.len() + key.as_ref().map_or(0, |k| k.len()) + 16;
        *self.pending_bytes.entry(partition).or_default() += size;
        let records = self.pending.entry(partition).or_default();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        records.push(Record {
            transactional: false,
            control: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: records.len() as i64,
            sequence: NO_SEQUENCE,
            timestamp,
            key,
            value: Some(value),
            headers: RecordHeaders::new(),
        });
        Ok(())
    }

    /// Sends everything pending and waits for the acknowledgements.
    async fn flush(&mut self, client: &mut Client) -> Result<(), ToolError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.sticky = self.sticky.wrapping_add(1);
        let mut pending = std::mem::take(&mut self.pending);
        self.pending_bytes.clear();
        let mut attempt = 0;
        loop {
            let failed = self.send_all(client, &pending).await?;
            if failed.is_empty() {
                return Ok(());
            }
            let retriable = failed.iter().all(|(_, code)| {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            });
            attempt += 1;
            if !retriable || attempt > RETRIES {
                let (partition, code) = failed[0];
                return Err(ToolError::Failed(format!(
                    "Error when sending message to topic {} partition {partition}: {}",
                    self.settings.topic,
                    describe_code(code)
                )));
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
            self.topic = client.topic(&self.settings.topic).await?;
            let failed_partitions: Vec<i32> = failed.iter().map(|(p, _)| *p).collect();
            pending.retain(|p, _| failed_partitions.contains(p));
        }
    }

    /// One Produce request per leader; returns the partitions that failed
    /// with their error codes.
    async fn send_all(
        &self,
        client: &mut Client,
        pending: &BTreeMap<i32, Vec<Record>>,
    ) -> Result<Vec<(i32, i16)>, ToolError> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut failed = Vec::new();
        for partition in pending.keys() {
            match self
                .topic
                .partitions
                .iter()
                .find(|p| p.partition == *partition)
            {
                Some(info) if info.leader >= 0 => {
                    by_leader.entry(info.leader).or_default().push(*partition)
                }
                _ => failed.push((*partition, ResponseError::LeaderNotAvailable.code())),
            }
        }
        for (leader, partitions) in by_leader {
            let connection = client.broker(leader).await?;
            let version = connection.version(ApiKey::Produce).ok_or_else(|| {
                ToolError::Failed(format!(
                    "broker at {} does not support Produce",
                    connection.address()
                ))
            })?;
            let record_version = match version {
                0..=1 => 0,
                2 => 1,
                _ => 2,
            };
            let options = RecordEncodeOptions {
                version: record_version,
                compression: self.settings.compression,
            };
            let mut partition_data = Vec::new();
            for partition in &partitions {
                let mut buf = BytesMut::new();
                RecordBatchEncoder::encode(&mut buf, pending[partition].iter(), &options)
                    .map_err(|e| ToolError::Failed(format!("cannot encode records: {e}")))?;
                partition_data.push(
                    PartitionProduceData::default()
                        .with_index(*partition)
                        .with_records(Some(buf.freeze())),
                );
            }
            let request = ProduceRequest::default()
                .with_acks(self.settings.acks)
                .with_timeout_ms(self.settings.request_timeout_ms)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(
                            self.settings.topic.clone(),
                        )))
                        .with_partition_data(partition_data),
                ]);
            if self.settings.acks == 0 {
                connection.send_without_response(&request, version).await?;
                continue;
            }
            let response = connection.send(|_| request.clone()).await?;
            for topic in response.responses {
                for p in topic.partition_responses {
                    if p.error_code != 0 {
                        failed.push((p.index, p.error_code));
                    }
                }
            }
        }
        Ok(failed)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_map_to_compression() {
        assert_eq!(compression("LZ4").unwrap(), Compression::Lz4);
        assert_eq!(compression("none").unwrap(), Compression::None);
        assert!(compression("brotli").is_err());
    }

    #[test]
    fn acks_accepts_all_and_numbers() {
        assert_eq!(acks("all").unwrap(), -1);
        assert_eq!(acks("0").unwrap(), 0);
        assert!(acks("2").is_err());
    }

    #[test]
    fn separator_may_be_several_bytes() {
        assert_eq!(find(b"k::v", b"::"), Some(1));
        assert_eq!(find(b"kv", b":"), None);
    }
}
