//! Filters selecting ACL bindings, as DescribeAcls and DeleteAcls send them.

use serde::{Deserialize, Serialize};

use super::binding::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType, ResourcePattern,
    ResourceType, WILDCARD_RESOURCE,
};

/// Selects resource patterns. `name: None` matches any name; pattern type
/// `Any` matches patterns of any type with exactly that name, and `Match`
/// matches the patterns that would apply to a resource of that name
/// (itself, the `*` literal, and every prefix).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcePatternFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
}

impl ResourcePatternFilter {
    pub fn matches(&self, pattern: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != pattern.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != pattern.pattern_type
        {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type != PatternType::Match {
            return *name == pattern.name;
        }
        match pattern.pattern_type {
            PatternType::Literal => *name == pattern.name || pattern.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&pattern.name),
            _ => false,
        }
    }
}

/// Selects entries; `None` and `Any` match everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessControlEntryFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermissionType,
}

impl AccessControlEntryFilter {
    pub fn matches(&self, entry: &AccessControlEntry) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| *p == entry.principal)
            && self.host.as_ref().is_none_or(|h| *h == entry.host)
            && (self.operation == AclOperation::Any || self.operation == entry.operation)
            && (self.permission == AclPermissionType::Any || self.permission == entry.permission)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBindingFilter {
    pub pattern: ResourcePatternFilter,
    pub entry: AccessControlEntryFilter,
}

impl AclBindingFilter {
    /// The filter matching every binding.
    pub fn any() -> Self {
        AclBindingFilter {
            pattern: ResourcePatternFilter {
                resource_type: ResourceType::Any,
                name: None,
                pattern_type: PatternType::Any,
            },
            entry: AccessControlEntryFilter {
                principal: None,
                host: None,
                operation: AclOperation::Any,
                permission: AclPermissionType::Any,
            },
        }
    }

    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.pattern.matches(&binding.pattern) && self.entry.matches(&binding.entry)
    }

    /// Why the filter is refused, if it is: an `UNKNOWN` anywhere (a code
    /// this broker does not know) makes it ambiguous, as in Kafka.
    pub fn invalid_reason(&self) -> Option<String> {
        if self.pattern.resource_type == ResourceType::Unknown {
            return Some("unknown resource type".to_owned());
        }
        if self.pattern.pattern_type == PatternType::Unknown {
            return Some("unknown pattern type".to_owned());
        }
        if self.entry.operation == AclOperation::Unknown {
            return Some("unknown operation".to_owned());
        }
        if self.entry.permission == AclPermissionType::Unknown {
            return Some("unknown permission type".to_owned());
        }
        None
    }
}
