//! SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`, checked
//! against the listener's configured users with a constant-time compare.

use subtle::ConstantTimeEq;

/// Kafka's `PlainSaslServer` messages, which clients show to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
    #[error("Authentication failed: username not specified")]
    NoUsername,
    #[error("Authentication failed: password not specified")]
    NoPassword,
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    OtherAuthorizationId,
    #[error("Invalid SASL/PLAIN response: expected 3 tokens")]
    Malformed,
}

/// The user a PLAIN token names (for the log, even when it fails).
pub fn username(token: &[u8]) -> Option<String> {
    let mut parts = token.split(|&b| b == 0);
    parts.next()?;
    parts
        .next()
        .map(|u| String::from_utf8_lossy(u).into_owned())
}

/// Checks `token`; `password_of` looks a user's password up. Returns the
/// authenticated user name.
pub fn authenticate(
    token: &[u8],
    password_of: impl Fn(&str) -> Option<String>,
) -> Result<String, PlainError> {
    let parts: Vec<&[u8]> = token.split(|&b| b == 0).collect();
    let [authzid, username, password] = parts[..] else {
        return Err(PlainError::Malformed);
    };
    let (Ok(authzid), Ok(username)) = (std::str::from_utf8(authzid), std::str::from_utf8(username))
    else {
        return Err(PlainError::Malformed);
    };
    if username.is_empty() {
        return Err(PlainError::NoUsername);
    }
    if password.is_empty() {
        return Err(PlainError::NoPassword);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(PlainError::OtherAuthorizationId);
    }
    // An unknown user is compared against a stand-in, so both cases take
    // the same path.
    let expected = password_of(username);
    let matches = password.ct_eq(expected.as_deref().unwrap_or("\0").as_bytes());
    if expected.is_some() && bool::from(matches) {
        Ok(username.to_string())
    } else {
        Err(PlainError::InvalidCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(name: &str) -> Option<String> {
        (name == "alice").then(|| "alice-secret".to_string())
    }

    #[test]
    fn accepts_the_right_password_only() {
        assert_eq!(
            authenticate(b"\0alice\0alice-secret", users),
            Ok("alice".into())
        );
        assert_eq!(
            authenticate(b"alice\0alice\0alice-secret", users),
            Ok("alice".into())
        );
        assert_eq!(
            authenticate(b"\0alice\0wrong", users),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            authenticate(b"\0bob\0alice-secret", users),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            authenticate(b"bob\0alice\0alice-secret", users),
            Err(PlainError::OtherAuthorizationId)
        );
        assert_eq!(authenticate(b"\0\0x", users), Err(PlainError::NoUsername));
        assert_eq!(
            authenticate(b"\0alice\0", users),
            Err(PlainError::NoPassword)
        );
        assert_eq!(authenticate(b"alice", users), Err(PlainError::Malformed));
        assert_eq!(username(b"\0alice\0pw").as_deref(), Some("alice"));
    }
}
