use std::time::Instant;

use super::*;

use AclOperation as Op;
use AclPermissionType::{Allow, Deny};
use ResourceType::{Cluster, Group, Topic};

fn binding(
    pattern: ResourcePattern,
    principal: &str,
    host: &str,
    operation: AclOperation,
    permission: AclPermissionType,
) -> AclBinding {
    AclBinding {
        pattern,
        entry: AccessControlEntry {
            principal: principal.to_owned(),
            host: host.to_owned(),
            operation,
            permission,
        },
    }
}

fn lit(t: ResourceType, name: &str) -> ResourcePattern {
    ResourcePattern::literal(t, name)
}

fn pre(t: ResourceType, name: &str) -> ResourcePattern {
    ResourcePattern::prefixed(t, name)
}

const ALICE: &str = "User:alice";
const HOST: &str = "10.0.0.1";

struct Case {
    what: &'static str,
    acls: Vec<AclBinding>,
    authorizer: Authorizer,
    operation: AclOperation,
    resource: (ResourceType, &'static str),
    allowed: bool,
}

fn case(
    what: &'static str,
    acls: Vec<AclBinding>,
    operation: AclOperation,
    resource: (ResourceType, &'static str),
    allowed: bool,
) -> Case {
    Case {
        what,
        acls,
        authorizer: Authorizer::default(),
        operation,
        resource,
        allowed,
    }
}

#[test]
fn authorize_follows_standard_authorizer_rules() {
    let allow_read = binding(lit(Topic, "orders"), ALICE, "*", Op::Read, Allow);
    let cases = vec![
        case(
            "no acls, default deny",
            vec![],
            Op::Read,
            (Topic, "orders"),
            false,
        ),
        case(
            "literal allow",
            vec![allow_read.clone()],
            Op::Read,
            (Topic, "orders"),
            true,
        ),
        case(
            "other operation",
            vec![allow_read.clone()],
            Op::Write,
            (Topic, "orders"),
            false,
        ),
        case(
            "other topic",
            vec![allow_read.clone()],
            Op::Read,
            (Topic, "order"),
            false,
        ),
        case(
            "other resource type",
            vec![allow_read.clone()],
            Op::Read,
            (Group, "orders"),
            false,
        ),
        case(
            "read implies describe",
            vec![allow_read.clone()],
            Op::Describe,
            (Topic, "orders"),
            true,
        ),
        case(
            "write, delete, alter imply describe",
            vec![
                binding(lit(Topic, "a"), ALICE, "*", Op::Write, Allow),
                binding(lit(Topic, "b"), ALICE, "*", Op::Delete, Allow),
                binding(lit(Topic, "c"), ALICE, "*", Op::Alter, Allow),
            ],
            Op::Describe,
            (Topic, "c"),
            true,
        ),
        case(
            "describe implies nothing else",
            vec![binding(lit(Topic, "t"), ALICE, "*", Op::Describe, Allow)],
            Op::Read,
            (Topic, "t"),
            false,
        ),
        case(
            "alter configs implies describe configs",
            vec![binding(
                lit(Topic, "t"),
                ALICE,
                "*",
                Op::AlterConfigs,
                Allow,
            )],
            Op::DescribeConfigs,
            (Topic, "t"),
            true,
        ),
        case(
            "describe configs does not imply alter configs",
            vec![binding(
                lit(Topic, "t"),
                ALICE,
                "*",
                Op::DescribeConfigs,
                Allow,
            )],
            Op::AlterConfigs,
            (Topic, "t"),
            false,
        ),
        case(
            "all allows every operation",
            vec![binding(
                lit(Cluster, CLUSTER_NAME),
                ALICE,
                "*",
                Op::All,
                Allow,
            )],
            Op::IdempotentWrite,
            (Cluster, CLUSTER_NAME),
            true,
        ),
        case(
            "deny wins over allow",
            vec![
                allow_read.clone(),
                binding(lit(Topic, "orders"), ALICE, "*", Op::Read, Deny),
            ],
            Op::Read,
            (Topic, "orders"),
            false,
        ),
        case(
            "deny all wins over allow",
            vec![
                allow_read.clone(),
                binding(pre(Topic, "ord"), "User:*", "*", Op::All, Deny),
            ],
            Op::Read,
            (Topic, "orders"),
            false,
        ),
        case(
            "deny read does not deny describe",
            vec![
                binding(lit(Topic, "t"), ALICE, "*", Op::Describe, Allow),
                binding(lit(Topic, "t"), ALICE, "*", Op::Read, Deny),
            ],
            Op::Describe,
            (Topic, "t"),
            true,
        ),
        case(
            "deny for another principal does not apply",
            vec![
                allow_read.clone(),
                binding(lit(Topic, "orders"), "User:bob", "*", Op::Read, Deny),
            ],
            Op::Read,
            (Topic, "orders"),
            true,
        ),
        case(
            "wildcard resource name",
            vec![binding(lit(Topic, "*"), ALICE, "*", Op::Write, Allow)],
            Op::Write,
            (Topic, "anything"),
            true,
        ),
        case(
            "wildcard principal",
            vec![binding(lit(Topic, "t"), "User:*", "*", Op::Read, Allow)],
            Op::Read,
            (Topic, "t"),
            true,
        ),
        case(
            "prefixed pattern",
            vec![binding(pre(Topic, "app-"), ALICE, "*", Op::Read, Allow)],
            Op::Read,
            (Topic, "app-orders"),
            true,
        ),
        case(
            "prefixed pattern, not a prefix",
            vec![binding(pre(Topic, "app-"), ALICE, "*", Op::Read, Allow)],
            Op::Read,
            (Topic, "ap"),
            false,
        ),
        case(
            "prefixed pattern equal to the name",
            vec![binding(pre(Group, "g"), ALICE, "*", Op::Read, Allow)],
            Op::Read,
            (Group, "g"),
            true,
        ),
        case(
            "prefixed is not a wildcard",
            vec![binding(pre(Topic, "*"), ALICE, "*", Op::Read, Allow)],
            Op::Read,
            (Topic, "t"),
            false,
        ),
        case(
            "host matches",
            vec![binding(lit(Topic, "t"), ALICE, HOST, Op::Read, Allow)],
            Op::Read,
            (Topic, "t"),
            true,
        ),
        case(
            "host differs",
            vec![binding(lit(Topic, "t"), ALICE, "10.0.0.2", Op::Read, Allow)],
            Op::Read,
            (Topic, "t"),
            false,
        ),
    ];
    let mut cases = cases;
    cases.push(Case {
        authorizer: Authorizer {
            super_users: [ALICE.to_owned()].into(),
            allow_if_no_acl: false,
        },
        ..case(
            "super user passes even a deny",
            vec![binding(lit(Topic, "t"), ALICE, "*", Op::All, Deny)],
            Op::Delete,
            (Topic, "t"),
            true,
        )
    });
    cases.push(Case {
        authorizer: Authorizer {
            allow_if_no_acl: true,
            ..Authorizer::default()
        },
        ..case(
            "no acl found, allowed",
            vec![],
            Op::Alter,
            (Topic, "t"),
            true,
        )
    });
    cases.push(Case {
        authorizer: Authorizer {
            allow_if_no_acl: true,
            ..Authorizer::default()
        },
        ..case(
            "an acl for someone else counts as found",
            vec![binding(lit(Topic, "t"), "User:bob", "*", Op::Read, Allow)],
            Op::Read,
            (Topic, "t"),
            false,
        )
    });
    for c in cases {
        let acls = AclSet::from(c.acls);
        let got =
            c.authorizer
                .authorize(&acls, ALICE, HOST, c.operation, c.resource.0, c.resource.1);
        assert_eq!(got, c.allowed, "{}", c.what);
    }
}

#[test]
fn filters_match_as_kafka_does() {
    let literal = binding(lit(Topic, "orders"), ALICE, "*", Op::Read, Allow);
    let wildcard = binding(lit(Topic, "*"), ALICE, "*", Op::Read, Allow);
    let prefixed = binding(pre(Topic, "ord"), "User:bob", HOST, Op::Write, Deny);
    let group = binding(lit(Group, "orders"), ALICE, "*", Op::Read, Allow);
    let all = [&literal, &wildcard, &prefixed, &group];
    let filter = |t, name: Option<&str>, p| AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: t,
            name: name.map(str::to_owned),
            pattern_type: p,
        },
        ..AclBindingFilter::any()
    };
    let selected = |f: &AclBindingFilter| all.iter().map(|b| f.matches(b)).collect::<Vec<_>>();
    use PatternType::{Any, Literal, Match, Prefixed};
    assert_eq!(selected(&AclBindingFilter::any()), [true; 4]);
    assert_eq!(
        selected(&filter(Topic, Some("orders"), Literal)),
        [true, false, false, false]
    );
    assert_eq!(
        selected(&filter(ResourceType::Any, Some("orders"), Any)),
        [true, false, false, true]
    );
    assert_eq!(
        selected(&filter(Topic, Some("orders"), Match)),
        [true, true, true, false]
    );
    assert_eq!(
        selected(&filter(Topic, Some("other"), Match)),
        [false, true, false, false]
    );
    assert_eq!(
        selected(&filter(Topic, None, Prefixed)),
        [false, false, true, false]
    );
    let mut by_entry = AclBindingFilter::any();
    by_entry.entry.principal = Some("User:bob".into());
    by_entry.entry.permission = Deny;
    assert_eq!(selected(&by_entry), [false, false, true, false]);
    by_entry.entry.operation = Op::Read;
    assert_eq!(selected(&by_entry), [false; 4]);
}

#[test]
fn invalid_bindings_are_named() {
    let good = binding(lit(Topic, "t"), ALICE, "*", Op::Read, Allow);
    assert_eq!(good.invalid_reason(), None);
    let mut bad = good.clone();
    bad.pattern.pattern_type = PatternType::Match;
    assert!(bad.invalid_reason().is_some());
    let mut bad = good.clone();
    bad.entry.operation = Op::Any;
    assert!(bad.invalid_reason().is_some());
    let mut bad = good.clone();
    bad.entry.principal = "alice".into();
    assert!(bad.invalid_reason().is_some());
    let bad = binding(lit(Cluster, "other"), ALICE, "*", Op::Alter, Allow);
    assert!(bad.invalid_reason().is_some());
}

#[test]
fn acl_set_inserts_removes_and_round_trips_as_a_list() {
    let a = binding(lit(Topic, "t"), ALICE, "*", Op::Read, Allow);
    let b = binding(pre(Group, "g"), ALICE, "*", Op::Read, Deny);
    let mut set = AclSet::default();
    assert!(set.insert(a.clone()));
    assert!(!set.insert(a.clone()));
    assert!(set.insert(b.clone()));
    assert_eq!(set.len(), 2);
    let json = serde_json::to_string(&set).unwrap();
    let back: AclSet = serde_json::from_str(&json).unwrap();
    assert_eq!(back, set);
    assert!(set.remove(&a));
    assert!(!set.remove(&a));
    assert!(!set.contains(&a) && set.contains(&b));
    assert_eq!(set.iter().collect::<Vec<_>>(), vec![b]);
}

#[test]
fn codes_and_names_round_trip() {
    for code in 0..=14 {
        assert_eq!(AclOperation::from_code(code).code(), code);
    }
    assert_eq!(AclOperation::from_code(99), AclOperation::Unknown);
    assert_eq!(
        AclOperation::parse("IdempotentWrite"),
        Some(Op::IdempotentWrite)
    );
    assert_eq!(
        AclOperation::parse("describe-configs"),
        Some(Op::DescribeConfigs)
    );
    assert_eq!(PatternType::parse("prefixed"), Some(PatternType::Prefixed));
    assert_eq!(
        ResourceType::parse("transactional_id"),
        Some(ResourceType::TransactionalId)
    );
    assert_eq!(ResourceType::Topic.code(), 2);
    assert_eq!(AclPermissionType::Allow.code(), 3);
}

/// With 100 000 bindings on other resources, a check still only looks up
/// its own name, the wildcard and its prefixes.
#[test]
fn a_check_does_not_scan_unrelated_bindings() {
    let mut set = AclSet::default();
    for i in 0..100_000 {
        set.insert(binding(
            lit(Topic, &format!("topic-{i}")),
            ALICE,
            "*",
            Op::Read,
            Allow,
        ));
        set.insert(binding(
            pre(Topic, &format!("p{i}-")),
            ALICE,
            "*",
            Op::Read,
            Allow,
        ));
    }
    let authorizer = Authorizer::default();
    let started = Instant::now();
    for i in 0..10_000 {
        let name = format!("topic-{}", i * 7);
        assert!(authorizer.authorize(&set, ALICE, HOST, Op::Describe, Topic, &name));
    }
    // Scanning 200 000 bindings per check would take seconds here.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}
