//! CreateAcls, DescribeAcls and DeleteAcls: the bindings live in the
//! metadata image; creating and deleting go through the coordinator.
//!
//! Without an authorizer all three answer SECURITY_DISABLED, as Kafka does.
//! Describing needs Describe on the cluster, creating and deleting Alter.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::security::acl::{
    AccessControlEntry, AccessControlEntryFilter, AclBinding, AclBindingFilter, AclOperation,
    AclPermissionType, PatternType, ResourcePattern, ResourcePatternFilter, ResourceType,
};

/// SECURITY_DISABLED or CLUSTER_AUTHORIZATION_FAILED, when the request may
/// not run at all.
fn refusal(access: &Access, operation: AclOperation) -> Option<(ResponseError, String)> {
    if !access.enabled() {
        return Some((
            ResponseError::SecurityDisabled,
            "no authorizer is configured on the broker (authorizer.class.name)".to_owned(),
        ));
    }
    access
        .cluster(operation)
        .err()
        .map(|error| (error, format!("{operation} on the cluster is not allowed")))
}

pub async fn create(
    ctx: &BrokerContext,
    access: &Access,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let result = |error: Option<(ResponseError, String)>| {
        let mut result = AclCreationResult::default();
        if let Some((error, message)) = error {
            result.error_code = error.code();
            result.error_message = Some(str_bytes(&message));
        }
        result
    };
    if let Some(refused) = refusal(access, AclOperation::Alter) {
        let results = request
            .creations
            .iter()
            .map(|_| result(Some(refused.clone())))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let bindings: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            let binding = binding_of(c);
            binding.invalid_reason().map_or(Ok(binding), Err)
        })
        .collect();
    let valid: Vec<AclBinding> = bindings.iter().filter_map(|b| b.clone().ok()).collect();
    let written = if valid.is_empty() {
        Ok(())
    } else {
        ctx.coordinator.create_acls(valid).await
    };
    let results = bindings
        .into_iter()
        .map(|binding| match (binding, &written) {
            (Err(reason), _) => result(Some((ResponseError::InvalidRequest, reason))),
            (Ok(_), Ok(())) => result(None),
            (Ok(_), Err(error)) => result(Some((
                ResponseError::try_from_code(error.code().0)
                    .unwrap_or(ResponseError::UnknownServerError),
                error.message(),
            ))),
        })
        .collect();
    if written.is_ok() {
        tracing::info!(principal = access.principal(), "ACLs created");
    }
    CreateAclsResponse::default().with_results(results)
}

pub fn describe(
    ctx: &BrokerContext,
    access: &Access,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Some((error, message)) = refusal(access, AclOperation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&message)));
    }
    let filter = AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::from_code(request.resource_type_filter),
            name: request.resource_name_filter.map(|n| n.to_string()),
            pattern_type: PatternType::from_code(request.pattern_type_filter),
        },
        entry: AccessControlEntryFilter {
            principal: request.principal_filter.map(|p| p.to_string()),
            host: request.host_filter.map(|h| h.to_string()),
            operation: AclOperation::from_code(request.operation),
            permission: AclPermissionType::from_code(request.permission_type),
        },
    };
    if let Some(reason) = filter.invalid_reason() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(&reason)));
    }
    let image = ctx.coordinator.image();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for binding in image.acls.matching(&filter) {
        let p = &binding.pattern;
        let same = resources.last().is_some_and(|r| {
            r.resource_type == p.resource_type.code()
                && r.pattern_type == p.pattern_type.code()
                && *r.resource_name == *p.name
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(p.resource_type.code())
                    .with_resource_name(str_bytes(&p.name))
                    .with_pattern_type(p.pattern_type.code()),
            );
        }
        let e = &binding.entry;
        if let Some(resource) = resources.last_mut() {
            resource.acls.push(
                AclDescription::default()
                    .with_principal(str_bytes(&e.principal))
                    .with_host(str_bytes(&e.host))
                    .with_operation(e.operation.code())
                    .with_permission_type(e.permission.code()),
            );
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete(
    ctx: &BrokerContext,
    access: &Access,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |error: ResponseError, message: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&message)))
    };
    if let Some((error, message)) = refusal(access, AclOperation::Alter) {
        let results = request
            .filters
            .iter()
            .map(|_| failed(error, message.clone()))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    // Resolved against one image, then removed in one command: the
    // coordinator applies exactly the bindings listed here.
    let image = ctx.coordinator.image();
    let resolved: Vec<Result<Vec<AclBinding>, String>> = request
        .filters
        .iter()
        .map(|f| {
            let filter = filter_of(f);
            match filter.invalid_reason() {
                Some(reason) => Err(reason),
                None => Ok(image.acls.matching(&filter)),
            }
        })
        .collect();
    let mut doomed: Vec<AclBinding> = resolved.iter().flatten().flatten().cloned().collect();
    doomed.sort();
    doomed.dedup();
    let written = if doomed.is_empty() {
        Ok(())
    } else {
        ctx.coordinator.delete_acls(doomed).await
    };
    let results = resolved
        .into_iter()
        .map(|matched| match (matched, &written) {
            (Err(reason), _) => failed(ResponseError::InvalidRequest, reason),
            (Ok(_), Err(error)) => failed(
                ResponseError::try_from_code(error.code().0)
                    .unwrap_or(ResponseError::UnknownServerError),
                error.message(),
            ),
            (Ok(bindings), Ok(())) => DeleteAclsFilterResult::default()
                .with_matching_acls(bindings.iter().map(matching_acl).collect()),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn binding_of(c: &AclCreation) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(c.resource_type),
            name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type),
        },
        entry: AccessControlEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation),
            permission: AclPermissionType::from_code(c.permission_type),
        },
    }
}

fn filter_of(f: &DeleteAclsFilter) -> AclBindingFilter {
    AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::from_code(f.resource_type_filter),
            name: f.resource_name_filter.as_ref().map(|n| n.to_string()),
            pattern_type: PatternType::from_code(f.pattern_type_filter),
        },
        entry: AccessControlEntryFilter {
            principal: f.principal_filter.as_ref().map(|p| p.to_string()),
            host: f.host_filter.as_ref().map(|h| h.to_string()),
            operation: AclOperation::from_code(f.operation),
            permission: AclPermissionType::from_code(f.permission_type),
        },
    }
}

fn matching_acl(binding: &AclBinding) -> DeleteAclsMatchingAcl {
    let (p, e) = (&binding.pattern, &binding.entry);
    DeleteAclsMatchingAcl::default()
        .with_resource_type(p.resource_type.code())
        .with_resource_name(str_bytes(&p.name))
        .with_pattern_type(p.pattern_type.code())
        .with_principal(str_bytes(&e.principal))
        .with_host(str_bytes(&e.host))
        .with_operation(e.operation.code())
        .with_permission_type(e.permission.code())
}
