//! The controller host: the real metadata state machine
//! ([`MetadataImage::apply`], its elections and ISR rules), the real broker
//! leases and heartbeat decisions, and the real AlterPartition check. Its
//! log is the sequence of applied commands (the quorum itself has its own
//! simulation); brokers receive each new image, and the latest again every
//! [`IMAGE_RESEND_MS`] since any message may be lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::messages::Message;
use super::network::{Network, Node};
use super::{BROKERS, MIN_INSYNC_REPLICAS, SESSION_TIMEOUT_MS, TOPIC};
use crate::cluster::http::lease::{Leases, decide_heartbeat};
use crate::cluster::metadata::{ApplyOutcome, Command};
use crate::cluster::{MetadataImage, Rejection};

const IMAGE_RESEND_MS: i64 = 500;
const LEASE_CHECK_MS: i64 = 100;

pub struct Controller {
    image: Arc<MetadataImage>,
    leases: Leases,
    /// Leases run on `Instant`s: the simulation's time from this origin.
    origin: Instant,
    topic_id: Uuid,
    next_resend_ms: i64,
    next_lease_check_ms: i64,
    /// Every command applied, for a failing seed's report.
    pub applied: Vec<String>,
}

impl Controller {
    pub fn new(topic_id: Uuid) -> Self {
        Controller {
            image: Arc::new(MetadataImage::new("simulated")),
            leases: Leases::new(Duration::from_millis(SESSION_TIMEOUT_MS as u64)),
            origin: Instant::now(),
            topic_id,
            next_resend_ms: 0,
            next_lease_check_ms: 0,
            applied: Vec::new(),
        }
    }

    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.image
    }

    fn instant(&self, now_ms: i64) -> Instant {
        self.origin + Duration::from_millis(now_ms as u64)
    }

    /// Applies `command` at the next log index; on a refusal the image is
    /// unchanged (the proposer's dry run).
    fn propose(
        &mut self,
        now_ms: i64,
        command: Command,
        network: &mut Network,
    ) -> Result<ApplyOutcome, Rejection> {
        let mut next = (*self.image).clone();
        let index = next.last_applied + 1;
        let outcome = next.apply(index, &command)?;
        self.applied
            .push(format!("{now_ms} ms #{index}: {command:?} -> {outcome:?}"));
        self.image = Arc::new(next);
        self.broadcast(now_ms, network);
        Ok(outcome)
    }

    fn broadcast(&mut self, now_ms: i64, network: &mut Network) {
        for id in BROKERS {
            network.send(
                now_ms,
                Node::Controller,
                Node::Broker(id),
                Message::Image(self.image.clone()),
            );
        }
        self.next_resend_ms = now_ms + IMAGE_RESEND_MS;
    }

    pub fn tick(&mut self, now_ms: i64, network: &mut Network) {
        if now_ms >= self.next_lease_check_ms {
            self.next_lease_check_ms = now_ms + LEASE_CHECK_MS;
            for command in self.leases.expired(&self.image, self.instant(now_ms)) {
                let _ = self.propose(now_ms, command, network);
            }
            self.create_topic_once_brokers_are_up(now_ms, network);
        }
        if now_ms >= self.next_resend_ms {
            self.broadcast(now_ms, network);
        }
    }

    /// The client's CreateTopic, once every broker is registered and
    /// unfenced: one partition on all of them, `min.insync.replicas` 2.
    fn create_topic_once_brokers_are_up(&mut self, now_ms: i64, network: &mut Network) {
        if self.image.topic(TOPIC).is_some()
            || BROKERS
                .iter()
                .any(|id| self.image.broker(*id).is_none_or(|b| b.fenced))
        {
            return;
        }
        let configs = BTreeMap::from([(
            "min.insync.replicas".to_owned(),
            MIN_INSYNC_REPLICAS.to_string(),
        )]);
        let command = Command::CreateTopic {
            name: TOPIC.to_owned(),
            topic_id: self.topic_id,
            configs,
            assignments: vec![BROKERS.to_vec()],
        };
        let _ = self.propose(now_ms, command, network);
    }

    pub fn receive(&mut self, now_ms: i64, from: Node, message: Message, network: &mut Network) {
        match message {
            Message::Register {
                broker_id,
                incarnation,
            } => {
                let command = Command::RegisterBroker {
                    broker_id,
                    incarnation_id: incarnation,
                    listeners: Vec::new(),
                    rack: None,
                    previous_broker_epoch: None,
                };
                // A repeated registration of the same incarnation is answered
                // with its epoch, as the server does.
                let epoch = match self.image.broker(broker_id) {
                    Some(b) if b.incarnation_id == incarnation => Some(b.epoch),
                    _ => match self.propose(now_ms, command, network) {
                        Ok(ApplyOutcome::BrokerRegistered { broker_epoch }) => Some(broker_epoch),
                        _ => None,
                    },
                };
                if let Some(broker_epoch) = epoch {
                    self.leases.renew(broker_id, self.instant(now_ms));
                    let answer = Message::Registered {
                        incarnation,
                        broker_epoch,
                    };
                    network.send(now_ms, Node::Controller, from, answer);
                }
            }
            Message::Heartbeat(request) => {
                let decision = decide_heartbeat(&self.image, &request);
                if decision.response.error.error_code != 0 {
                    return;
                }
                self.leases.renew(request.broker_id, self.instant(now_ms));
                if let Some(command) = decision.command {
                    let _ = self.propose(now_ms, command, network);
                }
            }
            Message::AlterPartition {
                incarnation,
                request,
            } => {
                let result = self
                    .image
                    .alter_partition(&request)
                    .and_then(|command| self.propose(now_ms, command, network))
                    .map(|_| ())
                    .map_err(|rejection| rejection.code);
                let answer = Message::AlterAnswered {
                    incarnation,
                    request,
                    result,
                };
                network.send(now_ms, Node::Controller, from, answer);
            }
            _ => {}
        }
    }
}
