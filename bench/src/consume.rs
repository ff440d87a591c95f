//! `consume`: read N messages from the beginning of every partition of a
//! topic, timed from assignment to the N-th message.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::client::{self, ClientArgs};
use crate::connection::Connection;
use crate::produce::merge;
use crate::report;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[arg(long)]
    pub topic: String,
    /// Messages to read (the topic must hold at least this many).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Give up when no message arrives for this many seconds.
    #[arg(long, default_value_t = 20)]
    pub idle_timeout_s: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(connection: &Connection, args: &ConsumeArgs) -> anyhow::Result<Value> {
    let consumer: BaseConsumer = args
        .client
        .consumer_config(connection)?
        .create()
        .context("creating the consumer")?;
    let partitions = client::wait_for_leaders(&consumer, &args.topic, Duration::from_secs(15))?;
    eprintln!(
        "consume: {} messages from {} ({partitions} partitions) extra={:?}",
        args.messages, args.topic, args.client.extra
    );

    // Asking the leader for its offsets opens the fetch connection (and its
    // TLS and SASL handshakes) before the clock starts: a secured listener
    // is then measured for its traffic, not its one-off login.
    consumer
        .fetch_watermarks(&args.topic, 0, Duration::from_secs(10))
        .context("reaching the partition leader")?;
    let assignment = assign_from_beginning(&consumer, &args.topic, partitions)?;
    let start = Instant::now();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut last_message = Instant::now();
    while messages < args.messages {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                messages += 1;
                bytes += message.payload_len() as u64;
                last_message = Instant::now();
            }
            Some(Err(error)) => bail!("consume: {error} after {messages} messages"),
            None if last_message.elapsed() > Duration::from_secs(args.idle_timeout_s) => {
                bail!(
                    "consume: only {messages} of {} messages arrived",
                    args.messages
                )
            }
            None => {}
        }
    }
    let elapsed = start.elapsed();
    drop(assignment);

    let mut line = json!({
        "mode": "consume",
        "topic": args.topic,
        "messages": messages,
        "partitions": partitions,
        "size": bytes.checked_div(messages).unwrap_or(0),
        "client": {"extra": args.client.extra},
    });
    merge(&mut line, report::throughput(messages, bytes, elapsed));
    Ok(line)
}

/// Assigns every partition of `topic` at its first offset (no consumer
/// group: the benchmark measures fetching, not coordination).
pub fn assign_from_beginning(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&list).context("assign")?;
    Ok(list)
}
