//! Broker leases: who has heartbeated recently, and what a heartbeat or a
//! lease expiry should change. Pure — the server owns the clock and
//! proposes the returned commands.
//!
//! Leases are not replicated: they live in the coordinator's memory, and a
//! coordinator that (re)starts renews every lease, so a restart does not
//! fence the whole cluster at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::wire::{BrokerHeartbeatRequest, BrokerHeartbeatResponse, ErrorBody};
use crate::cluster::metadata::{Command, KafkaCode, MetadataImage};

/// How often brokers heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// Silence after which a broker is fenced (Kafka's
/// `broker.session.timeout.ms`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(9);

/// The last heartbeat of every broker, by id.
#[derive(Debug)]
pub struct Leases {
    timeout: Duration,
    last_heartbeat: HashMap<i32, Instant>,
}

impl Leases {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            last_heartbeat: HashMap::new(),
        }
    }

    /// Starts every registered broker's lease afresh at `now`.
    pub fn reset(&mut self, image: &MetadataImage, now: Instant) {
        self.last_heartbeat = image.brokers().map(|b| (b.id, now)).collect();
    }

    /// A registration or heartbeat from `broker_id` at `now`.
    pub fn renew(&mut self, broker_id: i32, now: Instant) {
        self.last_heartbeat.insert(broker_id, now);
    }

    /// `FenceBroker` for every unfenced broker silent for longer than the
    /// timeout, decided against its current epoch.
    pub fn expired(&self, image: &MetadataImage, now: Instant) -> Vec<Command> {
        image
            .brokers()
            .filter(|b| !b.fenced)
            .filter(|b| {
                self.last_heartbeat
                    .get(&b.id)
                    .is_some_and(|last| now.saturating_duration_since(*last) > self.timeout)
            })
            .map(|b| Command::FenceBroker {
                broker_id: b.id,
                broker_epoch: b.epoch,
            })
            .collect()
    }
}

/// What to answer a heartbeat with, and the command to propose first (the
/// answer assumes it commits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatDecision {
    pub response: BrokerHeartbeatResponse,
    pub command: Option<Command>,
}

/// Decides on a heartbeat: a fenced broker whose image has reached its own
/// registration (its broker epoch is that log index) is unfenced; a broker
/// that asks to be fenced is.
pub fn decide_heartbeat(
    image: &MetadataImage,
    request: &BrokerHeartbeatRequest,
) -> HeartbeatDecision {
    let refuse = |code: KafkaCode, message: String| HeartbeatDecision {
        response: BrokerHeartbeatResponse {
            error: ErrorBody::new(code, message),
            is_caught_up: false,
            is_fenced: true,
            should_shut_down: false,
        },
        command: None,
    };
    let Some(broker) = image.broker(request.broker_id) else {
        return refuse(
            KafkaCode::BROKER_NOT_AVAILABLE,
            format!("broker {} is not registered", request.broker_id),
        );
    };
    if broker.epoch != request.broker_epoch {
        return refuse(
            KafkaCode::STALE_BROKER_EPOCH,
            format!(
                "broker {} epoch is {}, the heartbeat was for epoch {}",
                broker.id, broker.epoch, request.broker_epoch
            ),
        );
    }
    let is_caught_up =
        u64::try_from(broker.epoch).is_ok_and(|e| request.current_metadata_offset >= e);
    let (is_fenced, command) = match (broker.fenced, request.want_fence, is_caught_up) {
        (false, true, _) => (
            true,
            Some(Command::FenceBroker {
                broker_id: broker.id,
                broker_epoch: broker.epoch,
            }),
        ),
        (true, false, true) => (
            false,
            Some(Command::UnfenceBroker {
                broker_id: broker.id,
                broker_epoch: broker.epoch,
            }),
        ),
        (fenced, _, _) => (fenced, None),
    };
    HeartbeatDecision {
        response: BrokerHeartbeatResponse {
            error: ErrorBody::none(),
            is_caught_up,
            is_fenced,
            should_shut_down: false,
        },
        command,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    /// An image where broker 0 registered at index 1 and broker 1 at 2,
    /// both unfenced, then topics moved the log on to index 5.
    fn image() -> MetadataImage {
        let mut image = MetadataImage::new("c");
        for (index, id) in [(1, 0), (2, 1)] {
            image
                .apply(
                    index,
                    &Command::RegisterBroker {
                        broker_id: id,
                        incarnation_id: Uuid::new_v4(),
                        listeners: Vec::new(),
                        rack: None,
                    },
                )
                .expect("register");
        }
        for (index, id, epoch) in [(3, 0, 1), (4, 1, 2)] {
            image
                .apply(
                    index,
                    &Command::UnfenceBroker {
                        broker_id: id,
                        broker_epoch: epoch,
                    },
                )
                .expect("unfence");
        }
        image
    }

    fn heartbeat(broker_id: i32, broker_epoch: i64, offset: u64) -> BrokerHeartbeatRequest {
        BrokerHeartbeatRequest {
            broker_id,
            broker_epoch,
            current_metadata_offset: offset,
            want_fence: false,
            want_shut_down: false,
        }
    }

    #[test]
    fn a_silent_broker_is_fenced_after_the_timeout_and_only_then() {
        let image = image();
        let start = Instant::now();
        let mut leases = Leases::new(SESSION_TIMEOUT);
        leases.reset(&image, start);
        leases.renew(1, start + Duration::from_secs(8));
        assert!(leases.expired(&image, start + SESSION_TIMEOUT).is_empty());
        assert_eq!(
            leases.expired(&image, start + Duration::from_secs(10)),
            vec![Command::FenceBroker {
                broker_id: 0,
                broker_epoch: 1
            }]
        );
    }

    #[test]
    fn a_fenced_broker_is_not_fenced_again() {
        let mut image = image();
        image
            .apply(
                6,
                &Command::FenceBroker {
                    broker_id: 0,
                    broker_epoch: 1,
                },
            )
            .expect("fence");
        let start = Instant::now();
        let mut leases = Leases::new(SESSION_TIMEOUT);
        leases.reset(&image, start);
        let later = start + Duration::from_secs(60);
        assert_eq!(
            leases.expired(&image, later),
            vec![Command::FenceBroker {
                broker_id: 1,
                broker_epoch: 2
            }]
        );
    }

    #[test]
    fn reset_renews_every_lease_so_a_restart_fences_nobody() {
        let image = image();
        let start = Instant::now();
        let mut leases = Leases::new(SESSION_TIMEOUT);
        leases.reset(&image, start);
        let restarted = start + Duration::from_secs(30);
        leases.reset(&image, restarted);
        assert!(
            leases
                .expired(&image, restarted + Duration::from_secs(5))
                .is_empty()
        );
    }

    #[test]
    fn a_registered_broker_is_unfenced_once_caught_up_with_its_registration() {
        let mut image = image();
        image
            .apply(
                6,
                &Command::RegisterBroker {
                    broker_id: 0,
                    incarnation_id: Uuid::new_v4(),
                    listeners: Vec::new(),
                    rack: None,
                },
            )
            .expect("re-register");
        let behind = decide_heartbeat(&image, &heartbeat(0, 6, 5));
        assert!(behind.response.is_fenced && !behind.response.is_caught_up);
        assert_eq!(behind.command, None);
        let caught_up = decide_heartbeat(&image, &heartbeat(0, 6, 6));
        assert!(!caught_up.response.is_fenced && caught_up.response.is_caught_up);
        assert_eq!(
            caught_up.command,
            Some(Command::UnfenceBroker {
                broker_id: 0,
                broker_epoch: 6
            })
        );
    }

    #[test]
    fn a_heartbeat_for_an_old_epoch_or_unknown_broker_is_refused() {
        let image = image();
        let stale = decide_heartbeat(&image, &heartbeat(0, 0, 9));
        assert_eq!(
            stale.response.error.error_code,
            KafkaCode::STALE_BROKER_EPOCH.0
        );
        assert_eq!(stale.command, None);
        let unknown = decide_heartbeat(&image, &heartbeat(7, 1, 9));
        assert_eq!(
            unknown.response.error.error_code,
            KafkaCode::BROKER_NOT_AVAILABLE.0
        );
    }

    #[test]
    fn an_unfenced_broker_heartbeating_changes_nothing() {
        let decision = decide_heartbeat(&image(), &heartbeat(1, 2, 5));
        assert!(!decision.response.is_fenced);
        assert_eq!(decision.command, None);
    }
}
