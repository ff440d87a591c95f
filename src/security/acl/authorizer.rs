//! StandardAuthorizer's decision over an indexed set of bindings.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::binding::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType, ResourcePattern,
    ResourceType, WILDCARD_RESOURCE,
};
use super::filter::AclBindingFilter;

/// The bindings, indexed for [`Authorizer::authorize`].
///
/// Keyed by (resource type, pattern type), then by name, so a check looks
/// up at most `2 + len(name)` names — the literal name, the `*` literal and
/// each of the name's prefixes (at most 249 for a topic) — each an
/// `O(log n)` map lookup, whatever the number `n` of bindings. A check
/// never scans bindings for other resources.
///
/// Serialized as the plain list of bindings (JSON maps need string keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<AclBinding>", into = "Vec<AclBinding>")]
pub struct AclSet {
    by_pattern:
        BTreeMap<(ResourceType, PatternType), BTreeMap<String, BTreeSet<AccessControlEntry>>>,
    len: usize,
}

impl AclSet {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `binding`; false when it was already there.
    pub fn insert(&mut self, binding: AclBinding) -> bool {
        let AclBinding { pattern, entry } = binding;
        let added = self
            .by_pattern
            .entry((pattern.resource_type, pattern.pattern_type))
            .or_default()
            .entry(pattern.name)
            .or_default()
            .insert(entry);
        self.len += usize::from(added);
        added
    }

    /// Removes `binding`; false when it was not there.
    pub fn remove(&mut self, binding: &AclBinding) -> bool {
        let key = (binding.pattern.resource_type, binding.pattern.pattern_type);
        let Some(names) = self.by_pattern.get_mut(&key) else {
            return false;
        };
        let Some(entries) = names.get_mut(&binding.pattern.name) else {
            return false;
        };
        let removed = entries.remove(&binding.entry);
        if entries.is_empty() {
            names.remove(&binding.pattern.name);
        }
        if names.is_empty() {
            self.by_pattern.remove(&key);
        }
        self.len -= usize::from(removed);
        removed
    }

    pub fn contains(&self, binding: &AclBinding) -> bool {
        self.by_pattern
            .get(&(binding.pattern.resource_type, binding.pattern.pattern_type))
            .and_then(|names| names.get(&binding.pattern.name))
            .is_some_and(|entries| entries.contains(&binding.entry))
    }

    /// Every binding, in (type, pattern type, name, entry) order.
    pub fn iter(&self) -> impl Iterator<Item = AclBinding> + '_ {
        self.by_pattern
            .iter()
            .flat_map(|(&(resource_type, pattern_type), names)| {
                names.iter().flat_map(move |(name, entries)| {
                    entries.iter().map(move |entry| AclBinding {
                        pattern: ResourcePattern {
                            resource_type,
                            name: name.clone(),
                            pattern_type,
                        },
                        entry: entry.clone(),
                    })
                })
            })
    }

    /// The bindings `filter` selects.
    pub fn matching(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.iter().filter(|b| filter.matches(b)).collect()
    }

    /// The entry sets of every pattern that applies to the resource
    /// `resource_type`/`name`: its literal name, the `*` literal, and every
    /// prefixed pattern that is a prefix of `name`.
    fn applicable<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a BTreeSet<AccessControlEntry>> + 'a {
        let literal = self.by_pattern.get(&(resource_type, PatternType::Literal));
        let prefixed = self.by_pattern.get(&(resource_type, PatternType::Prefixed));
        let exact = literal.and_then(|names| names.get(name));
        let wildcard = literal
            .filter(|_| name != WILDCARD_RESOURCE)
            .and_then(|names| names.get(WILDCARD_RESOURCE));
        let prefixes = prefixed.into_iter().flat_map(move |names| {
            name.char_indices()
                .map(|(i, c)| &name[..i + c.len_utf8()])
                .filter_map(|prefix| names.get(prefix))
        });
        exact.into_iter().chain(wildcard).chain(prefixes)
    }
}

impl From<Vec<AclBinding>> for AclSet {
    fn from(bindings: Vec<AclBinding>) -> Self {
        let mut set = AclSet::default();
        for binding in bindings {
            set.insert(binding);
        }
        set
    }
}

impl From<AclSet> for Vec<AclBinding> {
    fn from(set: AclSet) -> Self {
        set.iter().collect()
    }
}

/// StandardAuthorizer's configuration; the bindings come with each call,
/// from the metadata image current at the time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authorizer {
    /// `super.users`, as `Type:name` strings.
    pub super_users: HashSet<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

impl Authorizer {
    /// Whether `principal` (`User:alice`) connecting from `host` (its IP
    /// address) may do `operation` on the resource `resource_type`/`name`.
    ///
    /// Super users may do everything. Otherwise a matching DENY wins over
    /// any ALLOW; an ALLOW counts for the operations it implies
    /// ([`AclOperation::implies`]); with no binding at all on the resource
    /// (for anyone), `allow.everyone.if.no.acl.found` decides.
    pub fn authorize(
        &self,
        acls: &AclSet,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let mut any_acl = false;
        let mut allowed = false;
        for entries in acls.applicable(resource_type, name) {
            any_acl |= !entries.is_empty();
            for entry in entries.iter().filter(|e| e.applies_to(principal, host)) {
                match entry.permission {
                    AclPermissionType::Deny
                        if entry.operation == operation || entry.operation == AclOperation::All =>
                    {
                        return false;
                    }
                    AclPermissionType::Allow if entry.operation.implies(operation) => {
                        allowed = true;
                    }
                    _ => {}
                }
            }
        }
        allowed || (!any_acl && self.allow_if_no_acl)
    }
}
