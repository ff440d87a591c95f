//! Who is on the other end of a connection, and what they may do.
//!
//! - `principal`: the authenticated identity (`User:alice`), as Kafka's
//!   `KafkaPrincipal`; `User:ANONYMOUS` until a listener's TLS or SASL
//!   authentication says otherwise;
//! - `protocol`: the four security protocols a listener may use.

pub mod principal;
pub mod protocol;
pub mod sasl;

pub use principal::KafkaPrincipal;
pub use protocol::SecurityProtocol;
