//! `gregor-bench`: a benchmark driven by a real Kafka client (librdkafka via
//! the `rdkafka` crate), so it measures what applications see.
//!
//! Layout:
//! - `connection` — bootstrap and security properties shared by every client
//! - `client`  — client settings from flags, the admin client, topic readiness
//! - `produce` — N messages of S bytes, flat out or at a fixed rate; ack latency
//! - `consume` — read N messages from the beginning of a topic
//! - `e2e`     — producer and consumer at a fixed rate; send timestamps in the payload
//! - `report`  — histograms, rates and the one JSON line each run prints
//!
//! Every run prints exactly one JSON line on stdout; progress and the
//! effective client settings go to stderr.

mod client;
mod connection;
mod consume;
mod e2e;
mod produce;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::ClientArgs;
use crate::connection::Connection;

#[derive(Parser)]
#[command(
    name = "gregor-bench",
    about = "Kafka benchmark on librdkafka; one JSON line per run"
)]
struct Cli {
    /// Bootstrap servers (host:port[,host:port]).
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Free-form label copied into the JSON line (e.g. the broker's name).
    #[arg(long, global = true, default_value = "")]
    label: String,
    /// A librdkafka property for every client of the run (producer, consumer,
    /// admin), `key=value`; repeatable. For `security.protocol`, `ssl.*`, `sasl.*`.
    #[arg(long, global = true, value_name = "KEY=VALUE")]
    client_set: Vec<String>,
    /// The same from a file in client.properties form (`key=value` lines,
    /// librdkafka's key names); `--client-set` wins over it.
    #[arg(long, global = true, value_name = "FILE")]
    client_config: Option<PathBuf>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Produce N messages of S bytes; throughput and ack latency.
    Produce(produce::ProduceArgs),
    /// Consume N messages from the beginning of a topic; throughput.
    Consume(consume::ConsumeArgs),
    /// Produce and consume at a fixed rate; end-to-end latency after a warm-up.
    E2e(e2e::E2eArgs),
    /// Create a topic (admin client) and wait until it has leaders.
    CreateTopic {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    report::precise_sleeps();
    let connection = match Connection::new(
        &cli.bootstrap,
        cli.client_config.as_deref(),
        &cli.client_set,
    ) {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!("gregor-bench: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.mode {
        Mode::Produce(args) => produce::run(&connection, &args),
        Mode::Consume(args) => consume::run(&connection, &args),
        Mode::E2e(args) => e2e::run(&connection, &args),
        Mode::CreateTopic {
            topic,
            partitions,
            client,
        } => client::create_topic(&connection, &client, &topic, partitions).map(|()| {
            serde_json::json!({"mode": "create-topic", "topic": topic, "partitions": partitions})
        }),
    };
    match result {
        Ok(mut line) => {
            line["label"] = serde_json::Value::from(cli.label);
            line["bootstrap"] = serde_json::Value::from(cli.bootstrap);
            line["connection"] = connection.shown();
            // The client's own CPU: shows when a run is bound by the client
            // (librdkafka) rather than by the broker.
            if let Some(seconds) = report::own_cpu_seconds() {
                line["client_cpu_s"] = serde_json::Value::from(report::round3(seconds));
            }
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gregor-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
