//! `e2e`: a producer thread sends at a fixed rate, each payload starting
//! with its send time (nanoseconds since a clock shared by both threads) and
//! its sequence number; the consumer records receive time minus send time
//! for every message after the warm-up.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use serde_json::{Value, json};

use crate::client::{self, ClientArgs};
use crate::connection::Connection;
use crate::consume::assign_from_beginning;
use crate::produce::{AckRecorder, merge, send_all};
use crate::report;

/// Send time (u64 LE nanoseconds) then sequence number (u64 LE).
const HEADER_BYTES: usize = 16;

#[derive(Args, Debug)]
pub struct E2eArgs {
    #[arg(long)]
    pub topic: String,
    /// Messages per second.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Payload size in bytes (at least 16).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Seconds sent before measuring (connections, caches, allocator).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_s: f64,
    /// Create the topic with this many partitions first (0 = don't create).
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(connection: &Connection, args: &E2eArgs) -> anyhow::Result<Value> {
    if args.size < HEADER_BYTES {
        bail!("e2e: --size must be at least {HEADER_BYTES}");
    }
    let (producer_config, settings) = args.client.producer_config(connection)?;
    eprintln!(
        "e2e: {} B at {}/s for {}+{} s to {} client={settings}",
        args.size, args.rate, args.warmup_s, args.duration_s, args.topic
    );
    if args.partitions > 0 {
        client::create_topic(connection, &args.client, &args.topic, args.partitions)?;
    }
    let warmup = (args.rate as f64 * args.warmup_s) as u64;
    let total = warmup + (args.rate as f64 * args.duration_s) as u64;

    let consumer: BaseConsumer = args
        .client
        .consumer_config(connection)?
        // Wake on every fetch response rather than batching up deliveries.
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .create()
        .context("creating the consumer")?;
    let partitions = client::wait_for_leaders(&consumer, &args.topic, Duration::from_secs(15))?;
    let _assignment = assign_from_beginning(&consumer, &args.topic, partitions)?;
    // Let the consumer reach the partition leaders before the clock starts.
    consumer.poll(Duration::from_millis(500));

    let clock = Instant::now();
    let producer: BaseProducer<AckRecorder> = producer_config
        .create_with_context(AckRecorder::new(clock))
        .context("creating the producer")?;

    let (rate, topic, size) = (args.rate, args.topic.clone(), args.size);
    let sender = std::thread::spawn(move || -> anyhow::Result<Value> {
        let mut payload = client::payload(size, 0x2545_f491_4f6c_dd1d);
        send_all(
            &producer,
            &topic,
            total,
            rate,
            &mut payload,
            |sequence, payload| {
                let now = clock.elapsed().as_nanos() as u64;
                payload[..8].copy_from_slice(&now.to_le_bytes());
                payload[8..16].copy_from_slice(&sequence.to_le_bytes());
            },
        )?;
        if producer.flush(Duration::from_secs(60)).is_err() {
            bail!("e2e: producer flush timed out");
        }
        Ok(producer.context().summary())
    });

    let mut latency = report::latency_histogram();
    let (mut received, mut out_of_order, mut last_sequence) = (0u64, 0u64, None::<u64>);
    let mut last_message = Instant::now();
    let mut first_measured = None;
    while received < total {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let now = clock.elapsed().as_nanos() as u64;
                let payload = message.payload().unwrap_or_default();
                if payload.len() < HEADER_BYTES {
                    bail!(
                        "e2e: foreign message of {} bytes in {}",
                        payload.len(),
                        args.topic
                    );
                }
                let sent = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
                let sequence = u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes"));
                if last_sequence.is_some_and(|last| sequence <= last) && partitions == 1 {
                    out_of_order += 1;
                }
                last_sequence = Some(sequence);
                if sequence >= warmup {
                    first_measured.get_or_insert_with(Instant::now);
                    latency.saturating_record((now.saturating_sub(sent) / 1000).max(1));
                }
                received += 1;
                last_message = Instant::now();
            }
            Some(Err(error)) => bail!("e2e: consume: {error} after {received} messages"),
            None if last_message.elapsed() > Duration::from_secs(20) => {
                bail!("e2e: only {received} of {total} messages arrived")
            }
            None => {}
        }
    }
    let measured_elapsed = first_measured.map(|t| t.elapsed()).unwrap_or_default();
    let producer_summary = sender
        .join()
        .map_err(|_| anyhow::anyhow!("e2e: producer thread panicked"))??;

    let measured = latency.len();
    let mut line = json!({
        "mode": "e2e",
        "topic": args.topic,
        "size": args.size,
        "rate": args.rate,
        "warmup_s": args.warmup_s,
        "duration_s": args.duration_s,
        "partitions": partitions,
        "messages": total,
        "received": received,
        "out_of_order": out_of_order,
        "client": settings,
        "e2e_latency": report::latency_summary(&latency),
        "producer": producer_summary,
    });
    merge(
        &mut line,
        report::throughput(measured, measured * args.size as u64, measured_elapsed),
    );
    Ok(line)
}
