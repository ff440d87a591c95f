//! DescribeConfigs for topics (their overrides over the broker defaults)
//! and for the broker itself; AlterConfigs and IncrementalAlterConfigs for
//! topics, decided by the cluster coordinator; and the topic configs a
//! produce must satisfy ([`produce_refusal`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};

use super::{since, str_bytes};
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::config::{
    ConfigSource, DescribedConfig, ProduceLimits, ProduceRefusal, TopicConfig,
    describe_broker_configs, describe_topic_configs,
};
use crate::security::acl::AclOperation as Operation;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// A topic's configs need `operation` on the topic, the broker's on the
/// cluster; TOPIC_ or CLUSTER_AUTHORIZATION_FAILED otherwise.
fn authorized(
    access: &Access,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Result<(), Refusal> {
    let checked = match resource_type {
        RESOURCE_TOPIC => access.topic(operation, name),
        RESOURCE_BROKER => access.cluster(operation),
        _ => Ok(()),
    };
    checked.map_err(|error| (error, format!("{operation} is not allowed")))
}

pub fn describe(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = ctx.coordinator.image();
    let settings = &ctx.settings;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let name = resource.resource_name.as_str();
            let checked = authorized(
                access,
                Operation::DescribeConfigs,
                resource.resource_type,
                name,
            );
            if let Err((error, message)) = checked {
                return result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(&message)));
            }
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match image.topic(name) {
                    Some(topic) => {
                        describe_topic_configs(&settings.origins, &settings.log, &topic.configs)
                    }
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes("unknown topic")));
                    }
                },
                // The empty name asks for the cluster-wide dynamic defaults,
                // and gregor has no dynamic broker configs.
                RESOURCE_BROKER if name.is_empty() => Vec::new(),
                RESOURCE_BROKER if name.parse::<i32>().ok() == Some(settings.broker_id) => {
                    describe_broker_configs(&settings.origins)
                }
                RESOURCE_BROKER => {
                    let message = match name.parse::<i32>() {
                        Ok(_) => format!(
                            "Unexpected broker id, expected {} or empty string, but received {name}",
                            settings.broker_id
                        ),
                        Err(_) => format!("Broker id must be an integer, but it is: {name}"),
                    };
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(&message)));
                }
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(&format!(
                            "resource type {other} is not supported"
                        ))));
                }
            };
            let wanted = resource.configuration_keys.as_ref();
            let configs = entries
                .into_iter()
                .filter(|entry| {
                    wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == entry.name))
                })
                .map(|entry| {
                    encode_entry(
                        entry,
                        version,
                        request.include_synonyms,
                        request.include_documentation,
                    )
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One described config on the wire: v0 says only whether it is a default;
/// v1+ the source and, when asked, the synonyms; v3+ the type and, when
/// asked, the documentation.
fn encode_entry(
    entry: DescribedConfig,
    version: i16,
    include_synonyms: bool,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms && version >= 1 {
        entry
            .synonyms
            .iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(&s.name))
                    .with_value(s.value.as_deref().map(str_bytes))
                    .with_source(s.source.id())
            })
            .collect()
    } else {
        Vec::new()
    };
    let documentation = entry
        .documentation
        .filter(|_| include_documentation && version >= 3);
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&entry.name))
        .with_value(entry.value.as_deref().map(str_bytes))
        .with_read_only(entry.read_only)
        .with_is_sensitive(entry.sensitive)
        .with_is_default(version == 0 && entry.source == ConfigSource::Default)
        .with_config_source(since(version, 1, entry.source.id(), -1))
        .with_synonyms(synonyms)
        .with_config_type(since(version, 3, entry.config_type.id(), 0))
        .with_documentation(documentation.as_deref().map(str_bytes))
}

/// What a produce of `size` bytes with `acks` to `topic`-`index` is refused
/// with, by the topic's `max.message.bytes` (MESSAGE_TOO_LARGE, 10) and
/// `min.insync.replicas` (NOT_ENOUGH_REPLICAS, 19, for `acks=all` only), as
/// Kafka answers; `None` when it may go ahead. Without an override the
/// broker's `message.max.bytes` and `min.insync.replicas` apply.
pub(crate) fn produce_refusal(
    ctx: &BrokerContext,
    topic: &str,
    index: i32,
    size: usize,
    acks: i16,
) -> Option<(ResponseError, String)> {
    let image = ctx.coordinator.image();
    let state = image.topic(topic);
    let limits = match state {
        Some(state) => ProduceLimits::of_topic(&ctx.settings.log, &state.configs),
        None => ProduceLimits::of_topic(&ctx.settings.log, &BTreeMap::new()),
    };
    // The leader itself is always in sync; a partition the image no longer
    // lists (being deleted) is answered by the append path.
    let in_sync = image.partition(topic, index).map_or(1, |p| p.isr.len());
    let refusal = limits.check(size, acks, in_sync).err()?;
    let code = match refusal {
        ProduceRefusal::TooLarge { .. } => ResponseError::MessageTooLarge,
        ProduceRefusal::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
    };
    Some((code, refusal.to_string()))
}

/// A topic's config overrides, key to value.
type Overrides = BTreeMap<String, String>;
/// The error code and message an altered resource is answered with.
type Refusal = (ResponseError, String);

/// The topic configs a request leaves behind, checked as CreateTopics
/// checks them, or the error to answer with.
fn validated(
    ctx: &BrokerContext,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&Overrides) -> Result<Overrides, String>,
) -> Result<(Overrides, Overrides), Refusal> {
    if resource_type != RESOURCE_TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            "only topic configs can be altered; broker configs come from server.properties"
                .to_string(),
        ));
    }
    let image = ctx.coordinator.image();
    let Some(topic) = image.topic(name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic {name}"),
        ));
    };
    let wanted = change(&topic.configs).map_err(|e| (ResponseError::InvalidConfig, e))?;
    TopicConfig::from_pairs(wanted.clone(), &ctx.settings.log)
        .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    Ok((topic.configs.clone(), wanted))
}

/// Validates and applies one resource's change: what both alter APIs do.
async fn alter_resource(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&Overrides) -> Result<Overrides, String>,
) -> Result<(), Refusal> {
    authorized(access, Operation::AlterConfigs, resource_type, name)?;
    let (current, wanted) = validated(ctx, resource_type, name, change)?;
    apply(ctx, name, current, wanted, validate_only).await
}

/// Applies `wanted` over `current` through the coordinator (unless
/// `validate_only`) and brings the partitions' log settings in step.
async fn apply(
    ctx: &Arc<BrokerContext>,
    name: &str,
    current: Overrides,
    wanted: Overrides,
    validate_only: bool,
) -> Result<(), Refusal> {
    if validate_only {
        return Ok(());
    }
    let delete: Vec<String> = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    ctx.coordinator
        .alter_topic_configs(name, wanted, delete)
        .await
        .map_err(|e| {
            let code = ResponseError::try_from_code(e.code().0)
                .unwrap_or(ResponseError::UnknownServerError);
            (code, e.message())
        })?;
    ctx.partitions
        .reconcile_off_workers(ctx.coordinator.image())
        .await;
    tracing::info!(topic = name, "altered topic configs");
    Ok(())
}

/// AlterConfigs: the given set replaces the topic's overrides entirely
/// (keys not named return to the broker default), as in Kafka.
pub async fn alter(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let replace = |_: &Overrides| {
            Ok(resource
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect())
        };
        let outcome = alter_resource(
            ctx,
            access,
            resource.resource_type,
            &name,
            request.validate_only,
            replace,
        )
        .await;
        let response = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err((code, message)) => response
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(&message))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET (0) and DELETE (1) per key; APPEND (2) and
/// SUBTRACT (3) apply to list-valued keys only, and no topic key gregor
/// supports is a list with more than one allowed value.
pub async fn incremental_alter(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let change = |current: &Overrides| {
            let mut wanted = current.clone();
            for config in &resource.configs {
                let key = config.name.to_string();
                match config.config_operation {
                    SET => {
                        let value = config
                            .value
                            .as_ref()
                            .map(|v| v.to_string())
                            .unwrap_or_default();
                        wanted.insert(key, value);
                    }
                    DELETE => {
                        wanted.remove(&key);
                    }
                    op => return Err(format!("operation {op} is not supported for {key}")),
                }
            }
            Ok(wanted)
        };
        let outcome = alter_resource(
            ctx,
            access,
            resource.resource_type,
            &name,
            request.validate_only,
            change,
        )
        .await;
        let response = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err((code, message)) => response
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(&message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
