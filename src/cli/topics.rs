//! `kafka-topics.sh`: create, list, describe, alter and delete topics,
//! printing what Kafka 2.2's tool prints.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest, TopicName,
    alter_configs_request, incremental_alter_configs_request,
};
use kafka_protocol::protocol::StrBytes;

use super::args::{TopicsArgs, key_values};
use super::client::{Client, PartitionInfo, TopicInfo, check};
use super::{ToolError, bootstrap, exactly_one};

const ADMIN_TIMEOUT_MS: i32 = 30_000;
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs v1+ `config_source` for a per-topic override.
const TOPIC_CONFIG_SOURCE: i8 = 1;

enum Action {
    Create,
    List,
    Describe,
    Delete,
    Alter,
}

fn action(args: &TopicsArgs) -> Result<Action, ToolError> {
    exactly_one(
        [
            (args.create, Action::Create),
            (args.list, Action::List),
            (args.describe, Action::Describe),
            (args.delete, Action::Delete),
            (args.alter, Action::Alter),
        ],
        "Command must include exactly one action: --list, --describe, --create, --alter or --delete",
    )
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn required_topic(args: &TopicsArgs) -> Result<&str, ToolError> {
    args.topic
        .as_deref()
        .ok_or_else(|| ToolError::Usage("Missing required argument \"[topic]\"".to_string()))
}

pub async fn run(args: TopicsArgs) -> Result<ExitCode, ToolError> {
    let action = action(&args)?;
    let configs = key_values(&args.config, "--config")?;
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client =
        Client::connect(&servers, "kafka-topics", &args.command_config.security()?).await?;
    match action {
        Action::Create => create(&mut client, &args, configs).await,
        Action::List => list(&mut client, &args).await,
        Action::Describe => describe(&mut client, &args).await,
        Action::Delete => delete(&mut client, &args).await,
        Action::Alter => alter(&mut client, &args, configs).await,
    }?;
    Ok(ExitCode::SUCCESS)
}

async fn create(
    client: &mut Client,
    args: &TopicsArgs,
    configs: BTreeMap<String, String>,
) -> Result<(), ToolError> {
    let topic = required_topic(args)?;
    let partitions = args.partitions.unwrap_or(-1);
    let replication_factor = args.replication_factor.unwrap_or(-1);
    if partitions == 0 || partitions < -1 || replication_factor == 0 || replication_factor < -1 {
        return Err(ToolError::Usage(
            "--partitions and --replication-factor must be at least 1".to_string(),
        ));
    }
    let assignment = replica_assignment(args)?.unwrap_or_default();
    for (option, given) in [
        ("partitions", args.partitions.is_some()),
        ("replication-factor", args.replication_factor.is_some()),
    ] {
        if given && !assignment.is_empty() {
            return Err(ToolError::Usage(format!(
                "Option \"[replica-assignment]\" can't be used with option \"[{option}]\""
            )));
        }
    }
    let request_topic = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_assignments(
            (0..)
                .zip(&assignment)
                .map(|(index, replicas)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(index)
                        .with_broker_ids(replicas.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect(),
        )
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect(),
        );
    if (partitions == -1 || replication_factor == -1)
        && assignment.is_empty()
        && client.any().version(ApiKey::CreateTopics).unwrap_or(0) < 4
    {
        return Err(ToolError::Usage(
            "Missing required argument \"[partitions]\" or \"[replication-factor]\"".to_string(),
        ));
    }
    let response = client
        .any()
        .send(|_| {
            CreateTopicsRequest::default()
                .with_topics(vec![request_topic.clone()])
                .with_timeout_ms(ADMIN_TIMEOUT_MS)
        })
        .await?;
    for result in response.topics {
        if result.error_code == ResponseError::TopicAlreadyExists.code() && args.if_not_exists {
            continue;
        }
        if result.error_code != 0 {
            let detail = result
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_else(|| super::client::describe_code(result.error_code));
            return Err(ToolError::Failed(format!(
                "Error while executing topic command : {detail}"
            )));
        }
        println!("Created topic {topic}.");
    }
    Ok(())
}

/// `--replica-assignment`: partitions separated by commas, each a list of
/// broker ids separated by colons, as Kafka's tool reads it.
fn replica_assignment(args: &TopicsArgs) -> Result<Option<Vec<Vec<i32>>>, ToolError> {
    let Some(text) = &args.replica_assignment else {
        return Ok(None);
    };
    text.split(',')
        .map(|partition| {
            partition
                .split(':')
                .map(|broker| {
                    broker.trim().parse::<i32>().map_err(|_| {
                        ToolError::Usage(format!(
                            "--replica-assignment: {broker:?} is not a broker id"
                        ))
                    })
                })
                .collect()
        })
        .collect::<Result<Vec<Vec<i32>>, ToolError>>()
        .map(Some)
}

/// Topics selected by `--topic` (exact name) or all of them.
/// The topics `args` selects, and the ids of the live brokers.
async fn selected(
    client: &mut Client,
    args: &TopicsArgs,
) -> Result<(BTreeSet<i32>, Vec<TopicInfo>), ToolError> {
    let (metadata, mut topics) = client.metadata(None).await?;
    let live = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    topics
        .retain(|t| t.error_code == 0 || t.error_code == ResponseError::LeaderNotAvailable.code());
    if args.exclude_internal {
        topics.retain(|t| !t.is_internal);
    }
    if let Some(topic) = &args.topic {
        topics.retain(|t| &t.name == topic);
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((live, topics))
}

async fn list(client: &mut Client, args: &TopicsArgs) -> Result<(), ToolError> {
    for topic in selected(client, args).await?.1 {
        println!("{}", topic.name);
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `--describe`'s partition reports (Kafka's `TopicCommand`): only the
/// partitions in the state asked for, without the topic lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    UnderReplicated,
    Unavailable,
    UnderMinIsr,
    AtMinIsr,
}

const REPORT_FLAGS: [(&str, Report); 4] = [
    ("under-replicated-partitions", Report::UnderReplicated),
    ("unavailable-partitions", Report::Unavailable),
    ("under-min-isr-partitions", Report::UnderMinIsr),
    ("at-min-isr-partitions", Report::AtMinIsr),
];

/// The report asked for, if any; two at once is Kafka's usage error.
fn report(args: &TopicsArgs) -> Result<Option<Report>, ToolError> {
    let given = [
        args.under_replicated_partitions,
        args.unavailable_partitions,
        args.under_min_isr_partitions,
        args.at_min_isr_partitions,
    ];
    let mut chosen = REPORT_FLAGS
        .iter()
        .zip(given)
        .filter_map(|(flag, set)| set.then_some(flag));
    match (chosen.next(), chosen.next()) {
        (Some((first, _)), Some((second, _))) => Err(ToolError::Usage(format!(
            "Option \"[{first}]\" can't be used with option \"[{second}]\""
        ))),
        (Some((flag, _)), None) if !args.describe => Err(ToolError::Usage(format!(
            "Option \"[{flag}]\" can only be used with option \"[describe]\""
        ))),
        (chosen, _) => Ok(chosen.map(|(_, report)| *report)),
    }
}

impl Report {
    /// Whether partition `p` is in this report, given the live brokers and
    /// the topic's `min.insync.replicas` (when known).
    fn includes(self, p: &PartitionInfo, live: &BTreeSet<i32>, min_isr: Option<usize>) -> bool {
        let led = p.leader >= 0 && live.contains(&p.leader);
        match self {
            Self::UnderReplicated => p.isr.len() < p.replicas.len(),
            Self::Unavailable => !led,
            Self::UnderMinIsr => !led || min_isr.is_some_and(|min| p.isr.len() < min),
            Self::AtMinIsr => min_isr.is_some_and(|min| p.isr.len() == min),
        }
    }
}

async fn describe(client: &mut Client, args: &TopicsArgs) -> Result<(), ToolError> {
    let report = report(args)?;
    let (live, topics) = selected(client, args).await?;
    if topics.is_empty()
        && let Some(topic) = &args.topic
        && !args.if_exists
    {
        return Err(ToolError::Failed(format!(
            "Error while executing topic command : Topic '{topic}' does not exist as expected"
        )));
    }
    let configs = topic_configs(client, &topics).await?;
    // Moves in progress show as Kafka shows them; like Kafka, a broker
    // without the API or a user without Describe on the cluster just gets
    // no move lines.
    let moves = if client
        .any()
        .supports(kafka_protocol::messages::ApiKey::ListPartitionReassignments)
    {
        super::reassign_partitions::ongoing(client, None)
            .await
            .unwrap_or_default()
    } else {
        Default::default()
    };
    let eligible = eligible_leader_replicas(client, &topics).await;
    for topic in topics {
        let first_move = moves.get(&(topic.name.clone(), 0));
        let replication = topic
            .partitions
            .first()
            .map(|p| {
                p.replicas.len() - first_move.map_or(0, |m| m.removing.len().min(p.replicas.len()))
            })
            .unwrap_or(0);
        let config = configs.get(&topic.name).cloned().unwrap_or_default();
        if report.is_none() {
            println!(
                "Topic:{}\tPartitionCount:{}\tReplicationFactor:{}\tConfigs:{}",
                topic.name,
                topic.partitions.len(),
                replication,
                config.overrides
            );
        }
        for p in &topic.partitions {
            if report.is_some_and(|r| !r.includes(p, &live, config.min_insync_replicas)) {
                continue;
            }
            let leader = if p.leader < 0 {
                "none".to_string()
            } else {
                p.leader.to_string()
            };
            let moving = moves
                .get(&(topic.name.clone(), p.partition))
                .map(|m| {
                    format!(
                        "\tAdding Replicas: {}\tRemoving Replicas: {}",
                        join(&m.adding),
                        join(&m.removing)
                    )
                })
                .unwrap_or_default();
            // Kafka 4.0's columns, where the cluster tracks eligible leaders.
            let elr = eligible
                .get(&(topic.name.clone(), p.partition))
                .map(|(elr, last_known)| {
                    format!("\tElr: {}\tLastKnownElr: {}", join(elr), join(last_known))
                })
                .unwrap_or_default();
            println!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}{moving}{elr}",
                topic.name,
                p.partition,
                leader,
                join(&p.replicas),
                join(&p.isr)
            );
        }
    }
    Ok(())
}

/// (topic, partition) -> (ELR, last known ELR), from DescribeTopicPartitions
/// where the broker has it and tracks them; empty otherwise (the describe
/// then prints Kafka 3's columns only).
async fn eligible_leader_replicas(
    client: &mut Client,
    topics: &[TopicInfo],
) -> BTreeMap<(String, i32), (Vec<i32>, Vec<i32>)> {
    use kafka_protocol::messages::DescribeTopicPartitionsRequest;
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let mut found = BTreeMap::new();
    if topics.is_empty() || !client.any().supports(ApiKey::DescribeTopicPartitions) {
        return found;
    }
    let names: Vec<TopicRequest> = topics
        .iter()
        .map(|t| {
            TopicRequest::default().with_name(TopicName(StrBytes::from_string(t.name.clone())))
        })
        .collect();
    let mut cursor: Option<Cursor> = None;
    loop {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(names.clone())
            .with_response_partition_limit(2000)
            .with_cursor(cursor.take());
        let Ok(response) = client.any().send(|_| request).await else {
            return found;
        };
        for topic in &response.topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.0.to_string())
                .unwrap_or_default();
            for p in &topic.partitions {
                if let (Some(elr), Some(last_known)) =
                    (&p.eligible_leader_replicas, &p.last_known_elr)
                {
                    let ids = |list: &Vec<BrokerId>| list.iter().map(|b| b.0).collect();
                    found.insert(
                        (name.clone(), p.partition_index),
                        (ids(elr), ids(last_known)),
                    );
                }
            }
        }
        match response.next_cursor {
            Some(next) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(next.topic_name)
                        .with_partition_index(next.partition_index),
                );
            }
            None => return found,
        }
    }
}

/// What `--describe` shows of a topic's configs.
#[derive(Clone, Debug, Default)]
struct TopicConfigs {
    /// The non-default ones as Kafka prints them: `k=v,k=v`.
    overrides: String,
    /// The effective `min.insync.replicas`.
    min_insync_replicas: Option<usize>,
}

/// Each topic's configs as `--describe` shows them. Empty when the broker
/// cannot describe configs.
async fn topic_configs(
    client: &mut Client,
    topics: &[TopicInfo],
) -> Result<BTreeMap<String, TopicConfigs>, ToolError> {
    let connection = client.any();
    if topics.is_empty() || !connection.supports(ApiKey::DescribeConfigs) {
        return Ok(BTreeMap::new());
    }
    let resources: Vec<DescribeConfigsResource> = topics
        .iter()
        .map(|t| {
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(t.name.clone()))
                .with_configuration_keys(None)
        })
        .collect();
    let version = connection.version(ApiKey::DescribeConfigs).unwrap_or(0);
    let response = connection
        .send(|_| DescribeConfigsRequest::default().with_resources(resources.clone()))
        .await?;
    let mut out = BTreeMap::new();
    for result in response.results {
        if result.error_code != 0 {
            continue;
        }
        let pairs: Vec<String> = result
            .configs
            .iter()
            .filter(|c| {
                if version >= 1 {
                    c.config_source == TOPIC_CONFIG_SOURCE
                } else {
                    !c.is_default
                }
            })
            .map(|c| {
                let value = if c.is_sensitive {
                    "(sensitive)".to_string()
                } else {
                    c.value.as_deref().unwrap_or("null").to_string()
                };
                format!("{}={}", c.name, value)
            })
            .collect();
        let min_insync_replicas = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == "min.insync.replicas")
            .and_then(|c| c.value.as_deref()?.trim().parse().ok());
        out.insert(
            result.resource_name.to_string(),
            TopicConfigs {
                overrides: pairs.join(","),
                min_insync_replicas,
            },
        );
    }
    Ok(out)
}

async fn exists(client: &mut Client, topic: &str) -> Result<bool, ToolError> {
    let (_, topics) = client.metadata(Some(&[topic.to_string()])).await?;
    Ok(topics.iter().any(|t| t.name == topic && t.error_code == 0))
}

fn missing(topic: &str) -> ToolError {
    ToolError::Failed(format!(
        "Error while executing topic command : Topic '{topic}' does not exist as expected"
    ))
}

async fn delete(client: &mut Client, args: &TopicsArgs) -> Result<(), ToolError> {
    let topic = required_topic(args)?;
    if !exists(client, topic).await? {
        return if args.if_exists {
            Ok(())
        } else {
            Err(missing(topic))
        };
    }
    let response = client
        .any()
        .send(|version| {
            let request = DeleteTopicsRequest::default().with_timeout_ms(ADMIN_TIMEOUT_MS);
            if version >= 6 {
                request.with_topics(vec![
                    DeleteTopicState::default().with_name(Some(name(topic))),
                ])
            } else {
                request.with_topic_names(vec![name(topic)])
            }
        })
        .await?;
    for result in response.responses {
        check(result.error_code, || {
            format!("Error while executing topic command : deleting topic '{topic}'")
        })?;
    }
    println!("Topic {topic} is marked for deletion.");
    Ok(())
}

async fn alter(
    client: &mut Client,
    args: &TopicsArgs,
    configs: BTreeMap<String, String>,
) -> Result<(), ToolError> {
    let topic = required_topic(args)?;
    if args.partitions.is_none() && configs.is_empty() && args.delete_config.is_empty() {
        return Err(ToolError::Usage(
            "--alter needs --partitions, --config or --delete-config".to_string(),
        ));
    }
    let assignment = replica_assignment(args)?;
    if assignment.is_some() && args.partitions.is_none() {
        return Err(ToolError::Usage(
            "--replica-assignment with --alter needs --partitions".to_string(),
        ));
    }
    let (_, found) = client.metadata(Some(&[topic.to_string()])).await?;
    let Some(existing) = found
        .iter()
        .find(|t| t.name == topic && t.error_code == 0)
        .map(|t| t.partitions.len())
    else {
        return if args.if_exists {
            Ok(())
        } else {
            Err(missing(topic))
        };
    };
    // Kafka's tool takes the whole topic's assignment and sends only the
    // new partitions' part.
    let new_assignments = assignment.map(|all| {
        all.into_iter()
            .skip(existing)
            .map(|replicas| {
                CreatePartitionsAssignment::default()
                    .with_broker_ids(replicas.into_iter().map(BrokerId).collect())
            })
            .collect::<Vec<_>>()
    });
    if let Some(count) = args.partitions {
        let response = client
            .any()
            .send(|_| {
                CreatePartitionsRequest::default()
                    .with_topics(vec![
                        CreatePartitionsTopic::default()
                            .with_name(name(topic))
                            .with_count(count)
                            .with_assignments(new_assignments.clone()),
                    ])
                    .with_timeout_ms(ADMIN_TIMEOUT_MS)
            })
            .await?;
        for result in response.results {
            if result.error_code != 0 {
                let detail = result
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| super::client::describe_code(result.error_code));
                return Err(ToolError::Failed(format!(
                    "Error while executing topic command : {detail}"
                )));
            }
        }
        println!("Adding partitions succeeded!");
    }
    if !configs.is_empty() || !args.delete_config.is_empty() {
        alter_configs(client, topic, &configs, &args.delete_config).await?;
        println!("Updated config for topic {topic}.");
    }
    Ok(())
}

async fn alter_configs(
    client: &mut Client,
    topic: &str,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<(), ToolError> {
    let resource_name = StrBytes::from_string(topic.to_string());
    let text = |s: &String| StrBytes::from_string(s.clone());
    if client.any().supports(ApiKey::IncrementalAlterConfigs) {
        use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let mut entries: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(text(k))
                    .with_config_operation(0)
                    .with_value(Some(text(v)))
            })
            .collect();
        entries.extend(remove.iter().map(|k| {
            AlterableConfig::default()
                .with_name(text(k))
                .with_config_operation(1)
                .with_value(None)
        }));
        let response = client
            .any()
            .send(|_| {
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(TOPIC_RESOURCE)
                        .with_resource_name(resource_name.clone())
                        .with_configs(entries.clone()),
                ])
            })
            .await?;
        for r in response.responses {
            check(r.error_code, || {
                format!("altering configs of topic '{topic}'")
            })?;
        }
        return Ok(());
    }
    if client.any().supports(ApiKey::AlterConfigs) {
        use alter_configs_request::{AlterConfigsResource, AlterableConfig};
        // AlterConfigs replaces the whole set: start from the current overrides.
        let current = topic_configs(
            client,
            &[TopicInfo {
                name: topic.to_string(),
                id: uuid::Uuid::nil(),
                error_code: 0,
                is_internal: false,
                partitions: Vec::new(),
            }],
        )
        .await?;
        let mut merged: BTreeMap<String, String> = current
            .get(topic)
            .map(|configs| {
                configs
                    .overrides
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        merged.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        for key in remove {
            merged.remove(key);
        }
        let entries: Vec<AlterableConfig> = merged
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(text(k))
                    .with_value(Some(text(v)))
            })
            .collect();
        let response = client
            .any()
            .send(|_| {
                AlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(TOPIC_RESOURCE)
                        .with_resource_name(resource_name.clone())
                        .with_configs(entries.clone()),
                ])
            })
            .await?;
        for r in response.responses {
            check(r.error_code, || {
                format!("altering configs of topic '{topic}'")
            })?;
        }
        return Ok(());
    }
    Err(ToolError::Failed(format!(
        "the broker at {} does not support changing topic configs (no AlterConfigs or IncrementalAlterConfigs)",
        client.any().address()
    )))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn partition(leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionInfo {
        PartitionInfo {
            partition: 0,
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            error_code: 0,
        }
    }

    #[test]
    fn each_report_picks_the_partitions_kafka_picks() {
        let live = BTreeSet::from([1, 2]);
        let healthy = partition(1, &[1, 2, 3], &[1, 2, 3]);
        let shrunk = partition(1, &[1, 2, 3], &[1, 2]);
        let alone = partition(2, &[1, 2, 3], &[2]);
        let offline = partition(-1, &[3], &[3]);
        let dead_leader = partition(3, &[3, 1], &[3, 1]);
        let min = Some(2);
        let pick = |report: Report| -> Vec<bool> {
            [&healthy, &shrunk, &alone, &offline, &dead_leader]
                .iter()
                .map(|p| report.includes(p, &live, min))
                .collect()
        };
        assert_eq!(
            pick(Report::UnderReplicated),
            [false, true, true, false, false]
        );
        assert_eq!(pick(Report::Unavailable), [false, false, false, true, true]);
        assert_eq!(pick(Report::UnderMinIsr), [false, false, true, true, true]);
        assert_eq!(pick(Report::AtMinIsr), [false, true, false, false, true]);
    }

    #[test]
    fn reports_are_one_at_a_time_and_only_with_describe() {
        let parse = |extra: &[&str]| {
            let argv = ["kafka-topics.sh"].iter().chain(extra).copied();
            report(&TopicsArgs::try_parse_from(argv).expect("parses"))
        };
        assert_eq!(
            parse(&["--describe", "--under-replicated-partitions"]).ok(),
            Some(Some(Report::UnderReplicated))
        );
        assert!(matches!(
            parse(&[
                "--describe",
                "--unavailable-partitions",
                "--under-min-isr-partitions"
            ]),
            Err(ToolError::Usage(_))
        ));
        assert!(matches!(
            parse(&["--list", "--at-min-isr-partitions"]),
            Err(ToolError::Usage(_))
        ));
    }
}
