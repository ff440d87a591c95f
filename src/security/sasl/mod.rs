//! SASL authentication (KIP-43, KIP-152, KIP-368): the per-connection
//! exchange as a pure state machine — request bodies in, response bodies
//! and a [`Verdict`] out — which the connection reader drives.
//!
//! - [`session`]: [`SaslSession`], what a connection may do before, during
//!   and after authenticating;
//! - [`plain`]: PLAIN (RFC 4616) against the users of the listener's JAAS
//!   line ([`jaas`]);
//! - [`scram`]: SCRAM-SHA-256/512 against the credentials in the metadata
//!   log;
//! - [`scram_client`]: the client side of SCRAM, for gregor's own tools.

pub mod base64;
pub mod jaas;
pub mod plain;
pub mod scram;
pub mod scram_client;
pub mod session;

use std::fmt;

pub use scram::{ScramCredential, ScramMechanism};
pub use session::{Credentials, SaslSession, Verdict};

/// A SASL mechanism gregor serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Scram(ScramMechanism::Sha512),
    ];

    /// Kafka's (IANA's) name; case matters, as in Kafka.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(scram) => scram.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fresh SCRAM server nonce: 18 random bytes, base64 (no `,`).
pub fn server_nonce() -> String {
    base64::encode(&random_bytes::<18>())
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without an OS random source nothing secure can be done; every
    // supported platform has one.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}
