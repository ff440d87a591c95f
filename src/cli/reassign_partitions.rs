//! `kafka-reassign-partitions.sh` (KIP-455): proposes (`--generate`),
//! starts (`--execute`), checks (`--verify`), cancels (`--cancel`) and
//! lists (`--list`) partition moves, with Kafka's JSON files and output
//! lines. Moves go through AlterPartitionReassignments, progress comes from
//! ListPartitionReassignments and Metadata.
//!
//! gregor has no replication throttles, so `--throttle` is not accepted and
//! the "Clearing ... throttles" lines Kafka prints after a finished
//! `--verify` or a `--cancel` say what is true: none are left.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::args::ReassignPartitionsArgs;
use super::client::{Client, check, describe_code};
use super::{ToolError, bootstrap, exactly_one};
use crate::cluster::policy::placement::{Candidate, PlacementStart, assign_replicas};

/// How long the controller may take (the tool's `--timeout` default).
const TIMEOUT_MS: i32 = 10_000;
/// Kafka's value for "any log directory", the only one gregor has.
const ANY_LOG_DIR: &str = "any";

/// A topic partition as Kafka prints it: `topic-partition`, ordered by
/// topic, then partition.
pub(super) type TopicPartition = (String, i32);

/// A partition's replicas as a reassignment file names them.
pub(super) type Assignment = BTreeMap<TopicPartition, Vec<i32>>;

#[derive(Debug, Deserialize)]
struct ReassignmentFile {
    partitions: Vec<FilePartition>,
}

#[derive(Debug, Deserialize, Serialize)]
struct FilePartition {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_dirs: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct ReassignmentJson<'a> {
    version: i32,
    partitions: &'a [FilePartition],
}

#[derive(Debug, Deserialize)]
struct TopicsToMove {
    topics: Vec<TopicToMove>,
}

#[derive(Debug, Deserialize)]
struct TopicToMove {
    topic: String,
}

/// A move in progress, as ListPartitionReassignments reports it.
pub(super) struct Ongoing {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

enum Action {
    Generate,
    Execute,
    Verify,
    Cancel,
    List,
}

pub async fn run(args: ReassignPartitionsArgs) -> Result<ExitCode, ToolError> {
    let action = exactly_one(
        [
            (args.generate, Action::Generate),
            (args.execute, Action::Execute),
            (args.verify, Action::Verify),
            (args.cancel, Action::Cancel),
            (args.list, Action::List),
        ],
        "Command must include exactly one action: --generate, --execute, --verify, --cancel, --list",
    )?;
    if args.server.bootstrap_server.is_none() {
        return Err(ToolError::Usage(
            "Please specify --bootstrap-server".to_owned(),
        ));
    }
    // Files are read before connecting, so a bad file costs no round trip.
    let plan = match action {
        Action::Execute | Action::Verify | Action::Cancel => Some(reassignment_file(&args)?),
        _ => None,
    };
    let security = args.command_config.security()?;
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client = Client::connect(&servers, "reassign-partitions-tool", &security).await?;
    let plan = plan.unwrap_or_default();
    match action {
        Action::List => list(&mut client).await?,
        Action::Generate => generate(&mut client, &args).await?,
        Action::Execute => execute(&mut client, &plan, args.additional).await?,
        Action::Verify => verify(&mut client, &plan, args.preserve_throttles).await?,
        Action::Cancel => cancel(&mut client, &plan, args.preserve_throttles).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: Option<&std::path::PathBuf>, flag: &str) -> Result<String, ToolError> {
    let path =
        path.ok_or_else(|| ToolError::Usage(format!("Missing required argument \"[{flag}]\"")))?;
    std::fs::read_to_string(path)
        .map_err(|e| ToolError::Failed(format!("cannot read {}: {e}", path.display())))
}

fn reassignment_file(args: &ReassignPartitionsArgs) -> Result<Assignment, ToolError> {
    let text = read(
        args.reassignment_json_file.as_ref(),
        "reassignment-json-file",
    )?;
    parse_reassignment(&text)
}

/// The partitions of a reassignment file, checked as Kafka checks them.
fn parse_reassignment(text: &str) -> Result<Assignment, ToolError> {
    let file: ReassignmentFile = serde_json::from_str(text)
        .map_err(|e| ToolError::Failed(format!("the reassignment JSON file is not valid: {e}")))?;
    if file.partitions.is_empty() {
        return Err(ToolError::Failed(
            "Partition reassignment list cannot be empty".to_owned(),
        ));
    }
    let mut plan = Assignment::new();
    let mut duplicates = BTreeSet::new();
    for entry in file.partitions {
        let name = format!("{}-{}", entry.topic, entry.partition);
        if entry.replicas.is_empty() {
            return Err(ToolError::Failed(format!(
                "Partition replica list cannot be empty: {name}"
            )));
        }
        let distinct: BTreeSet<i32> = entry.replicas.iter().copied().collect();
        if distinct.len() != entry.replicas.len() {
            return Err(ToolError::Failed(format!(
                "Partition replica lists may not contain duplicate entries: {name} contains duplicates"
            )));
        }
        if let Some(dirs) = &entry.log_dirs {
            if dirs.len() != entry.replicas.len() {
                return Err(ToolError::Failed(format!(
                    "Size of replicas list {:?} is different from size of log dirs list {dirs:?} for partition {name}",
                    entry.replicas
                )));
            }
            if dirs.iter().any(|dir| dir != ANY_LOG_DIR) {
                return Err(ToolError::Failed(format!(
                    "gregor has one log directory per broker; log_dirs of {name} must be \"any\""
                )));
            }
        }
        if plan
            .insert((entry.topic, entry.partition), entry.replicas)
            .is_some()
        {
            duplicates.insert(name);
        }
    }
    if !duplicates.is_empty() {
        let listed: Vec<String> = duplicates.into_iter().collect();
        return Err(ToolError::Failed(format!(
            "Reassignment data contains duplicate partitions: {}",
            listed.join(",")
        )));
    }
    Ok(plan)
}

/// Kafka's reassignment JSON, every log directory "any".
fn assignment_json(assignment: &Assignment) -> String {
    let partitions: Vec<FilePartition> = assignment
        .iter()
        .map(|((topic, partition), replicas)| FilePartition {
            topic: topic.clone(),
            partition: *partition,
            replicas: replicas.clone(),
            log_dirs: Some(vec![ANY_LOG_DIR.to_owned(); replicas.len()]),
        })
        .collect();
    serde_json::to_string(&ReassignmentJson {
        version: 1,
        partitions: &partitions,
    })
    .unwrap_or_default()
}

fn names(partitions: impl IntoIterator<Item = TopicPartition>) -> String {
    partitions
        .into_iter()
        .map(|(topic, partition)| format!("{topic}-{partition}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// The moves in progress, all of them or those of `only`.
pub(super) async fn ongoing(
    client: &mut Client,
    only: Option<&Assignment>,
) -> Result<BTreeMap<TopicPartition, Ongoing>, ToolError> {
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    let topics = only.map(|plan| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in plan.keys() {
            by_topic.entry(topic).or_default().push(*partition);
        }
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                ListPartitionReassignmentsTopics::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions)
            })
            .collect()
    });
    let response = client
        .any()
        .send(|_| {
            ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(TIMEOUT_MS)
                .with_topics(topics)
        })
        .await?;
    check(response.error_code, || {
        "listing partition reassignments".to_owned()
    })?;
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0).collect::<Vec<_>>();
    let mut found = BTreeMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            found.insert(
                (topic.name.0.to_string(), p.partition_index),
                Ongoing {
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                },
            );
        }
    }
    Ok(found)
}

fn joined(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn list(client: &mut Client) -> Result<(), ToolError> {
    let moves = ongoing(client, None).await?;
    println!("{}", list_text(&moves));
    Ok(())
}

fn list_text(moves: &BTreeMap<TopicPartition, Ongoing>) -> String {
    if moves.is_empty() {
        return "No partition reassignments found.".to_owned();
    }
    let mut lines = vec!["Current partition reassignments:".to_owned()];
    for ((topic, partition), reassignment) in moves {
        let mut line = format!(
            "{topic}-{partition}: replicas: {}.",
            joined(&reassignment.replicas)
        );
        if !reassignment.adding.is_empty() {
            line.push_str(&format!(" adding: {}.", joined(&reassignment.adding)));
        }
        if !reassignment.removing.is_empty() {
            line.push_str(&format!(" removing: {}.", joined(&reassignment.removing)));
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// The replicas each partition of `topics` has now, and the cluster's
/// Metadata answer (brokers and racks).
async fn current_assignment(
    client: &mut Client,
    topics: &BTreeSet<String>,
) -> Result<(Assignment, MetadataResponse), ToolError> {
    let asked: Vec<String> = topics.iter().cloned().collect();
    let (response, infos) = client.metadata(Some(&asked)).await?;
    let mut current = Assignment::new();
    for info in infos {
        check(info.error_code, || format!("Topic {}", info.name))?;
        for p in info.partitions {
            current.insert((info.name.clone(), p.partition), p.replicas);
        }
    }
    Ok((current, response))
}

fn topics_of(plan: &Assignment) -> BTreeSet<String> {
    plan.keys().map(|(topic, _)| topic.clone()).collect()
}

async fn execute(
    client: &mut Client,
    plan: &Assignment,
    additional: bool,
) -> Result<(), ToolError> {
    if !additional && !ongoing(client, None).await?.is_empty() {
        return Err(ToolError::Failed(
            "Cannot execute because there is an existing partition assignment.  Use --additional \
             to override this and create a new partition assignment in addition to the existing one. \
             The --additional flag can also be used to change the throttle by resubmitting the \
             current reassignment."
                .to_owned(),
        ));
    }
    let (current, _) = current_assignment(client, &topics_of(plan)).await?;
    if let Some((topic, partition)) = plan.keys().find(|key| !current.contains_key(*key)) {
        return Err(ToolError::Failed(format!(
            "Unable to find partition {topic}-{partition}: the topic has no such partition"
        )));
    }
    let before: Assignment = current
        .into_iter()
        .filter(|(key, _)| plan.contains_key(key))
        .collect();
    println!(
        "Current partition replica assignment\n\n{}\n\nSave this to use as the --reassignment-json-file option during rollback",
        assignment_json(&before)
    );
    let targets = plan
        .iter()
        .map(|(key, replicas)| (key.clone(), Some(replicas.clone())))
        .collect();
    let errors = alter(client, targets).await?;
    if !errors.is_empty() {
        return Err(ToolError::Failed(format!(
            "Error reassigning partition(s):\n{}",
            errors.join("\n")
        )));
    }
    println!(
        "Successfully started partition reassignment{} for {}",
        plural(plan.len()),
        names(plan.keys().cloned())
    );
    Ok(())
}

/// Sends one AlterPartitionReassignments; returns Kafka's
/// `topic-partition: message` line for each partition refused.
async fn alter(
    client: &mut Client,
    targets: BTreeMap<TopicPartition, Option<Vec<i32>>>,
) -> Result<Vec<String>, ToolError> {
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((topic, partition), replicas) in targets {
        by_topic.entry(topic).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(replicas.map(|ids| ids.into_iter().map(BrokerId).collect())),
        );
    }
    let topics: Vec<ReassignableTopic> = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReassignableTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    let response = client
        .any()
        .send(|_| {
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(TIMEOUT_MS)
                .with_topics(topics.clone())
        })
        .await?;
    let mut errors = Vec::new();
    for topic in response.responses {
        for p in topic.partitions {
            if p.error_code != 0 {
                let message = p
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| describe_code(p.error_code));
                errors.push(format!("{}-{}: {message}", topic.name.0, p.partition_index));
            }
        }
    }
    if errors.is_empty() {
        check(response.error_code, || {
            "altering partition reassignments".to_owned()
        })?;
    }
    errors.sort();
    Ok(errors)
}

async fn verify(
    client: &mut Client,
    plan: &Assignment,
    preserve_throttles: bool,
) -> Result<(), ToolError> {
    let moving = ongoing(client, None).await?;
    let (current, metadata) = current_assignment(client, &topics_of(plan)).await?;
    let mut lines = vec!["Status of partition reassignment:".to_owned()];
    for (key, target) in plan {
        let name = format!("{}-{}", key.0, key.1);
        if moving.contains_key(key) {
            lines.push(format!(
                "Reassignment of partition {name} is still in progress."
            ));
            continue;
        }
        let now = current.get(key).cloned().unwrap_or_default();
        if now == *target {
            lines.push(format!("Reassignment of partition {name} is completed."));
        } else {
            lines.push(format!(
                "There is no active reassignment of partition {name}, but replica set is {} rather than {}.",
                joined(&now),
                joined(target)
            ));
        }
    }
    println!("{}", lines.join("\n"));
    // Kafka prints the (empty) log directory moves here.
    println!();
    if moving.is_empty() && !preserve_throttles {
        print_cleared_throttles(&metadata, plan);
    }
    Ok(())
}

async fn cancel(
    client: &mut Client,
    plan: &Assignment,
    preserve_throttles: bool,
) -> Result<(), ToolError> {
    let moving: BTreeSet<TopicPartition> = ongoing(client, Some(plan))
        .await?
        .into_keys()
        .filter(|key| plan.contains_key(key))
        .collect();
    if moving.is_empty() {
        println!("None of the specified partition reassignments are active.");
    } else {
        let errors = alter(
            client,
            moving.iter().map(|key| (key.clone(), None)).collect(),
        )
        .await?;
        if !errors.is_empty() {
            return Err(ToolError::Failed(format!(
                "Error cancelling partition reassignment{} for:\n{}",
                plural(errors.len()),
                errors.join("\n")
            )));
        }
        println!(
            "Successfully cancelled partition reassignment{} for: {}",
            plural(moving.len()),
            names(moving)
        );
    }
    println!("None of the specified partition moves are active.");
    if !preserve_throttles {
        let (_, metadata) = current_assignment(client, &topics_of(plan)).await?;
        print_cleared_throttles(&metadata, plan);
    }
    Ok(())
}

fn print_cleared_throttles(metadata: &MetadataResponse, plan: &Assignment) {
    let mut brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort_unstable();
    println!(
        "Clearing broker-level throttles on brokers {}",
        joined(&brokers)
    );
    let topics = topics_of(plan);
    println!(
        "Clearing topic-level throttles on topic{} {}",
        plural(topics.len()),
        topics.into_iter().collect::<Vec<_>>().join(",")
    );
}

async fn generate(client: &mut Client, args: &ReassignPartitionsArgs) -> Result<(), ToolError> {
    let text = read(
        args.topics_to_move_json_file.as_ref(),
        "topics-to-move-json-file",
    )?;
    let raw_brokers = args.broker_list.as_deref().ok_or_else(|| {
        ToolError::Usage("Missing required argument \"[broker-list]\"".to_owned())
    })?;
    let brokers = parse_broker_list(raw_brokers)?;
    let file: TopicsToMove = serde_json::from_str(&text).map_err(|e| {
        ToolError::Failed(format!("the topics-to-move JSON file is not valid: {e}"))
    })?;
    let topics: BTreeSet<String> = file.topics.into_iter().map(|t| t.topic).collect();
    if topics.is_empty() {
        return Err(ToolError::Failed(
            "The topics list cannot be empty".to_owned(),
        ));
    }
    let (current, metadata) = current_assignment(client, &topics).await?;
    let known: BTreeMap<i32, Option<String>> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    if let Some(unknown) = brokers.iter().find(|id| !known.contains_key(id)) {
        return Err(ToolError::Failed(format!("Unknown broker id {unknown}")));
    }
    let candidates: Vec<Candidate> = brokers
        .iter()
        .map(|id| Candidate {
            id: *id,
            rack: if args.disable_rack_aware {
                None
            } else {
                known.get(id).cloned().flatten()
            },
        })
        .collect();
    let proposed = propose(&current, &candidates)?;
    println!(
        "Current partition replica assignment\n{}\n\nProposed partition reassignment configuration\n{}",
        assignment_json(&current),
        assignment_json(&proposed)
    );
    Ok(())
}

fn parse_broker_list(raw: &str) -> Result<Vec<i32>, ToolError> {
    let mut brokers = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let id: i32 = item.parse().map_err(|_| {
            ToolError::Usage(format!("invalid broker id '{item}' in --broker-list"))
        })?;
        if brokers.contains(&id) {
            return Err(ToolError::Failed(format!(
                "Duplicate brokers are not allowed in --broker-list: {id}"
            )));
        }
        brokers.push(id);
    }
    if brokers.is_empty() {
        return Err(ToolError::Usage("--broker-list names no broker".to_owned()));
    }
    Ok(brokers)
}

/// Each topic placed afresh over `candidates`, keeping its partition count
/// and replication factor, from a random start as Kafka's generator.
fn propose(current: &Assignment, candidates: &[Candidate]) -> Result<Assignment, ToolError> {
    let mut by_topic: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for ((topic, _), replicas) in current {
        let entry = by_topic.entry(topic).or_insert((0, replicas.len()));
        entry.0 += 1;
    }
    let mut proposed = Assignment::new();
    for (topic, (count, replication_factor)) in by_topic {
        if replication_factor > candidates.len() {
            return Err(ToolError::Failed(format!(
                "Replication factor: {replication_factor} larger than available brokers: {}.",
                candidates.len()
            )));
        }
        let placed = assign_replicas(
            candidates,
            count,
            replication_factor,
            PlacementStart::random(candidates.len()),
            0,
        );
        for (partition, replicas) in placed.into_iter().enumerate() {
            let partition = i32::try_from(partition).unwrap_or(i32::MAX);
            proposed.insert((topic.to_owned(), partition), replicas);
        }
    }
    Ok(proposed)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reassignment_file_is_read_and_written_as_kafka_does() {
        let plan = parse_reassignment(
            r#"{"version":1,"partitions":[{"topic":"b","partition":0,"replicas":[2,1],"log_dirs":["any","any"]},{"topic":"a","partition":1,"replicas":[3]}]}"#,
        )
        .unwrap();
        assert_eq!(
            assignment_json(&plan),
            r#"{"version":1,"partitions":[{"topic":"a","partition":1,"replicas":[3],"log_dirs":["any"]},{"topic":"b","partition":0,"replicas":[2,1],"log_dirs":["any","any"]}]}"#
        );
        assert_eq!(names(plan.into_keys()), "a-1,b-0");
    }

    #[test]
    fn bad_reassignment_files_are_refused() {
        for bad in [
            r#"{"version":1,"partitions":[]}"#,
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1,1]}]}"#,
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1]},{"topic":"a","partition":0,"replicas":[2]}]}"#,
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#,
        ] {
            assert!(
                matches!(parse_reassignment(bad), Err(ToolError::Failed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_list_is_kafkas_lines() {
        assert_eq!(
            list_text(&BTreeMap::new()),
            "No partition reassignments found."
        );
        let moves = BTreeMap::from([(
            ("t".to_owned(), 0),
            Ongoing {
                replicas: vec![4, 2, 3, 1],
                adding: vec![4],
                removing: vec![1],
            },
        )]);
        assert_eq!(
            list_text(&moves),
            "Current partition reassignments:\nt-0: replicas: 4,2,3,1. adding: 4. removing: 1."
        );
    }

    #[test]
    fn a_proposal_keeps_partition_counts_and_replication_factors_on_the_given_brokers() {
        let current = Assignment::from([
            (("t".to_owned(), 0), vec![1, 2]),
            (("t".to_owned(), 1), vec![2, 1]),
            (("u".to_owned(), 0), vec![1]),
        ]);
        let candidates: Vec<Candidate> = [3, 4]
            .into_iter()
            .map(|id| Candidate { id, rack: None })
            .collect();
        let proposed = propose(&current, &candidates).unwrap();
        assert_eq!(proposed.len(), 3);
        for ((topic, _), replicas) in &proposed {
            assert_eq!(replicas.len(), if topic == "t" { 2 } else { 1 });
            assert!(replicas.iter().all(|id| [3, 4].contains(id)));
        }
        assert!(parse_broker_list("1,1").is_err());
    }
}
