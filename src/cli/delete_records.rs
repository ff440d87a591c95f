//! `kafka-delete-records.sh`: moves the log start offset of the partitions
//! listed in an offset JSON file (Kafka's format:
//! `{"partitions":[{"topic":"t","partition":0,"offset":3}],"version":1}`,
//! offset -1 meaning the high watermark), sending DeleteRecords to each
//! partition's leader, and prints each partition's new low watermark.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use kafka_protocol::messages::DeleteRecordsRequest;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::protocol::StrBytes;
use serde::Deserialize;

use super::args::DeleteRecordsArgs;
use super::client::{Client, describe_code};
use super::{ToolError, bootstrap};

/// A partition as (topic, partition index).
type PartitionKey = (String, i32);

/// How long the broker may wait for replicas to follow (Kafka's default
/// `request.timeout.ms` of the admin client).
const TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Deserialize)]
struct OffsetFile {
    partitions: Vec<PartitionOffset>,
    version: Option<i32>,
}

#[derive(Debug, Deserialize)]
struct PartitionOffset {
    topic: String,
    partition: i32,
    offset: i64,
}

/// The partitions and offsets of an offset JSON file, refused as Kafka
/// refuses them: an unknown version, or a partition listed twice.
fn parse_offsets(text: &str) -> Result<BTreeMap<PartitionKey, i64>, ToolError> {
    let file: OffsetFile = serde_json::from_str(text)
        .map_err(|e| ToolError::Usage(format!("the offset JSON file is not valid: {e}")))?;
    if let Some(version) = file.version.filter(|v| *v != 1) {
        return Err(ToolError::Usage(format!(
            "Not supported version field value {version}"
        )));
    }
    let mut offsets = BTreeMap::new();
    let mut duplicates = BTreeSet::new();
    for p in file.partitions {
        let key = (p.topic, p.partition);
        if offsets.insert(key.clone(), p.offset).is_some() {
            duplicates.insert(format!("{}-{}", key.0, key.1));
        }
    }
    if !duplicates.is_empty() {
        let listed: Vec<String> = duplicates.into_iter().collect();
        return Err(ToolError::Failed(format!(
            "Offset json file contains duplicate topic partitions: {}",
            listed.join(",")
        )));
    }
    Ok(offsets)
}

pub async fn run(args: DeleteRecordsArgs) -> Result<ExitCode, ToolError> {
    let path = args.offset_json_file.as_ref().ok_or_else(|| {
        ToolError::Usage("Missing required argument \"[offset-json-file]\"".to_string())
    })?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| ToolError::Failed(format!("cannot read {}: {e}", path.display())))?;
    let offsets = parse_offsets(&text)?;
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client = Client::connect(
        &servers,
        "kafka-delete-records",
        &args.command_config.security()?,
    )
    .await?;
    println!("Executing records delete operation");
    let outcomes = delete(&mut client, &offsets).await?;
    println!("Records delete operation completed:");
    for ((topic, partition), outcome) in outcomes {
        match outcome {
            Ok(low_watermark) => {
                println!("partition: {topic}-{partition}\tlow_watermark: {low_watermark}")
            }
            Err(code) => println!(
                "partition: {topic}-{partition}\terror: {}",
                describe_code(code)
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Each partition's low watermark, or the error code it got.
type Outcomes = BTreeMap<PartitionKey, Result<i64, i16>>;

/// Sends one DeleteRecords per leader.
async fn delete(
    client: &mut Client,
    offsets: &BTreeMap<PartitionKey, i64>,
) -> Result<Outcomes, ToolError> {
    let topics: Vec<String> = offsets
        .keys()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (_, described) = client.metadata(Some(&topics)).await?;
    let mut outcomes = Outcomes::new();
    let mut by_leader: BTreeMap<i32, Vec<(&PartitionKey, i64)>> = BTreeMap::new();
    for (key, &offset) in offsets {
        let leader = described
            .iter()
            .find(|t| t.name == key.0)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == key.1))
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0);
        match leader {
            Some(leader) => by_leader.entry(leader).or_default().push((key, offset)),
            None => {
                let code = kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code();
                outcomes.insert(key.clone(), Err(code));
            }
        }
    }
    for (leader, partitions) in by_leader {
        let request = request_for(&partitions);
        let connection = client.broker(leader).await?;
        let response = match connection.send(|_| request).await {
            Ok(response) => response,
            Err(error) => {
                client.drop_broker(leader);
                return Err(ToolError::from(error));
            }
        };
        for topic in response.topics {
            for p in topic.partitions {
                let outcome = if p.error_code == 0 {
                    Ok(p.low_watermark)
                } else {
                    Err(p.error_code)
                };
                outcomes.insert((topic.name.0.to_string(), p.partition_index), outcome);
            }
        }
    }
    Ok(outcomes)
}

fn request_for(partitions: &[(&PartitionKey, i64)]) -> DeleteRecordsRequest {
    let mut topics: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in partitions {
        topics.entry(topic).or_default().push(
            DeleteRecordsPartition::default()
                .with_partition_index(*partition)
                .with_offset(*offset),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(TIMEOUT_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_file_is_read_as_kafka_writes_it() {
        let offsets = parse_offsets(
            r#"{"partitions":[{"topic":"t","partition":0,"offset":3},
                {"topic":"t","partition":1,"offset":-1}],"version":1}"#,
        )
        .unwrap();
        assert_eq!(offsets[&("t".to_string(), 0)], 3);
        assert_eq!(offsets[&("t".to_string(), 1)], -1);
    }

    #[test]
    fn a_partition_listed_twice_or_an_unknown_version_is_refused() {
        let twice = r#"{"partitions":[{"topic":"t","partition":0,"offset":3},
            {"topic":"t","partition":0,"offset":4}],"version":1}"#;
        assert!(matches!(parse_offsets(twice), Err(ToolError::Failed(m)) if m.contains("t-0")));
        let version = r#"{"partitions":[],"version":2}"#;
        assert!(matches!(parse_offsets(version), Err(ToolError::Usage(_))));
    }
}
