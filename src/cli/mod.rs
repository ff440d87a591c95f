//! Kafka's command-line tools as subcommands of the one binary:
//! `kafka-topics.sh`, `kafka-console-producer.sh`,
//! `kafka-console-consumer.sh`, `kafka-consumer-groups.sh`,
//! `kafka-delete-records.sh`, `kafka-leader-election.sh`, `kafka-reassign-partitions.sh`,
//! `kafka-configs.sh`, `kafka-acls.sh`,
//! `kafka-metadata-quorum.sh`, `kafka-storage.sh`, and the server stop
//! scripts. Each tool parses Kafka 2.2's flags (`args`), finds a
//! broker (`bootstrap`), and talks to the cluster through a small client
//! (`client`) built on the `kafka-protocol` crate.
//!
//! Exit status: 0 success, 1 a runtime failure (one line on stderr), 2 a
//! usage error.

mod acls;
mod args;
mod bootstrap;
pub(crate) mod client;
pub(crate) mod client_security;
mod configs;
mod console_consumer;
mod console_producer;
mod consumer_groups;
mod delete_records;
mod group_member;
mod leader_election;
mod metadata_quorum;
mod partitioner;
mod reassign_partitions;
mod scram_users;
mod security_init;
mod server_stop;
mod storage;
mod topics;

use std::ffi::OsString;
use std::process::ExitCode;

pub use client::{Client, ClientError};
pub use partitioner::{murmur2, partition_for_key};
pub use security_init::{SecurityInitArgs, SecurityInitError, security_init};

/// A tool of this module, chosen by subcommand or by the invoked name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Topics,
    ConsoleProducer,
    ConsoleConsumer,
    ConsumerGroups,
    DeleteRecords,
    LeaderElection,
    ReassignPartitions,
    Configs,
    Acls,
    MetadataQuorum,
    Storage,
    ServerStop,
}

/// Why a tool failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Bad flags or flag combinations: exit status 2.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Security(#[from] client_security::ClientSecurityError),
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ToolError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

/// The one action flag a tool was given (`--list`, `--create`, …), or
/// Kafka's usage error when there are none or several.
pub(crate) fn exactly_one<A>(
    flags: impl IntoIterator<Item = (bool, A)>,
    message: &str,
) -> Result<A, ToolError> {
    let mut chosen = flags
        .into_iter()
        .filter_map(|(set, action)| set.then_some(action));
    match (chosen.next(), chosen.next()) {
        (Some(action), None) => Ok(action),
        _ => Err(ToolError::Usage(message.to_string())),
    }
}

/// Runs `tool` with its own arguments (without the program name).
pub fn run(tool: Tool, args: Vec<OsString>) -> ExitCode {
    let name = match tool {
        Tool::Topics => "kafka-topics.sh",
        Tool::ConsoleProducer => "kafka-console-producer.sh",
        Tool::ConsoleConsumer => "kafka-console-consumer.sh",
        Tool::ConsumerGroups => "kafka-consumer-groups.sh",
        Tool::DeleteRecords => "kafka-delete-records.sh",
        Tool::LeaderElection => "kafka-leader-election.sh",
        Tool::ReassignPartitions => "kafka-reassign-partitions.sh",
        Tool::Configs => "kafka-configs.sh",
        Tool::Acls => "kafka-acls.sh",
        Tool::MetadataQuorum => "kafka-metadata-quorum.sh",
        Tool::Storage => "kafka-storage.sh",
        Tool::ServerStop => "server-stop",
    };
    let argv = std::iter::once(OsString::from(name)).chain(args);
    let outcome = match tool {
        Tool::Topics => parse(argv).and_then(|a| block_on(topics::run(a))),
        Tool::ConsoleProducer => parse(argv).and_then(|a| block_on(console_producer::run(a))),
        Tool::ConsoleConsumer => parse(argv).and_then(|a| block_on(console_consumer::run(a))),
        Tool::ConsumerGroups => parse(argv).and_then(|a| block_on(consumer_groups::run(a))),
        Tool::DeleteRecords => parse(argv).and_then(|a| block_on(delete_records::run(a))),
        Tool::LeaderElection => parse(argv).and_then(|a| block_on(leader_election::run(a))),
        Tool::ReassignPartitions => parse(argv).and_then(|a| block_on(reassign_partitions::run(a))),
        Tool::Configs => parse(argv).and_then(|a| block_on(configs::run(a))),
        Tool::Acls => parse(argv).and_then(|a| block_on(acls::run(a))),
        Tool::MetadataQuorum => parse(argv).and_then(|a| block_on(metadata_quorum::run(a))),
        Tool::Storage => parse(argv).and_then(storage::run),
        Tool::ServerStop => server_stop::run(argv.skip(1).collect()),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{name}: {}", first_line(&error.to_string()));
            error.exit_code()
        }
    }
}

/// Parses with clap; help and version print in full and exit 0, errors
/// become one-line usage errors.
fn parse<P: clap::Parser>(argv: impl Iterator<Item = OsString>) -> Result<P, ToolError> {
    match P::try_parse_from(argv) {
        Ok(parsed) => Ok(parsed),
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            std::process::exit(0);
        }
        Err(error) => {
            let rendered = error.render().to_string();
            let line = first_line(&rendered);
            Err(ToolError::Usage(
                line.strip_prefix("error: ").unwrap_or(line).to_string(),
            ))
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn block_on<F>(future: F) -> Result<ExitCode, ToolError>
where
    F: std::future::Future<Output = Result<ExitCode, ToolError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ToolError::Failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(future)
}

/// A random-enough number for generated names, without a new dependency.
fn random_suffix() -> u32 {
    let uuid = uuid::Uuid::new_v4();
    u32::from_le_bytes(uuid.as_bytes()[..4].try_into().unwrap_or([0; 4]))
}
