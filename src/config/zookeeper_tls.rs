//! Kafka's ZooKeeper TLS client keys (`zookeeper.ssl.*`), validated: how a
//! broker (`server.properties`) and the tools (`--zk-tls-config-file`)
//! reach a coordinator that serves `secureClientPort`.
//!
//! - `zookeeper.ssl.client.enable=true` turns TLS on;
//! - `zookeeper.ssl.keystore.location` (`zookeeper.ssl.keystore.type=PEM`):
//!   the key and the certificate chain presented to the coordinator;
//! - `zookeeper.ssl.truststore.location` (`…type=PEM`): the CAs the
//!   coordinator's certificate must chain to;
//! - `zookeeper.ssl.endpoint.identification.algorithm`: `HTTPS` (Kafka's
//!   default) checks the coordinator's certificate names the host dialled;
//!   empty skips that check (the chain is still verified).

use std::path::PathBuf;

use super::ConfigError;
use super::raw::{RawConfig, RawValue};
use super::tls::{Keystore, Truststore};

/// Every `zookeeper.ssl.*` key read (the password keys only to refuse them).
pub const ZOOKEEPER_TLS_KEYS: &[&str] = &[
    "zookeeper.clientCnxnSocket",
    "zookeeper.ssl.client.enable",
    "zookeeper.ssl.endpoint.identification.algorithm",
    "zookeeper.ssl.keystore.location",
    "zookeeper.ssl.keystore.password",
    "zookeeper.ssl.keystore.type",
    "zookeeper.ssl.truststore.location",
    "zookeeper.ssl.truststore.password",
    "zookeeper.ssl.truststore.type",
];

/// How to reach the coordinator (or, in KRaft's shape, the controllers)
/// over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorTlsSettings {
    /// The client certificate; `None` for a coordinator with
    /// `ssl.clientAuth=none`.
    pub keystore: Option<Keystore>,
    /// The CAs the coordinator's certificate must chain to: required, as
    /// a certificate checked against nothing we know is refused.
    pub truststore: Truststore,
    /// Whether the certificate must name the host dialled.
    pub verify_hostname: bool,
}

fn set<'a>(raw: &'a RawConfig, key: &str) -> Option<&'a RawValue> {
    raw.get(key).filter(|v| !v.value.trim().is_empty())
}

/// `None` unless `zookeeper.ssl.client.enable=true`.
pub fn resolve_coordinator_tls(
    raw: &RawConfig,
) -> Result<Option<CoordinatorTlsSettings>, ConfigError> {
    let enabled = match set(raw, "zookeeper.ssl.client.enable") {
        None => false,
        Some(found) => match found.value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError::invalid(
                    "zookeeper.ssl.client.enable",
                    &found.value,
                    &found.from,
                    "expected true or false",
                ));
            }
        },
    };
    if !enabled {
        return Ok(None);
    }
    for key in [
        "zookeeper.ssl.keystore.type",
        "zookeeper.ssl.truststore.type",
    ] {
        if let Some(found) = set(raw, key)
            && !found.value.trim().eq_ignore_ascii_case("PEM")
        {
            return Err(ConfigError::invalid(
                key,
                &found.value,
                &found.from,
                "gregor reads PEM stores only; use PEM files (gregor security init writes them)",
            ));
        }
    }
    for key in [
        "zookeeper.ssl.keystore.password",
        "zookeeper.ssl.truststore.password",
    ] {
        if let Some(found) = set(raw, key) {
            return Err(ConfigError::invalid(
                key,
                "********",
                &found.from,
                "a PEM store has no password; decrypt the key and remove this key",
            ));
        }
    }
    let Some(truststore) = set(raw, "zookeeper.ssl.truststore.location") else {
        let found = set(raw, "zookeeper.ssl.client.enable").cloned();
        let (value, from) = found.map_or((String::new(), super::Source::Default), |f| {
            (f.value, f.from)
        });
        return Err(ConfigError::invalid(
            "zookeeper.ssl.client.enable",
            &value,
            &from,
            "TLS to the coordinator needs zookeeper.ssl.truststore.location: the PEM file of the CA that signed its certificate",
        ));
    };
    let verify_hostname = match raw.get("zookeeper.ssl.endpoint.identification.algorithm") {
        None => true,
        Some(found) => match found.value.trim().to_ascii_uppercase().as_str() {
            "HTTPS" => true,
            "" => false,
            _ => {
                return Err(ConfigError::invalid(
                    "zookeeper.ssl.endpoint.identification.algorithm",
                    &found.value,
                    &found.from,
                    "expected HTTPS, or empty to skip the host name check",
                ));
            }
        },
    };
    Ok(Some(CoordinatorTlsSettings {
        keystore: set(raw, "zookeeper.ssl.keystore.location")
            .map(|found| Keystore::File(PathBuf::from(found.value.trim()))),
        truststore: Truststore::File(PathBuf::from(truststore.value.trim())),
        verify_hostname,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn raw(pairs: &[(&str, &str)]) -> RawConfig {
        let mut raw = RawConfig::new();
        for (key, value) in pairs {
            raw.set(*key, *value, Source::Default);
        }
        raw
    }

    #[test]
    fn off_unless_enabled() {
        let config = raw(&[("zookeeper.ssl.truststore.location", "/ca.pem")]);
        assert_eq!(resolve_coordinator_tls(&config).expect("ok"), None);
    }

    #[test]
    fn kafka_keys_with_pem_stores() {
        let config = raw(&[
            ("zookeeper.ssl.client.enable", "true"),
            ("zookeeper.ssl.keystore.location", "/broker-keystore.pem"),
            ("zookeeper.ssl.keystore.type", "PEM"),
            ("zookeeper.ssl.truststore.location", "/ca.pem"),
            ("zookeeper.ssl.truststore.type", "PEM"),
            ("zookeeper.ssl.endpoint.identification.algorithm", ""),
        ]);
        let settings = resolve_coordinator_tls(&config).expect("ok").expect("on");
        assert_eq!(
            settings.keystore,
            Some(Keystore::File(PathBuf::from("/broker-keystore.pem")))
        );
        assert_eq!(
            settings.truststore,
            Truststore::File(PathBuf::from("/ca.pem"))
        );
        assert!(!settings.verify_hostname);
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("zookeeper.ssl.client.enable", "yes")],
                "zookeeper.ssl.client.enable",
            ),
            (
                &[("zookeeper.ssl.client.enable", "true")],
                "zookeeper.ssl.truststore.location",
            ),
            (
                &[
                    ("zookeeper.ssl.client.enable", "true"),
                    ("zookeeper.ssl.truststore.location", "/t.jks"),
                    ("zookeeper.ssl.truststore.type", "JKS"),
                ],
                "zookeeper.ssl.truststore.type",
            ),
            (
                &[
                    ("zookeeper.ssl.client.enable", "true"),
                    ("zookeeper.ssl.truststore.location", "/ca.pem"),
                    ("zookeeper.ssl.keystore.password", "secret"),
                ],
                "zookeeper.ssl.keystore.password",
            ),
        ];
        for (pairs, key) in cases {
            let error = resolve_coordinator_tls(&raw(pairs))
                .expect_err("invalid")
                .to_string();
            assert!(error.contains(key), "{pairs:?}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
