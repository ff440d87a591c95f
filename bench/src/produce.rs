//! `produce`: N messages of S bytes, flat out or at `--rate`, timed from the
//! first send to the last acknowledgement; ack latency per message.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde_json::{Value, json};

use crate::client::{self, ClientArgs};
use crate::connection::Connection;
use crate::report;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[arg(long)]
    pub topic: String,
    /// Number of messages.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages per second; 0 = as fast as the client can.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Create the topic with this many partitions first (0 = don't create).
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Delivery reports arrive on the thread that polls the producer; the
/// opaque of each message is its send time in nanoseconds since `start`.
pub struct AckRecorder {
    start: Instant,
    latency: Mutex<Histogram<u64>>,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl AckRecorder {
    pub fn new(start: Instant) -> Self {
        AckRecorder {
            start,
            latency: Mutex::new(report::latency_histogram()),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    pub fn since_start_nanos(&self) -> usize {
        self.start.elapsed().as_nanos() as usize
    }

    pub fn completed(&self) -> u64 {
        self.acked.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> Value {
        let latency = self.latency.lock().expect("histogram lock");
        json!({
            "acked": self.acked.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
            "first_error": *self.first_error.lock().expect("error lock"),
            "ack_latency": report::latency_summary(&latency),
        })
    }
}

impl ClientContext for AckRecorder {}

impl ProducerContext for AckRecorder {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at_nanos: usize) {
        match result {
            Ok(_) => {
                let micros = (self.since_start_nanos().saturating_sub(sent_at_nanos) / 1000) as u64;
                self.latency
                    .lock()
                    .expect("histogram lock")
                    .saturating_record(micros.max(1));
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().expect("error lock");
                if first.is_none() {
                    *first = Some(format!("{error} (partition {})", message.partition()));
                }
            }
        }
    }
}

pub fn run(connection: &Connection, args: &ProduceArgs) -> anyhow::Result<Value> {
    let (config, settings) = args.client.producer_config(connection)?;
    eprintln!(
        "produce: {} x {} B to {} rate={} client={settings}",
        args.messages, args.size, args.topic, args.rate
    );
    if args.partitions > 0 {
        client::create_topic(connection, &args.client, &args.topic, args.partitions)?;
    }
    let start = Instant::now();
    let producer: BaseProducer<AckRecorder> = config
        .create_with_context(AckRecorder::new(start))
        .context("creating the producer")?;
    let mut payload = client::payload(args.size, 0x9e37_79b9_7f4a_7c15);

    let first_send = Instant::now();
    send_all(
        &producer,
        &args.topic,
        args.messages,
        args.rate,
        &mut payload,
        |_, _| {},
    )?;
    if producer.flush(Duration::from_secs(120)).is_err() {
        bail!(
            "produce: flush timed out with {} of {} acknowledged",
            producer.context().completed(),
            args.messages
        );
    }
    let elapsed = first_send.elapsed();

    let context = producer.context();
    let mut line = json!({
        "mode": "produce",
        "topic": args.topic,
        "messages": args.messages,
        "size": args.size,
        "rate": args.rate,
        "partitions": args.partitions,
        "client": settings,
    });
    merge(
        &mut line,
        report::throughput(args.messages, args.messages * args.size as u64, elapsed),
    );
    merge(&mut line, context.summary());
    Ok(line)
}

/// Sends `count` messages, waiting for room when librdkafka's queue is full
/// and pacing at `rate` if non-zero. `stamp` may rewrite the payload just
/// before each send (librdkafka copies it).
pub fn send_all(
    producer: &BaseProducer<AckRecorder>,
    topic: &str,
    count: u64,
    rate: u64,
    payload: &mut [u8],
    mut stamp: impl FnMut(u64, &mut [u8]),
) -> anyhow::Result<()> {
    let schedule_start = Instant::now();
    for sequence in 0..count {
        if rate > 0 {
            report::wait_until(
                schedule_start + Duration::from_secs_f64(sequence as f64 / rate as f64),
            );
        }
        stamp(sequence, payload);
        let mut record: BaseRecord<'_, (), [u8], usize> =
            BaseRecord::with_opaque_to(topic, producer.context().since_start_nanos())
                .payload(&*payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    wait_for_room(producer);
                }
                Err((error, _)) => bail!("send: {error}"),
            }
        }
        if rate > 0 || sequence % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    Ok(())
}

/// Serves the delivery reports that are ready (they free queue room), then
/// sleeps briefly. rdkafka's `poll(timeout)` would busy-wait instead: it
/// rounds the time left down to whole milliseconds and polls with 0 for the
/// last one, and a spinning client steals a core from the broker it measures.
fn wait_for_room(producer: &BaseProducer<AckRecorder>) {
    for _ in 0..64 {
        let before = producer.in_flight_count();
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == before {
            break;
        }
    }
    std::thread::sleep(Duration::from_micros(100));
}

pub fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}
