//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side.
//!
//! The broker keeps per user and mechanism only what RFC 5802 §3 asks a
//! server to keep — salt, `StoredKey`, `ServerKey`, iterations — never the
//! password or the salted password. Kafka's `tokenauth` extension is
//! accepted and ignored (gregor has no delegation tokens).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::base64;

/// The SCRAM variants Kafka knows, with KIP-554's wire ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Kafka's bounds (`ScramMechanism.minIterations`, the controller's cap).
    pub const MIN_ITERATIONS: i32 = 4096;
    pub const MAX_ITERATIONS: i32 = 16384;

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// KIP-554's `ScramMechanism` id (0 is UNKNOWN).
    pub fn id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        match id {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, data),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// RFC 5802's `Hi(password, salt, i)`: PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the broker stores for one user and mechanism.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl ScramCredential {
    /// The stored form of a salted password (what AlterUserScramCredentials
    /// sends, KIP-554).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> Self {
        let rounds = u32::try_from(iterations).unwrap_or(1);
        let salted = mechanism.salted_password(password.as_bytes(), salt, rounds);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }
}

/// Why a SCRAM exchange failed. The client only ever learns "invalid
/// credentials"; these say more in the broker's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed {which} message: {reason}")]
    Malformed {
        which: &'static str,
        reason: &'static str,
    },
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("the nonce of the final message is not the server's")]
    NonceMismatch,
    #[error("unknown user")]
    UnknownUser,
    #[error("invalid proof")]
    InvalidProof,
}

fn malformed(which: &'static str, reason: &'static str) -> ScramError {
    ScramError::Malformed { which, reason }
}

/// The parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `y,,` (with authzid if given), echoed base64 in `c=`.
    pub gs2_header: String,
    pub bare: String,
    pub username: String,
    pub nonce: String,
}

impl ClientFirst {
    pub fn parse(message: &[u8]) -> Result<Self, ScramError> {
        const WHICH: &str = "client-first";
        let text = std::str::from_utf8(message).map_err(|_| malformed(WHICH, "not UTF-8"))?;
        let mut parts = text.splitn(3, ',');
        let cbind = parts.next().unwrap_or_default();
        let authzid = parts.next().ok_or(malformed(WHICH, "no GS2 header"))?;
        let bare = parts.next().ok_or(malformed(WHICH, "no GS2 header"))?;
        match cbind {
            "n" | "y" => {}
            flag if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(malformed(WHICH, "bad channel-binding flag")),
        }
        if !(authzid.is_empty() || authzid.starts_with("a=")) {
            return Err(malformed(WHICH, "bad authzid"));
        }
        let mut fields = bare.split(',');
        let username = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or(malformed(WHICH, "no username"))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(malformed(WHICH, "no nonce"))?;
        if nonce.is_empty() {
            return Err(malformed(WHICH, "empty nonce"));
        }
        Ok(ClientFirst {
            gs2_header: format!("{cbind},{authzid},"),
            bare: bare.to_string(),
            username: unescape_name(username).ok_or(malformed(WHICH, "bad username escape"))?,
            nonce: nonce.to_string(),
        })
    }
}

/// RFC 5802's saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3)? {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    (!name.is_empty()).then_some(out)
}

/// A SCRAM exchange after the client-first message was answered.
#[derive(Debug, Clone)]
pub struct ScramExchange {
    mechanism: ScramMechanism,
    client_first: ClientFirst,
    server_first: String,
    /// The client nonce followed by ours.
    nonce: String,
    /// `None` for an unknown user: the exchange runs on a made-up
    /// credential so it looks the same, and fails at the proof.
    credential: Option<ScramCredential>,
}

impl ScramExchange {
    /// Answers `client_first` for `credential` (or, for an unknown user,
    /// `decoy`, a salt and iteration count that stay the same per user).
    pub fn start(
        mechanism: ScramMechanism,
        client_first: ClientFirst,
        credential: Option<ScramCredential>,
        decoy: (Vec<u8>, i32),
        server_nonce: &str,
    ) -> Self {
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => decoy,
        };
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", base64::encode(&salt));
        ScramExchange {
            mechanism,
            client_first,
            server_first,
            nonce,
            credential,
        }
    }

    pub fn username(&self) -> &str {
        &self.client_first.username
    }

    pub fn server_first(&self) -> &[u8] {
        self.server_first.as_bytes()
    }

    /// Checks the client-final message; on success returns the
    /// server-final message (`v=ServerSignature`).
    pub fn finish(&self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        const WHICH: &str = "client-final";
        let text = std::str::from_utf8(message).map_err(|_| malformed(WHICH, "not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(malformed(WHICH, "no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .and_then(base64::decode)
            .ok_or(malformed(WHICH, "no channel binding"))?;
        if binding != self.client_first.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(malformed(WHICH, "no nonce"))?;
        // Kafka checks only that the nonce ends with the server's: librdkafka
        // sends the client nonce a second time in front of it.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = base64::decode(proof).ok_or(malformed(WHICH, "proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first.bare, self.server_first
        );
        let Some(credential) = &self.credential else {
            // Spend the same work as a real check before refusing.
            let _ = self.mechanism.hmac(&proof, auth_message.as_bytes());
            return Err(ScramError::UnknownUser);
        };
        let signature = self
            .mechanism
            .hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::InvalidProof);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let stored_key = self.mechanism.hash(&client_key);
        if !bool::from(stored_key.ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = self
            .mechanism
            .hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", base64::encode(&server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3.
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = base64::decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096)
    }

    fn exchange(credential: Option<ScramCredential>) -> ScramExchange {
        let first = ClientFirst::parse(CLIENT_FIRST.as_bytes()).unwrap();
        ScramExchange::start(
            ScramMechanism::Sha256,
            first,
            credential,
            (b"decoy salt".to_vec(), 4096),
            SERVER_NONCE,
        )
    }

    #[test]
    fn rfc_7677_test_vector_authenticates() {
        let exchange = exchange(Some(rfc_credential()));
        assert_eq!(exchange.username(), "user");
        assert_eq!(exchange.server_first(), SERVER_FIRST.as_bytes());
        let last = exchange.finish(CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(last, SERVER_FINAL.as_bytes());
    }

    #[test]
    fn wrong_password_fails_at_the_proof() {
        let salt = base64::decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let wrong = ScramCredential::from_password(ScramMechanism::Sha256, "pen", &salt, 4096);
        let exchange = exchange(Some(wrong));
        assert_eq!(
            exchange.finish(CLIENT_FINAL.as_bytes()),
            Err(ScramError::InvalidProof)
        );
    }

    #[test]
    fn unknown_user_looks_the_same_until_the_proof() {
        let exchange = exchange(None);
        let first = String::from_utf8(exchange.server_first().to_vec()).unwrap();
        assert!(first.starts_with("r=rOprNGfwEbeRWgbNEkqO%hvYD"), "{first}");
        assert!(first.ends_with(",i=4096"), "{first}");
        assert_eq!(
            exchange.finish(CLIENT_FINAL.as_bytes()),
            Err(ScramError::UnknownUser)
        );
    }

    #[test]
    fn a_replayed_nonce_or_binding_is_refused() {
        let exchange = exchange(Some(rfc_credential()));
        let other_nonce = CLIENT_FINAL.replace("k0,p=", "k1,p=");
        assert!(CLIENT_FINAL.contains("k0,p="));
        assert_eq!(
            exchange.finish(other_nonce.as_bytes()),
            Err(ScramError::NonceMismatch)
        );
        let bound = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(
            exchange.finish(bound.as_bytes()),
            Err(ScramError::ChannelBinding)
        );
    }

    #[test]
    fn librdkafkas_repeated_client_nonce_is_accepted_as_kafka_does() {
        let exchange = exchange(Some(rfc_credential()));
        let doubled =
            "c=biws,r=rOprNGfwEbeRWgbNEkqOrOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        // The proof is over the message as sent, so only the nonce check is
        // exercised here: it must get past it to the proof.
        let message = format!("{doubled},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert_eq!(
            exchange.finish(message.as_bytes()),
            Err(ScramError::InvalidProof)
        );
    }

    #[test]
    fn client_first_parses_escapes_and_refuses_channel_binding() {
        let first = ClientFirst::parse(b"n,,n=a=2Cb=3Dc,r=abc,tokenauth=true").unwrap();
        assert_eq!(first.username, "a,b=c");
        assert_eq!(first.nonce, "abc");
        assert_eq!(first.gs2_header, "n,,");
        assert_eq!(
            ClientFirst::parse(b"p=tls-unique,,n=a,r=b"),
            Err(ScramError::ChannelBinding)
        );
        assert!(ClientFirst::parse(b"n,,n=a=2Xb,r=x").is_err());
        assert!(ClientFirst::parse(b"n,,r=x").is_err());
    }

    #[test]
    fn sha_512_credential_round_trips_through_a_salted_password() {
        let salted = ScramMechanism::Sha512.salted_password(b"secret", b"salt", 4096);
        assert_eq!(salted.len(), 64);
        let a =
            ScramCredential::from_salted_password(ScramMechanism::Sha512, b"salt", &salted, 4096);
        let b = ScramCredential::from_password(ScramMechanism::Sha512, "secret", b"salt", 4096);
        assert_eq!(a, b);
    }
}
