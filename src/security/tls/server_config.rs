//! A TLS listener's rustls `ServerConfig`, built from its settings: the
//! broker's certificate chain and key, the CAs client certificates are
//! checked against, `ssl.client.auth`, the enabled protocols and suites.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, Keystore, TlsSettings, TlsVersion, Truststore};

/// Why a TLS listener's certificates could not be used. `origin` names the
/// file or key the problem is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {origin}: {reason}")]
    Unreadable { origin: String, reason: String },
    #[error("{origin} holds no PEM certificate")]
    NoCertificate { origin: String },
    #[error("{origin} holds no PEM private key")]
    NoPrivateKey { origin: String },
    #[error(
        "{origin} holds an encrypted private key, which gregor cannot read; decrypt it (openssl pkey -in key.pem -out plain.pem)"
    )]
    EncryptedKey { origin: String },
    #[error("{origin} is not valid PEM: {reason}")]
    BadPem { origin: String, reason: String },
    #[error("{origin}: no usable CA certificate: {reason}")]
    BadTruststore { origin: String, reason: String },
    #[error("the certificate chain and private key cannot be used together: {0}")]
    KeyMismatch(String),
    #[error("ssl.cipher.suites: none of {0} is supported for the enabled protocols")]
    NoCipherSuite(String),
}

/// Builds the config new connections of a listener are accepted with.
/// Reads files: call it off the async workers.
pub fn build_server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider(settings)?);
    let versions: Vec<&'static SupportedProtocolVersion> = settings
        .enabled_protocols
        .iter()
        .map(|version| match version {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        // As the JVM does, a version none of the chosen suites serves is
        // not offered (TLS 1.3 suites alone make a TLS 1.3-only listener).
        .filter(|version| {
            provider
                .cipher_suites
                .iter()
                .any(|suite| suite.version() == *version)
        })
        .collect();
    if versions.is_empty() {
        return Err(TlsError::NoCipherSuite(settings.cipher_suites.join(",")));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            TlsError::NoCipherSuite(format!("{} ({e})", settings.cipher_suites.join(",")))
        })?;
    let builder = match (&settings.truststore, settings.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(truststore), client_auth) => {
            let (roots, source) = trusted_roots(truststore)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match client_auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier.build().map_err(|e| TlsError::BadTruststore {
                origin: source,
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let (chain, key) = keystore(&settings.keystore)?;
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::KeyMismatch(e.to_string()))?;
    Ok(Arc::new(config))
}

/// ring's provider, limited to `ssl.cipher.suites` when it is set. Java
/// and rustls both use the IANA names (`TLS_AES_128_GCM_SHA256`); names
/// rustls does not know are skipped, as the JVM skips unsupported ones.
fn provider(settings: &TlsSettings) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if settings.cipher_suites.is_empty() {
        return Ok(provider);
    }
    provider
        .cipher_suites
        .retain(|suite| settings.cipher_suites.contains(&iana_name(suite)));
    for wanted in &settings.cipher_suites {
        let known = provider
            .cipher_suites
            .iter()
            .any(|suite| iana_name(suite) == *wanted);
        if !known {
            tracing::debug!(suite = %wanted, "ssl.cipher.suites: suite not supported, skipped");
        }
    }
    if provider.cipher_suites.is_empty() {
        return Err(TlsError::NoCipherSuite(settings.cipher_suites.join(",")));
    }
    Ok(provider)
}

/// A suite's IANA name, as Java spells it; rustls prefixes TLS 1.3 suites
/// with `TLS13_` where IANA has `TLS_`.
pub(super) fn iana_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// PEM text and the name of where it came from, for messages.
fn read_pem(path: &Path) -> Result<(Vec<u8>, String), TlsError> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| TlsError::Unreadable {
        origin: source.clone(),
        reason: e.to_string(),
    })?;
    Ok((bytes, source))
}

fn certificates(pem: &[u8], source: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            origin: source.to_string(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: source.to_string(),
        });
    }
    Ok(chain)
}

fn private_key(pem: &[u8], source: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::EncryptedKey {
            origin: source.to_string(),
        });
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            origin: source.to_string(),
        },
        e => TlsError::BadPem {
            origin: source.to_string(),
            reason: e.to_string(),
        },
    })
}

/// A certificate chain and its private key.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Reads a keystore (also the coordinator client's).
pub fn keystore(keystore: &Keystore) -> Result<Identity, TlsError> {
    match keystore {
        Keystore::File(path) => {
            let (pem, source) = read_pem(path)?;
            Ok((certificates(&pem, &source)?, private_key(&pem, &source)?))
        }
        Keystore::Inline {
            certificate_chain,
            key,
        } => Ok((
            certificates(
                certificate_chain.as_bytes(),
                "ssl.keystore.certificate.chain",
            )?,
            private_key(key.as_bytes(), "ssl.keystore.key")?,
        )),
    }
}

/// Reads a truststore and names where it came from (also the coordinator
/// client's).
pub fn trusted_roots(truststore: &Truststore) -> Result<(RootCertStore, String), TlsError> {
    let (pem, source) = match truststore {
        Truststore::File(path) => read_pem(path)?,
        Truststore::Inline(text) => (
            text.clone().into_bytes(),
            "ssl.truststore.certificates".to_string(),
        ),
    };
    let mut roots = RootCertStore::empty();
    for certificate in certificates(&pem, &source)? {
        roots
            .add(certificate)
            .map_err(|e| TlsError::BadTruststore {
                origin: source.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok((roots, source))
}
