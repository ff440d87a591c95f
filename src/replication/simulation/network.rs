//! The simulated network: messages between the controller, the brokers
//! and the client, delivered after a seeded latency unless the link is
//! cut (one way or both) or the message is lost.

use std::collections::BTreeSet;

use rand::Rng;
use rand::rngs::StdRng;

use super::messages::Message;
use crate::replication::state::BrokerId;

/// A host of the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Controller,
    Broker(BrokerId),
    Client,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Controller => write!(f, "controller"),
            Node::Broker(id) => write!(f, "b{id}"),
            Node::Client => write!(f, "client"),
        }
    }
}

pub struct Envelope {
    pub at_ms: i64,
    seq: u64,
    pub from: Node,
    pub to: Node,
    pub message: Message,
}

pub struct Network {
    rng: StdRng,
    in_flight: Vec<Envelope>,
    seq: u64,
    /// Links that drop what `from` sends to `to`.
    cut: BTreeSet<(Node, Node)>,
    pub loss: f64,
    pub max_latency_ms: i64,
    pub sent: u64,
    pub dropped: u64,
}

pub const NORMAL_LATENCY_MS: i64 = 5;

impl Network {
    pub fn new(rng: StdRng) -> Self {
        Network {
            rng,
            in_flight: Vec::new(),
            seq: 0,
            cut: BTreeSet::new(),
            loss: 0.0,
            max_latency_ms: NORMAL_LATENCY_MS,
            sent: 0,
            dropped: 0,
        }
    }

    pub fn send(&mut self, now_ms: i64, from: Node, to: Node, message: Message) {
        self.sent += 1;
        if self.cut.contains(&(from, to)) || (self.loss > 0.0 && self.rng.gen_bool(self.loss)) {
            self.dropped += 1;
            return;
        }
        let latency = self.rng.gen_range(1..=self.max_latency_ms.max(1));
        self.seq += 1;
        self.in_flight.push(Envelope {
            at_ms: now_ms + latency,
            seq: self.seq,
            from,
            to,
            message,
        });
    }

    /// The messages due by `now_ms`, in delivery order; those whose link
    /// was cut meanwhile are lost.
    pub fn due(&mut self, now_ms: i64) -> Vec<Envelope> {
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|e| e.at_ms <= now_ms);
        self.in_flight = later;
        due.sort_by_key(|e| (e.at_ms, e.seq));
        let before = due.len();
        due.retain(|e| !self.cut.contains(&(e.from, e.to)));
        self.dropped += (before - due.len()) as u64;
        due
    }

    pub fn cut_one_way(&mut self, from: Node, to: Node) {
        self.cut.insert((from, to));
    }

    pub fn cut_both(&mut self, a: Node, b: Node) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    pub fn isolate(&mut self, node: Node, all: &[Node]) {
        for other in all.iter().filter(|o| **o != node) {
            self.cut_both(node, *other);
        }
    }

    pub fn repair(&mut self) {
        self.cut.clear();
    }

    pub fn heal(&mut self) {
        self.repair();
        self.loss = 0.0;
        self.max_latency_ms = NORMAL_LATENCY_MS;
    }
}
