//! gregor: an Apache Kafka–compatible broker in one static binary.
//!
//! Layout, outermost first:
//! - `broker`: accepts connections, frames requests, dispatches to handlers;
//! - `group`: the consumer-group coordinator and committed offsets;
//! - `cluster`: the cluster coordinator (ZooKeeper's role) — topic metadata
//!   as a state machine changed by logged commands;
//! - `storage`: per-partition segmented logs with recovery and retention;
//! - `record_log`: the CRC-framed append-only file under the command log
//!   and the committed-offsets store (one recovery policy for both);
//! - `records`: record batch validation, offset assignment, legacy formats;
//! - `protocol`: Kafka framing and the supported API table;
//! - `config`: flags, environment and files resolved into settings;
//! - `cli`: Kafka's command-line tools (topics, console producer and
//!   consumer, consumer groups) as subcommands.

pub mod admin_http;
mod allocator;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod group;

/// One allocator for the binary and its tests, so hostile inputs are
/// tested against the allocator that serves them in production.
#[global_allocator]
static ALLOCATOR: allocator::GuardedAllocator = allocator::GuardedAllocator;

pub mod protocol;
pub mod record_log;
pub mod records;
pub mod storage;
