//! The inter-broker listener and how this broker logs in there as a
//! client, with Kafka's keys:
//!
//! - `inter.broker.listener.name` (or `security.inter.broker.protocol`,
//!   which names the listener called like the protocol; not both): the
//!   listener followers fetch from, found on the leader by that name;
//! - on a TLS listener, its `ssl.*` keys serve the client side too: the
//!   truststore for the leader's certificate, the keystore as this
//!   broker's certificate (for a listener with `ssl.client.auth=required`),
//!   `ssl.endpoint.identification.algorithm` (`https` checks the host
//!   name, empty only the chain);
//! - on a SASL listener, `sasl.mechanism.inter.broker.protocol` (enabled
//!   on that listener) and the broker's own `username`/`password` from
//!   `listener.name.<name>.<mechanism>.sasl.jaas.config` (else
//!   `sasl.jaas.config`), in Kafka's JAAS line format.
//!
//! With neither listener key set, Kafka's default protocol PLAINTEXT is
//! taken as gregor always took it: the listener named PLAINTEXT, else the
//! first PLAINTEXT listener; a broker with none has no inter-broker
//! listener (a single broker needs none; a follower says so in its log).

use super::ConfigError;
use super::listeners::ListenerSettings;
use super::raw::{RawConfig, RawValue};
use super::sasl::{SaslSettings, Secret};
use super::tls::resolve_client_tls;
use super::zookeeper_tls::CoordinatorTlsSettings;
use crate::security::SecurityProtocol;
use crate::security::sasl::Mechanism;
use crate::security::sasl::jaas::JaasModule;

const LISTENER_NAME: &str = "inter.broker.listener.name";
const PROTOCOL: &str = "security.inter.broker.protocol";
const MECHANISM: &str = "sasl.mechanism.inter.broker.protocol";

/// How this broker connects to the other brokers' inter-broker listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterBrokerSettings {
    /// The listener's name (upper case, as listeners are named).
    pub listener: String,
    pub security_protocol: SecurityProtocol,
    /// The client side of TLS, for SSL and SASL_SSL.
    pub tls: Option<CoordinatorTlsSettings>,
    /// The SASL login, for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<InterBrokerLogin>,
}

/// The broker's own SASL credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterBrokerLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: Secret,
}

fn invalid(key: &str, rv: &RawValue, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, &rv.value, &rv.from, reason)
}

/// Resolves the inter-broker settings against the validated listeners
/// and their SASL mechanisms; `None` when no listener serves (see the
/// module notes).
pub(super) fn resolve_inter_broker(
    raw: &RawConfig,
    listeners: &[ListenerSettings],
    sasl: &SaslSettings,
) -> Result<Option<InterBrokerSettings>, ConfigError> {
    let Some(listener) = inter_broker_listener(raw, listeners)? else {
        return Ok(None);
    };
    let protocol = listener.security_protocol;
    let tls = protocol
        .uses_tls()
        .then(|| resolve_client_tls(raw, &listener.name))
        .transpose()?;
    let sasl = protocol
        .uses_sasl()
        .then(|| login(raw, listener, sasl))
        .transpose()?;
    Ok(Some(InterBrokerSettings {
        listener: listener.name.clone(),
        security_protocol: protocol,
        tls,
        sasl,
    }))
}

fn inter_broker_listener<'a>(
    raw: &RawConfig,
    listeners: &'a [ListenerSettings],
) -> Result<Option<&'a ListenerSettings>, ConfigError> {
    let named = |name: &str| listeners.iter().find(|l| l.name == name);
    let valid_options = || {
        listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let by_name = raw
        .explicit(LISTENER_NAME)
        .filter(|rv| !rv.value.trim().is_empty());
    let by_protocol = raw
        .explicit(PROTOCOL)
        .filter(|rv| !rv.value.trim().is_empty());
    match (by_name, by_protocol) {
        (Some(rv), Some(_)) => Err(invalid(
            LISTENER_NAME,
            rv,
            format!("only one of {LISTENER_NAME} and {PROTOCOL} should be set"),
        )),
        (Some(rv), None) => named(&rv.value.trim().to_ascii_uppercase())
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    LISTENER_NAME,
                    rv,
                    format!(
                        "must be a listener name defined in listeners; the valid options are {}",
                        valid_options()
                    ),
                )
            }),
        (None, Some(rv)) => {
            let name = rv.value.trim().to_ascii_uppercase();
            if SecurityProtocol::parse(&name).is_none() {
                return Err(invalid(
                    PROTOCOL,
                    rv,
                    "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                ));
            }
            named(&name).map(Some).ok_or_else(|| {
                invalid(
                    PROTOCOL,
                    rv,
                    format!(
                        "no listener is named {name}; name one so, or set {LISTENER_NAME} \
                         instead (the listeners are {})",
                        valid_options()
                    ),
                )
            })
        }
        (None, None) => Ok(named("PLAINTEXT").or_else(|| {
            listeners
                .iter()
                .find(|l| l.security_protocol == SecurityProtocol::Plaintext)
        })),
    }
}

/// The mechanism, checked against the listener's, and the JAAS line's
/// `username` and `password`.
fn login(
    raw: &RawConfig,
    listener: &ListenerSettings,
    sasl: &SaslSettings,
) -> Result<InterBrokerLogin, ConfigError> {
    let name = &listener.name;
    let mechanism_rv = raw.get_or_default(MECHANISM).unwrap_or(RawValue {
        value: "GSSAPI".into(),
        from: super::Source::Default,
    });
    let mechanism = Mechanism::from_name(mechanism_rv.value.trim()).ok_or_else(|| {
        invalid(
            MECHANISM,
            &mechanism_rv,
            format!(
                "the inter-broker listener {name} uses SASL and gregor logs in with PLAIN, \
                 SCRAM-SHA-256 or SCRAM-SHA-512 only (GSSAPI is Kafka's default): set {MECHANISM}"
            ),
        )
    })?;
    let enabled = sasl
        .listeners
        .get(name)
        .map(|l| l.mechanisms.as_slice())
        .unwrap_or_default();
    if !enabled.contains(&mechanism) {
        let enabled: Vec<&str> = enabled.iter().map(|m| m.name()).collect();
        return Err(invalid(
            MECHANISM,
            &mechanism_rv,
            format!(
                "must be enabled on the inter-broker listener {name} (its mechanisms are {}; \
                 see listener.name.{}.sasl.enabled.mechanisms or sasl.enabled.mechanisms)",
                enabled.join(","),
                name.to_ascii_lowercase()
            ),
        ));
    }
    let key = format!(
        "listener.name.{}.{}.sasl.jaas.config",
        name.to_ascii_lowercase(),
        mechanism.name().to_ascii_lowercase()
    );
    let (key, rv) = match raw.get(&key) {
        Some(rv) => (key, rv),
        None => match raw.get("sasl.jaas.config") {
            Some(rv) => ("sasl.jaas.config".to_string(), rv),
            None => {
                return Err(invalid(
                    MECHANISM,
                    &mechanism_rv,
                    format!(
                        "the broker logs in to the inter-broker listener {name} with {mechanism}, \
                         but {key} is not set: give it the broker's username and password"
                    ),
                ));
            }
        },
    };
    // The JAAS line carries a password: errors show the key, never the line.
    let masked = |reason: String| ConfigError::invalid(&key, "********", &rv.from, reason);
    let module = JaasModule::parse(&rv.value).map_err(|e| masked(e.to_string()))?;
    let expected = match mechanism {
        Mechanism::Plain => "PlainLoginModule",
        Mechanism::Scram(_) => "ScramLoginModule",
    };
    if !module.class.ends_with(expected) {
        return Err(masked(format!(
            "{} does not log in with {mechanism}: use {expected}",
            module.class
        )));
    }
    let option = |option: &str| {
        module.options.get(option).cloned().ok_or_else(|| {
            masked(format!(
                "the broker's own {option} is missing (the inter-broker listener {name} \
                 logs in with it)"
            ))
        })
    };
    Ok(InterBrokerLogin {
        mechanism,
        username: option("username")?,
        password: Secret(option("password")?),
    })
}
