//! Kafka error codes as the coordinator reports them, and [`Rejection`], a
//! refused command's code plus the message for the response.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Kafka protocol error code, as carried in responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    pub const NONE: Self = Self(0);
    pub const UNKNOWN_SERVER_ERROR: Self = Self(-1);
    pub const UNKNOWN_TOPIC_OR_PARTITION: Self = Self(3);
    pub const REQUEST_TIMED_OUT: Self = Self(7);
    pub const BROKER_NOT_AVAILABLE: Self = Self(8);
    pub const INVALID_TOPIC_EXCEPTION: Self = Self(17);
    pub const TOPIC_AUTHORIZATION_FAILED: Self = Self(29);
    pub const CLUSTER_AUTHORIZATION_FAILED: Self = Self(31);
    pub const TOPIC_ALREADY_EXISTS: Self = Self(36);
    pub const INVALID_PARTITIONS: Self = Self(37);
    pub const INVALID_REPLICATION_FACTOR: Self = Self(38);
    pub const INVALID_REPLICA_ASSIGNMENT: Self = Self(39);
    pub const INVALID_CONFIG: Self = Self(40);
    pub const NOT_CONTROLLER: Self = Self(41);
    pub const INVALID_REQUEST: Self = Self(42);
    pub const POLICY_VIOLATION: Self = Self(44);
    pub const UNSUPPORTED_SASL_MECHANISM: Self = Self(33);
    pub const RESOURCE_NOT_FOUND: Self = Self(91);
    pub const DUPLICATE_RESOURCE: Self = Self(92);
    pub const UNACCEPTABLE_CREDENTIAL: Self = Self(93);
    pub const FENCED_LEADER_EPOCH: Self = Self(74);
    pub const STALE_BROKER_EPOCH: Self = Self(77);
    pub const PREFERRED_LEADER_NOT_AVAILABLE: Self = Self(80);
    pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: Self = Self(83);
    pub const ELECTION_NOT_NEEDED: Self = Self(84);
    pub const NO_REASSIGNMENT_IN_PROGRESS: Self = Self(85);
    pub const DUPLICATE_BROKER_REGISTRATION: Self = Self(101);
    pub const INVALID_UPDATE_VERSION: Self = Self(95);
    pub const INELIGIBLE_REPLICA: Self = Self(107);
    /// KIP-853's AddRaftVoter and RemoveRaftVoter refusals.
    pub const DUPLICATE_VOTER: Self = Self(126);
    pub const VOTER_NOT_FOUND: Self = Self(127);

    /// Kafka's name for the code, or `"UNKNOWN"` for codes gregor never emits.
    pub fn name(self) -> &'static str {
        match self {
            Self::NONE => "NONE",
            Self::UNKNOWN_SERVER_ERROR => "UNKNOWN_SERVER_ERROR",
            Self::UNKNOWN_TOPIC_OR_PARTITION => "UNKNOWN_TOPIC_OR_PARTITION",
            Self::REQUEST_TIMED_OUT => "REQUEST_TIMED_OUT",
            Self::BROKER_NOT_AVAILABLE => "BROKER_NOT_AVAILABLE",
            Self::INVALID_TOPIC_EXCEPTION => "INVALID_TOPIC_EXCEPTION",
            Self::TOPIC_AUTHORIZATION_FAILED => "TOPIC_AUTHORIZATION_FAILED",
            Self::CLUSTER_AUTHORIZATION_FAILED => "CLUSTER_AUTHORIZATION_FAILED",
            Self::TOPIC_ALREADY_EXISTS => "TOPIC_ALREADY_EXISTS",
            Self::INVALID_PARTITIONS => "INVALID_PARTITIONS",
            Self::INVALID_REPLICATION_FACTOR => "INVALID_REPLICATION_FACTOR",
            Self::INVALID_REPLICA_ASSIGNMENT => "INVALID_REPLICA_ASSIGNMENT",
            Self::INVALID_CONFIG => "INVALID_CONFIG",
            Self::NOT_CONTROLLER => "NOT_CONTROLLER",
            Self::INVALID_REQUEST => "INVALID_REQUEST",
            Self::POLICY_VIOLATION => "POLICY_VIOLATION",
            Self::UNSUPPORTED_SASL_MECHANISM => "UNSUPPORTED_SASL_MECHANISM",
            Self::RESOURCE_NOT_FOUND => "RESOURCE_NOT_FOUND",
            Self::DUPLICATE_RESOURCE => "DUPLICATE_RESOURCE",
            Self::UNACCEPTABLE_CREDENTIAL => "UNACCEPTABLE_CREDENTIAL",
            Self::FENCED_LEADER_EPOCH => "FENCED_LEADER_EPOCH",
            Self::STALE_BROKER_EPOCH => "STALE_BROKER_EPOCH",
            Self::PREFERRED_LEADER_NOT_AVAILABLE => "PREFERRED_LEADER_NOT_AVAILABLE",
            Self::ELIGIBLE_LEADERS_NOT_AVAILABLE => "ELIGIBLE_LEADERS_NOT_AVAILABLE",
            Self::ELECTION_NOT_NEEDED => "ELECTION_NOT_NEEDED",
            Self::NO_REASSIGNMENT_IN_PROGRESS => "NO_REASSIGNMENT_IN_PROGRESS",
            Self::DUPLICATE_BROKER_REGISTRATION => "DUPLICATE_BROKER_REGISTRATION",
            Self::INVALID_UPDATE_VERSION => "INVALID_UPDATE_VERSION",
            Self::INELIGIBLE_REPLICA => "INELIGIBLE_REPLICA",
            Self::DUPLICATE_VOTER => "DUPLICATE_VOTER",
            Self::VOTER_NOT_FOUND => "VOTER_NOT_FOUND",
            _ => "UNKNOWN",
        }
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Why a command was refused: the Kafka code for the response and a message
/// for its `error_message` field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: KafkaCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: KafkaCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}

/// Shorthand for refusing with `code` and `message`.
pub(crate) fn rejected<T>(code: KafkaCode, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(code, message))
}
