//! One connection's SASL state, as Kafka's `SaslServerAuthenticator` keeps
//! it: handshake, then the mechanism's exchange, then authenticated until
//! the session expires (KIP-368), with re-authentication on the same
//! connection.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

use super::scram::{ClientFirst, ScramExchange, ScramMechanism};
use super::{Mechanism, ScramCredential, plain, random_bytes, server_nonce};
use crate::security::KafkaPrincipal;

/// Where the users come from: the listener's PLAIN users and the SCRAM
/// credentials of the metadata log.
pub trait Credentials {
    fn plain_password(&self, user: &str) -> Option<String>;
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

/// What the connection does after a SASL request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// The client (re-)authenticated as this principal.
    Authenticated(KafkaPrincipal),
    /// Authentication failed: answer after
    /// `connection.failed.authentication.delay.ms`, then close.
    Failed(Failure),
    /// A request out of order: answer, then close.
    Close,
}

/// A failed authentication, for the broker's log (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub mechanism: Option<Mechanism>,
    pub user: Option<String>,
    /// What went wrong, in more detail than the client is told.
    pub reason: String,
}

/// What the connection may do with the request that just arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// An ordinary request: serve it.
    Serve,
    /// SaslHandshake or SaslAuthenticate: hand it to the session.
    Sasl,
    /// Close the connection without an answer; the reason is for the log.
    Close(String),
}

#[derive(Debug)]
enum State {
    Handshake,
    Authenticating {
        mechanism: Mechanism,
        /// After SaslHandshake v0, tokens come as bare size-prefixed
        /// frames instead of SaslAuthenticate requests.
        raw_tokens: bool,
        scram: Option<Box<ScramExchange>>,
    },
    Authenticated,
    Failed,
}

#[derive(Debug)]
pub struct SaslSession {
    enabled: Vec<Mechanism>,
    max_reauth: Option<Duration>,
    state: State,
    /// Set once the client authenticated; kept while it re-authenticates.
    principal: Option<KafkaPrincipal>,
    expires: Option<Instant>,
}

impl SaslSession {
    /// A session on a listener with these mechanisms and
    /// `connections.max.reauth.ms`.
    pub fn new(enabled: Vec<Mechanism>, max_reauth: Option<Duration>) -> Self {
        SaslSession {
            enabled,
            max_reauth,
            state: State::Handshake,
            principal: None,
            expires: None,
        }
    }

    /// Whether the next frame is a bare token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            self.state,
            State::Authenticating {
                raw_tokens: true,
                ..
            }
        )
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }

    /// Decides what to do with a request of `api_key` (`None`: a key
    /// gregor does not know).
    pub fn gate(&self, api_key: Option<ApiKey>, now: Instant) -> Gate {
        let sasl = matches!(
            api_key,
            Some(ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
        );
        let name = api_key.map_or_else(|| "unknown".to_string(), |k| format!("{k:?}"));
        match &self.state {
            State::Handshake if api_key == Some(ApiKey::ApiVersions) => Gate::Serve,
            State::Handshake if api_key == Some(ApiKey::SaslHandshake) => Gate::Sasl,
            State::Handshake => Gate::Close(format!(
                "Unexpected Kafka request of type {name} during SASL handshake"
            )),
            State::Authenticating { .. } if sasl => Gate::Sasl,
            // Requests already under way when re-authentication began go on.
            State::Authenticating { .. } if self.principal.is_some() && !self.expired(now) => {
                Gate::Serve
            }
            State::Authenticating { .. } => Gate::Close(format!(
                "Unexpected Kafka request of type {name} during SASL authentication"
            )),
            State::Authenticated if sasl => Gate::Sasl,
            State::Authenticated if self.expired(now) => Gate::Close(
                "the SASL session expired (connections.max.reauth.ms) and the client did not re-authenticate"
                    .to_string(),
            ),
            State::Authenticated => Gate::Serve,
            State::Failed => Gate::Close("authentication failed".to_string()),
        }
    }

    fn mechanism_names(&self) -> Vec<StrBytes> {
        self.enabled
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect()
    }

    /// Answers SaslHandshake (`version` 0 or 1) for `mechanism`.
    pub fn handshake(&mut self, version: i16, mechanism: &str) -> (SaslHandshakeResponse, Verdict) {
        let response = SaslHandshakeResponse::default().with_mechanisms(self.mechanism_names());
        let reauthenticating = matches!(self.state, State::Authenticated) && version >= 1;
        if !matches!(self.state, State::Handshake) && !reauthenticating {
            let code = ResponseError::IllegalSaslState.code();
            return (response.with_error_code(code), Verdict::Close);
        }
        let Some(chosen) = Mechanism::from_name(mechanism).filter(|m| self.enabled.contains(m))
        else {
            self.state = State::Failed;
            let failure = Failure {
                mechanism: None,
                user: None,
                reason: format!("unsupported SASL mechanism {mechanism:?}"),
            };
            let code = ResponseError::UnsupportedSaslMechanism.code();
            return (response.with_error_code(code), Verdict::Failed(failure));
        };
        self.state = State::Authenticating {
            mechanism: chosen,
            raw_tokens: version == 0,
            scram: None,
        };
        (response, Verdict::Continue)
    }

    /// Answers SaslAuthenticate (or, after a v0 handshake, a bare token).
    pub fn authenticate(
        &mut self,
        token: &[u8],
        credentials: &dyn Credentials,
        now: Instant,
    ) -> (SaslAuthenticateResponse, Verdict) {
        let response = SaslAuthenticateResponse::default();
        let State::Authenticating {
            mechanism,
            raw_tokens,
            scram,
        } = &mut self.state
        else {
            let message = "SaslAuthenticate request received out of order";
            let response = response
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(message)));
            return (response, Verdict::Close);
        };
        let (mechanism, raw_tokens) = (*mechanism, *raw_tokens);
        let step = match (mechanism, scram.take()) {
            (Mechanism::Plain, _) => {
                match plain::authenticate(token, |user| credentials.plain_password(user)) {
                    Ok(user) => Ok((user, Vec::new())),
                    Err(error) => {
                        Err((plain::username(token), error.to_string(), error.to_string()))
                    }
                }
            }
            (Mechanism::Scram(scram_mechanism), None) => match ClientFirst::parse(token) {
                Ok(first) => {
                    let credential = credentials.scram_credential(&first.username, scram_mechanism);
                    let decoy = decoy(&first.username, scram_mechanism);
                    let exchange = ScramExchange::start(
                        scram_mechanism,
                        first,
                        credential,
                        decoy,
                        &server_nonce(),
                    );
                    let challenge = Bytes::copy_from_slice(exchange.server_first());
                    self.state = State::Authenticating {
                        mechanism,
                        raw_tokens,
                        scram: Some(Box::new(exchange)),
                    };
                    return (response.with_auth_bytes(challenge), Verdict::Continue);
                }
                Err(error) => Err((None, scram_failure_message(mechanism), error.to_string())),
            },
            (Mechanism::Scram(_), Some(exchange)) => match exchange.finish(token) {
                Ok(last) => Ok((exchange.username().to_string(), last)),
                Err(error) => Err((
                    Some(exchange.username().to_string()),
                    scram_failure_message(mechanism),
                    error.to_string(),
                )),
            },
        };
        match step {
            Ok((user, last)) => self.succeed(mechanism, user, last, response, now),
            Err((user, message, reason)) => {
                self.state = State::Failed;
                let response = response
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(message)));
                let failure = Failure {
                    mechanism: Some(mechanism),
                    user,
                    reason,
                };
                (response, Verdict::Failed(failure))
            }
        }
    }

    fn succeed(
        &mut self,
        mechanism: Mechanism,
        user: String,
        last: Vec<u8>,
        response: SaslAuthenticateResponse,
        now: Instant,
    ) -> (SaslAuthenticateResponse, Verdict) {
        let principal = KafkaPrincipal::user(user);
        if let Some(previous) = &self.principal
            && *previous != principal
        {
            self.state = State::Failed;
            let message = format!(
                "Cannot change principals during re-authentication from {previous}: {principal}"
            );
            let failure = Failure {
                mechanism: Some(mechanism),
                user: Some(principal.name.clone()),
                reason: message.clone(),
            };
            let response = response
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)));
            return (response, Verdict::Failed(failure));
        }
        self.state = State::Authenticated;
        self.principal = Some(principal.clone());
        self.expires = self.max_reauth.map(|lifetime| now + lifetime);
        let lifetime_ms = self
            .max_reauth
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let response = response
            .with_auth_bytes(Bytes::from(last))
            .with_session_lifetime_ms(lifetime_ms);
        (response, Verdict::Authenticated(principal))
    }
}

/// Kafka's message for a failed SCRAM exchange (`SaslServerAuthenticator`).
fn scram_failure_message(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    )
}

/// The salt and iterations shown for a user without a credential: the
/// same for the same user while the broker runs, so that asking twice does
/// not tell a made-up user from a real one.
fn decoy(user: &str, mechanism: ScramMechanism) -> (Vec<u8>, i32) {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(random_bytes::<32>);
    let mut salt = mechanism.hmac(key, user.as_bytes());
    salt.truncate(16);
    (salt, ScramMechanism::MIN_ITERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sasl::base64;

    struct Users;

    impl Credentials for Users {
        fn plain_password(&self, user: &str) -> Option<String> {
            (user == "alice").then(|| "alice-secret".to_string())
        }
        fn scram_credential(
            &self,
            user: &str,
            mechanism: ScramMechanism,
        ) -> Option<ScramCredential> {
            (user == "alice")
                .then(|| ScramCredential::from_password(mechanism, "alice-secret", b"salt", 4096))
        }
    }

    fn session() -> SaslSession {
        SaslSession::new(Mechanism::ALL.to_vec(), Some(Duration::from_secs(60)))
    }

    #[test]
    fn only_api_versions_and_handshake_come_before_authentication() {
        let now = Instant::now();
        let session = session();
        assert_eq!(session.gate(Some(ApiKey::ApiVersions), now), Gate::Serve);
        assert_eq!(session.gate(Some(ApiKey::SaslHandshake), now), Gate::Sasl);
        assert!(matches!(
            session.gate(Some(ApiKey::Metadata), now),
            Gate::Close(_)
        ));
        assert!(matches!(
            session.gate(Some(ApiKey::SaslAuthenticate), now),
            Gate::Close(_)
        ));
    }

    #[test]
    fn plain_authenticates_and_the_session_expires() {
        let now = Instant::now();
        let mut session = session();
        let (response, verdict) = session.handshake(1, "PLAIN");
        assert_eq!((response.error_code, verdict), (0, Verdict::Continue));
        assert!(matches!(
            session.gate(Some(ApiKey::Metadata), now),
            Gate::Close(_)
        ));
        let (response, verdict) = session.authenticate(b"\0alice\0alice-secret", &Users, now);
        assert_eq!(response.error_code, 0);
        assert_eq!(response.session_lifetime_ms, 60_000);
        assert_eq!(
            verdict,
            Verdict::Authenticated(KafkaPrincipal::user("alice"))
        );
        assert_eq!(session.gate(Some(ApiKey::Metadata), now), Gate::Serve);
        let later = now + Duration::from_secs(61);
        assert!(matches!(
            session.gate(Some(ApiKey::Metadata), later),
            Gate::Close(_)
        ));
        // Re-authentication renews the session.
        assert_eq!(session.gate(Some(ApiKey::SaslHandshake), later), Gate::Sasl);
        assert_eq!(session.handshake(1, "PLAIN").1, Verdict::Continue);
        let (_, verdict) = session.authenticate(b"\0alice\0alice-secret", &Users, later);
        assert!(matches!(verdict, Verdict::Authenticated(_)));
        assert_eq!(session.gate(Some(ApiKey::Metadata), later), Gate::Serve);
    }

    #[test]
    fn wrong_password_fails_with_kafkas_message() {
        let mut session = session();
        session.handshake(1, "PLAIN");
        let (response, verdict) = session.authenticate(b"\0alice\0nope", &Users, Instant::now());
        assert_eq!(response.error_code, 58);
        assert_eq!(
            response.error_message.as_deref(),
            Some("Authentication failed: Invalid username or password")
        );
        let Verdict::Failed(failure) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(failure.user.as_deref(), Some("alice"));
        assert!(!failure.reason.contains("nope"));
    }

    #[test]
    fn unsupported_mechanism_lists_the_enabled_ones() {
        let mut session = SaslSession::new(vec![Mechanism::Plain], None);
        let (response, verdict) = session.handshake(1, "SCRAM-SHA-256");
        assert_eq!(response.error_code, 33);
        assert_eq!(
            response.mechanisms,
            vec![StrBytes::from_static_str("PLAIN")]
        );
        assert!(matches!(verdict, Verdict::Failed(_)));
    }

    #[test]
    fn out_of_order_requests_are_illegal_sasl_state() {
        let mut session = session();
        let (response, verdict) = session.authenticate(b"x", &Users, Instant::now());
        assert_eq!((response.error_code, verdict), (34, Verdict::Close));
        session.handshake(1, "PLAIN");
        let (response, verdict) = session.handshake(1, "PLAIN");
        assert_eq!((response.error_code, verdict), (34, Verdict::Close));
    }

    #[test]
    fn v0_handshake_switches_to_raw_tokens() {
        let mut session = session();
        session.handshake(0, "PLAIN");
        assert!(session.expects_raw_token());
        session.authenticate(b"\0alice\0alice-secret", &Users, Instant::now());
        assert!(!session.expects_raw_token());
    }

    #[test]
    fn scram_exchange_runs_to_the_server_signature() {
        let mechanism = ScramMechanism::Sha256;
        let now = Instant::now();
        let mut session = session();
        session.handshake(1, "SCRAM-SHA-256");
        let client_first_bare = "n=alice,r=clientnonce";
        let (response, verdict) =
            session.authenticate(format!("n,,{client_first_bare}").as_bytes(), &Users, now);
        assert_eq!(verdict, Verdict::Continue);
        let server_first = String::from_utf8(response.auth_bytes.to_vec()).unwrap();
        let nonce = server_first.split(',').next().unwrap();
        let without_proof = format!("c=biws,{nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let salted = mechanism.salted_password(b"alice-secret", b"salt", 4096);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let client_final = format!("{without_proof},p={}", base64::encode(&proof));
        let (response, verdict) = session.authenticate(client_final.as_bytes(), &Users, now);
        assert_eq!(response.error_code, 0);
        assert!(response.auth_bytes.starts_with(b"v="));
        assert_eq!(
            verdict,
            Verdict::Authenticated(KafkaPrincipal::user("alice"))
        );
    }

    #[test]
    fn scram_unknown_user_is_told_apart_only_by_the_proof() {
        let mut session = session();
        session.handshake(1, "SCRAM-SHA-512");
        let (response, _) = session.authenticate(b"n,,n=mallory,r=abc", &Users, Instant::now());
        let first = String::from_utf8(response.auth_bytes.to_vec()).unwrap();
        assert!(
            first.contains(",s=") && first.ends_with(",i=4096"),
            "{first}"
        );
        let (again, _) = {
            let mut other = super::SaslSession::new(Mechanism::ALL.to_vec(), None);
            other.handshake(1, "SCRAM-SHA-512");
            other.authenticate(b"n,,n=mallory,r=abc", &Users, Instant::now())
        };
        let salt = |s: &str| s.split(',').nth(1).unwrap().to_string();
        let again = String::from_utf8(again.auth_bytes.to_vec()).unwrap();
        assert_eq!(salt(&first), salt(&again));
        let nonce = first.split(',').next().unwrap();
        let (response, verdict) = session.authenticate(
            format!("c=biws,{nonce},p=AAAA").as_bytes(),
            &Users,
            Instant::now(),
        );
        assert_eq!(response.error_code, 58);
        assert_eq!(
            response.error_message.as_deref(),
            Some(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
            )
        );
        assert!(matches!(verdict, Verdict::Failed(_)));
    }
}
