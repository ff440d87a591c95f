//! The tools' command lines, spelled as Kafka 2.2's scripts spell them.
//! Clap parses the raw flags; each tool then checks the combinations it
//! needs (one action, required companions) and reports usage errors, which
//! exit with status 2.

use std::collections::BTreeMap;

use clap::{Args, Parser};

use super::ToolError;
use super::client_security::ClientSecurity;

/// Where to find the cluster. `--zookeeper` names gregor's coordinator,
/// which is asked for a broker; with neither flag, `$kafka_host_url`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// The broker(s) to connect to: HOST:PORT[,HOST:PORT...].
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// The coordinator (ZooKeeper's role) to ask for a broker: HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub zookeeper: Option<String>,
    /// A properties file with the zookeeper.ssl.* keys (client certificate
    /// and CA) for reaching the coordinator's secureClientPort.
    #[arg(long = "zk-tls-config-file", value_name = "FILE")]
    pub zk_tls_config_file: Option<std::path::PathBuf>,
}

/// Kafka's `--command-config`: a client properties file whose
/// `security.protocol`, `ssl.*` and `sasl.*` keys say how to connect.
#[derive(Args, Debug, Clone, Default)]
pub struct CommandConfigArgs {
    /// A client properties file (security.protocol, ssl.*, sasl.*).
    #[arg(long = "command-config", value_name = "PATH")]
    pub command_config: Option<std::path::PathBuf>,
}

impl CommandConfigArgs {
    /// How to connect: PLAINTEXT without the flag.
    pub fn security(&self) -> Result<ClientSecurity, ToolError> {
        match &self.command_config {
            Some(path) => Ok(ClientSecurity::from_properties(&properties_file(path)?)?),
            None => Ok(ClientSecurity::plaintext()),
        }
    }
}

/// kafka-topics.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-topics.sh",
    about = "Create, delete, describe, or change a topic."
)]
pub struct TopicsArgs {
    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all available topics.
    #[arg(long)]
    pub list: bool,
    /// List details for the given topics.
    #[arg(long)]
    pub describe: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// Alter the number of partitions or the configuration of a topic.
    #[arg(long)]
    pub alter: bool,
    /// The topic to create, alter, describe or delete.
    #[arg(long)]
    pub topic: Option<String>,
    /// The number of partitions for the topic being created or altered.
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// The replication factor for each partition in the topic being created.
    #[arg(long = "replication-factor", value_name = "N")]
    pub replication_factor: Option<i16>,
    /// The replicas of each partition, partitions separated by commas and
    /// replicas by colons (`0:1,1:0`): with --create instead of --partitions
    /// and --replication-factor, or with --alter --partitions listing every
    /// partition (the existing ones are skipped, as Kafka's tool does).
    #[arg(long = "replica-assignment", value_name = "B:B,B:B")]
    pub replica_assignment: Option<String>,
    /// A topic configuration override: NAME=VALUE (repeatable).
    #[arg(long = "config", value_name = "NAME=VALUE")]
    pub config: Vec<String>,
    /// A topic configuration override to remove (with --alter).
    #[arg(long = "delete-config", value_name = "NAME")]
    pub delete_config: Vec<String>,
    /// With --create: do nothing if the topic already exists.
    #[arg(long = "if-not-exists")]
    pub if_not_exists: bool,
    /// With --alter or --delete: do nothing if the topic does not exist.
    #[arg(long = "if-exists")]
    pub if_exists: bool,
    /// With --list or --describe: leave out internal topics.
    #[arg(long = "exclude-internal")]
    pub exclude_internal: bool,
    /// With --describe: only partitions whose ISR is smaller than their replicas.
    #[arg(long = "under-replicated-partitions")]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions without a live leader.
    #[arg(long = "unavailable-partitions")]
    pub unavailable_partitions: bool,
    /// With --describe: only partitions whose ISR is smaller than min.insync.replicas.
    #[arg(long = "under-min-isr-partitions")]
    pub under_min_isr_partitions: bool,
    /// With --describe: only partitions whose ISR is exactly min.insync.replicas.
    #[arg(long = "at-min-isr-partitions")]
    pub at_min_isr_partitions: bool,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub command_config: CommandConfigArgs,
}

/// kafka-console-producer.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-console-producer.sh",
    about = "Read lines from standard input and publish them to a topic."
)]
pub struct ProducerArgs {
    /// The broker list: HOST:PORT[,HOST:PORT...].
    #[arg(long = "broker-list", value_name = "HOST:PORT")]
    pub broker_list: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// The topic to produce messages to.
    #[arg(long)]
    pub topic: Option<String>,
    /// A reader property: parse.key, key.separator, ignore.error.
    #[arg(long = "property", value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    /// A producer property: acks, linger.ms, batch.size, compression.type, ...
    #[arg(long = "producer-property", value_name = "NAME=VALUE")]
    pub producer_property: Vec<String>,
    /// A file of producer properties.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<std::path::PathBuf>,
    /// Compression: none, gzip (when given without a value), snappy, lz4 or zstd.
    #[arg(long = "compression-codec", value_name = "CODEC", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// Acks required from the broker: 0, 1 or -1/all.
    #[arg(long = "request-required-acks", value_name = "ACKS")]
    pub request_required_acks: Option<String>,
    /// Linger time in milliseconds when not at end of input (linger.ms).
    #[arg(long = "timeout", value_name = "MS")]
    pub timeout: Option<u64>,
    /// Records per request when sending asynchronously.
    #[arg(long = "batch-size", value_name = "N")]
    pub batch_size: Option<usize>,
    /// Send each line in its own request, waiting for its acknowledgement.
    #[arg(long)]
    pub sync: bool,
    /// How long to wait for the broker to acknowledge a request.
    #[arg(long = "request-timeout-ms", value_name = "MS")]
    pub request_timeout_ms: Option<i32>,
}

/// kafka-console-consumer.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-console-consumer.sh",
    about = "Read records from a topic and print them to standard output."
)]
pub struct ConsumerArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The topic to consume.
    #[arg(long)]
    pub topic: Option<String>,
    /// The consumer group to join (offsets are committed to it).
    #[arg(long)]
    pub group: Option<String>,
    /// Start from the earliest offset when the group has no committed offset.
    #[arg(long = "from-beginning")]
    pub from_beginning: bool,
    /// Consume only this partition.
    #[arg(long, value_name = "P")]
    pub partition: Option<i32>,
    /// The offset to start at: a number, earliest or latest (needs --partition).
    #[arg(long, value_name = "OFFSET")]
    pub offset: Option<String>,
    /// Exit after this many messages.
    #[arg(long = "max-messages", value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit when no message arrives for this long.
    #[arg(long = "timeout-ms", value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// A formatter property: print.key, print.timestamp, print.partition,
    /// print.offset, key.separator, line.separator.
    #[arg(long = "property", value_name = "NAME=VALUE")]
    pub property: Vec<String>,
    /// A consumer property: isolation.level, auto.offset.reset, client.id, ...
    #[arg(long = "consumer-property", value_name = "NAME=VALUE")]
    pub consumer_property: Vec<String>,
    /// A file of consumer properties.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<std::path::PathBuf>,
    /// read_committed or read_uncommitted.
    #[arg(long = "isolation-level", value_name = "LEVEL")]
    pub isolation_level: Option<String>,
    /// Skip messages that cannot be printed instead of stopping.
    #[arg(long = "skip-message-on-error")]
    pub skip_message_on_error: bool,
}

/// kafka-configs.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-configs.sh",
    about = "Describe the configs of topics and brokers; alter those of topics."
)]
pub struct ConfigsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub command_config: CommandConfigArgs,
    /// List the entity's configs: the dynamic ones, or all with --all.
    #[arg(long)]
    pub describe: bool,
    /// Change the entity's configs.
    #[arg(long)]
    pub alter: bool,
    /// With --describe: every config, not only the dynamic ones.
    #[arg(long)]
    pub all: bool,
    /// topics, brokers or users.
    #[arg(long = "entity-type", value_name = "TYPE")]
    pub entity_type: Option<String>,
    /// The topic name or broker id.
    #[arg(long = "entity-name", value_name = "NAME")]
    pub entity_name: Option<String>,
    /// Shorthand for --entity-type topics --entity-name TOPIC.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Shorthand for --entity-type brokers --entity-name ID.
    #[arg(long, value_name = "ID")]
    pub broker: Option<String>,
    /// Configs to set: k1=v1,k2=[v1,v2] (repeatable).
    #[arg(long = "add-config", value_name = "K=V,...")]
    pub add_config: Vec<String>,
    /// Configs to remove: k1,k2 (repeatable).
    #[arg(long = "delete-config", value_name = "K,...")]
    pub delete_config: Vec<String>,
}

/// kafka-consumer-groups.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-consumer-groups.sh",
    about = "List, describe, reset the offsets of, or delete consumer groups."
)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub command_config: CommandConfigArgs,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe a consumer group: its partitions, offsets and lag.
    #[arg(long)]
    pub describe: bool,
    /// Delete a consumer group.
    #[arg(long)]
    pub delete: bool,
    /// Reset a group's committed offsets (a dry run unless --execute).
    #[arg(long = "reset-offsets")]
    pub reset_offsets: bool,
    /// The consumer group.
    #[arg(long)]
    pub group: Vec<String>,
    /// The topic whose offsets to reset: T or T:P[,P...].
    #[arg(long)]
    pub topic: Vec<String>,
    /// Reset the offsets of every topic the group has committed.
    #[arg(long = "all-topics")]
    pub all_topics: bool,
    #[arg(long = "to-earliest")]
    pub to_earliest: bool,
    #[arg(long = "to-latest")]
    pub to_latest: bool,
    #[arg(long = "to-offset", value_name = "N")]
    pub to_offset: Option<i64>,
    /// Shift the current offsets by N (may be negative).
    #[arg(long = "shift-by", value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Apply the reset (without it, only the plan is printed).
    #[arg(long)]
    pub execute: bool,
    /// Print the plan only (the default).
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// With --describe: show members instead of offsets.
    #[arg(long)]
    pub members: bool,
    /// With --describe: show the group's state.
    #[arg(long)]
    pub state: bool,
}

/// kafka-delete-records.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-delete-records.sh",
    about = "Delete the records of partitions up to given offsets."
)]
pub struct DeleteRecordsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub command_config: CommandConfigArgs,
    /// JSON file naming each partition and the offset to delete records up to:
    /// {"partitions":[{"topic":"t","partition":0,"offset":3}],"version":1}
    #[arg(long = "offset-json-file", value_name = "PATH")]
    pub offset_json_file: Option<std::path::PathBuf>,
}

/// kafka-leader-election.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-leader-election.sh",
    about = "Elect the preferred or an unclean leader for partitions."
)]
pub struct LeaderElectionArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A client properties file (Kafka's --admin.config).
    #[arg(long = "admin.config", value_name = "PATH")]
    pub admin_config: Option<std::path::PathBuf>,
    /// PREFERRED or UNCLEAN.
    #[arg(long = "election-type", value_name = "TYPE")]
    pub election_type: Option<String>,
    /// The topic of --partition.
    #[arg(long)]
    pub topic: Option<String>,
    /// The partition to elect a leader for; needs --topic.
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    /// Elect for every partition of every topic.
    #[arg(long = "all-topic-partitions")]
    pub all_topic_partitions: bool,
    /// JSON file naming the partitions:
    /// {"partitions":[{"topic":"t","partition":0}]}
    #[arg(long = "path-to-json-file", value_name = "PATH")]
    pub path_to_json_file: Option<std::path::PathBuf>,
}

/// kafka-reassign-partitions.sh
#[derive(Parser, Debug)]
#[command(
    name = "kafka-reassign-partitions.sh",
    about = "This tool helps to move topic partitions between replicas."
)]
pub struct ReassignPartitionsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub command_config: CommandConfigArgs,
    /// Propose a reassignment of the topics in --topics-to-move-json-file
    /// onto the brokers of --broker-list.
    #[arg(long)]
    pub generate: bool,
    /// Start the reassignment of --reassignment-json-file.
    #[arg(long)]
    pub execute: bool,
    /// Report on the reassignment of --reassignment-json-file.
    #[arg(long)]
    pub verify: bool,
    /// Cancel the moves of --reassignment-json-file still in progress.
    #[arg(long)]
    pub cancel: bool,
    /// List the reassignments in progress.
    #[arg(long)]
    pub list: bool,
    /// {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2]}]}
    #[arg(long = "reassignment-json-file", value_name = "PATH")]
    pub reassignment_json_file: Option<std::path::PathBuf>,
    /// {"version":1,"topics":[{"topic":"t"}]}
    #[arg(long = "topics-to-move-json-file", value_name = "PATH")]
    pub topics_to_move_json_file: Option<std::path::PathBuf>,
    /// The brokers to move the topics onto, as 1,2,3.
    #[arg(long = "broker-list", value_name = "IDS")]
    pub broker_list: Option<String>,
    /// Place replicas without regard to racks.
    #[arg(long = "disable-rack-aware")]
    pub disable_rack_aware: bool,
    /// Execute even though other reassignments are in progress.
    #[arg(long)]
    pub additional: bool,
    /// Leave throttles in place on --verify and --cancel (gregor sets none).
    #[arg(long = "preserve-throttles")]
    pub preserve_throttles: bool,
}

/// Splits NAME=VALUE pairs from repeated flags; `flag` names the flag in
/// errors.
pub fn key_values(raw: &[String], flag: &str) -> Result<BTreeMap<String, String>, ToolError> {
    let mut out = BTreeMap::new();
    for item in raw {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| ToolError::Usage(format!("{flag} expects NAME=VALUE, got '{item}'")))?;
        out.insert(key.trim().to_string(), value.to_string());
    }
    Ok(out)
}

/// Reads a Java-style properties file: `key=value` or `key: value` lines,
/// `#` and `!` comments.
pub fn properties_file(path: &std::path::Path) -> Result<BTreeMap<String, String>, ToolError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ToolError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).unwrap_or(line.len());
        let (key, value) = line.split_at(split);
        let value = value.get(1..).unwrap_or("").trim();
        out.insert(key.trim().to_string(), value.to_string());
    }
    Ok(out)
}

/// A `true`/`false` property value.
pub fn flag_value(props: &BTreeMap<String, String>, key: &str) -> Result<bool, ToolError> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ToolError::Usage(format!(
            "{key} must be true or false, got '{v}'"
        ))),
    }
}

/// A numeric property value, naming the key when it does not parse.
pub fn number_value<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>, ToolError> {
    props
        .get(key)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| ToolError::Usage(format!("{key} must be a number, got '{v}'")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<P: Parser>(args: &[&str]) -> Result<P, clap::Error> {
        P::try_parse_from(std::iter::once("tool").chain(args.iter().copied()))
    }

    #[test]
    fn tutorial_create_command_parses() {
        let args: TopicsArgs = parse(&[
            "--create",
            "--topic",
            "test",
            "--partitions",
            "1",
            "--replication-factor",
            "1",
            "--bootstrap-server",
            "localhost:9092",
        ])
        .unwrap();
        assert!(args.create);
        assert_eq!(args.topic.as_deref(), Some("test"));
        assert_eq!(args.partitions, Some(1));
        assert_eq!(args.replication_factor, Some(1));
        assert_eq!(
            args.server.bootstrap_server.as_deref(),
            Some("localhost:9092")
        );
    }

    #[test]
    fn producer_accepts_broker_list_and_repeated_properties() {
        let args: ProducerArgs = parse(&[
            "--broker-list",
            "h:1",
            "--topic",
            "t",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--compression-codec",
        ])
        .unwrap();
        assert_eq!(args.broker_list.as_deref(), Some("h:1"));
        let props = key_values(&args.property, "--property").unwrap();
        assert_eq!(props["parse.key"], "true");
        assert_eq!(props["key.separator"], ":");
        assert_eq!(args.compression_codec.as_deref(), Some("gzip"));
    }

    #[test]
    fn consumer_flags_parse() {
        let args: ConsumerArgs = parse(&[
            "--bootstrap-server",
            "h:1",
            "--topic",
            "t",
            "--from-beginning",
            "--max-messages",
            "5",
            "--group",
            "g",
        ])
        .unwrap();
        assert!(args.from_beginning);
        assert_eq!(args.max_messages, Some(5));
        assert_eq!(args.group.as_deref(), Some("g"));
    }

    #[test]
    fn unknown_flag_is_a_usage_error() {
        let error = parse::<TopicsArgs>(&["--craete"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn key_value_without_equals_is_refused() {
        let error = key_values(&["acks".to_string()], "--producer-property").unwrap_err();
        assert!(matches!(error, ToolError::Usage(_)));
    }

    #[test]
    fn properties_file_reads_both_separators_and_skips_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.properties");
        std::fs::write(&path, "# c\nacks=all\nlinger.ms: 5\n\n!x\n").unwrap();
        let props = properties_file(&path).unwrap();
        assert_eq!(props["acks"], "all");
        assert_eq!(props["linger.ms"], "5");
        assert_eq!(props.len(), 2);
    }
}
