//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554),
//! and the SCRAM users a container asks for through its environment.
//!
//! The client sends a salt and a salted password; the broker derives and
//! stores only `StoredKey` and `ServerKey` (through the coordinator, in the
//! metadata log). Checks and messages are Kafka's controller's; with an
//! authorizer, describing needs Describe and altering Alter on the cluster.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::broker::access::Access;
use crate::cluster::KafkaCode;
use crate::security::acl::AclOperation;
use crate::security::sasl::{ScramCredential, ScramMechanism, random_bytes};

/// Iterations of the credentials created from `KAFKA_CLIENT_USERS`, Kafka's
/// tool default.
const DEFAULT_ITERATIONS: i32 = 4096;

type Refusal = (i16, String);

fn refusal(code: KafkaCode, message: &str) -> Refusal {
    (code.0, message.to_string())
}

/// One alteration before it is checked.
enum Alteration {
    Upsert(ScramMechanism, ScramCredential),
    Delete(ScramMechanism),
}

pub async fn alter(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let authorized = access.cluster(AclOperation::Alter);
    // Users in order of first appearance, each with its alterations or the
    // first reason to refuse them all.
    let mut users: Vec<String> = Vec::new();
    let mut planned: BTreeMap<String, Result<Vec<Alteration>, Refusal>> = BTreeMap::new();
    let mut seen = HashSet::new();
    let deletions = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None));
    let upsertions = request.upsertions.iter().map(|u| {
        let detail = (u.iterations, u.salt.clone(), u.salted_password.clone());
        (u.name.to_string(), u.mechanism, Some(detail))
    });
    for (user, mechanism_id, upsert) in deletions.chain(upsertions) {
        if !planned.contains_key(&user) {
            users.push(user.clone());
        }
        let entry = planned.entry(user.clone()).or_insert(Ok(Vec::new()));
        let Ok(alterations) = entry else { continue };
        let alteration = check(&user, mechanism_id, upsert, &mut seen);
        match alteration {
            Ok(alteration) => alterations.push(alteration),
            Err(reason) => *entry = Err(reason),
        }
    }
    let mut results = Vec::with_capacity(users.len());
    for user in users {
        let outcome = match planned.remove(&user) {
            _ if authorized.is_err() => Err(refusal(
                KafkaCode(ResponseError::ClusterAuthorizationFailed.code()),
                "Cluster authorization failed.",
            )),
            Some(Ok(alterations)) => apply(ctx, &user, alterations).await,
            Some(Err(reason)) => Err(reason),
            None => Ok(()),
        };
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err((code, message)) => (code, Some(str_bytes(&message))),
        };
        results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(&user))
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn check(
    user: &str,
    mechanism_id: i8,
    upsert: Option<(i32, bytes::Bytes, bytes::Bytes)>,
    seen: &mut HashSet<(String, i8)>,
) -> Result<Alteration, Refusal> {
    if user.is_empty() {
        return Err(refusal(
            KafkaCode::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty",
        ));
    }
    let Some(mechanism) = ScramMechanism::from_id(mechanism_id) else {
        return Err(refusal(
            KafkaCode::UNSUPPORTED_SASL_MECHANISM,
            "Unknown SCRAM mechanism",
        ));
    };
    if !seen.insert((user.to_string(), mechanism_id)) {
        return Err(refusal(
            KafkaCode::DUPLICATE_RESOURCE,
            "A user credential cannot be altered twice in the same request",
        ));
    }
    let Some((iterations, salt, salted_password)) = upsert else {
        return Ok(Alteration::Delete(mechanism));
    };
    if iterations < ScramMechanism::MIN_ITERATIONS {
        return Err(refusal(
            KafkaCode::UNACCEPTABLE_CREDENTIAL,
            "Too few iterations",
        ));
    }
    if iterations > ScramMechanism::MAX_ITERATIONS {
        return Err(refusal(
            KafkaCode::UNACCEPTABLE_CREDENTIAL,
            "Too many iterations",
        ));
    }
    if salt.is_empty() || salted_password.is_empty() {
        return Err(refusal(
            KafkaCode::UNACCEPTABLE_CREDENTIAL,
            "Salt and salted password must not be empty",
        ));
    }
    Ok(Alteration::Upsert(
        mechanism,
        ScramCredential::from_salted_password(mechanism, &salt, &salted_password, iterations),
    ))
}

async fn apply(
    ctx: &Arc<BrokerContext>,
    user: &str,
    alterations: Vec<Alteration>,
) -> Result<(), Refusal> {
    for alteration in alterations {
        let (mechanism, credential) = match alteration {
            Alteration::Upsert(mechanism, credential) => (mechanism, Some(credential)),
            Alteration::Delete(mechanism) => (mechanism, None),
        };
        ctx.coordinator
            .alter_scram_credential(user, mechanism, credential)
            .await
            .map_err(|error| (error.code().0, error.message()))?;
    }
    Ok(())
}

pub fn describe(
    ctx: &Arc<BrokerContext>,
    access: &Access,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if let Err(error) = access.cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let image = ctx.coordinator.image();
    let info = |by_mechanism: &BTreeMap<ScramMechanism, ScramCredential>| {
        by_mechanism
            .iter()
            .map(|(mechanism, credential)| {
                CredentialInfo::default()
                    .with_mechanism(mechanism.id())
                    .with_iterations(credential.iterations)
            })
            .collect::<Vec<_>>()
    };
    let requested: Vec<String> = request
        .users
        .unwrap_or_default()
        .iter()
        .map(|u| u.name.to_string())
        .collect();
    let results = if requested.is_empty() {
        image
            .scram_credentials
            .iter()
            .map(|(user, by_mechanism)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user))
                    .with_credential_infos(info(by_mechanism))
            })
            .collect()
    } else {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for user in &requested {
            *counts.entry(user.as_str()).or_default() += 1;
        }
        let mut listed = HashSet::new();
        requested
            .iter()
            .filter(|user| listed.insert(user.as_str()))
            .map(|user| {
                let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
                if counts[user.as_str()] > 1 {
                    return result
                        .with_error_code(ResponseError::DuplicateResource.code())
                        .with_error_message(Some(str_bytes(
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        )));
                }
                match image.scram_credentials.get(user) {
                    Some(by_mechanism) => result.with_credential_infos(info(by_mechanism)),
                    None => result
                        .with_error_code(ResponseError::ResourceNotFound.code())
                        .with_error_message(Some(str_bytes(
                            "Attempt to describe a user credential that does not exist",
                        ))),
                }
            })
            .collect()
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// Creates the SCRAM-SHA-256 and SCRAM-SHA-512 credentials of each
/// `KAFKA_CLIENT_USERS` user that lacks one; existing credentials are left
/// alone, so a password changed with kafka-configs survives a restart.
pub async fn ensure_client_users(ctx: &BrokerContext) {
    for (user, password) in &ctx.settings.sasl.client_users {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            if ctx
                .coordinator
                .image()
                .scram_credential(user, mechanism)
                .is_some()
            {
                continue;
            }
            let salt = random_bytes::<16>();
            let credential =
                ScramCredential::from_password(mechanism, &password.0, &salt, DEFAULT_ITERATIONS);
            match ctx
                .coordinator
                .alter_scram_credential(user, mechanism, Some(credential))
                .await
            {
                Ok(()) => {
                    tracing::info!(%user, mechanism = mechanism.name(), "created SCRAM user from KAFKA_CLIENT_USERS")
                }
                Err(error) => {
                    tracing::warn!(%user, mechanism = mechanism.name(), %error, "could not create SCRAM user from KAFKA_CLIENT_USERS")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(iterations: i32) -> Option<(i32, bytes::Bytes, bytes::Bytes)> {
        Some((iterations, "salt".into(), "salted".into()))
    }

    #[test]
    fn alterations_are_checked_as_kafkas_controller_checks_them() {
        let mut seen = HashSet::new();
        let code = |r: Result<Alteration, Refusal>| r.err().map(|(code, _)| code);
        assert_eq!(code(check("alice", 1, upsert(4096), &mut seen)), None);
        assert_eq!(
            code(check("alice", 1, None, &mut seen)),
            Some(KafkaCode::DUPLICATE_RESOURCE.0)
        );
        assert_eq!(code(check("alice", 2, None, &mut seen)), None);
        assert_eq!(
            code(check("alice", 3, None, &mut seen)),
            Some(KafkaCode::UNSUPPORTED_SASL_MECHANISM.0)
        );
        assert_eq!(
            code(check("", 1, None, &mut seen)),
            Some(KafkaCode::UNACCEPTABLE_CREDENTIAL.0)
        );
        let too_many = check("bob", 1, upsert(16385), &mut seen);
        assert_eq!(
            too_many.err(),
            Some((
                KafkaCode::UNACCEPTABLE_CREDENTIAL.0,
                "Too many iterations".to_string()
            ))
        );
    }
}
