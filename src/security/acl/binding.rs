//! The ACL vocabulary, with the `i8` codes Kafka uses on the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::security::KafkaPrincipal;

/// A LITERAL resource name matching every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// An entry principal matching every principal (of type `User`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// An entry host matching every client address.
pub const WILDCARD_HOST: &str = "*";
/// The one Cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Defines a Kafka enum with its wire codes and names; `Any` (and
/// `Unknown`) exist only in filters and requests, never in a stored binding.
macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant,)* }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The value of a wire code; an unknown code is `Unknown`.
            pub fn from_code(code: i8) -> Self {
                match code { $($code => $name::$variant,)* _ => $name::Unknown }
            }

            /// Kafka's name (`TRANSACTIONAL_ID`), as its tools print it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses Kafka's name, ignoring case, `-` and `_`
            /// (`--operation IdempotentWrite`, `--resource-pattern-type prefixed`).
            pub fn parse(text: &str) -> Option<Self> {
                let wanted: String = text.chars().filter(|c| *c != '_' && *c != '-').collect();
                [$($name::$variant,)*].into_iter().find(|v| {
                    let name: String = v.name().chars().filter(|c| *c != '_').collect();
                    name.eq_ignore_ascii_case(&wanted)
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// What kind of thing an ACL protects.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// How a pattern's name matches resource names. `Match` and `Any` are
    /// filter-only.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// What a principal may do to a resource.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

kafka_enum!(
    /// Whether an entry allows or denies.
    AclPermissionType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The operations that apply to this resource type, as Kafka reports
    /// them in authorized-operations bit fields (KIP-430).
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            _ => &[],
        }
    }
}

impl AclOperation {
    /// Whether an ALLOW entry for `self` allows `wanted`: `All` allows
    /// everything, and Kafka lets Read, Write, Delete and Alter imply
    /// Describe, and AlterConfigs imply DescribeConfigs. DENY entries deny
    /// only their own operation (or everything for `All`).
    pub fn implies(self, wanted: AclOperation) -> bool {
        use AclOperation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

/// The resources an ACL binding applies to: a type, and a name taken
/// literally (`*` for all) or as a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    pub fn literal(resource_type: ResourceType, name: impl Into<String>) -> Self {
        ResourcePattern {
            resource_type,
            name: name.into(),
            pattern_type: PatternType::Literal,
        }
    }

    pub fn prefixed(resource_type: ResourceType, name: impl Into<String>) -> Self {
        ResourcePattern {
            resource_type,
            name: name.into(),
            pattern_type: PatternType::Prefixed,
        }
    }
}

impl fmt::Display for ResourcePattern {
    /// As Kafka's tool prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            self.resource_type, self.name, self.pattern_type
        )
    }
}

/// Who may (or may not) do what, from where.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessControlEntry {
    /// `Type:name`, or [`WILDCARD_PRINCIPAL`].
    pub principal: String,
    /// An IP address as the client connects from, or [`WILDCARD_HOST`].
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermissionType,
}

impl AccessControlEntry {
    /// Whether the entry names `principal` connecting from `host`.
    pub fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == WILDCARD_HOST || self.host == host)
    }
}

impl fmt::Display for AccessControlEntry {
    /// As Kafka's tool prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal, self.host, self.operation, self.permission
        )
    }
}

/// One ACL: a pattern and an entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

impl AclBinding {
    /// Why this binding cannot be stored, if it cannot: filter-only values
    /// (`ANY`, `MATCH`, `UNKNOWN`), an empty name, a malformed principal,
    /// or a Cluster resource not named `kafka-cluster` — as Kafka refuses
    /// them with INVALID_REQUEST.
    pub fn invalid_reason(&self) -> Option<String> {
        let p = &self.pattern;
        let e = &self.entry;
        if matches!(p.resource_type, ResourceType::Any | ResourceType::Unknown) {
            return Some(format!("invalid resource type {}", p.resource_type));
        }
        if !matches!(p.pattern_type, PatternType::Literal | PatternType::Prefixed) {
            return Some(format!("invalid pattern type {}", p.pattern_type));
        }
        if p.name.is_empty() {
            return Some("resource name must not be empty".to_owned());
        }
        if p.resource_type == ResourceType::Cluster
            && (p.name != CLUSTER_NAME || p.pattern_type != PatternType::Literal)
        {
            return Some(format!(
                "the only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if matches!(e.operation, AclOperation::Any | AclOperation::Unknown) {
            return Some(format!("invalid operation {}", e.operation));
        }
        if matches!(
            e.permission,
            AclPermissionType::Any | AclPermissionType::Unknown
        ) {
            return Some(format!("invalid permission type {}", e.permission));
        }
        if KafkaPrincipal::parse(&e.principal).is_none() {
            return Some(format!(
                "could not parse principal from `{}` (no colon is found separating the principal type from the principal name)",
                e.principal
            ));
        }
        if e.host.is_empty() {
            return Some("host must not be empty".to_owned());
        }
        None
    }
}
