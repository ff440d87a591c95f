//! `kafka-consumer-groups.sh`: list groups, describe a group's offsets and
//! lag, reset its offsets (a dry run unless `--execute`), delete it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    describe_groups_response::DescribedGroup,
};
use kafka_protocol::protocol::StrBytes;

use super::args::GroupsArgs;
use super::client::{Client, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, check};
use super::group_member::{TopicPartition, commit_offsets, decode_assignment, fetch_offsets};
use super::{ToolError, bootstrap, exactly_one};

enum Action {
    List,
    Describe,
    Delete,
    Reset,
}

fn action(args: &GroupsArgs) -> Result<Action, ToolError> {
    exactly_one(
        [
            (args.list, Action::List),
            (args.describe, Action::Describe),
            (args.delete, Action::Delete),
            (args.reset_offsets, Action::Reset),
        ],
        "Command must include exactly one action: --list, --describe, --delete, --reset-offsets",
    )
}

fn groups(args: &GroupsArgs) -> Result<&[String], ToolError> {
    if args.group.is_empty() {
        Err(ToolError::Usage(
            "Option --group is required with this action".to_string(),
        ))
    } else {
        Ok(&args.group)
    }
}

pub async fn run(args: GroupsArgs) -> Result<ExitCode, ToolError> {
    let action = action(&args)?;
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client = Client::connect(
        &servers,
        "kafka-consumer-groups",
        &args.command_config.security()?,
    )
    .await?;
    match action {
        Action::List => list(&mut client).await?,
        Action::Describe => {
            for group in groups(&args)? {
                describe(&mut client, group, &args).await?;
            }
        }
        Action::Delete => delete(&mut client, groups(&args)?).await?,
        Action::Reset => {
            for group in groups(&args)? {
                reset(&mut client, group, &args).await?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &mut Client) -> Result<(), ToolError> {
    let (metadata, _) = client.metadata(Some(&[])).await?;
    let mut names = Vec::new();
    for broker in metadata.brokers {
        let connection = client.broker(broker.node_id.0).await?;
        let response = connection.send(|_| ListGroupsRequest::default()).await?;
        check(response.error_code, || "listing groups".to_string())?;
        names.extend(
            response
                .groups
                .into_iter()
                .map(|g| g.group_id.0.to_string()),
        );
    }
    names.sort();
    names.dedup();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

async fn describe_group(
    client: &mut Client,
    coordinator: i32,
    group: &str,
) -> Result<DescribedGroup, ToolError> {
    let connection = client.broker(coordinator).await?;
    let response = connection
        .send(|_| {
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))])
        })
        .await?;
    let described = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| ToolError::Failed(format!("no description of group '{group}'")))?;
    check(described.error_code, || {
        format!("describing group '{group}'")
    })?;
    Ok(described)
}

/// Columns padded to their widest cell, as Kafka prints its tables.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join(" ").trim_end());
    }
}

async fn describe(client: &mut Client, group: &str, args: &GroupsArgs) -> Result<(), ToolError> {
    let coordinator = client.group_coordinator(group).await?;
    let described = describe_group(client, coordinator, group).await?;
    if described.group_state.as_str() == "Dead" {
        return Err(ToolError::Failed(format!(
            "Consumer group '{group}' does not exist."
        )));
    }
    if args.state {
        print_table(&[
            vec!["GROUP".into(), "STATE".into(), "#MEMBERS".into()],
            vec![
                group.to_string(),
                described.group_state.to_string(),
                described.members.len().to_string(),
            ],
        ]);
        return Ok(());
    }
    // partition -> (member id, host, client id)
    let mut owners: BTreeMap<TopicPartition, (String, String, String)> = BTreeMap::new();
    let mut member_rows = vec![vec![
        "GROUP".to_string(),
        "CONSUMER-ID".into(),
        "HOST".into(),
        "CLIENT-ID".into(),
        "#PARTITIONS".into(),
    ]];
    for member in &described.members {
        let owner = (
            member.member_id.to_string(),
            member.client_host.to_string(),
            member.client_id.to_string(),
        );
        let assigned = decode_assignment(&member.member_assignment);
        member_rows.push(vec![
            group.to_string(),
            owner.0.clone(),
            owner.1.clone(),
            owner.2.clone(),
            assigned.len().to_string(),
        ]);
        for tp in assigned {
            owners.insert(tp, owner.clone());
        }
    }
    if described.members.is_empty() {
        println!("\nConsumer group '{group}' has no active members.");
    }
    println!();
    if args.members {
        print_table(&member_rows);
        return Ok(());
    }
    let committed = fetch_offsets(client, coordinator, group, None).await?;
    let mut partitions: Vec<TopicPartition> = committed.keys().cloned().collect();
    for tp in owners.keys() {
        if !committed.contains_key(tp) {
            partitions.push(tp.clone());
        }
    }
    partitions.sort();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        client
            .list_offsets(&partitions, LATEST_TIMESTAMP, 0)
            .await?
    };
    let mut rows = vec![
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    let dash = || "-".to_string();
    for tp in &partitions {
        let current = committed.get(tp);
        let end = ends.get(tp);
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => dash(),
        };
        let (member, host, client_id) = owners
            .get(tp)
            .cloned()
            .unwrap_or_else(|| (dash(), dash(), dash()));
        rows.push(vec![
            group.to_string(),
            tp.0.clone(),
            tp.1.to_string(),
            current.map_or_else(dash, |c| c.to_string()),
            end.map_or_else(dash, |e| e.to_string()),
            lag,
            member,
            host,
            client_id,
        ]);
    }
    print_table(&rows);
    Ok(())
}

async fn delete(client: &mut Client, groups: &[String]) -> Result<(), ToolError> {
    for group in groups {
        let coordinator = client.group_coordinator(group).await?;
        let connection = client.broker(coordinator).await?;
        let response = connection
            .send(|_| {
                DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(StrBytes::from_string(group.clone()))])
            })
            .await?;
        for result in response.results {
            check(result.error_code, || {
                format!("Deletion of consumer group '{}' failed", result.group_id.0)
            })?;
        }
    }
    let quoted: Vec<String> = groups.iter().map(|g| format!("'{g}'")).collect();
    println!(
        "Deletion of requested consumer groups ({}) was successful.",
        quoted.join(", ")
    );
    Ok(())
}

/// `--topic T` (all partitions) or `--topic T:0,2`.
async fn reset_partitions(
    client: &mut Client,
    args: &GroupsArgs,
    committed: &BTreeMap<TopicPartition, i64>,
) -> Result<Vec<TopicPartition>, ToolError> {
    if args.all_topics {
        return Ok(committed.keys().cloned().collect());
    }
    if args.topic.is_empty() {
        return Err(ToolError::Usage(
            "One of the reset scopes should be defined: --all-topics, --topic".to_string(),
        ));
    }
    let mut out = Vec::new();
    for spec in &args.topic {
        match spec.split_once(':') {
            Some((topic, list)) => {
                for p in list.split(',') {
                    let p: i32 = p.trim().parse().map_err(|_| {
                        ToolError::Usage(format!("bad partition '{p}' in --topic {spec}"))
                    })?;
                    out.push((topic.to_string(), p));
                }
            }
            None => {
                let info = client.topic(spec).await?;
                out.extend(info.partitions.iter().map(|p| (spec.clone(), p.partition)));
            }
        }
    }
    Ok(out)
}

async fn reset(client: &mut Client, group: &str, args: &GroupsArgs) -> Result<(), ToolError> {
    let targets = [
        args.to_earliest,
        args.to_latest,
        args.to_offset.is_some(),
        args.shift_by.is_some(),
    ];
    if targets.iter().filter(|t| **t).count() != 1 {
        return Err(ToolError::Usage(
            "Option --reset-offsets needs exactly one of --to-earliest, --to-latest, --to-offset, --shift-by"
                .to_string(),
        ));
    }
    if args.execute && args.dry_run {
        return Err(ToolError::Usage(
            "Option --execute and --dry-run cannot be used together".to_string(),
        ));
    }
    let coordinator = client.group_coordinator(group).await?;
    let described = describe_group(client, coordinator, group).await?;
    let state = described.group_state.to_string();
    if !matches!(state.as_str(), "Empty" | "Dead" | "") {
        return Err(ToolError::Failed(format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
        )));
    }
    let committed = fetch_offsets(client, coordinator, group, None).await?;
    let partitions = reset_partitions(client, args, &committed).await?;
    let earliest = client
        .list_offsets(&partitions, EARLIEST_TIMESTAMP, 0)
        .await?;
    let latest = client
        .list_offsets(&partitions, LATEST_TIMESTAMP, 0)
        .await?;
    let mut plan = BTreeMap::new();
    for tp in &partitions {
        let low = earliest.get(tp).copied().unwrap_or(0);
        let high = latest.get(tp).copied().unwrap_or(0);
        let wanted = if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if let Some(offset) = args.to_offset {
            offset
        } else {
            let current = committed.get(tp).copied().unwrap_or(low);
            current + args.shift_by.unwrap_or(0)
        };
        plan.insert(tp.clone(), wanted.clamp(low, high));
    }
    let mut rows = vec![vec![
        "GROUP".to_string(),
        "TOPIC".into(),
        "PARTITION".into(),
        "NEW-OFFSET".into(),
    ]];
    for ((topic, partition), offset) in &plan {
        rows.push(vec![
            group.to_string(),
            topic.clone(),
            partition.to_string(),
            offset.to_string(),
        ]);
    }
    if args.execute {
        commit_offsets(client, coordinator, group, -1, "", &plan).await?;
    } else if !args.dry_run {
        eprintln!(
            "WARN: No action will be performed as the --execute option is missing. \
             In a future major release, the default behavior of this command will be to \
             prompt the user before executing the reset rather than doing a dry run. \
             You should add the --dry-run option explicitly if you are scripting this command \
             and want to keep the current default behavior without prompting."
        );
    }
    println!();
    print_table(&rows);
    Ok(())
}
