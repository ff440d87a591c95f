//! Who may do what through the coordinator port.
//!
//! Peers authenticate with **mutual TLS** (`secureClientPort`,
//! `ssl.clientAuth=need`): brokers and tools already get certificates from
//! `gregor security init`, a certificate puts no shared secret on the wire,
//! it needs no protocol of our own inside HTTP, and it is what ZooKeeper's
//! own TLS (`secureClientPort`, `zookeeper.ssl.*` on the broker) does. The
//! peer's principal is its certificate's subject through
//! `ssl.principal.mapping.rules`, as on the broker's TLS listeners.
//!
//! Each route then asks [`ControlAuthorizer::authorize`] for the operation
//! Kafka's own API needs on the same resource (CreateTopics: Create on the
//! cluster or the topic; BrokerRegistration: ClusterAction; …), so a write
//! through 2181 needs what it would through 9092. With
//! `authorizer.class.name` set, [`AclAuthorization`] decides, from the ACLs
//! in the metadata image, as the broker does; with TLS on and no
//! authorizer, [`SuperUsers`]: the principals in `super.users` may do
//! everything, everyone else nothing.

use std::fmt;
use std::net::IpAddr;

use super::settings::AccessSettings;
use crate::cluster::{KafkaCode, Rejection};
use crate::security::KafkaPrincipal;
use crate::security::acl::{AclOperation, AclSet, Authorizer, ResourceType};

pub const TOPIC_AUTHORIZATION_FAILED: KafkaCode = KafkaCode::TOPIC_AUTHORIZATION_FAILED;
pub const CLUSTER_AUTHORIZATION_FAILED: KafkaCode = KafkaCode::CLUSTER_AUTHORIZATION_FAILED;

/// The operations coordinator routes need, named as Kafka's ACLs name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Delete,
    Alter,
    AlterConfigs,
    Describe,
    ClusterAction,
}

impl Operation {
    fn acl_operation(self) -> AclOperation {
        match self {
            Operation::Create => AclOperation::Create,
            Operation::Delete => AclOperation::Delete,
            Operation::Alter => AclOperation::Alter,
            Operation::AlterConfigs => AclOperation::AlterConfigs,
            Operation::Describe => AclOperation::Describe,
            Operation::ClusterAction => AclOperation::ClusterAction,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The resource an operation is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    Cluster,
    Topic(&'a str),
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Cluster => f.write_str("Cluster:kafka-cluster"),
            Resource::Topic(name) => write!(f, "Topic:{name}"),
        }
    }
}

/// A connected peer: who it authenticated as, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub principal: KafkaPrincipal,
    pub host: IpAddr,
}

/// Decides whether a peer may do an operation; `acls` are the bindings of
/// the metadata image current at the call.
pub trait ControlAuthorizer: Send + Sync {
    fn authorize(
        &self,
        acls: &AclSet,
        peer: &Peer,
        operation: Operation,
        resource: Resource<'_>,
    ) -> bool;
}

/// Everything is allowed: the coordinator without TLS or authorizer keys,
/// as before (a warning at start says the port is open).
#[derive(Debug)]
pub struct AllowAll;

impl ControlAuthorizer for AllowAll {
    fn authorize(&self, _: &AclSet, _: &Peer, _: Operation, _: Resource<'_>) -> bool {
        true
    }
}

/// `super.users` may do everything; anyone else (and `User:ANONYMOUS`,
/// even if listed) nothing.
#[derive(Debug)]
pub struct SuperUsers(pub Vec<KafkaPrincipal>);

impl ControlAuthorizer for SuperUsers {
    fn authorize(&self, _: &AclSet, peer: &Peer, _: Operation, _: Resource<'_>) -> bool {
        peer.principal != KafkaPrincipal::anonymous() && self.0.contains(&peer.principal)
    }
}

/// The broker's ACL authorizer (StandardAuthorizer's rules, `super.users`,
/// `allow.everyone.if.no.acl.found`) over the image's bindings.
#[derive(Debug)]
pub struct AclAuthorization(pub Authorizer);

impl ControlAuthorizer for AclAuthorization {
    fn authorize(
        &self,
        acls: &AclSet,
        peer: &Peer,
        operation: Operation,
        resource: Resource<'_>,
    ) -> bool {
        let (resource_type, name) = match resource {
            Resource::Cluster => (ResourceType::Cluster, crate::security::acl::CLUSTER_NAME),
            Resource::Topic(name) => (ResourceType::Topic, name),
        };
        self.0.authorize(
            acls,
            &peer.principal.to_string(),
            &peer.host.to_string(),
            operation.acl_operation(),
            resource_type,
            name,
        )
    }
}

/// The authorizer the settings ask for.
pub fn authorizer_for(settings: &AccessSettings) -> Box<dyn ControlAuthorizer> {
    match (&settings.acl, settings.enabled) {
        (Some(authorizer), _) => Box::new(AclAuthorization(authorizer.clone())),
        (None, true) => Box::new(SuperUsers(settings.super_users.clone())),
        (None, false) => Box::new(AllowAll),
    }
}

/// Whether `peer` may do any of `wanted` (Kafka allows CreateTopics with
/// Create on the cluster *or* on the topic); refused with the code Kafka
/// answers for the last one's resource type.
pub fn check(
    authorizer: &dyn ControlAuthorizer,
    acls: &AclSet,
    peer: &Peer,
    wanted: &[(Operation, Resource<'_>)],
) -> Result<(), Rejection> {
    if wanted
        .iter()
        .any(|(operation, resource)| authorizer.authorize(acls, peer, *operation, *resource))
    {
        return Ok(());
    }
    let Some((operation, resource)) = wanted.last() else {
        return Ok(());
    };
    let code = match resource {
        Resource::Cluster => CLUSTER_AUTHORIZATION_FAILED,
        Resource::Topic(_) => TOPIC_AUTHORIZATION_FAILED,
    };
    tracing::warn!(
        principal = %peer.principal,
        host = %peer.host,
        %operation,
        %resource,
        "coordinator request refused: not authorized"
    );
    Err(Rejection {
        code,
        message: format!(
            "Principal = {} is not authorized to {operation} {resource}",
            peer.principal
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> Peer {
        Peer {
            principal: KafkaPrincipal::user(name),
            host: "127.0.0.1".parse().expect("ip"),
        }
    }

    fn on(enabled: bool, super_users: &[&str]) -> Box<dyn ControlAuthorizer> {
        authorizer_for(&AccessSettings {
            enabled,
            acl: None,
            super_users: super_users
                .iter()
                .map(|n| KafkaPrincipal::user(*n))
                .collect(),
        })
    }

    fn check(
        authorizer: &dyn ControlAuthorizer,
        peer: &Peer,
        wanted: &[(Operation, Resource<'_>)],
    ) -> Result<(), Rejection> {
        super::check(authorizer, &AclSet::default(), peer, wanted)
    }

    #[test]
    fn without_access_settings_everything_is_allowed() {
        let authorizer = on(false, &[]);
        let anonymous = peer("ANONYMOUS");
        assert!(
            check(
                &*authorizer,
                &anonymous,
                &[(Operation::Delete, Resource::Topic("t"))]
            )
            .is_ok()
        );
    }

    #[test]
    fn super_users_may_do_everything_and_others_nothing() {
        let authorizer = on(true, &["CN=broker,O=gregor", "ANONYMOUS"]);
        let broker = peer("CN=broker,O=gregor");
        for operation in [
            Operation::ClusterAction,
            Operation::Create,
            Operation::AlterConfigs,
        ] {
            assert!(check(&*authorizer, &broker, &[(operation, Resource::Cluster)]).is_ok());
        }
        let client = peer("CN=client,O=gregor");
        let refused = check(
            &*authorizer,
            &client,
            &[(Operation::ClusterAction, Resource::Cluster)],
        )
        .expect_err("not a super user");
        assert_eq!(refused.code, CLUSTER_AUTHORIZATION_FAILED);
        assert!(
            refused.message.contains("User:CN=client,O=gregor"),
            "{}",
            refused.message
        );
        let anonymous = peer("ANONYMOUS");
        assert!(
            check(
                &*authorizer,
                &anonymous,
                &[(Operation::Describe, Resource::Cluster)]
            )
            .is_err(),
            "no certificate is never a super user"
        );
    }

    #[test]
    fn a_topic_refusal_answers_topic_authorization_failed() {
        let authorizer = on(true, &[]);
        let refused = check(
            &*authorizer,
            &peer("mallory"),
            &[
                (Operation::Create, Resource::Cluster),
                (Operation::Create, Resource::Topic("orders")),
            ],
        )
        .expect_err("refused");
        assert_eq!(refused.code, TOPIC_AUTHORIZATION_FAILED);
        assert!(
            refused.message.contains("Topic:orders"),
            "{}",
            refused.message
        );
    }

    /// A stand-in for the ACL authorizer: Create on one topic only.
    struct CreateOnly(&'static str);

    impl ControlAuthorizer for CreateOnly {
        fn authorize(
            &self,
            _: &AclSet,
            _: &Peer,
            operation: Operation,
            resource: Resource<'_>,
        ) -> bool {
            operation == Operation::Create && resource == Resource::Topic(self.0)
        }
    }

    #[test]
    fn any_listed_resource_is_enough() {
        let authorizer = CreateOnly("orders");
        let alice = peer("alice");
        let create = |topic| {
            [
                (Operation::Create, Resource::Cluster),
                (Operation::Create, Resource::Topic(topic)),
            ]
        };
        assert!(check(&authorizer, &alice, &create("orders")).is_ok());
        assert!(check(&authorizer, &alice, &create("payments")).is_err());
    }

    #[test]
    fn with_an_authorizer_the_images_acls_decide() {
        use crate::security::acl::{
            AccessControlEntry, AclBinding, AclPermissionType, ResourcePattern,
        };
        let settings = AccessSettings {
            enabled: true,
            acl: Some(Authorizer {
                super_users: ["User:CN=broker,O=gregor".to_owned()].into(),
                allow_if_no_acl: false,
            }),
            super_users: Vec::new(),
        };
        let authorizer = authorizer_for(&settings);
        let mut acls = AclSet::default();
        acls.insert(AclBinding {
            pattern: ResourcePattern::prefixed(ResourceType::Topic, "app-"),
            entry: AccessControlEntry {
                principal: "User:CN=client,O=gregor".to_owned(),
                host: "*".to_owned(),
                operation: AclOperation::Create,
                permission: AclPermissionType::Allow,
            },
        });
        let client = peer("CN=client,O=gregor");
        let create = |topic| {
            [
                (Operation::Create, Resource::Cluster),
                (Operation::Create, Resource::Topic(topic)),
            ]
        };
        assert!(super::check(&*authorizer, &acls, &client, &create("app-orders")).is_ok());
        assert!(super::check(&*authorizer, &acls, &client, &create("payments")).is_err());
        let delete = [(Operation::Delete, Resource::Topic("app-orders"))];
        assert!(super::check(&*authorizer, &acls, &client, &delete).is_err());
        let broker = peer("CN=broker,O=gregor");
        let register = [(Operation::ClusterAction, Resource::Cluster)];
        assert!(
            super::check(&*authorizer, &acls, &broker, &register).is_ok(),
            "super user"
        );
        assert!(super::check(&*authorizer, &acls, &client, &register).is_err());
    }
}
