//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677), client side, for gregor's own
//! tools: pure functions over the three messages, no I/O.

use subtle::ConstantTimeEq;

use super::base64;
use super::scram::ScramMechanism;

/// Why the server's SCRAM messages could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    #[error("malformed server-first message: {0}")]
    MalformedServerFirst(&'static str),
    #[error("the server's nonce does not extend ours")]
    NonceMismatch,
    #[error("the server asks for {0} iterations, fewer than SCRAM's minimum of 4096")]
    TooFewIterations(u32),
    #[error("the server refused the login: {0}")]
    ServerError(String),
    #[error("the server's signature does not match: it does not know this password")]
    BadServerSignature,
}

/// A client exchange: built with the client nonce, it yields client-first,
/// then client-final for the server-first, then checks server-final.
#[derive(Debug, Clone)]
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
}

/// What [`ScramClient::client_final`] hands back: the message to send and
/// the server signature expected in server-final.
#[derive(Debug, Clone)]
pub struct ClientFinal {
    pub message: Vec<u8>,
    server_signature: Vec<u8>,
}

/// The GS2 header: no channel binding, no authzid (`biws` in base64).
const GS2_HEADER: &str = "n,,";

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str, nonce: &str) -> Self {
        let escaped = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={escaped},r={nonce}"),
            nonce: nonce.to_string(),
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("{GS2_HEADER}{}", self.client_first_bare).into_bytes()
    }

    /// Answers server-first (`r=…,s=…,i=…`) with the proof.
    pub fn client_final(&self, server_first: &[u8]) -> Result<ClientFinal, ScramClientError> {
        let malformed = ScramClientError::MalformedServerFirst;
        let text = std::str::from_utf8(server_first).map_err(|_| malformed("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramClientError::ServerError(error.to_string()));
        }
        let mut fields = text.split(',');
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(malformed("no nonce"))?;
        let salt = fields
            .next()
            .and_then(|f| f.strip_prefix("s="))
            .and_then(base64::decode)
            .ok_or(malformed("no salt"))?;
        let iterations: u32 = fields
            .next()
            .and_then(|f| f.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .ok_or(malformed("no iteration count"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramClientError::NonceMismatch);
        }
        if iterations < ScramMechanism::MIN_ITERATIONS as u32 {
            return Err(ScramClientError::TooFewIterations(iterations));
        }
        let without_proof = format!("c={},r={nonce}", base64::encode(GS2_HEADER.as_bytes()));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let client_signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        Ok(ClientFinal {
            message: format!("{without_proof},p={}", base64::encode(&proof)).into_bytes(),
            server_signature: m.hmac(&server_key, auth_message.as_bytes()),
        })
    }
}

impl ClientFinal {
    /// Checks server-final (`v=ServerSignature`): proof that the server
    /// holds this user's keys, not just any answer.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let text = std::str::from_utf8(server_final).unwrap_or_default();
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramClientError::ServerError(error.to_string()));
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(base64::decode)
            .ok_or(ScramClientError::BadServerSignature)?;
        if bool::from(signature.ct_eq(&self.server_signature)) {
            Ok(())
        } else {
            Err(ScramClientError::BadServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3.
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_client(password: &str) -> ScramClient {
        ScramClient::new(ScramMechanism::Sha256, "user", password, CLIENT_NONCE)
    }

    #[test]
    fn rfc_7677_test_vector_round_trips() {
        let client = rfc_client("pencil");
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(last.message, CLIENT_FINAL.as_bytes());
        last.verify_server_final(SERVER_FINAL.as_bytes()).unwrap();
    }

    #[test]
    fn a_server_without_the_keys_is_not_believed() {
        let last = rfc_client("pen")
            .client_final(SERVER_FIRST.as_bytes())
            .unwrap();
        assert_eq!(
            last.verify_server_final(SERVER_FINAL.as_bytes()),
            Err(ScramClientError::BadServerSignature)
        );
        assert_eq!(
            last.verify_server_final(b"e=invalid-proof"),
            Err(ScramClientError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn server_first_is_checked() {
        let client = rfc_client("pencil");
        let foreign = SERVER_FIRST.replace("r=rOpr", "r=xOpr");
        assert_eq!(
            client.client_final(foreign.as_bytes()).unwrap_err(),
            ScramClientError::NonceMismatch
        );
        let weak = SERVER_FIRST.replace("i=4096", "i=1");
        assert_eq!(
            client.client_final(weak.as_bytes()).unwrap_err(),
            ScramClientError::TooFewIterations(1)
        );
        assert!(client.client_final(b"r=rOprNGfwEbeRWgbNEkqOx").is_err());
    }

    #[test]
    fn usernames_are_escaped() {
        let client = ScramClient::new(ScramMechanism::Sha512, "a,b=c", "p", "n");
        assert_eq!(client.client_first(), b"n,,n=a=2Cb=3Dc,r=n");
    }
}
