//! Client settings shared by every mode, the admin client, and waiting for a
//! topic to be servable.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{Map, Value};

use crate::connection::Connection;

/// Producer settings as flags. `None` leaves librdkafka's default in place
/// (and the JSON line says "default"), so a run states exactly what it set.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// acks: 0, 1 or all (-1).
    #[arg(long)]
    pub acks: Option<String>,
    /// linger.ms (may be fractional).
    #[arg(long)]
    pub linger_ms: Option<f64>,
    /// batch.size in bytes.
    #[arg(long)]
    pub batch_size: Option<u64>,
    /// compression.type: none, gzip, snappy, lz4.
    #[arg(long)]
    pub compression: Option<String>,
    /// enable.idempotence=true.
    #[arg(long)]
    pub idempotence: bool,
    /// Any other librdkafka property, `key=value`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub extra: Vec<String>,
}

impl ClientArgs {
    /// The producer configuration, plus the settings as printed in the JSON line.
    pub fn producer_config(
        &self,
        connection: &Connection,
    ) -> anyhow::Result<(ClientConfig, Value)> {
        let mut config = connection.base_config();
        let mut shown = Map::new();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(v) = &value {
                config.set(key, v);
            }
            shown.insert(
                key.to_owned(),
                Value::from(value.unwrap_or_else(|| "default".into())),
            );
        };
        put("acks", self.acks.clone());
        put("linger.ms", self.linger_ms.map(|v| v.to_string()));
        put("batch.size", self.batch_size.map(|v| v.to_string()));
        put("compression.type", self.compression.clone());
        put("enable.idempotence", Some(self.idempotence.to_string()));
        for pair in &self.extra {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--set {pair:?}: expected KEY=VALUE"))?;
            put(key, Some(value.to_owned()));
        }
        Ok((config, Value::Object(shown)))
    }

    /// A consumer configuration with the `--set` properties applied.
    pub fn consumer_config(&self, connection: &Connection) -> anyhow::Result<ClientConfig> {
        let mut config = connection.base_config();
        // librdkafka needs a group id even for a manual assignment; nothing
        // is committed, so the group never matters to the broker.
        config
            .set("group.id", "gregor-bench")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        for pair in &self.extra {
            if let Some((key, value)) = pair.split_once('=') {
                config.set(key, value);
            }
        }
        Ok(config)
    }
}

/// Creates `topic` with `partitions` partitions (an existing topic is fine)
/// and waits until every partition has a leader.
pub fn create_topic(
    connection: &Connection,
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = connection
        .base_config()
        .create()
        .context("creating the admin client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting the admin runtime")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime
        .block_on(admin.create_topics([&new_topic], &options))
        .context("CreateTopics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("CreateTopics {name}: {code}"),
        }
    }
    let consumer: BaseConsumer = client.consumer_config(connection)?.create()?;
    wait_for_leaders(&consumer, topic, Duration::from_secs(15))?;
    Ok(())
}

/// Waits until `topic` has at least one partition and all have a leader;
/// returns the partition count.
pub fn wait_for_leaders(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(2));
        if let Some(t) = metadata
            .as_ref()
            .ok()
            .and_then(|m| m.topics().iter().find(|t| t.name() == topic))
        {
            let partitions = t.partitions();
            if t.error().is_none()
                && !partitions.is_empty()
                && partitions.iter().all(|p| p.leader() >= 0)
            {
                return Ok(partitions.len() as i32);
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leaders after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deterministic, incompressible-looking filler so compression settings
/// measure something real.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
