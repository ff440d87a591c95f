//! Kafka's ACLs: bindings of a resource pattern to an access-control entry,
//! the filters DescribeAcls and DeleteAcls select them with, and the
//! [`Authorizer`] deciding with StandardAuthorizer's rules.
//!
//! - [`binding`]: the resource, pattern, operation and permission vocabulary
//!   with Kafka's wire codes, and [`AclBinding`] itself;
//! - [`filter`]: [`AclBindingFilter`] and its matching (`MATCH`, `ANY`);
//! - [`authorizer`]: [`AclSet`], the indexed bindings the metadata image
//!   keeps, and [`Authorizer`] with `super.users` and
//!   `allow.everyone.if.no.acl.found`.

pub mod authorizer;
pub mod binding;
pub mod filter;

pub use authorizer::{AclSet, Authorizer};
pub use binding::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, CLUSTER_NAME, PatternType,
    ResourcePattern, ResourceType, WILDCARD_HOST, WILDCARD_PRINCIPAL, WILDCARD_RESOURCE,
};
pub use filter::{AccessControlEntryFilter, AclBindingFilter, ResourcePatternFilter};

#[cfg(test)]
mod tests;
