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
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::ClusterError;
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
            (Ok(_), Err(error)) => result(Some(refused_by(error))),
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
    let filter = filter_from(
        request.resource_type_filter,
        request.resource_name_filter.as_ref(),
        request.pattern_type_filter,
        request.principal_filter.as_ref(),
        request.host_filter.as_ref(),
        request.operation,
        request.permission_type,
    );
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
    let removed = doomed.len();
    let written = if doomed.is_empty() {
        Ok(())
    } else {
        ctx.coordinator.delete_acls(doomed).await
    };
    if written.is_ok() && removed > 0 {
        tracing::info!(principal = access.principal(), removed, "ACLs deleted");
    }
    let results = resolved
        .into_iter()
        .map(|matched| match (matched, &written) {
            (Err(reason), _) => failed(ResponseError::InvalidRequest, reason),
            (Ok(_), Err(error)) => {
                let (code, message) = refused_by(error);
                failed(code, message)
            }
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
    filter_from(
        f.resource_type_filter,
        f.resource_name_filter.as_ref(),
        f.pattern_type_filter,
        f.principal_filter.as_ref(),
        f.host_filter.as_ref(),
        f.operation,
        f.permission_type,
    )
}

/// A filter from the seven fields DescribeAcls and DeleteAcls share.
fn filter_from(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::from_code(resource_type),
            name: name.map(|n| n.to_string()),
            pattern_type: PatternType::from_code(pattern_type),
        },
        entry: AccessControlEntryFilter {
            principal: principal.map(|p| p.to_string()),
            host: host.map(|h| h.to_string()),
            operation: AclOperation::from_code(operation),
            permission: AclPermissionType::from_code(permission),
        },
    }
}

/// The code and message a refused coordinator write answers with.
fn refused_by(error: &ClusterError) -> (ResponseError, String) {
    let code =
        ResponseError::try_from_code(error.code().0).unwrap_or(ResponseError::UnknownServerError);
    (code, error.message())
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
