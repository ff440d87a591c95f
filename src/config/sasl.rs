//! SASL settings: the mechanisms each SASL listener offers, PLAIN's users
//! from the JAAS line, the failed-authentication delay, re-authentication,
//! and the first SCRAM users taken from the environment.
//!
//! Kafka's default `sasl.enabled.mechanisms` is GSSAPI, which gregor does
//! not have. The default here is the SCRAM mechanisms, whose credentials
//! gregor manages itself, plus PLAIN when the listener has PLAIN users:
//! PLAIN's users exist only in the config file, so offering it without any
//! would only invite failed logins.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::ConfigError;
use super::listeners::ListenerSettings;
use super::raw::{RawConfig, RawValue};
use super::settings::{Field, to_u64};
use crate::security::sasl::Mechanism;
use crate::security::sasl::jaas::{JaasModule, PLAIN_LOGIN_MODULE};

/// A password from the configuration; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What one SASL listener offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSasl {
    /// `listener.name.NAME.sasl.enabled.mechanisms`, else `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's `user_NAME="password"` entries, from
    /// `listener.name.NAME.plain.sasl.jaas.config`, else `sasl.jaas.config`.
    pub plain_users: BTreeMap<String, Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// By listener name, for the SASL_PLAINTEXT and SASL_SSL listeners.
    pub listeners: BTreeMap<String, ListenerSasl>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_authentication_delay: Duration,
    /// `connections.max.reauth.ms`; `None` (0) leaves sessions unlimited.
    pub max_reauth: Option<Duration>,
    /// `KAFKA_CLIENT_USERS` / `KAFKA_CLIENT_PASSWORDS` (Bitnami's names):
    /// SCRAM users created at start when absent.
    pub client_users: Vec<(String, Secret)>,
}

impl RawConfig {
    pub(super) fn sasl_settings(
        &self,
        listeners: &[ListenerSettings],
    ) -> Result<SaslSettings, ConfigError> {
        let mut by_listener = BTreeMap::new();
        for listener in listeners.iter().filter(|l| l.security_protocol.uses_sasl()) {
            by_listener.insert(listener.name.clone(), self.listener_sasl(&listener.name)?);
        }
        let delay = self.field_or_default("connection.failed.authentication.delay.ms")?;
        let delay = Field::new("connection.failed.authentication.delay.ms", &delay)
            .int_in(0, i64::from(i32::MAX))?;
        let reauth = self.field_or_default("connections.max.reauth.ms")?;
        let reauth = Field::new("connections.max.reauth.ms", &reauth).int_in(0, i64::MAX)?;
        Ok(SaslSettings {
            listeners: by_listener,
            failed_authentication_delay: Duration::from_millis(to_u64(delay)),
            max_reauth: (reauth > 0).then(|| Duration::from_millis(to_u64(reauth))),
            client_users: self.client_users()?,
        })
    }

    fn listener_sasl(&self, listener: &str) -> Result<ListenerSasl, ConfigError> {
        let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
        let jaas_key = format!("{prefix}plain.sasl.jaas.config");
        let plain_users = match self.get(&jaas_key) {
            Some(rv) => plain_users(&jaas_key, rv, true)?,
            None => match self.get("sasl.jaas.config") {
                Some(rv) => plain_users("sasl.jaas.config", rv, false)?,
                None => BTreeMap::new(),
            },
        };
        let mechanisms_key = format!("{prefix}sasl.enabled.mechanisms");
        let explicit = self
            .get(&mechanisms_key)
            .map(|rv| (mechanisms_key.as_str(), rv))
            .or_else(|| {
                self.get("sasl.enabled.mechanisms")
                    .map(|rv| ("sasl.enabled.mechanisms", rv))
            });
        let mechanisms = match explicit {
            Some((key, rv)) => {
                let mechanisms = parse_mechanisms(&Field::new(key, rv))?;
                if mechanisms.contains(&Mechanism::Plain) && plain_users.is_empty() {
                    return Err(Field::new(key, rv).err(format!(
                        "PLAIN is enabled on listener {listener} but no PlainLoginModule users are \
                         configured ({jaas_key} or sasl.jaas.config with user_NAME=\"password\")"
                    )));
                }
                mechanisms
            }
            None => Mechanism::ALL
                .into_iter()
                .filter(|m| *m != Mechanism::Plain || !plain_users.is_empty())
                .collect(),
        };
        Ok(ListenerSasl {
            mechanisms,
            plain_users,
        })
    }

    fn client_users(&self) -> Result<Vec<(String, Secret)>, ConfigError> {
        let (Some(users), passwords) = (self.get("client.users"), self.get("client.passwords"))
        else {
            return Ok(Vec::new());
        };
        let names: Vec<&str> = split_list(&users.value);
        let Some(passwords) = passwords else {
            return Err(Field::new("client.users", users)
                .err("KAFKA_CLIENT_PASSWORDS must give a password for each user"));
        };
        let secrets: Vec<&str> = split_list(&passwords.value);
        if names.len() != secrets.len() {
            return Err(Field::new("client.users", users).err(format!(
                "{} users but {} passwords in KAFKA_CLIENT_PASSWORDS",
                names.len(),
                secrets.len()
            )));
        }
        Ok(names
            .into_iter()
            .zip(secrets)
            .map(|(name, password)| (name.to_string(), Secret(password.to_string())))
            .collect())
    }
}

fn split_list(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_mechanisms(field: &Field<'_>) -> Result<Vec<Mechanism>, ConfigError> {
    let mut mechanisms = Vec::new();
    for name in split_list(field.value) {
        let mechanism = Mechanism::from_name(name).ok_or_else(|| {
            field.err(format!(
                "SASL mechanism {name} is not supported; gregor supports PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"
            ))
        })?;
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    if mechanisms.is_empty() {
        return Err(field.err("no SASL mechanism is enabled"));
    }
    Ok(mechanisms)
}

/// PLAIN's users from a JAAS line. The generic `sasl.jaas.config` may hold
/// another module (then it has no PLAIN users); a `plain.` key must hold
/// PLAIN's. The error never repeats the value, which holds passwords.
fn plain_users(
    key: &str,
    rv: &RawValue,
    must_be_plain: bool,
) -> Result<BTreeMap<String, Secret>, ConfigError> {
    let hidden = RawValue {
        value: "[hidden]".to_string(),
        from: rv.from.clone(),
    };
    let field = Field::new(key, &hidden);
    let module = JaasModule::parse(&rv.value).map_err(|e| field.err(e.to_string()))?;
    if module.class != PLAIN_LOGIN_MODULE {
        if must_be_plain {
            return Err(field.err(format!(
                "the login module is {}, expected {PLAIN_LOGIN_MODULE}",
                module.class
            )));
        }
        return Ok(BTreeMap::new());
    }
    Ok(module
        .plain_users()
        .into_iter()
        .map(|(user, password)| (user, Secret(password)))
        .collect())
}
