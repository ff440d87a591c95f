//! What the hosts say to each other: the RPCs of the real cluster
//! (BrokerRegistration, BrokerHeartbeat, AlterPartition, the metadata
//! log a broker follows, Fetch, Produce) reduced to the fields the
//! replication code reads.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::cluster::MetadataImage;
use crate::cluster::http::wire::BrokerHeartbeatRequest;
use crate::cluster::{AlterPartitionRequest, KafkaCode};
use crate::replication::follower::FetchedPartition;
use crate::replication::state::BrokerId;

#[derive(Clone, Debug)]
pub enum Message {
    Register {
        broker_id: BrokerId,
        incarnation: Uuid,
    },
    Registered {
        incarnation: Uuid,
        broker_epoch: i64,
    },
    Heartbeat(BrokerHeartbeatRequest),
    AlterPartition {
        incarnation: Uuid,
        request: AlterPartitionRequest,
    },
    /// The answer to one AlterPartition: `Err(code)` when refused.
    AlterAnswered {
        incarnation: Uuid,
        request: AlterPartitionRequest,
        result: Result<(), KafkaCode>,
    },
    /// The committed metadata as of its `last_applied` index.
    Image(Arc<MetadataImage>),
    Fetch(FetchRequest),
    Fetched {
        fetch_id: u64,
        data: FetchedPartition,
        batches: Vec<Bytes>,
    },
    Produce {
        request_id: u64,
        record_id: u64,
        acks: i16,
    },
    Produced {
        request_id: u64,
        /// The offset, or the error code.
        result: Result<i64, i16>,
    },
}

#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub fetch_id: u64,
    pub replica: BrokerId,
    /// The follower's broker epoch as its image says (Fetch v15).
    pub broker_epoch: i64,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
}
