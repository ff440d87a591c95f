//! What the authorizer lets the caller of one request do.
//!
//! Kafka answers a refused topic or group with an error code in its own
//! slot of the response, next to the ones that succeeded, so the decision
//! cannot be made once for the whole request before the handler runs: each
//! handler asks [`Access`] about the resources it is about to touch, right
//! where it would otherwise report UNKNOWN_TOPIC_OR_PARTITION and friends.
//! `dispatch` builds one `Access` per request; it carries the caller and the
//! ACLs of the metadata image current when the request arrived, so every
//! check within a request sees the same bindings.
//!
//! Without `authorizer.class.name`, [`Access::allows`] is always true and
//! building an `Access` allocates nothing.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use super::BrokerContext;
use super::connection::ConnectionInfo;
use crate::cluster::MetadataImage;
use crate::security::acl::{AclOperation, Authorizer, CLUSTER_NAME, ResourceType};

#[derive(Clone)]
pub struct Access {
    checker: Option<Arc<Checker>>,
}

struct Checker {
    authorizer: Arc<Authorizer>,
    image: Arc<MetadataImage>,
    principal: String,
    host: String,
}

impl Access {
    pub fn new(ctx: &BrokerContext, info: &ConnectionInfo) -> Self {
        let checker = ctx.authorizer.as_ref().map(|authorizer| {
            Arc::new(Checker {
                authorizer: Arc::clone(authorizer),
                image: ctx.coordinator.image(),
                principal: info.principal.to_string(),
                host: info.peer.ip().to_string(),
            })
        });
        Access { checker }
    }

    /// Whether an authorizer is configured (the ACL APIs need one).
    pub fn enabled(&self) -> bool {
        self.checker.is_some()
    }

    /// The caller as `Type:name`, for logs.
    pub fn principal(&self) -> &str {
        self.checker.as_ref().map_or("", |c| c.principal.as_str())
    }

    pub fn allows(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        self.checker.as_ref().is_none_or(|c| {
            c.authorizer.authorize(
                &c.image.acls,
                &c.principal,
                &c.host,
                operation,
                resource_type,
                name,
            )
        })
    }

    /// KIP-430's bit field: bit `code` set for each operation of the
    /// resource type the caller may do on the resource.
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        resource_type
            .operations()
            .iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }

    pub fn allows_topic(&self, operation: AclOperation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: AclOperation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }

    pub fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// `Ok` when `operation` on `topic` is allowed, else
    /// TOPIC_AUTHORIZATION_FAILED.
    pub fn topic(&self, operation: AclOperation, topic: &str) -> Result<(), ResponseError> {
        if self.allows_topic(operation, topic) {
            Ok(())
        } else {
            Err(ResponseError::TopicAuthorizationFailed)
        }
    }

    /// `Ok` when `operation` on `group` is allowed, else
    /// GROUP_AUTHORIZATION_FAILED.
    pub fn group(&self, operation: AclOperation, group: &str) -> Result<(), ResponseError> {
        if self.allows_group(operation, group) {
            Ok(())
        } else {
            Err(ResponseError::GroupAuthorizationFailed)
        }
    }

    /// `Ok` when `operation` on the cluster is allowed, else
    /// CLUSTER_AUTHORIZATION_FAILED.
    pub fn cluster(&self, operation: AclOperation) -> Result<(), ResponseError> {
        if self.allows_cluster(operation) {
            Ok(())
        } else {
            Err(ResponseError::ClusterAuthorizationFailed)
        }
    }

    /// Whether the caller may Write some topic: KIP-679 lets that stand in
    /// for IdempotentWrite on the cluster. Answered from the bindings that
    /// could allow it (a super user, `allow.everyone.if.no.acl.found` with
    /// no topic ACL at all, or an ALLOW for Write/All not cancelled by a
    /// DENY on the very same pattern).
    pub fn may_write_any_topic(&self) -> bool {
        let Some(c) = &self.checker else {
            return true;
        };
        let authorize = |name: &str| {
            c.authorizer.authorize(
                &c.image.acls,
                &c.principal,
                &c.host,
                AclOperation::Write,
                ResourceType::Topic,
                name,
            )
        };
        c.image
            .acls
            .iter()
            .filter(|b| b.pattern.resource_type == ResourceType::Topic)
            .any(|b| authorize(&b.pattern.name))
            || authorize("*")
    }
}
