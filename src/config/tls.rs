//! A TLS listener's `ssl.*` keys, validated.
//!
//! Each key is read first as `listener.name.<listener, lower-case>.ssl.*`,
//! then as the bare `ssl.*`, key by key, as Kafka resolves listener
//! overrides. Only PEM stores are read: JKS and PKCS12 are refused with the
//! line that says what to use instead. Certificates and keys are read when
//! the listener starts (and again on reload), not here.

use std::path::PathBuf;

use super::ConfigError;
use super::raw::{RawConfig, RawValue};
use super::zookeeper_tls::CoordinatorTlsSettings;
use crate::security::tls::PrincipalMappingRules;

/// The bare `ssl.*` keys a listener reads; each may be prefixed by
/// `listener.name.<name>.`.
pub const TLS_KEYS: &[&str] = &[
    "ssl.cipher.suites",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.principal.mapping.rules",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
];

/// Whether `key` is `listener.name.<name>.ssl.*` for a key of [`TLS_KEYS`]
/// (or the client's [`ENDPOINT_IDENTIFICATION`]).
pub fn is_listener_tls_key(key: &str) -> bool {
    key.strip_prefix("listener.name.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(name, key)| {
            !name.is_empty() && (TLS_KEYS.contains(&key) || key == ENDPOINT_IDENTIFICATION)
        })
}

/// Where the broker's own certificate chain and private key come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Keystore {
    /// `ssl.keystore.location`: one PEM file with the key and the chain.
    File(PathBuf),
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key`.
    Inline {
        certificate_chain: String,
        key: String,
    },
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keystore::File(path) => f.debug_tuple("File").field(path).finish(),
            // The key is a secret; logs and panics must not show it.
            Keystore::Inline { .. } => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// The CA certificates client certificates are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truststore {
    /// `ssl.truststore.location`: a PEM file of certificates.
    File(PathBuf),
    /// `ssl.truststore.certificates`: the PEM text itself.
    Inline(String),
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client must present a certificate the truststore vouches for.
    Required,
    /// A client may present one; without it, it is `User:ANONYMOUS`.
    Requested,
    /// No certificate is asked for (Kafka's default).
    None,
}

/// A version of `ssl.enabled.protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// One TLS listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub keystore: Keystore,
    pub truststore: Option<Truststore>,
    pub client_auth: ClientAuth,
    pub principal_mapping_rules: PrincipalMappingRules,
    pub enabled_protocols: Vec<TlsVersion>,
    /// `ssl.cipher.suites` by their IANA names, as Java names them; empty
    /// means every suite of the enabled protocols.
    pub cipher_suites: Vec<String>,
}

impl TlsSettings {
    /// The files to watch for changes (reload without a restart).
    pub fn files(&self) -> Vec<PathBuf> {
        let keystore = match &self.keystore {
            Keystore::File(path) => Some(path.clone()),
            Keystore::Inline { .. } => None,
        };
        let truststore = match &self.truststore {
            Some(Truststore::File(path)) => Some(path.clone()),
            _ => None,
        };
        keystore.into_iter().chain(truststore).collect()
    }
}

/// One key's value for a listener, with the name it was found under.
struct Found<'a> {
    key: String,
    value: &'a RawValue,
}

impl Found<'_> {
    fn err(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(&self.key, &self.value.value, &self.value.from, reason)
    }

    /// As [`Found::err`], with the value (a secret) masked.
    fn secret_err(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(&self.key, "********", &self.value.from, reason)
    }

    fn text(&self) -> &str {
        self.value.value.trim()
    }
}

/// Reads keys for one listener, the listener's own override first.
struct ListenerKeys<'a> {
    raw: &'a RawConfig,
    prefix: String,
}

impl<'a> ListenerKeys<'a> {
    fn new(raw: &'a RawConfig, listener: &str) -> Self {
        ListenerKeys {
            raw,
            prefix: format!("listener.name.{}.", listener.to_ascii_lowercase()),
        }
    }

    /// The value, or `None` when unset or empty (Kafka treats both alike).
    fn get(&self, key: &str) -> Option<Found<'a>> {
        let prefixed = format!("{}{key}", self.prefix);
        let found = match self.raw.get(&prefixed) {
            Some(value) => Found {
                key: prefixed,
                value,
            },
            None => Found {
                key: key.to_string(),
                value: self.raw.get(key)?,
            },
        };
        (!found.text().is_empty()).then_some(found)
    }
}

/// Validates the `ssl.*` keys of the TLS listener `listener`.
pub(super) fn resolve_tls(raw: &RawConfig, listener: &str) -> Result<TlsSettings, ConfigError> {
    let keys = ListenerKeys::new(raw, listener);
    Ok(TlsSettings {
        keystore: keystore(&keys, listener)?,
        truststore: truststore(&keys)?,
        client_auth: client_auth(&keys)?,
        principal_mapping_rules: match keys.get("ssl.principal.mapping.rules") {
            Some(found) => {
                PrincipalMappingRules::parse(found.text()).map_err(|e| found.err(e.to_string()))?
            }
            None => PrincipalMappingRules::default(),
        },
        enabled_protocols: enabled_protocols(&keys)?,
        cipher_suites: keys
            .get("ssl.cipher.suites")
            .map(|found| list(found.text()))
            .unwrap_or_default(),
    })
    .and_then(|settings| require_truststore(&keys, settings))
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `ssl.keystore.type` and `ssl.truststore.type` accept PEM only.
fn require_pem(found: Option<Found<'_>>, store: &str, location: &str) -> Result<(), ConfigError> {
    match found {
        Some(found) if !found.text().eq_ignore_ascii_case("PEM") => Err(found.err(format!(
            "gregor reads PEM stores only; use {store}=PEM with {location} naming a PEM file \
             (convert with: openssl pkcs12 -in store.p12 -nodes -out store.pem, or keytool \
             -importkeystore -deststoretype PKCS12 first for JKS)"
        ))),
        _ => Ok(()),
    }
}

/// Passwords protect JKS and PKCS12 stores; a PEM store has none, as in Kafka.
fn refuse_password(found: Option<Found<'_>>, what: &str) -> Result<(), ConfigError> {
    match found {
        // The password itself stays out of the error (and so out of logs).
        Some(found) => Err(found.secret_err(format!(
            "a PEM {what} has no password; remove this key (Kafka refuses it with PEM too)"
        ))),
        None => Ok(()),
    }
}

fn keystore(keys: &ListenerKeys<'_>, listener: &str) -> Result<Keystore, ConfigError> {
    if let Some(keystore) = optional_keystore(keys)? {
        return Ok(keystore);
    }
    Err(listener_error(
        keys.raw,
        format!(
            "listener {listener} uses TLS but has no certificate: set \
             ssl.keystore.location (or listener.name.{}.ssl.keystore.location) to a \
             PEM file with the key and the certificate chain (gregor security init \
             writes one)",
            listener.to_ascii_lowercase()
        ),
    ))
}

/// A missing key of a TLS listener, reported on the map that made it TLS.
fn listener_error(raw: &RawConfig, reason: String) -> ConfigError {
    let protocol = raw.get_or_default("listener.security.protocol.map");
    let (value, from) = protocol.map_or((String::new(), super::Source::Default), |p| {
        (p.value, p.from)
    });
    ConfigError::invalid("listener.security.protocol.map", &value, &from, reason)
}

/// The keystore, or `None` when no key names one (a TLS client may have
/// no certificate of its own).
fn optional_keystore(keys: &ListenerKeys<'_>) -> Result<Option<Keystore>, ConfigError> {
    require_pem(
        keys.get("ssl.keystore.type"),
        "ssl.keystore.type",
        "ssl.keystore.location",
    )?;
    refuse_password(keys.get("ssl.keystore.password"), "keystore")?;
    if let Some(found) = keys.get("ssl.key.password") {
        return Err(found.secret_err(
            "encrypted private keys are not supported; decrypt the key \
             (openssl pkey -in key.pem -out plain.pem) and remove ssl.key.password",
        ));
    }
    let location = keys.get("ssl.keystore.location");
    let chain = keys.get("ssl.keystore.certificate.chain");
    let key = keys.get("ssl.keystore.key");
    match (location, chain, key) {
        (Some(location), None, None) => Ok(Some(Keystore::File(PathBuf::from(location.text())))),
        (None, Some(chain), Some(key)) => Ok(Some(Keystore::Inline {
            certificate_chain: chain.text().to_string(),
            key: key.text().to_string(),
        })),
        (Some(location), _, _) => Err(location.err(
            "set either ssl.keystore.location or ssl.keystore.certificate.chain with \
             ssl.keystore.key, not both",
        )),
        (None, Some(found), None) | (None, None, Some(found)) => {
            Err(found
                .err("ssl.keystore.certificate.chain and ssl.keystore.key go together; set both"))
        }
        (None, None, None) => Ok(None),
    }
}

/// The client side of TLS to the listener `listener` of other nodes (in
/// KRaft's shape, the controller listener: raft between controllers and a
/// broker's calls to them), from the same keys as the listener, as Kafka
/// configures its controller and inter-broker clients: this node's
/// keystore (optional) as its certificate, the truststore (required) for
/// theirs, and `ssl.endpoint.identification.algorithm` (`https`, Kafka's
/// default, checks the host name dialled; empty checks the chain only).
pub(super) fn resolve_client_tls(
    raw: &RawConfig,
    listener: &str,
) -> Result<CoordinatorTlsSettings, ConfigError> {
    let keys = ListenerKeys::new(raw, listener);
    let keystore = optional_keystore(&keys)?;
    let Some(truststore) = truststore(&keys)? else {
        return Err(listener_error(
            raw,
            format!(
                "listener {listener} uses TLS between nodes, which needs a truststore: set \
                 ssl.truststore.location (or listener.name.{}.ssl.truststore.location) to the \
                 PEM file of the CA that signs the nodes' certificates",
                listener.to_ascii_lowercase()
            ),
        ));
    };
    // Unlike the other keys, an empty value means something: no check.
    let prefixed = format!("{}{ENDPOINT_IDENTIFICATION}", keys.prefix);
    let algorithm = match raw.get(&prefixed) {
        Some(value) => Some((prefixed, value)),
        None => raw
            .get(ENDPOINT_IDENTIFICATION)
            .map(|value| (ENDPOINT_IDENTIFICATION.to_string(), value)),
    };
    let verify_hostname = match algorithm {
        None => true,
        Some((key, found)) => match found.value.trim().to_ascii_lowercase().as_str() {
            "https" => true,
            "" => false,
            _ => {
                return Err(ConfigError::invalid(
                    &key,
                    &found.value,
                    &found.from,
                    "expected https, or empty to check the certificate chain but not the host name",
                ));
            }
        },
    };
    Ok(CoordinatorTlsSettings {
        keystore,
        truststore,
        verify_hostname,
    })
}

/// Read by TLS clients only ([`resolve_client_tls`]).
pub const ENDPOINT_IDENTIFICATION: &str = "ssl.endpoint.identification.algorithm";

fn truststore(keys: &ListenerKeys<'_>) -> Result<Option<Truststore>, ConfigError> {
    require_pem(
        keys.get("ssl.truststore.type"),
        "ssl.truststore.type",
        "ssl.truststore.location",
    )?;
    refuse_password(keys.get("ssl.truststore.password"), "truststore")?;
    match (
        keys.get("ssl.truststore.location"),
        keys.get("ssl.truststore.certificates"),
    ) {
        (Some(location), Some(_)) => Err(location
            .err("set either ssl.truststore.location or ssl.truststore.certificates, not both")),
        (Some(location), None) => Ok(Some(Truststore::File(PathBuf::from(location.text())))),
        (None, Some(certificates)) => Ok(Some(Truststore::Inline(certificates.text().to_string()))),
        (None, None) => Ok(None),
    }
}

fn client_auth(keys: &ListenerKeys<'_>) -> Result<ClientAuth, ConfigError> {
    let Some(found) = keys.get("ssl.client.auth") else {
        return Ok(ClientAuth::None);
    };
    match found.text().to_ascii_lowercase().as_str() {
        "required" => Ok(ClientAuth::Required),
        "requested" => Ok(ClientAuth::Requested),
        "none" => Ok(ClientAuth::None),
        _ => Err(found.err("expected required, requested or none")),
    }
}

/// Asking for client certificates needs CAs to check them against.
fn require_truststore(
    keys: &ListenerKeys<'_>,
    settings: TlsSettings,
) -> Result<TlsSettings, ConfigError> {
    if settings.client_auth != ClientAuth::None
        && settings.truststore.is_none()
        && let Some(found) = keys.get("ssl.client.auth")
    {
        return Err(found.err(
            "client certificates need a truststore: set ssl.truststore.location to the \
             PEM file of the CA that signs them",
        ));
    }
    Ok(settings)
}

fn enabled_protocols(keys: &ListenerKeys<'_>) -> Result<Vec<TlsVersion>, ConfigError> {
    let Some(found) = keys.get("ssl.enabled.protocols") else {
        return Ok(vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    };
    let mut versions = Vec::new();
    for name in list(found.text()) {
        let version = match name.as_str() {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            other => {
                return Err(found.err(format!(
                    "{other} is not supported; gregor speaks TLSv1.2 and TLSv1.3"
                )));
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    if versions.is_empty() {
        return Err(found.err("expected TLSv1.2, TLSv1.3 or both"));
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ConfigError;

    fn validate(file: &str) -> Result<Vec<crate::config::ListenerSettings>, ConfigError> {
        let mut raw = RawConfig::with_defaults();
        raw.merge(RawConfig::from_properties(file, Path::new("server.properties")).unwrap());
        raw.validate_with(&|| "10.1.2.3".to_string())
            .map(|s| s.listeners)
    }

    const TWO_LISTENERS: &str = "listeners=INTERNAL://:9093,EXTERNAL://:9094\n\
         listener.security.protocol.map=INTERNAL:SSL,EXTERNAL:SSL\n\
         ssl.keystore.location=/certs/shared.pem\n";

    #[test]
    fn a_listener_override_wins_key_by_key() {
        let file = format!(
            "{TWO_LISTENERS}\
             ssl.client.auth=required\n\
             ssl.truststore.location=/certs/ca.pem\n\
             listener.name.external.ssl.keystore.location=/certs/external.pem\n\
             listener.name.external.ssl.client.auth=none\n"
        );
        let listeners = validate(&file).unwrap();
        let internal = listeners[0].tls.as_ref().unwrap();
        let external = listeners[1].tls.as_ref().unwrap();
        assert_eq!(
            internal.keystore,
            Keystore::File("/certs/shared.pem".into())
        );
        assert_eq!(internal.client_auth, ClientAuth::Required);
        assert_eq!(
            external.keystore,
            Keystore::File("/certs/external.pem".into())
        );
        assert_eq!(external.client_auth, ClientAuth::None);
        // Not overridden: the bare key applies to both.
        assert_eq!(
            external.truststore,
            Some(Truststore::File("/certs/ca.pem".into()))
        );
        assert_eq!(
            external.enabled_protocols,
            [TlsVersion::Tls12, TlsVersion::Tls13]
        );
        assert!(
            listeners
                .iter()
                .all(|l| l.tls.as_ref().unwrap().principal_mapping_rules.to_string() == "DEFAULT")
        );
    }

    #[test]
    fn jks_and_pkcs12_are_refused_with_what_to_use_instead() {
        let e = validate(&format!("{TWO_LISTENERS}ssl.keystore.type=JKS"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid value \"JKS\" for ssl.keystore.type"),
            "{e}"
        );
        assert!(
            e.contains("use ssl.keystore.type=PEM with ssl.keystore.location"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = validate(&format!(
            "{TWO_LISTENERS}listener.name.external.ssl.truststore.type=PKCS12"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("for listener.name.external.ssl.truststore.type"),
            "{e}"
        );
        assert!(validate(&format!("{TWO_LISTENERS}ssl.keystore.type=pem")).is_ok());
    }

    #[test]
    fn secrets_and_settings_gregor_cannot_honour_are_refused() {
        let refused = |extra: &str, expected: &str| {
            let e = validate(&format!("{TWO_LISTENERS}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{extra}: {e}");
        };
        refused(
            "ssl.key.password=secret",
            "encrypted private keys are not supported",
        );
        let e = validate(&format!("{TWO_LISTENERS}ssl.key.password=secret"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "the password is not shown: {e}");
        refused(
            "ssl.keystore.password=secret",
            "a PEM keystore has no password",
        );
        refused(
            "ssl.client.auth=always",
            "expected required, requested or none",
        );
        refused(
            "ssl.client.auth=requested",
            "client certificates need a truststore",
        );
        refused("ssl.enabled.protocols=TLSv1.1", "TLSv1.1 is not supported");
        refused("ssl.principal.mapping.rules=RULE:x", "invalid rule");
        refused(
            "ssl.keystore.key=-----BEGIN PRIVATE KEY-----",
            "set either ssl.keystore.location or ssl.keystore.certificate.chain",
        );
    }

    #[test]
    fn inline_pem_is_accepted_and_never_printed() {
        let file = "listeners=SSL://:9093\n\
                    ssl.keystore.certificate.chain=CHAIN\n\
                    ssl.keystore.key=SECRET-KEY\n\
                    ssl.truststore.certificates=CA\n";
        let listeners = validate(file).unwrap();
        let tls = listeners[0].tls.as_ref().unwrap();
        assert_eq!(tls.truststore, Some(Truststore::Inline("CA".into())));
        assert!(!format!("{tls:?}").contains("SECRET-KEY"));
        assert!(tls.files().is_empty());
    }

    #[test]
    fn listener_keys_are_known() {
        assert!(is_listener_tls_key(
            "listener.name.external.ssl.keystore.location"
        ));
        assert!(!is_listener_tls_key("listener.name.external.ssl.nonsense"));
        assert!(!is_listener_tls_key("listener.name..ssl.client.auth"));
        assert!(crate::config::is_known_key("ssl.client.auth"));
    }
}
