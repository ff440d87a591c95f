//! The producing client: a record at a time (at most two in flight), each
//! with `acks=all` or `acks=1` by the seed, sent to the broker it believes
//! leads (refreshed from the metadata after an error or a timeout, so it
//! may well be stale).

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::StdRng;

use super::messages::Message;
use super::network::{Network, Node};
use super::{BROKERS, TOPIC};
use crate::cluster::MetadataImage;
use crate::replication::state::BrokerId;

const MAX_IN_FLIGHT: usize = 2;
const REQUEST_TIMEOUT_MS: i64 = 5_000;

#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub record_id: u64,
    pub acks: i16,
    pub sent_ms: i64,
}

pub struct Client {
    rng: StdRng,
    next_send_ms: i64,
    next_request_id: u64,
    target: BrokerId,
    in_flight: BTreeMap<u64, Request>,
    /// Every request sent, by id (the checker looks up what was acked).
    pub requests: BTreeMap<u64, Request>,
    pub stopped: bool,
    pub timeouts: u64,
}

impl Client {
    pub fn new(rng: StdRng) -> Self {
        Client {
            rng,
            next_send_ms: 0,
            next_request_id: 1,
            target: BROKERS[0],
            in_flight: BTreeMap::new(),
            requests: BTreeMap::new(),
            stopped: false,
            timeouts: 0,
        }
    }

    fn refresh(&mut self, image: &MetadataImage) {
        if let Some(state) = image.partition(TOPIC, 0)
            && state.leader >= 0
        {
            self.target = state.leader;
        }
    }

    pub fn tick(&mut self, now_ms: i64, image: &MetadataImage, network: &mut Network) {
        let before = self.in_flight.len();
        self.in_flight
            .retain(|_, r| now_ms - r.sent_ms <= REQUEST_TIMEOUT_MS);
        if self.in_flight.len() < before {
            self.timeouts += (before - self.in_flight.len()) as u64;
            self.refresh(image);
        }
        if self.stopped
            || image.partition(TOPIC, 0).is_none()
            || self.in_flight.len() >= MAX_IN_FLIGHT
            || now_ms < self.next_send_ms
        {
            return;
        }
        self.next_send_ms = now_ms + self.rng.gen_range(20..80);
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let request = Request {
            record_id: request_id,
            acks: if self.rng.gen_bool(0.5) { -1 } else { 1 },
            sent_ms: now_ms,
        };
        self.in_flight.insert(request_id, request);
        self.requests.insert(request_id, request);
        let message = Message::Produce {
            request_id,
            record_id: request.record_id,
            acks: request.acks,
        };
        network.send(now_ms, Node::Client, Node::Broker(self.target), message);
    }

    pub fn receive(&mut self, message: Message, image: &MetadataImage) {
        if let Message::Produced { request_id, result } = message
            && self.in_flight.remove(&request_id).is_some()
            && result.is_err()
        {
            self.refresh(image);
        }
    }
}
