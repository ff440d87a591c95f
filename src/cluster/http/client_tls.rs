//! TLS to the coordinator's `secureClientPort`, for brokers
//! ([`super::RemoteCoordinator`]) and the tools' `--zookeeper` path: the
//! client certificate from `zookeeper.ssl.keystore.location`, the CAs from
//! `zookeeper.ssl.truststore.location`, and the host name check unless
//! `zookeeper.ssl.endpoint.identification.algorithm` is empty. In KRaft's
//! shape the same client carries raft RPCs and a broker's calls to an SSL
//! controller listener, with that listener's `ssl.*` keys.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::client::WebPkiServerVerifier;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::CoordinatorTlsSettings;
use crate::security::tls::{ChainOnlyVerifier, TlsError, keystore, trusted_roots};

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
        let (roots, source) = trusted_roots(&settings.truststore)?;
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
                .with_custom_certificate_verifier(ChainOnlyVerifier::new(verifier))
        };
        let config = match &settings.keystore {
            Some(store) => {
                let (chain, key) = keystore(store)?;
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

    /// A connector set up elsewhere: the tools' `--command-config` keys
    /// (`security.protocol=SSL` and Kafka's client `ssl.*`).
    pub fn from_connector(connector: TlsConnector) -> Self {
        CoordinatorTls { connector }
    }

    /// The connector itself, for the Kafka-protocol client (a follower's
    /// connection to the leader's inter-broker listener).
    pub fn connector(&self) -> TlsConnector {
        self.connector.clone()
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
