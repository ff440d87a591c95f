//! How a follower reaches a leader: the inter-broker listener's name
//! (looked up among the leader's registered listeners) and the client side
//! of its security, TLS and SASL as `config::InterBrokerSettings` says.

use crate::cli::client_security::{ClientSecurity, SaslLogin};
use crate::cluster::MetadataImage;
use crate::cluster::http::CoordinatorTls;
use crate::config::InterBrokerSettings;
use crate::security::SecurityProtocol;
use crate::security::tls::TlsError;

use super::state::BrokerId;

/// The inter-broker listener and this broker's client security there.
#[derive(Clone, Debug, Default)]
pub struct InterBrokerClient {
    /// `None`: no listener is configured; the leader's first PLAINTEXT
    /// listener is used, as before listeners could be secured.
    listener: Option<String>,
    security: ClientSecurity,
}

impl InterBrokerClient {
    /// Reads the truststore and keystore the settings name: call it at
    /// start, so that a bad file stops the broker with its name.
    pub fn new(settings: Option<&InterBrokerSettings>) -> Result<Self, TlsError> {
        let Some(settings) = settings else {
            return Ok(InterBrokerClient::default());
        };
        let tls = match &settings.tls {
            Some(tls) => Some(CoordinatorTls::new(tls)?.connector()),
            None => None,
        };
        let sasl = settings.sasl.as_ref().map(|login| SaslLogin {
            mechanism: login.mechanism,
            username: login.username.clone(),
            password: login.password.0.clone(),
        });
        Ok(InterBrokerClient {
            listener: Some(settings.listener.clone()),
            security: ClientSecurity { tls, sasl },
        })
    }

    pub fn security(&self) -> &ClientSecurity {
        &self.security
    }

    pub fn listener_name(&self) -> Option<&str> {
        self.listener.as_deref()
    }

    /// `host:port` of `broker`'s inter-broker listener, as it registered it.
    pub fn address(&self, image: &MetadataImage, broker: BrokerId) -> Option<String> {
        let broker = image.broker(broker)?;
        let listener = match &self.listener {
            Some(name) => broker.listeners.iter().find(|l| &l.name == name),
            None => broker
                .listeners
                .iter()
                .find(|l| l.security_protocol == SecurityProtocol::Plaintext),
        }?;
        Some(format!("{}:{}", listener.host, listener.port))
    }
}
