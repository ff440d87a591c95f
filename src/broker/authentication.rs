//! SASL on a connection: the reader hands every frame of a SASL listener to
//! [`Authenticator::admit`], which serves the SASL exchange itself (through
//! the pure [`SaslSession`]) and lets other requests through only once the
//! client authenticated and while its session lasts.
//!
//! A failed authentication is answered after
//! `connection.failed.authentication.delay.ms` and the connection closes,
//! as in Kafka; the failure is logged once, without the password.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use super::BrokerContext;
use super::connection::{ConnectionInfo, Pending};
use crate::cluster::MetadataImage;
use crate::config::Secret;
use crate::protocol::{decode_request, encode_response_parts};
use crate::security::sasl::session::{Failure, Gate};
use crate::security::sasl::{Credentials, SaslSession, ScramCredential, ScramMechanism, Verdict};
use crate::task::OwnedTask;

/// What to do with a frame that arrived on a SASL listener.
pub(super) enum Admission {
    /// An ordinary request of an authenticated client: serve it.
    Serve(Bytes),
    /// A step of the exchange: write its answer; close afterwards when
    /// `close` says why.
    Answered {
        response: Pending,
        close: Option<String>,
    },
    /// Close without an answer.
    Close(String),
}

/// The SASL side of one connection.
pub(super) struct Authenticator {
    session: SaslSession,
}

impl Authenticator {
    /// `None` unless the connection's listener uses SASL.
    pub(super) fn for_connection(ctx: &BrokerContext, info: &ConnectionInfo) -> Option<Self> {
        if !info.security_protocol.uses_sasl() {
            return None;
        }
        let sasl = &ctx.settings.sasl;
        let mechanisms = sasl
            .listeners
            .get(&info.listener)
            .map(|l| l.mechanisms.clone())
            .unwrap_or_default();
        Some(Authenticator {
            session: SaslSession::new(mechanisms, sasl.max_reauth),
        })
    }

    pub(super) fn admit(
        &mut self,
        ctx: &Arc<BrokerContext>,
        info: &mut ConnectionInfo,
        frame: Bytes,
    ) -> Admission {
        let now = Instant::now();
        if self.session.expects_raw_token() {
            return self.raw_token(ctx, info, &frame, now);
        }
        let api_key = frame
            .get(..2)
            .and_then(|b| ApiKey::try_from(i16::from_be_bytes([b[0], b[1]])).ok());
        match self.session.gate(api_key, now) {
            Gate::Serve => return Admission::Serve(frame),
            Gate::Close(reason) => {
                tracing::info!(peer = %info.peer, listener = %info.listener, %reason, "closing connection");
                return Admission::Close(reason);
            }
            Gate::Sasl => {}
        }
        let request = match decode_request(frame) {
            Ok(request) => request,
            Err(error) => return Admission::Close(error.to_string()),
        };
        let version = request.header.request_api_version;
        let correlation_id = request.header.correlation_id;
        let (body, verdict) = match request.body {
            RequestKind::SaslHandshake(handshake) => {
                let (response, verdict) = self.session.handshake(version, &handshake.mechanism);
                (ResponseKind::SaslHandshake(response), verdict)
            }
            RequestKind::SaslAuthenticate(authenticate) => {
                let credentials = Self::credentials(ctx, info);
                let (response, verdict) =
                    self.session
                        .authenticate(&authenticate.auth_bytes, &credentials, now);
                (ResponseKind::SaslAuthenticate(response), verdict)
            }
            _ => return Admission::Close("not a SASL request".to_string()),
        };
        let header_version = request.api_key.response_header_version(version);
        let encode =
            move || encode_response_parts(correlation_id, header_version, &body, version).ok();
        self.conclude(ctx, info, verdict, encode)
    }

    /// A bare token after SaslHandshake v0; a failure closes without an
    /// answer, as Kafka does for this framing.
    fn raw_token(
        &mut self,
        ctx: &Arc<BrokerContext>,
        info: &mut ConnectionInfo,
        token: &[u8],
        now: Instant,
    ) -> Admission {
        let credentials = Self::credentials(ctx, info);
        let (response, verdict) = self.session.authenticate(token, &credentials, now);
        let failed = matches!(verdict, Verdict::Failed(_) | Verdict::Close);
        let encode = move || {
            if failed {
                return None;
            }
            let mut out = BytesMut::with_capacity(4 + response.auth_bytes.len());
            out.put_i32(i32::try_from(response.auth_bytes.len()).ok()?);
            out.put_slice(&response.auth_bytes);
            Some(vec![out.freeze()])
        };
        self.conclude(ctx, info, verdict, encode)
    }

    fn credentials<'a>(ctx: &'a BrokerContext, info: &ConnectionInfo) -> BrokerCredentials<'a> {
        BrokerCredentials {
            plain: ctx
                .settings
                .sasl
                .listeners
                .get(&info.listener)
                .map(|l| &l.plain_users),
            image: ctx.coordinator.image(),
        }
    }

    fn conclude(
        &mut self,
        ctx: &Arc<BrokerContext>,
        info: &mut ConnectionInfo,
        verdict: Verdict,
        encode: impl FnOnce() -> Option<Vec<Bytes>> + Send + 'static,
    ) -> Admission {
        match verdict {
            Verdict::Continue => Admission::Answered {
                response: OwnedTask::spawn(async move { encode() }),
                close: None,
            },
            Verdict::Authenticated(principal) => {
                tracing::debug!(peer = %info.peer, %principal, "SASL authentication succeeded");
                info.principal = principal;
                Admission::Answered {
                    response: OwnedTask::spawn(async move { encode() }),
                    close: None,
                }
            }
            Verdict::Close => Admission::Answered {
                response: OwnedTask::spawn(async move { encode() }),
                close: Some("SASL request out of order (ILLEGAL_SASL_STATE)".to_string()),
            },
            Verdict::Failed(failure) => {
                log_failure(info, &failure);
                let delay = ctx.settings.sasl.failed_authentication_delay;
                Admission::Answered {
                    response: OwnedTask::spawn(async move {
                        tokio::time::sleep(delay).await;
                        encode()
                    }),
                    close: Some(format!("SASL authentication failed: {}", failure.reason)),
                }
            }
        }
    }
}

fn log_failure(info: &ConnectionInfo, failure: &Failure) {
    tracing::info!(
        peer = %info.peer,
        listener = %info.listener,
        mechanism = failure.mechanism.map_or("none", |m| m.name()),
        user = failure.user.as_deref().unwrap_or(""),
        reason = %failure.reason,
        "SASL authentication failed"
    );
}

/// PLAIN's users of the listener and the SCRAM credentials of the image
/// the request arrived under.
struct BrokerCredentials<'a> {
    plain: Option<&'a BTreeMap<String, Secret>>,
    image: Arc<MetadataImage>,
}

impl Credentials for BrokerCredentials<'_> {
    fn plain_password(&self, user: &str) -> Option<String> {
        self.plain?.get(user).map(|secret| secret.0.clone())
    }

    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.image.scram_credential(user, mechanism).cloned()
    }
}
