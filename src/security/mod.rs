//! Who is on the other end of a connection, and what they may do.
//!
//! - `principal`: the authenticated identity (`User:alice`), as Kafka's
//!   `KafkaPrincipal`; `User:ANONYMOUS` until a listener's TLS or SASL
//!   authentication says otherwise;
//! - `protocol`: the four security protocols a listener may use;
//! - `acl`: ACL bindings and the authorizer deciding with them;
//! - `tls`: TLS listeners (certificates, handshake, principal mapping);
//! - `sasl`: the SASL exchange (PLAIN, SCRAM) of a SASL listener's connections.

pub mod acl;
pub mod principal;
pub mod protocol;
pub mod sasl;
pub mod tls;

pub use principal::KafkaPrincipal;
pub use protocol::SecurityProtocol;

use std::net::SocketAddr;

/// Logs one warning when `address` is reachable from other machines and
/// whoever connects there is not authenticated: the exposed-server
/// walkthrough opens only authenticated listeners, and this line names the
/// port that is open to anyone.
pub fn warn_if_exposed_without_authentication(what: &str, address: SocketAddr) {
    if !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "{what} on port {} accepts unauthenticated connections from other machines \
             (see the README's Security section)",
            address.port()
        );
    }
}
