//! gregor: an Apache Kafka–compatible broker in one static binary.
//!
//! Layout, outermost first:
//! - `broker`: accepts connections, frames requests, dispatches to handlers;
//! - `group`: the consumer-group coordinator and committed offsets;
//! - `cluster`: the cluster coordinator (ZooKeeper's role) — topic metadata
//!   as a state machine changed by logged commands;
//! - `storage`: per-partition segmented logs with recovery and retention;
//! - `fs`: the file system under the durable stores (std's; in tests,
//!   turmoil's simulated disk inside a simulation);
//! - `record_log`: the CRC-framed append-only file under the command log
//!   and the committed-offsets store (one recovery policy for both);
//! - `records`: record batch validation, offset assignment, legacy formats;
//! - `protocol`: Kafka framing and the supported API table;
//! - `security`: principals (and, as they come, TLS, SASL and ACLs);
//! - `config`: flags, environment and files resolved into settings;
//! - `cli`: Kafka's command-line tools (topics, console producer and
//!   consumer, consumer groups) as subcommands;
//! - `task`: spawned tasks owned by their handles (shutdown as a tree);
//! - `node`: what `process.roles` runs in one process (KRaft's shape:
//!   controller, broker, or both).

pub mod accept;
pub mod admin_http;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod fs;
pub mod group;
pub mod node;

/// mimalloc (built with `no_thp`: transparent huge pages doubled idle RSS
/// and cost CPU in page clearing, see docs/benchmarks.md) for the binary and
/// its tests, so hostile inputs are tested against the allocator that serves
/// them in production. Nothing here guards against huge requests: the wire
/// codec (patches/kafka-protocol) sizes no allocation from a count before it
/// has the bytes, so a claimed count reserves at most 1 MiB up front and
/// beyond that only what its frame (bounded by `protocol::frame`) holds.
///
/// The `mimalloc` feature (on by default) installs it; the fuzz targets build
/// without it so that libFuzzer can see every allocation.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[doc(hidden)]
pub mod properties;
pub mod protocol;
pub mod record_log;
pub mod records;
pub mod replication;
pub mod security;
pub mod storage;
pub mod task;
