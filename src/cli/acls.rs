//! `kafka-acls.sh`: add, list and remove ACL bindings with Kafka's flags,
//! printing what Kafka's tool prints.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::args::{CommandConfigArgs, ServerArgs};
use super::client::{Client, check};
use super::{ToolError, bootstrap, exactly_one};
use crate::security::acl::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, CLUSTER_NAME, PatternType,
    ResourcePattern, ResourceType, WILDCARD_HOST,
};

/// kafka-acls.sh
#[derive(Parser, Debug)]
#[command(name = "kafka-acls.sh", about = "Add, list or remove ACLs.")]
pub struct AclsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub command_config: CommandConfigArgs,
    #[arg(long)]
    pub add: bool,
    #[arg(long)]
    pub remove: bool,
    #[arg(long)]
    pub list: bool,
    /// Remove without asking.
    #[arg(long)]
    pub force: bool,
    #[arg(long = "allow-principal", value_name = "TYPE:NAME")]
    pub allow_principal: Vec<String>,
    #[arg(long = "deny-principal", value_name = "TYPE:NAME")]
    pub deny_principal: Vec<String>,
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,
    #[arg(long = "deny-host", value_name = "HOST")]
    pub deny_host: Vec<String>,
    /// With --list: only the ACLs of this principal.
    #[arg(long, value_name = "TYPE:NAME")]
    pub principal: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All (repeatable).
    #[arg(long, value_name = "OPERATION")]
    pub operation: Vec<String>,
    #[arg(long, value_name = "TOPIC")]
    pub topic: Vec<String>,
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    #[arg(long)]
    pub cluster: bool,
    #[arg(long = "transactional-id", value_name = "ID")]
    pub transactional_id: Vec<String>,
    /// literal, prefixed, match or any.
    #[arg(
        long = "resource-pattern-type",
        value_name = "TYPE",
        default_value = "literal"
    )]
    pub resource_pattern_type: String,
    /// Producer rights: Write, Describe and Create on --topic.
    #[arg(long)]
    pub producer: bool,
    /// Consumer rights: Read and Describe on --topic, Read on --group.
    #[arg(long)]
    pub consumer: bool,
    /// With --producer: IdempotentWrite on the cluster.
    #[arg(long)]
    pub idempotent: bool,
}

#[derive(Clone, Copy)]
enum Action {
    Add,
    Remove,
    List,
}

pub async fn run(args: AclsArgs) -> Result<ExitCode, ToolError> {
    let action = exactly_one(
        [
            (args.add, Action::Add),
            (args.remove, Action::Remove),
            (args.list, Action::List),
        ],
        "Command must include exactly one action: --list, --add, --remove.",
    )?;
    let security = args.command_config.security()?;
    let pattern_type = PatternType::parse(&args.resource_pattern_type)
        .filter(|p| !matches!(p, PatternType::Unknown))
        .ok_or_else(|| {
            ToolError::Usage(format!(
                "invalid --resource-pattern-type {}",
                args.resource_pattern_type
            ))
        })?;
    if !matches!(action, Action::List)
        && !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed)
    {
        return Err(ToolError::Usage(format!(
            "A '--resource-pattern-type' value of '{}' is not valid when adding acls.",
            args.resource_pattern_type
        )));
    }
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client = Client::connect(&servers, "kafka-acls", &security).await?;
    match action {
        Action::Add => add(&mut client, &args, pattern_type).await?,
        Action::Remove => remove(&mut client, &args, pattern_type).await?,
        Action::List => {}
    }
    list(&mut client, &args, pattern_type).await?;
    Ok(ExitCode::SUCCESS)
}

/// The resources named on the command line, by type.
fn resources(args: &AclsArgs) -> Vec<(ResourceType, String)> {
    let mut out: Vec<(ResourceType, String)> = Vec::new();
    out.extend(args.topic.iter().map(|t| (ResourceType::Topic, t.clone())));
    out.extend(args.group.iter().map(|g| (ResourceType::Group, g.clone())));
    out.extend(
        args.transactional_id
            .iter()
            .map(|t| (ResourceType::TransactionalId, t.clone())),
    );
    if args.cluster || (args.producer && args.idempotent) {
        out.push((ResourceType::Cluster, CLUSTER_NAME.to_owned()));
    }
    out
}

/// The operations each resource gets: `--operation` (All when absent), or
/// what `--producer`/`--consumer` mean in Kafka's tool.
fn operations(
    args: &AclsArgs,
    resource_type: ResourceType,
) -> Result<Vec<AclOperation>, ToolError> {
    use AclOperation::*;
    if args.producer || args.consumer {
        let mut ops = Vec::new();
        match resource_type {
            ResourceType::Topic if args.producer => ops.extend([Write, Describe, Create]),
            ResourceType::TransactionalId if args.producer => ops.extend([Write, Describe]),
            ResourceType::Cluster if args.producer && args.idempotent => ops.push(IdempotentWrite),
            _ => {}
        }
        match resource_type {
            ResourceType::Topic if args.consumer => ops.extend([Read, Describe]),
            ResourceType::Group if args.consumer => ops.push(Read),
            _ => {}
        }
        ops.dedup();
        return Ok(ops);
    }
    if args.operation.is_empty() {
        return Ok(vec![All]);
    }
    args.operation
        .iter()
        .map(|text| {
            AclOperation::parse(text)
                .filter(|o| !matches!(o, Any | Unknown))
                .ok_or_else(|| ToolError::Usage(format!("invalid --operation {text}")))
        })
        .collect()
}

/// (principal, host, permission) triples of the ALLOW and DENY flags.
fn grants(args: &AclsArgs) -> Vec<(String, String, AclPermissionType)> {
    let hosts = |given: &[String]| -> Vec<String> {
        if given.is_empty() {
            vec![WILDCARD_HOST.to_owned()]
        } else {
            given.to_vec()
        }
    };
    let mut out = Vec::new();
    for (principals, given, permission) in [
        (
            &args.allow_principal,
            &args.allow_host,
            AclPermissionType::Allow,
        ),
        (
            &args.deny_principal,
            &args.deny_host,
            AclPermissionType::Deny,
        ),
    ] {
        for principal in principals {
            for host in hosts(given) {
                out.push((principal.clone(), host, permission));
            }
        }
    }
    out
}

/// Every binding the flags describe, grouped by resource pattern.
fn bindings(
    args: &AclsArgs,
    pattern_type: PatternType,
) -> Result<BTreeMap<ResourcePattern, Vec<AccessControlEntry>>, ToolError> {
    if args.consumer && args.group.is_empty() {
        return Err(ToolError::Usage(
            "With --consumer you must specify a --group".to_owned(),
        ));
    }
    let mut out: BTreeMap<ResourcePattern, Vec<AccessControlEntry>> = BTreeMap::new();
    for (resource_type, name) in resources(args) {
        let pattern = ResourcePattern {
            resource_type,
            name,
            // The cluster is only ever a literal.
            pattern_type: if resource_type == ResourceType::Cluster {
                PatternType::Literal
            } else {
                pattern_type
            },
        };
        for operation in operations(args, resource_type)? {
            for (principal, host, permission) in grants(args) {
                out.entry(pattern.clone())
                    .or_default()
                    .push(AccessControlEntry {
                        principal,
                        host,
                        operation,
                        permission,
                    });
            }
        }
    }
    Ok(out)
}

async fn add(
    client: &mut Client,
    args: &AclsArgs,
    pattern_type: PatternType,
) -> Result<(), ToolError> {
    if args.allow_principal.is_empty() && args.deny_principal.is_empty() {
        return Err(ToolError::Usage(
            "You must specify one of: --allow-principal, --deny-principal when trying to add ACLs."
                .to_owned(),
        ));
    }
    let wanted = bindings(args, pattern_type)?;
    if wanted.is_empty() {
        return Err(ToolError::Usage(
            "You must specify one of: --topic, --cluster, --group, --transactional-id".to_owned(),
        ));
    }
    for (pattern, entries) in &wanted {
        println!("Adding ACLs for resource `{pattern}`: ");
        for entry in entries {
            println!(" \t{entry} ");
        }
        println!();
        let creations = entries
            .iter()
            .map(|e| {
                let b = AclBinding {
                    pattern: pattern.clone(),
                    entry: e.clone(),
                };
                creation(&b)
            })
            .collect();
        let response = client
            .any()
            .send(|_| CreateAclsRequest::default().with_creations(creations))
            .await?;
        for result in response.results {
            acl_result(result.error_code, result.error_message.as_deref())?;
        }
    }
    Ok(())
}

/// A Create/Delete/DescribeAcls result as Kafka's tool reports it.
fn acl_result(error_code: i16, message: Option<&str>) -> Result<(), ToolError> {
    check(error_code, || {
        format!(
            "Error while executing ACL command: {}",
            message.unwrap_or("")
        )
    })?;
    Ok(())
}

async fn remove(
    client: &mut Client,
    args: &AclsArgs,
    pattern_type: PatternType,
) -> Result<(), ToolError> {
    let resources = resources(args);
    if resources.is_empty() {
        return Err(ToolError::Usage(
            "You must specify one of: --topic, --cluster, --group, --transactional-id".to_owned(),
        ));
    }
    let mut filters: Vec<(String, DeleteAclsFilter)> = Vec::new();
    if args.allow_principal.is_empty() && args.deny_principal.is_empty() {
        for (resource_type, name) in resources {
            let pattern = ResourcePattern {
                resource_type,
                name,
                pattern_type,
            };
            let prompt = format!(
                "Are you sure you want to delete all ACLs for resource filter `{}`? (y/n)",
                filter_text(&pattern)
            );
            filters.push((prompt, delete_filter(&pattern, None)));
        }
    } else {
        for (pattern, entries) in bindings(args, pattern_type)? {
            let listed: Vec<String> = entries.iter().map(|e| format!("\t{e}")).collect();
            let prompt = format!(
                "Are you sure you want to remove ACLs: \n {} \n from resource filter `{}`? (y/n)",
                listed.join("\n"),
                filter_text(&pattern)
            );
            for entry in &entries {
                filters.push((prompt.clone(), delete_filter(&pattern, Some(entry))));
            }
        }
    }
    let mut confirmed = Vec::new();
    let mut asked: Option<(String, bool)> = None;
    for (prompt, filter) in filters {
        let yes = match &asked {
            Some((last, answer)) if *last == prompt => *answer,
            _ => {
                let answer = args.force || confirm(&prompt)?;
                asked = Some((prompt, answer));
                answer
            }
        };
        if yes {
            confirmed.push(filter);
        }
    }
    if confirmed.is_empty() {
        return Ok(());
    }
    let response = client
        .any()
        .send(|_| DeleteAclsRequest::default().with_filters(confirmed))
        .await?;
    for result in response.filter_results {
        acl_result(result.error_code, result.error_message.as_deref())?;
    }
    Ok(())
}

/// Prints the ACLs of the named resources (all ACLs when none is named),
/// as `Current ACLs for resource ...` blocks.
async fn list(
    client: &mut Client,
    args: &AclsArgs,
    pattern_type: PatternType,
) -> Result<(), ToolError> {
    let named = resources(args);
    let filters: Vec<(ResourceType, Option<String>, PatternType)> = if named.is_empty() {
        vec![(ResourceType::Any, None, PatternType::Any)]
    } else {
        let listed_type = if args.list {
            pattern_type
        } else {
            PatternType::Literal
        };
        named
            .into_iter()
            .map(|(t, n)| {
                let p = if t == ResourceType::Cluster {
                    PatternType::Literal
                } else {
                    listed_type
                };
                (t, Some(n), p)
            })
            .collect()
    };
    // One DescribeAcls per (resource, principal); no --principal is one
    // request for every principal.
    let principals: Vec<Option<String>> = if args.principal.is_empty() {
        vec![None]
    } else {
        args.principal.iter().cloned().map(Some).collect()
    };
    let requests = filters
        .iter()
        .flat_map(|f| principals.iter().map(move |p| (f.clone(), p.clone())));
    let mut by_pattern: BTreeMap<ResourcePattern, Vec<AccessControlEntry>> = BTreeMap::new();
    for ((resource_type, name, pattern_type), principal) in requests {
        let response = client
            .any()
            .send(|_| {
                DescribeAclsRequest::default()
                    .with_resource_type_filter(resource_type.code())
                    .with_resource_name_filter(name.as_deref().map(str_bytes))
                    .with_pattern_type_filter(pattern_type.code())
                    .with_principal_filter(principal.as_deref().map(str_bytes))
                    .with_host_filter(None)
                    .with_operation(AclOperation::Any.code())
                    .with_permission_type(AclPermissionType::Any.code())
            })
            .await?;
        acl_result(response.error_code, response.error_message.as_deref())?;
        for resource in response.resources {
            let pattern = ResourcePattern {
                resource_type: ResourceType::from_code(resource.resource_type),
                name: resource.resource_name.to_string(),
                pattern_type: PatternType::from_code(resource.pattern_type),
            };
            let entries = by_pattern.entry(pattern).or_default();
            for acl in resource.acls {
                let entry = AccessControlEntry {
                    principal: acl.principal.to_string(),
                    host: acl.host.to_string(),
                    operation: AclOperation::from_code(acl.operation),
                    permission: AclPermissionType::from_code(acl.permission_type),
                };
                if !entries.contains(&entry) {
                    entries.push(entry);
                }
            }
        }
    }
    for (pattern, entries) in by_pattern {
        println!("Current ACLs for resource `{pattern}`: ");
        for entry in entries {
            println!(" \t{entry} ");
        }
        println!();
    }
    Ok(())
}

fn confirm(prompt: &str) -> Result<bool, ToolError> {
    println!("{prompt}");
    std::io::stdout()
        .flush()
        .map_err(|e| ToolError::Failed(format!("cannot write to stdout: {e}")))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| ToolError::Failed(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}

fn filter_text(pattern: &ResourcePattern) -> String {
    format!(
        "ResourcePatternFilter(resourceType={}, name={}, patternType={})",
        pattern.resource_type, pattern.name, pattern.pattern_type
    )
}

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn creation(binding: &AclBinding) -> AclCreation {
    let (p, e) = (&binding.pattern, &binding.entry);
    AclCreation::default()
        .with_resource_type(p.resource_type.code())
        .with_resource_name(str_bytes(&p.name))
        .with_resource_pattern_type(p.pattern_type.code())
        .with_principal(str_bytes(&e.principal))
        .with_host(str_bytes(&e.host))
        .with_operation(e.operation.code())
        .with_permission_type(e.permission.code())
}

/// A DeleteAcls filter for exactly `entry` on `pattern`, or for every
/// entry on it when `entry` is `None`.
fn delete_filter(
    pattern: &ResourcePattern,
    entry: Option<&AccessControlEntry>,
) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(pattern.resource_type.code())
        .with_resource_name_filter(Some(str_bytes(&pattern.name)))
        .with_pattern_type_filter(pattern.pattern_type.code())
        .with_principal_filter(entry.map(|e| str_bytes(&e.principal)))
        .with_host_filter(entry.map(|e| str_bytes(&e.host)))
        .with_operation(entry.map_or(AclOperation::Any, |e| e.operation).code())
        .with_permission_type(
            entry
                .map_or(AclPermissionType::Any, |e| e.permission)
                .code(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(flags: &[&str]) -> AclsArgs {
        AclsArgs::try_parse_from(std::iter::once("kafka-acls.sh").chain(flags.iter().copied()))
            .expect("flags parse")
    }

    fn listed(args: &AclsArgs) -> Vec<String> {
        bindings(args, PatternType::Literal)
            .expect("bindings")
            .into_iter()
            .flat_map(|(p, entries)| {
                entries.into_iter().map(move |e| {
                    format!(
                        "{} {} {} {} {}",
                        p.resource_type, p.name, e.principal, e.operation, e.permission
                    )
                })
            })
            .collect()
    }

    #[test]
    fn producer_and_consumer_expand_as_in_kafka() {
        let producer = parsed(&[
            "--add",
            "--allow-principal",
            "User:p",
            "--producer",
            "--topic",
            "t",
            "--idempotent",
        ]);
        assert_eq!(
            listed(&producer),
            [
                "TOPIC t User:p WRITE ALLOW",
                "TOPIC t User:p DESCRIBE ALLOW",
                "TOPIC t User:p CREATE ALLOW",
                "CLUSTER kafka-cluster User:p IDEMPOTENT_WRITE ALLOW",
            ]
        );
        let consumer = parsed(&[
            "--add",
            "--allow-principal",
            "User:c",
            "--consumer",
            "--topic",
            "t",
            "--group",
            "g",
        ]);
        assert_eq!(
            listed(&consumer),
            [
                "TOPIC t User:c READ ALLOW",
                "TOPIC t User:c DESCRIBE ALLOW",
                "GROUP g User:c READ ALLOW",
            ]
        );
        let no_group = parsed(&[
            "--add",
            "--allow-principal",
            "User:c",
            "--consumer",
            "--topic",
            "t",
        ]);
        assert!(bindings(&no_group, PatternType::Literal).is_err());
    }

    #[test]
    fn operations_default_to_all_and_hosts_to_the_wildcard() {
        let args = parsed(&[
            "--add",
            "--allow-principal",
            "User:a",
            "--deny-principal",
            "User:b",
            "--deny-host",
            "10.0.0.1",
            "--deny-host",
            "10.0.0.2",
            "--topic",
            "t",
        ]);
        let got = bindings(&args, PatternType::Literal).expect("bindings");
        let entries = &got[&ResourcePattern::literal(ResourceType::Topic, "t")];
        let hosts: Vec<(&str, &str, AclOperation)> = entries
            .iter()
            .map(|e| (e.principal.as_str(), e.host.as_str(), e.operation))
            .collect();
        assert_eq!(
            hosts,
            [
                ("User:a", "*", AclOperation::All),
                ("User:b", "10.0.0.1", AclOperation::All),
                ("User:b", "10.0.0.2", AclOperation::All),
            ]
        );
        let bad = parsed(&[
            "--add",
            "--allow-principal",
            "User:a",
            "--operation",
            "Fly",
            "--topic",
            "t",
        ]);
        assert!(bindings(&bad, PatternType::Literal).is_err());
    }
}
