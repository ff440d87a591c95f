//! TLS to the coordinator's `secureClientPort`, for brokers
//! ([`super::RemoteCoordinator`]) and the tools' `--zookeeper` path: the
//! client certificate from `zookeeper.ssl.keystore.location`, the CAs from
//! `zookeeper.ssl.truststore.location`, and the host name check unless
//! `zookeeper.ssl.endpoint.identification.algorithm` is empty.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{CoordinatorTlsSettings, Keystore, Truststore};
use crate::security::tls::{TlsError, keystore, trusted_roots};

/// The cloneable TLS client side of coordinator connections.
#[derive(Clone)]
pub struct CoordinatorTls {
    connector: TlsConnector,
}

impl std::fmt::Debug for CoordinatorTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoordinatorTls")
    }
}

impl CoordinatorTls {
    /// Reads the PEM files named by `settings` (call it before serving, or
    /// off the async workers).
    pub fn new(settings: &CoordinatorTlsSettings) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (roots, source) = trusted_roots(&Truststore::File(settings.truststore.clone()))?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError::BadTruststore {
                    origin: source,
                    reason: e.to_string(),
                })?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::NoCipherSuite(e.to_string()))?;
        let builder = if settings.verify_hostname {
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
        };
        let config = match &settings.keystore {
            Some(path) => {
                let (chain, key) = keystore(&Keystore::File(path.clone()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::KeyMismatch(e.to_string()))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(CoordinatorTls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The handshake on `stream`, to the host of `address` (`host:port`).
    pub async fn connect<S>(&self, address: &str, stream: S) -> std::io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let host = host_of(address);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{host} is not a host name: {e}"),
            )
        })?;
        self.connector.connect(name, stream).await
    }
}

/// `host` of `host:port` and `[::1]:port`.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The chain must lead to a trusted CA; the names in it are not checked
/// (`zookeeper.ssl.endpoint.identification.algorithm=`, as Kafka allows).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_what_comes_before_the_port() {
        assert_eq!(host_of("coordinator:2182"), "coordinator");
        assert_eq!(host_of("127.0.0.1:2182"), "127.0.0.1");
        assert_eq!(host_of("[::1]:2182"), "::1");
    }
}
