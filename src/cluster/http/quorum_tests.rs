//! Three coordinators as one quorum, in-process on loopback: the same
//! server code as `gregor coordinator` with `server.N` lines, raft over the
//! peer listeners, and a broker's [`RemoteCoordinator`] naming all three.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::Method;
use tokio::net::TcpListener;
use tokio::sync::watch;
use uuid::Uuid;

use super::client::HttpClient;
use super::ensemble::{EnsembleServer, EnsembleSettings};
use super::settings::CoordinatorSettings;
use super::wire::{LogBatch, MetadataLogResponse, QuorumView};
use super::{Listeners, RemoteCoordinator, run_on_listeners};
use crate::cluster::{
    BrokerRegistration, ClusterCoordinator, ClusterError, CreateTopicRequest, KafkaCode, Listener,
    MetadataImage, SecurityProtocol,
};
use crate::config::PartitionLimits;

struct Member {
    my_id: u64,
    address: String,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    (listener, address)
}

async fn start_ensemble() -> Vec<Member> {
    let mut sockets = Vec::new();
    let mut servers = BTreeMap::new();
    for my_id in 1..=3u64 {
        let (client, client_address) = bind().await;
        let (peer, peer_address) = bind().await;
        servers.insert(
            my_id,
            EnsembleServer {
                host: "127.0.0.1".to_owned(),
                peer_port: peer_address.port(),
                election_port: 3888,
                client_port: Some(client_address.port()),
            },
        );
        sockets.push((my_id, client, client_address, peer));
    }
    let mut members = Vec::new();
    for (my_id, client, client_address, peer) in sockets {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = CoordinatorSettings {
            data_dir: dir.path().to_owned(),
            listen: Some(client_address),
            secure: None,
            authorization: Default::default(),
            max_client_connections: None,
            node_id: 0,
            request_timeout: Duration::from_secs(30),
            partition_limits: PartitionLimits::default(),
            leader_rebalance: Default::default(),
            eligible_leader_replicas: Default::default(),
            ensemble: Some(EnsembleSettings {
                my_id,
                servers: servers.clone(),
                snapshot_after_entries: 5000,
            }),
        };
        let listeners = Listeners {
            plaintext: Some(client),
            secure: None,
            peer: Some(peer),
        };
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(async move {
            run_on_listeners(listeners, settings, shutdown)
                .await
                .expect("coordinator");
        });
        members.push(Member {
            my_id,
            address: client_address.to_string(),
            stop,
            server,
            _dir: dir,
        });
    }
    members
}

async fn get<T: serde::de::DeserializeOwned>(address: &str, path: &str) -> Option<T> {
    HttpClient::new(address.to_owned(), None)
        .call_within(Method::GET, path, None::<&()>, Duration::from_secs(5))
        .await
        .ok()
}

/// The leader every member in `members` names, once they agree.
async fn leader(members: &[&Member]) -> u64 {
    for _ in 0..150 {
        let mut named = Vec::new();
        for member in members {
            let view: Option<QuorumView> = get(&member.address, "/v1/quorum").await;
            named.push(view.and_then(|v| v.leader_id));
        }
        if let Some(Some(id)) = named.first().copied()
            && named.iter().all(|n| *n == Some(id))
            && members.iter().any(|m| m.my_id == id)
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no agreed leader");
}

/// The image `member` has applied.
async fn image_of(member: &Member) -> MetadataImage {
    let read: MetadataLogResponse = get(&member.address, "/v1/metadata/log?from=0")
        .await
        .expect("log answer");
    match read.batch {
        LogBatch::Snapshot(image) => *image,
        LogBatch::Entries(_) => panic!("from=0 answers with the image"),
    }
}

fn registration(broker_id: i32) -> BrokerRegistration {
    BrokerRegistration {
        broker_id,
        incarnation_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
        }],
        rack: None,
        directory_id: Uuid::nil(),
        previous_broker_epoch: None,
    }
}

fn topic(name: &str) -> CreateTopicRequest {
    CreateTopicRequest {
        assignments: Vec::new(),
        name: name.to_owned(),
        partitions: 2,
        replication_factor: 1,
        configs: BTreeMap::new(),
        validate_only: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_fails_over_and_keeps_every_committed_command() {
    let members = start_ensemble().await;
    let all: Vec<&Member> = members.iter().collect();
    let first = leader(&all).await;
    let addresses: Vec<&str> = members.iter().map(|m| m.address.as_str()).collect();
    let (_stop_broker, shutdown) = watch::channel(false);
    let broker = RemoteCoordinator::start(&addresses.join(","), shutdown);
    broker
        .register_broker(registration(0))
        .await
        .expect("register through whichever member leads");
    broker.create_topic(topic("before")).await.expect("create");

    let stopped = members.iter().find(|m| m.my_id == first).expect("leader");
    stopped.stop.send_replace(true);
    let live: Vec<&Member> = members.iter().filter(|m| m.my_id != first).collect();
    let second = leader(&live).await;
    assert_ne!(second, first);
    let mut created = None;
    for _ in 0..50 {
        match broker.create_topic(topic("after")).await {
            Ok(summary) => {
                created = Some(summary);
                break;
            }
            Err(ClusterError::NotController { .. } | ClusterError::QuorumUnavailable { .. }) => {}
            Err(ClusterError::Rejected { code, .. }) if code == KafkaCode::REQUEST_TIMED_OUT => {}
            Err(other) => panic!("create after failover: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(created.is_some(), "the new leader accepts a topic creation");

    for member in &live {
        // A follower applies what the leader committed a moment later.
        let mut image = image_of(member).await;
        for _ in 0..50 {
            if image.topic("after").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            image = image_of(member).await;
        }
        assert!(image.topic("before").is_some() && image.topic("after").is_some());
        assert!(image.broker(0).is_some());
        assert_eq!(image.cluster_id, broker.image().cluster_id);
    }
    for member in members {
        member.stop.send_replace(true);
        let _ = member.server.await;
    }
}

fn refused_code(result: Result<(), ClusterError>) -> KafkaCode {
    match result {
        Err(error) => error.code(),
        Ok(()) => panic!("the voter change was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_change_one_at_a_time_and_a_removed_id_never_returns() {
    use crate::cluster::raft::{Member as RaftMember, MembershipChange};
    let members = start_ensemble().await;
    let all: Vec<&Member> = members.iter().collect();
    leader(&all).await;
    let addresses: Vec<&str> = members.iter().map(|m| m.address.as_str()).collect();
    let addresses = addresses.join(",");
    let add = |member_id| MembershipChange::Add {
        member_id,
        member: RaftMember {
            peer_address: "127.0.0.1:1".to_owned(),
            client_address: "127.0.0.1:1".to_owned(),
        },
    };
    let remove = |member_id| MembershipChange::Remove { member_id };
    assert_eq!(
        refused_code(super::change_voters(&addresses, None, &add(2)).await),
        KafkaCode::DUPLICATE_VOTER
    );
    assert_eq!(
        refused_code(super::change_voters(&addresses, None, &remove(9)).await),
        KafkaCode::VOTER_NOT_FOUND
    );
    super::change_voters(&addresses, None, &remove(3))
        .await
        .expect("remove voter 3");
    let live: Vec<&Member> = members.iter().filter(|m| m.my_id != 3).collect();
    let now = leader(&live).await;
    let view: QuorumView = get(&members[(now - 1) as usize].address, "/v1/quorum")
        .await
        .expect("quorum view");
    assert_eq!(view.voters.iter().map(|v| v.id).collect::<Vec<_>>(), [1, 2]);
    match super::change_voters(&addresses, None, &add(3)).await {
        Err(error) => assert!(error.to_string().contains("never reused"), "{error}"),
        Ok(()) => panic!("a removed id was accepted again"),
    }
    for member in members {
        member.stop.send_replace(true);
        let _ = member.server.await;
    }
}
