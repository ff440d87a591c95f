//! SCRAM credentials in the image: checked as Kafka's controller checks an
//! AlterUserScramCredentials upsertion or deletion (KIP-554).

use super::{ApplyOutcome, KafkaCode, MetadataImage, Rejection, rejected};
use crate::security::sasl::{ScramCredential, ScramMechanism};

impl MetadataImage {
    /// The credential `user` has for `mechanism`, if any.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism)
    }

    pub(super) fn upsert_scram_credential(
        &mut self,
        user: &str,
        mechanism: ScramMechanism,
        credential: &ScramCredential,
    ) -> Result<ApplyOutcome, Rejection> {
        check_user(user)?;
        if credential.iterations < ScramMechanism::MIN_ITERATIONS {
            return rejected(KafkaCode::UNACCEPTABLE_CREDENTIAL, "Too few iterations");
        }
        if credential.iterations > ScramMechanism::MAX_ITERATIONS {
            return rejected(KafkaCode::UNACCEPTABLE_CREDENTIAL, "Too many iterations");
        }
        if credential.salt.is_empty() {
            return rejected(KafkaCode::UNACCEPTABLE_CREDENTIAL, "Salt must not be empty");
        }
        let previous = self
            .scram_credentials
            .entry(user.to_string())
            .or_default()
            .insert(mechanism, credential.clone());
        Ok(if previous.as_ref() == Some(credential) {
            ApplyOutcome::Unchanged
        } else {
            ApplyOutcome::Applied
        })
    }

    pub(super) fn delete_scram_credential(
        &mut self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<ApplyOutcome, Rejection> {
        check_user(user)?;
        let Some(by_mechanism) = self.scram_credentials.get_mut(user) else {
            return not_found();
        };
        if by_mechanism.remove(&mechanism).is_none() {
            return not_found();
        }
        if by_mechanism.is_empty() {
            self.scram_credentials.remove(user);
        }
        Ok(ApplyOutcome::Applied)
    }
}

fn check_user(user: &str) -> Result<(), Rejection> {
    if user.is_empty() {
        return rejected(
            KafkaCode::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty",
        );
    }
    Ok(())
}

fn not_found() -> Result<ApplyOutcome, Rejection> {
    rejected(
        KafkaCode::RESOURCE_NOT_FOUND,
        "Attempt to delete a user credential that does not exist",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Command;

    fn credential(iterations: i32) -> ScramCredential {
        ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt", iterations)
    }

    #[test]
    fn scram_credentials_are_upserted_and_deleted_by_mechanism() {
        let mut image = MetadataImage::new("c");
        let upsert = |user: &str, iterations| Command::UpsertScramCredential {
            user: user.into(),
            mechanism: ScramMechanism::Sha256,
            credential: credential(iterations),
        };
        assert_eq!(
            image.apply(1, &upsert("alice", 4096)),
            Ok(ApplyOutcome::Applied)
        );
        assert_eq!(
            image.apply(2, &upsert("alice", 4096)),
            Ok(ApplyOutcome::Unchanged)
        );
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha256),
            Some(&credential(4096))
        );
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha512),
            None
        );
        let code = |r: Result<ApplyOutcome, Rejection>| r.unwrap_err().code;
        let before = image.clone();
        assert_eq!(
            code(image.apply(3, &upsert("alice", 100))),
            KafkaCode::UNACCEPTABLE_CREDENTIAL
        );
        assert_eq!(
            code(image.apply(3, &upsert("", 4096))),
            KafkaCode::UNACCEPTABLE_CREDENTIAL
        );
        let delete = |mechanism| Command::DeleteScramCredential {
            user: "alice".into(),
            mechanism,
        };
        assert_eq!(
            code(image.apply(3, &delete(ScramMechanism::Sha512))),
            KafkaCode::RESOURCE_NOT_FOUND
        );
        assert_eq!(image, before);
        assert_eq!(
            image.apply(3, &delete(ScramMechanism::Sha256)),
            Ok(ApplyOutcome::Applied)
        );
        assert!(image.scram_credentials.is_empty());
    }

    #[test]
    fn scram_commands_round_trip_through_json() {
        let cmd = Command::UpsertScramCredential {
            user: "alice".into(),
            mechanism: ScramMechanism::Sha512,
            credential: credential(8192),
        };
        let json = serde_json::to_string(&cmd).unwrap();
        assert!(json.contains(r#""mechanism":"SCRAM-SHA-512""#), "{json}");
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
        let mut image = MetadataImage::new("c");
        image.apply(1, &cmd).unwrap();
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(serde_json::from_str::<MetadataImage>(&json).unwrap(), image);
    }
}
