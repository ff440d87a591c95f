//! `authorizer.class.name`, `super.users` and
//! `allow.everyone.if.no.acl.found` resolved into an [`Authorizer`].

use super::ConfigError;
use super::raw::RawConfig;
use super::settings::Field;
use crate::security::KafkaPrincipal;
use crate::security::acl::Authorizer;

/// Kafka's authorizer class names, all meaning gregor's ACL authorizer
/// (StandardAuthorizer's semantics; the older two behave the same for
/// everything gregor supports).
pub const AUTHORIZER_CLASS_NAMES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
    "kafka.security.auth.SimpleAclAuthorizer",
];

impl RawConfig {
    /// The authorizer, or `None` when `authorizer.class.name` is unset or
    /// empty (Kafka's default: no authorization at all).
    pub(super) fn authorizer(&self) -> Result<Option<Authorizer>, ConfigError> {
        let Some(class) = self.get("authorizer.class.name") else {
            return Ok(None);
        };
        let name = class.value.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if !AUTHORIZER_CLASS_NAMES.contains(&name) {
            return Err(Field::new("authorizer.class.name", class).err(format!(
                "gregor's only authorizer is Kafka's ACL authorizer; use {}",
                AUTHORIZER_CLASS_NAMES[0]
            )));
        }
        let allow_if_no_acl = match self.get("allow.everyone.if.no.acl.found") {
            Some(rv) => Field::new("allow.everyone.if.no.acl.found", rv).bool()?,
            None => false,
        };
        let mut super_users = std::collections::HashSet::new();
        if let Some(rv) = self.get("super.users") {
            for text in rv.value.split(';').map(str::trim).filter(|t| !t.is_empty()) {
                let principal = KafkaPrincipal::parse(text).ok_or_else(|| {
                    Field::new("super.users", rv).err(format!(
                        "`{text}` is not a principal: expected Type:name, such as User:admin"
                    ))
                })?;
                super_users.insert(principal.to_string());
            }
        }
        Ok(Some(Authorizer {
            super_users,
            allow_if_no_acl,
        }))
    }
}
