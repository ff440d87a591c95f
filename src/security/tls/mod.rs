//! TLS listeners: the rustls server config of each (`server_config`), the
//! handshake with a deadline and the principal it yields (here), the
//! subject of a client certificate as Java prints it (`dn`), Kafka's
//! `ssl.principal.mapping.rules` (`mapping`), and re-reading certificates
//! without a restart (`reload`).

mod dn;
mod mapping;
mod reload;
mod server_config;
mod verifier;

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

pub use dn::{SubjectError, subject_of};
pub use mapping::{MappingRuleError, PrincipalMappingRules};
pub use reload::{TlsReloader, reload_on_change};
pub use server_config::{Identity, TlsError, build_server_config, keystore, trusted_roots};
pub use verifier::ChainOnlyVerifier;

use super::KafkaPrincipal;
use crate::config::TlsSettings;

/// Why a TLS connection was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake not done within {0:?} (gregor.request.receive.timeout.ms)")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error("no ssl.principal.mapping.rules rule applies to {subject} (rules: {rules})")]
    NoRuleApplies { subject: String, rules: String },
}

impl HandshakeError {
    /// Whether the client closed the connection without starting a
    /// handshake.
    pub fn is_silent_close(&self) -> bool {
        matches!(self, HandshakeError::Failed(error) if error.kind() == std::io::ErrorKind::UnexpectedEof)
    }
}

/// The cloneable front of one TLS listener: accepts connections with the
/// listener's current config (which reloads replace).
#[derive(Debug, Clone)]
pub struct TlsAcceptorHandle {
    config: watch::Receiver<Arc<ServerConfig>>,
    rules: PrincipalMappingRules,
}

impl TlsAcceptorHandle {
    /// Builds the listener's config (reading its files: call it before the
    /// runtime serves anything, or off the workers) and the reloader that
    /// replaces it.
    pub fn start(listener: &str, settings: &TlsSettings) -> Result<(Self, TlsReloader), TlsError> {
        let config = build_server_config(settings)?;
        let (sender, receiver) = watch::channel(config);
        let handle = TlsAcceptorHandle {
            config: receiver,
            rules: settings.principal_mapping_rules.clone(),
        };
        Ok((handle, TlsReloader::new(listener, settings.clone(), sender)))
    }

    /// The TLS handshake on `stream`, within `deadline`, and the principal
    /// the client's certificate maps to (`User:ANONYMOUS` without one).
    pub async fn accept<S>(
        &self,
        stream: S,
        deadline: Duration,
    ) -> Result<(TlsStream<S>, KafkaPrincipal), HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.borrow().clone());
        let stream = tokio::time::timeout(deadline, acceptor.accept(stream))
            .await
            .map_err(|_| HandshakeError::Timeout(deadline))?
            .map_err(HandshakeError::Failed)?;
        let principal = match stream.get_ref().1.peer_certificates() {
            Some([certificate, ..]) => self.principal(certificate)?,
            _ => KafkaPrincipal::anonymous(),
        };
        Ok((stream, principal))
    }

    fn principal(&self, certificate: &[u8]) -> Result<KafkaPrincipal, HandshakeError> {
        let subject = subject_of(certificate)?;
        match self.rules.apply(&subject) {
            Some(name) => Ok(KafkaPrincipal::user(name)),
            None => Err(HandshakeError::NoRuleApplies {
                subject,
                rules: self.rules.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
