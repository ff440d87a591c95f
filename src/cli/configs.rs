//! `kafka-configs.sh`: describe the configs of topics and brokers, and alter
//! those of topics, printing what Kafka 3.x's tool prints.

use std::collections::BTreeMap;
use std::process::ExitCode;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::args::ConfigsArgs;
use super::client::{Client, describe_code};
use super::{ToolError, bootstrap, exactly_one, scram_users};

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

/// What DescribeConfigs' `config_source` values are called in the tool's output.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

/// The resource a run is about: its type, its name and how the output names
/// its kind (`topic`, `broker`).
struct Entity {
    resource_type: i8,
    name: String,
    kind: &'static str,
}

fn entity(args: &ConfigsArgs) -> Result<Entity, ToolError> {
    let (entity_type, name) = match (&args.topic, &args.broker, &args.entity_type) {
        (Some(topic), None, None) => ("topics", Some(topic.clone())),
        (None, Some(broker), None) => ("brokers", Some(broker.clone())),
        (None, None, Some(entity_type)) => (entity_type.as_str(), args.entity_name.clone()),
        _ => {
            return Err(ToolError::Usage(
                "exactly one of --entity-type, --topic or --broker must be given".to_string(),
            ));
        }
    };
    let (resource_type, kind) = match entity_type {
        "topics" => (TOPIC_RESOURCE, "topic"),
        "brokers" => (BROKER_RESOURCE, "broker"),
        other => {
            return Err(ToolError::Usage(format!(
                "--entity-type {other} is not supported; gregor's kafka-configs.sh knows topics, brokers and users"
            )));
        }
    };
    let name = name
        .ok_or_else(|| ToolError::Usage(format!("--entity-name is required for {entity_type}")))?;
    Ok(Entity {
        resource_type,
        name,
        kind,
    })
}

pub async fn run(args: ConfigsArgs) -> Result<ExitCode, ToolError> {
    let describe = exactly_one(
        [(args.describe, true), (args.alter, false)],
        "Command must include exactly one action: --describe, --alter",
    )?;
    if args.entity_type.as_deref() == Some("users") {
        return users(args, describe).await;
    }
    let entity = entity(&args)?;
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client =
        Client::connect(&servers, "kafka-configs", &args.command_config.security()?).await?;
    if describe {
        describe_configs(&mut client, &entity, args.all).await?;
    } else {
        alter_configs(&mut client, &entity, &args).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--entity-type users`: SCRAM credentials.
async fn users(args: ConfigsArgs, describe: bool) -> Result<ExitCode, ToolError> {
    let servers = bootstrap::resolve(&args.server, None).await?;
    let mut client =
        Client::connect(&servers, "kafka-configs", &args.command_config.security()?).await?;
    if describe {
        scram_users::describe(&mut client, args.entity_name.as_deref()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let user = args
        .entity_name
        .as_deref()
        .ok_or_else(|| ToolError::Usage("--entity-name is required for users".to_string()))?;
    let set = args
        .add_config
        .iter()
        .map(|text| added_configs(text))
        .collect::<Result<Vec<_>, _>>()?;
    let set = scram_users::scram_settings(set.into_iter().flatten())?;
    let deleted = deleted_configs(&args.delete_config);
    if set.is_empty() && deleted.is_empty() {
        return Err(ToolError::Usage(
            "--alter needs --add-config or --delete-config".to_string(),
        ));
    }
    scram_users::alter(&mut client, user, set, &deleted).await?;
    Ok(ExitCode::SUCCESS)
}

fn deleted_configs(texts: &[String]) -> Vec<String> {
    texts
        .iter()
        .flat_map(|text| text.split(','))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_string)
        .collect()
}

/// Prints the entity's configs as Kafka's tool does: the dynamic ones only,
/// or all of them with `--all`, each with its synonyms.
async fn describe_configs(
    client: &mut Client,
    entity: &Entity,
    all: bool,
) -> Result<(), ToolError> {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(entity.resource_type)
        .with_resource_name(StrBytes::from_string(entity.name.clone()))
        .with_configuration_keys(None);
    let response = client
        .any()
        .send(|_| {
            DescribeConfigsRequest::default()
                .with_resources(vec![resource.clone()])
                .with_include_synonyms(true)
        })
        .await?;
    let Some(result) = response.results.into_iter().next() else {
        return Err(ToolError::Failed(
            "the broker described nothing".to_string(),
        ));
    };
    if result.error_code != 0 {
        return Err(failed(result.error_code, result.error_message.as_deref()));
    }
    let dynamic = |c: &DescribeConfigsResourceResult| matches!(c.config_source, 1..=3);
    let mut configs: Vec<DescribeConfigsResourceResult> = result
        .configs
        .into_iter()
        .filter(|c| all || dynamic(c))
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    let label = if all { "All" } else { "Dynamic" };
    println!("{label} configs for {} {} are:", entity.kind, entity.name);
    for config in configs {
        let synonyms: Vec<String> = config
            .synonyms
            .iter()
            .map(|s| {
                format!(
                    "{}:{}={}",
                    source_name(s.source),
                    s.name,
                    s.value.as_deref().unwrap_or("null")
                )
            })
            .collect();
        println!(
            "  {}={} sensitive={} synonyms={{{}}}",
            config.name,
            config.value.as_deref().unwrap_or("null"),
            config.is_sensitive,
            synonyms.join(", ")
        );
    }
    Ok(())
}

/// `--add-config k1=v1,k2=[a,b]`: commas inside square brackets belong to
/// the value, as in Kafka's tool.
fn added_configs(text: &str) -> Result<BTreeMap<String, String>, ToolError> {
    let mut entries = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                entries.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&text[start..]);
    entries
        .into_iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (key, value) = entry.split_once('=').ok_or_else(|| {
                ToolError::Usage(format!("--add-config expects NAME=VALUE, got '{entry}'"))
            })?;
            let value = value.trim();
            let value = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(value);
            Ok((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

async fn alter_configs(
    client: &mut Client,
    entity: &Entity,
    args: &ConfigsArgs,
) -> Result<(), ToolError> {
    let set = args
        .add_config
        .iter()
        .map(|text| added_configs(text))
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = deleted_configs(&args.delete_config);
    if set.iter().all(BTreeMap::is_empty) && deleted.is_empty() {
        return Err(ToolError::Usage(
            "--alter needs --add-config or --delete-config".to_string(),
        ));
    }
    let text = |s: &str| StrBytes::from_string(s.to_string());
    let mut entries: Vec<AlterableConfig> = set
        .iter()
        .flatten()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(text(key))
                .with_config_operation(SET)
                .with_value(Some(text(value)))
        })
        .collect();
    entries.extend(deleted.iter().map(|key| {
        AlterableConfig::default()
            .with_name(text(key))
            .with_config_operation(DELETE)
            .with_value(None)
    }));
    let resource = AlterConfigsResource::default()
        .with_resource_type(entity.resource_type)
        .with_resource_name(text(&entity.name))
        .with_configs(entries);
    let response = client
        .any()
        .send(|_| IncrementalAlterConfigsRequest::default().with_resources(vec![resource.clone()]))
        .await?;
    for result in response.responses {
        if result.error_code != 0 {
            return Err(failed(result.error_code, result.error_message.as_deref()));
        }
    }
    println!(
        "Completed updating config for {} {}.",
        entity.kind, entity.name
    );
    Ok(())
}

fn failed(code: i16, message: Option<&str>) -> ToolError {
    let detail = message.map_or_else(|| describe_code(code), str::to_string);
    ToolError::Failed(format!("Error while executing config command : {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_configs_keep_bracketed_lists_whole() {
        let configs =
            added_configs("retention.ms=1000, cleanup.policy=[delete,compact],x=").unwrap();
        assert_eq!(configs["retention.ms"], "1000");
        assert_eq!(configs["cleanup.policy"], "delete,compact");
        assert_eq!(configs["x"], "");
        assert!(added_configs("retention.ms").is_err());
    }
}
