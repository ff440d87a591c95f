//! DescribeConfigs for topics (their overrides over the broker defaults)
//! and for the broker itself.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{since, str_bytes};
use crate::broker::BrokerContext;
use crate::config::describe_topic_configs;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// ConfigSource values of DescribeConfigs v1+.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

pub fn describe(
    ctx: &Arc<BrokerContext>,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = ctx.coordinator.image();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries: Vec<(String, String, bool)> = match resource.resource_type {
                RESOURCE_TOPIC => match image.topic(&resource.resource_name) {
                    Some(topic) => describe_topic_configs(&ctx.settings.log, &topic.configs),
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes("unknown topic")));
                    }
                },
                RESOURCE_BROKER => describe_topic_configs(&ctx.settings.log, &Default::default())
                    .into_iter()
                    .map(|(key, value, _)| (format!("log.{key}"), value, true))
                    .collect(),
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
                .filter(|(key, _, _)| {
                    wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
                })
                .map(|(key, value, is_default)| {
                    let source = if is_default {
                        SOURCE_DEFAULT
                    } else {
                        SOURCE_TOPIC
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(&key))
                        .with_value(Some(str_bytes(&value)))
                        .with_is_default(is_default && version == 0)
                        .with_config_source(since(version, 1, source, -1))
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
