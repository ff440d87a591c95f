//! The tools' client-side security, configured as Kafka's tools are: the
//! `security.protocol`, `ssl.*` and `sasl.*` keys of `--command-config`,
//! `--producer.config`/`--producer-property` or
//! `--consumer.config`/`--consumer-property`. Raw properties in,
//! [`ClientSecurity`] (a TLS connector and a SASL login) out.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsConnector;

use crate::security::sasl::Mechanism;
use crate::security::sasl::jaas::JaasModule;
use crate::security::tls::ChainOnlyVerifier;

/// A configuration the tools cannot use; each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientSecurityError {
    #[error("security.protocol={0} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")]
    UnknownProtocol(String),
    #[error(
        "{key}={value} is not supported: gregor's tools read PEM stores only; \
         convert the store to PEM and set {key}=PEM"
    )]
    NotPem { key: &'static str, value: String },
    #[error("{key}: cannot read {path}: {reason}")]
    Unreadable {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("{key}: {reason}")]
    BadPem { key: &'static str, reason: String },
    #[error(
        "security.protocol={0} needs a truststore: set ssl.truststore.location (PEM) or ssl.truststore.certificates"
    )]
    NoTruststore(String),
    #[error("ssl.endpoint.identification.algorithm={0} is not https or empty")]
    UnknownEndpointIdentification(String),
    #[error(
        "sasl.mechanism={0} is not supported by gregor's tools: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )]
    UnsupportedMechanism(String),
    #[error("sasl.jaas.config: {0}")]
    BadJaas(String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// The SASL login a connection performs after ApiVersions.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "SaslLogin({} as {})", self.mechanism, self.username)
    }
}

/// How the tools connect: TLS or not, SASL or not.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    pub tls: Option<TlsConnector>,
    pub sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ClientSecurity {
    /// PLAINTEXT: no TLS, no SASL.
    pub fn plaintext() -> Self {
        ClientSecurity::default()
    }

    /// Reads Kafka's client keys from a tool's properties; other keys are
    /// left to the tool.
    pub fn from_properties(
        properties: &BTreeMap<String, String>,
    ) -> Result<Self, ClientSecurityError> {
        let get = |key: &str| properties.get(key).map(|v| v.trim()).unwrap_or_default();
        let protocol = match get("security.protocol") {
            "" => "PLAINTEXT".to_string(),
            other => other.to_ascii_uppercase(),
        };
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            _ => return Err(ClientSecurityError::UnknownProtocol(protocol)),
        };
        Ok(ClientSecurity {
            tls: if tls {
                Some(tls_connector(properties, &protocol)?)
            } else {
                None
            },
            sasl: if sasl {
                Some(sasl_login(properties)?)
            } else {
                None
            },
        })
    }
}

fn sasl_login(properties: &BTreeMap<String, String>) -> Result<SaslLogin, ClientSecurityError> {
    // GSSAPI is Kafka's default mechanism; gregor has no Kerberos.
    let name = properties
        .get("sasl.mechanism")
        .map(|m| m.trim())
        .unwrap_or("GSSAPI");
    let mechanism = Mechanism::from_name(name)
        .ok_or_else(|| ClientSecurityError::UnsupportedMechanism(name.to_string()))?;
    let jaas = properties.get("sasl.jaas.config").ok_or_else(|| {
        ClientSecurityError::BadJaas("missing (it carries the username and password)".into())
    })?;
    let module =
        JaasModule::parse(jaas).map_err(|e| ClientSecurityError::BadJaas(e.to_string()))?;
    let expected = match mechanism {
        Mechanism::Plain => "PlainLoginModule",
        Mechanism::Scram(_) => "ScramLoginModule",
    };
    if !module.class.ends_with(expected) {
        return Err(ClientSecurityError::BadJaas(format!(
            "{} does not log in with {mechanism}: use {expected}",
            module.class
        )));
    }
    let option =
        |key: &str| {
            module.options.get(key).cloned().ok_or_else(|| {
                ClientSecurityError::BadJaas(format!("{} has no {key}", module.class))
            })
        };
    Ok(SaslLogin {
        mechanism,
        username: option("username")?,
        password: option("password")?,
    })
}

/// PEM from `{prefix}.location` (after checking `{prefix}.type`) or from
/// the inline key `inline`; `None` when neither is set.
fn pem_store(
    properties: &BTreeMap<String, String>,
    type_key: &'static str,
    location_key: &'static str,
    inline_key: &'static str,
) -> Result<Option<(Vec<u8>, &'static str)>, ClientSecurityError> {
    let store_type = properties
        .get(type_key)
        .map(|t| t.trim().to_ascii_uppercase());
    if let Some(kind) = &store_type
        && kind != "PEM"
    {
        return Err(ClientSecurityError::NotPem {
            key: type_key,
            value: kind.clone(),
        });
    }
    if let Some(text) = properties.get(inline_key).filter(|t| !t.trim().is_empty()) {
        return Ok(Some((text.replace("\\n", "\n").into_bytes(), inline_key)));
    }
    let Some(path) = properties
        .get(location_key)
        .filter(|p| !p.trim().is_empty())
    else {
        return Ok(None);
    };
    let bytes =
        std::fs::read(Path::new(path.trim())).map_err(|e| ClientSecurityError::Unreadable {
            key: location_key,
            path: path.clone(),
            reason: e.to_string(),
        })?;
    // Without ssl.*.type Kafka assumes JKS: a binary store is refused the
    // same way as a declared one.
    if store_type.is_none() && !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        return Err(ClientSecurityError::NotPem {
            key: type_key,
            value: "JKS".to_string(),
        });
    }
    Ok(Some((bytes, location_key)))
}

fn tls_connector(
    properties: &BTreeMap<String, String>,
    protocol: &str,
) -> Result<TlsConnector, ClientSecurityError> {
    let bad_pem = |key: &'static str, reason: String| ClientSecurityError::BadPem { key, reason };
    let (trust, trust_key) = pem_store(
        properties,
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.certificates",
    )?
    .ok_or_else(|| ClientSecurityError::NoTruststore(protocol.to_string()))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&trust) {
        let certificate = certificate.map_err(|e| bad_pem(trust_key, e.to_string()))?;
        roots
            .add(certificate)
            .map_err(|e| bad_pem(trust_key, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad_pem(trust_key, "no certificate in it".into()));
    }
    let check_host = match properties
        .get("ssl.endpoint.identification.algorithm")
        .map(|a| a.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("https") => true,
        Some("") => false,
        Some(other) => {
            return Err(ClientSecurityError::UnknownEndpointIdentification(
                other.to_string(),
            ));
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = |e: rustls::Error| ClientSecurityError::Tls(e.to_string());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ClientSecurityError::Tls(e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?;
    let builder = if check_host {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(ChainOnlyVerifier::new(verifier))
    };
    let keystore = pem_store(
        properties,
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.keystore.certificate.chain",
    )?;
    let config = match keystore {
        None => builder.with_no_client_auth(),
        Some((pem, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad_pem(key, e.to_string()))?;
            // The private key sits in the keystore file, or inline in
            // ssl.keystore.key beside an inline chain.
            let key_pem = match properties.get("ssl.keystore.key") {
                Some(text) if key == "ssl.keystore.certificate.chain" => {
                    text.replace("\\n", "\n").into_bytes()
                }
                _ => pem.clone(),
            };
            let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| bad_pem(key, format!("no usable private key: {e}")))?;
            if chain.is_empty() {
                return Err(bad_pem(key, "no certificate in it".into()));
            }
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(tls)?
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plaintext_is_the_default() {
        let security = ClientSecurity::from_properties(&props(&[("acks", "all")])).unwrap();
        assert!(security.tls.is_none() && security.sasl.is_none());
    }

    #[test]
    fn scram_login_comes_from_the_jaas_line() {
        let security = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"s3cret\";",
            ),
        ]))
        .unwrap();
        let login = security.sasl.unwrap();
        assert_eq!(login.mechanism.name(), "SCRAM-SHA-512");
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("admin", "s3cret")
        );
        assert!(!format!("{login:?}").contains("s3cret"));
    }

    #[test]
    fn unusable_settings_name_their_key() {
        let sasl = |pairs: &[(&str, &str)]| {
            let mut all = props(&[("security.protocol", "SASL_PLAINTEXT")]);
            all.extend(props(pairs));
            ClientSecurity::from_properties(&all)
                .unwrap_err()
                .to_string()
        };
        assert!(sasl(&[]).contains("sasl.mechanism=GSSAPI"));
        assert!(sasl(&[("sasl.mechanism", "PLAIN")]).contains("sasl.jaas.config"));
        let wrong_module = sasl(&[
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                "a.ScramLoginModule required username=u password=p;",
            ),
        ]);
        assert!(wrong_module.contains("PlainLoginModule"), "{wrong_module}");
        let error =
            ClientSecurity::from_properties(&props(&[("security.protocol", "TLS")])).unwrap_err();
        assert!(error.to_string().contains("security.protocol=TLS"));
    }

    #[test]
    fn jks_stores_are_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("truststore.jks");
        std::fs::write(&store, [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]).unwrap();
        let location = store.display().to_string();
        for pairs in [
            vec![("ssl.truststore.type", "JKS")],
            vec![("ssl.truststore.location", location.as_str())],
        ] {
            let mut all = props(&[("security.protocol", "SSL")]);
            all.extend(props(&pairs));
            let error = ClientSecurity::from_properties(&all)
                .unwrap_err()
                .to_string();
            assert!(error.contains("PEM"), "{error}");
            assert!(!error.contains('\n'));
        }
    }

    #[test]
    fn ssl_without_a_truststore_says_so() {
        let error =
            ClientSecurity::from_properties(&props(&[("security.protocol", "SSL")])).unwrap_err();
        assert!(matches!(error, ClientSecurityError::NoTruststore(_)));
    }
}
