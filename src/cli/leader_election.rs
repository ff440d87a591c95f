//! `kafka-leader-election.sh` (KIP-460): asks the cluster for a preferred
//! or unclean leader election on the partitions named by `--topic` and
//! `--partition`, by a JSON file
//! (`{"partitions":[{"topic":"t","partition":0}]}`) or on all of them, and
//! prints Kafka's lines: the partitions elected, those whose valid leader
//! was already elected, and one line per failure (then exit status 1).

use std::collections::BTreeSet;
use std::process::ExitCode;

use kafka_protocol::messages::ElectLeadersRequest;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::protocol::StrBytes;
use serde::Deserialize;

use super::args::{CommandConfigArgs, LeaderElectionArgs};
use super::client::{Client, check, describe_code};
use super::{ToolError, bootstrap, exactly_one};
use crate::cluster::ElectionType;

/// How long the controller may take (Kafka's admin `request.timeout.ms`).
const TIMEOUT_MS: i32 = 30_000;

/// Which partitions to elect for.
enum Target {
    All,
    Named(BTreeSet<(String, i32)>),
}

#[derive(Debug, Deserialize)]
struct ElectionFile {
    partitions: Vec<FilePartition>,
}

#[derive(Debug, Deserialize)]
struct FilePartition {
    topic: String,
    partition: i32,
}

/// The partitions of an election JSON file; one listed twice is refused,
/// as Kafka refuses it.
fn parse_partitions(text: &str) -> Result<BTreeSet<(String, i32)>, ToolError> {
    let file: ElectionFile = serde_json::from_str(text)
        .map_err(|e| ToolError::Usage(format!("the partitions JSON file is not valid: {e}")))?;
    let mut partitions = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for p in file.partitions {
        let name = format!("{}-{}", p.topic, p.partition);
        if !partitions.insert((p.topic, p.partition)) {
            duplicates.insert(name);
        }
    }
    if !duplicates.is_empty() {
        let listed: Vec<String> = duplicates.into_iter().collect();
        return Err(ToolError::Failed(format!(
            "Replica election data contains duplicate partitions: {}",
            listed.join(",")
        )));
    }
    Ok(partitions)
}

fn election_type(raw: Option<&str>) -> Result<ElectionType, ToolError> {
    match raw.map(str::to_ascii_uppercase).as_deref() {
        Some("PREFERRED") => Ok(ElectionType::Preferred),
        Some("UNCLEAN") => Ok(ElectionType::Unclean),
        Some(other) => Err(ToolError::Usage(format!(
            "Unknown election type: {other}; expected PREFERRED or UNCLEAN"
        ))),
        None => Err(ToolError::Usage(
            "Missing required option(s) [election-type]".to_string(),
        )),
    }
}

fn target(args: &LeaderElectionArgs) -> Result<Target, ToolError> {
    let chosen = exactly_one(
        [
            (args.all_topic_partitions, 0),
            (args.topic.is_some() || args.partition.is_some(), 1),
            (args.path_to_json_file.is_some(), 2),
        ],
        "One and only one of the following options is required: all-topic-partitions, topic, path-to-json-file",
    )?;
    match chosen {
        0 => Ok(Target::All),
        1 => match (&args.topic, args.partition) {
            (Some(topic), Some(partition)) => {
                Ok(Target::Named(BTreeSet::from([(topic.clone(), partition)])))
            }
            (Some(_), None) => Err(ToolError::Usage(
                "Missing required option(s) [partition]".to_string(),
            )),
            _ => Err(ToolError::Usage(
                "Missing required option(s) [topic]".to_string(),
            )),
        },
        _ => {
            let path = args.path_to_json_file.as_ref().ok_or_else(|| {
                ToolError::Usage("Missing required option(s) [path-to-json-file]".to_string())
            })?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| ToolError::Failed(format!("cannot read {}: {e}", path.display())))?;
            Ok(Target::Named(parse_partitions(&text)?))
        }
    }
}

pub async fn run(args: LeaderElectionArgs) -> Result<ExitCode, ToolError> {
    let kind = election_type(args.election_type.as_deref())?;
    let target = target(&args)?;
    let security = CommandConfigArgs {
        command_config: args.admin_config.clone(),
    }
    .security()?;
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client = Client::connect(&servers, "kafka-leader-election", &security).await?;
    let topic_partitions = match target {
        Target::All => None,
        Target::Named(partitions) => Some(request_topics(&partitions)),
    };
    let response = client
        .any()
        .send(|_| {
            ElectLeadersRequest::default()
                .with_election_type(kind.to_wire())
                .with_topic_partitions(topic_partitions)
                .with_timeout_ms(TIMEOUT_MS)
        })
        .await?;
    check(response.error_code, || "leader election".to_string())?;
    let label = match kind {
        ElectionType::Preferred => "PREFERRED",
        ElectionType::Unclean => "UNCLEAN",
    };
    let (mut elected, mut not_needed, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for topic in response.replica_election_results {
        for p in topic.partition_result {
            let name = format!("{}-{}", topic.topic.0, p.partition_id);
            match p.error_code {
                0 => elected.push(name),
                84 => not_needed.push(name),
                code => failed.push((name, code, p.error_message)),
            }
        }
    }
    if !elected.is_empty() {
        println!(
            "Successfully completed leader election ({label}) for partitions {}",
            elected.join(", ")
        );
    }
    if !not_needed.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            not_needed.join(", ")
        );
    }
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (name, code, message) in &failed {
        let detail = message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        println!(
            "Error completing leader election ({label}) for partition: {name}: {}{detail}",
            describe_code(*code)
        );
    }
    Err(ToolError::Failed(format!(
        "{} replica(s) could not be elected",
        failed.len()
    )))
}

fn request_topics(partitions: &BTreeSet<(String, i32)>) -> Vec<TopicPartitions> {
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == topic => last.partitions.push(*partition),
            _ => topics.push(
                TopicPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_file_is_read_as_kafka_writes_it_and_duplicates_are_refused() {
        let partitions = parse_partitions(
            r#"{"partitions":[{"topic":"t","partition":1},{"topic":"t","partition":0}]}"#,
        )
        .unwrap();
        assert_eq!(
            partitions.into_iter().collect::<Vec<_>>(),
            vec![("t".to_string(), 0), ("t".to_string(), 1)]
        );
        let twice = r#"{"partitions":[{"topic":"t","partition":0},{"topic":"t","partition":0}]}"#;
        assert!(matches!(parse_partitions(twice), Err(ToolError::Failed(m)) if m.contains("t-0")));
    }

    #[test]
    fn partitions_of_one_topic_go_in_one_request_entry() {
        let partitions = BTreeSet::from([
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("b".to_string(), 1),
        ]);
        let topics = request_topics(&partitions);
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0].partitions, vec![0, 2]);
        assert_eq!(topics[1].partitions, vec![1]);
    }

    #[test]
    fn election_types_are_kafkas_names() {
        assert_eq!(
            election_type(Some("preferred")).unwrap(),
            ElectionType::Preferred
        );
        assert_eq!(
            election_type(Some("UNCLEAN")).unwrap(),
            ElectionType::Unclean
        );
        assert!(matches!(election_type(None), Err(ToolError::Usage(_))));
    }
}
