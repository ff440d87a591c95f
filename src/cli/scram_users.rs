//! `kafka-configs.sh --entity-type users`: SCRAM credentials, through
//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554).
//!
//! As Kafka's tool does, the password never leaves this process: it sends a
//! random salt and the salted password, from which the broker derives the
//! keys it stores.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::ToolError;
use super::client::{Client, describe_code};
use crate::security::sasl::{ScramMechanism, random_bytes};

/// Kafka's tool default when `iterations=` is not given.
const DEFAULT_ITERATIONS: i32 = 4096;

/// One `SCRAM-SHA-256=[iterations=8192,password=secret]` entry.
#[derive(Debug, PartialEq, Eq)]
pub struct ScramSetting {
    pub mechanism: ScramMechanism,
    pub iterations: i32,
    pub password: String,
}

/// Parses `--add-config` entries for users (already split by `added_configs`).
pub fn scram_settings(
    entries: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<ScramSetting>, ToolError> {
    entries
        .into_iter()
        .map(|(key, value)| {
            let mechanism = ScramMechanism::from_name(&key).ok_or_else(|| {
                ToolError::Usage(format!(
                    "{key} is not a user config gregor knows; use SCRAM-SHA-256 or SCRAM-SHA-512"
                ))
            })?;
            let mut iterations = DEFAULT_ITERATIONS;
            let mut password = None;
            for part in value.split(',') {
                match part.split_once('=') {
                    Some(("iterations", n)) => {
                        iterations = n.trim().parse().map_err(|_| {
                            ToolError::Usage(format!("{key}: iterations must be a number, got {n}"))
                        })?;
                    }
                    Some(("password", p)) => password = Some(p.to_string()),
                    _ => {
                        return Err(ToolError::Usage(format!(
                            "{key} expects [iterations=N,password=P]"
                        )));
                    }
                }
            }
            let password =
                password.ok_or_else(|| ToolError::Usage(format!("{key} needs password=...")))?;
            Ok(ScramSetting {
                mechanism,
                iterations,
                password,
            })
        })
        .collect()
}

pub async fn alter(
    client: &mut Client,
    user: &str,
    set: Vec<ScramSetting>,
    deleted: &[String],
) -> Result<(), ToolError> {
    let name = StrBytes::from_string(user.to_string());
    let upsertions: Vec<ScramCredentialUpsertion> = set
        .into_iter()
        .map(|setting| {
            let salt = random_bytes::<32>();
            let rounds = u32::try_from(setting.iterations).unwrap_or(0);
            let salted =
                setting
                    .mechanism
                    .salted_password(setting.password.as_bytes(), &salt, rounds);
            ScramCredentialUpsertion::default()
                .with_name(name.clone())
                .with_mechanism(setting.mechanism.id())
                .with_iterations(setting.iterations)
                .with_salt(salt.to_vec().into())
                .with_salted_password(salted.into())
        })
        .collect();
    let deletions = deleted
        .iter()
        .map(|key| {
            let mechanism = ScramMechanism::from_name(key).ok_or_else(|| {
                ToolError::Usage(format!(
                    "{key} is not a user config gregor knows; use SCRAM-SHA-256 or SCRAM-SHA-512"
                ))
            })?;
            Ok(ScramCredentialDeletion::default()
                .with_name(name.clone())
                .with_mechanism(mechanism.id()))
        })
        .collect::<Result<Vec<_>, ToolError>>()?;
    let response = client
        .any()
        .send(|_| {
            AlterUserScramCredentialsRequest::default()
                .with_upsertions(upsertions.clone())
                .with_deletions(deletions.clone())
        })
        .await?;
    for result in response.results {
        if result.error_code != 0 {
            let detail = result
                .error_message
                .as_deref()
                .map_or_else(|| describe_code(result.error_code), str::to_string);
            return Err(ToolError::Failed(format!(
                "Error while executing config command : {detail}"
            )));
        }
    }
    println!("Completed updating config for user {user}.");
    Ok(())
}

/// Prints the user's SCRAM mechanisms and iterations, as Kafka's tool does.
pub async fn describe(client: &mut Client, user: Option<&str>) -> Result<(), ToolError> {
    let users =
        user.map(|u| vec![UserName::default().with_name(StrBytes::from_string(u.to_string()))]);
    let response = client
        .any()
        .send(|_| DescribeUserScramCredentialsRequest::default().with_users(users.clone()))
        .await?;
    for result in response.results {
        if result.error_code != 0 || result.credential_infos.is_empty() {
            continue;
        }
        let infos: Vec<String> = result
            .credential_infos
            .iter()
            .map(|info| {
                let name = ScramMechanism::from_id(info.mechanism).map_or("UNKNOWN", |m| m.name());
                format!("{name}=iterations={}", info.iterations)
            })
            .collect();
        println!(
            "SCRAM credential configs for user-principal '{}' are {}",
            result.user,
            infos.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_scram_config_syntax() {
        let settings = scram_settings([
            (
                "SCRAM-SHA-256".to_string(),
                "iterations=8192,password=a=b".to_string(),
            ),
            ("SCRAM-SHA-512".to_string(), "password=s".to_string()),
        ])
        .unwrap();
        assert_eq!(
            settings,
            vec![
                ScramSetting {
                    mechanism: ScramMechanism::Sha256,
                    iterations: 8192,
                    password: "a=b".into()
                },
                ScramSetting {
                    mechanism: ScramMechanism::Sha512,
                    iterations: 4096,
                    password: "s".into()
                },
            ]
        );
        assert!(scram_settings([("SCRAM-SHA-1".into(), "password=x".into())]).is_err());
        assert!(scram_settings([("SCRAM-SHA-256".into(), "iterations=9".into())]).is_err());
    }
}
