//! Broker leases: who has heartbeated recently, and what a heartbeat or a
//! lease expiry should change. Pure — the server owns the clock and
//! proposes the returned commands.
//!
//! Leases are not replicated: they live in the coordinator's memory, and a
//! coordinator that (re)starts renews every lease, so a restart does not
//! fence the whole cluster at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::wire::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerRegistrationRequest, ErrorBody,
};
use crate::cluster::metadata::{Command, KafkaCode, MetadataImage, Rejection};
use crate::security::KafkaPrincipal;

/// How often brokers heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// Silence after which a broker is fenced (Kafka's
/// `broker.session.timeout.ms`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(9);

/// The last heartbeat of every broker, by id, and the data directory of
/// each registration this coordinator accepted since it started.
#[derive(Debug)]
pub struct Leases {
    timeout: Duration,
    last_heartbeat: HashMap<i32, Instant>,
    directories: HashMap<i32, Uuid>,
    /// The principal each broker id first registered as.
    owners: HashMap<i32, KafkaPrincipal>,
}

impl Leases {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            last_heartbeat: HashMap::new(),
            directories: HashMap::new(),
            owners: HashMap::new(),
        }
    }

    /// Records an accepted registration: its lease starts at `now`.
    pub fn register(&mut self, request: &BrokerRegistrationRequest, now: Instant) {
        self.renew(request.broker_id, now);
        self.directories
            .insert(request.broker_id, request.directory_id);
    }

    /// Whether `broker_id` is registered, unfenced and has heartbeated
    /// within the timeout.
    fn is_live(&self, image: &MetadataImage, broker_id: i32, now: Instant) -> bool {
        image.broker(broker_id).is_some_and(|b| !b.fenced)
            && self
                .last_heartbeat
                .get(&broker_id)
                .is_some_and(|last| now.saturating_duration_since(*last) <= self.timeout)
    }

    /// Decides whether `request` may register. Any number of brokers may,
    /// each with its own id; while a broker with the same id is live, only
    /// the same process (same incarnation) or the same data directory (a
    /// restart) may register again, and anyone else gets Kafka's
    /// DUPLICATE_BROKER_REGISTRATION. When either directory is unknown (a
    /// registration from before this coordinator started, or an older
    /// broker) it cannot tell, and lets the registration through.
    ///
    /// A broker whose lease lapsed (fenced) no longer blocks anyone.
    pub fn decide_registration(
        &self,
        image: &MetadataImage,
        request: &BrokerRegistrationRequest,
        now: Instant,
    ) -> Result<(), Rejection> {
        let Some(current) = image.broker(request.broker_id) else {
            return Ok(());
        };
        let known = self
            .directories
            .get(&request.broker_id)
            .filter(|dir| !dir.is_nil());
        let other_directory =
            known.is_some_and(|dir| !request.directory_id.is_nil() && *dir != request.directory_id);
        if current.incarnation_id != request.incarnation_id
            && other_directory
            && self.is_live(image, request.broker_id, now)
        {
            return Err(Rejection::new(
                KafkaCode::DUPLICATE_BROKER_REGISTRATION,
                format!(
                    "broker id {} is already registered by a live broker with another data \
                     directory; stop it first, or give this broker another node.id",
                    request.broker_id
                ),
            ));
        }
        Ok(())
    }

    /// Whether `principal` may register or heartbeat as `broker_id`: the
    /// first principal to register an id (or, after a coordinator restart,
    /// to heartbeat with its epoch) owns it for this coordinator's life, so
    /// one broker's certificate cannot take over another's id.
    ///
    /// Refused with DUPLICATE_BROKER_REGISTRATION rather than
    /// CLUSTER_AUTHORIZATION_FAILED: the peer does hold ClusterAction (the
    /// route checked it), and what is wrong is the id, which is what Kafka
    /// answers a registration of an id held by another broker with.
    pub fn check_owner(&self, broker_id: i32, principal: &KafkaPrincipal) -> Result<(), Rejection> {
        match self.owners.get(&broker_id) {
            Some(owner) if owner != principal => Err(Rejection::new(
                KafkaCode::DUPLICATE_BROKER_REGISTRATION,
                format!(
                    "broker id {broker_id} belongs to {owner}, not {principal}; give this \
                     broker another node.id"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Records `principal` as `broker_id`'s owner if it has none.
    pub fn claim(&mut self, broker_id: i32, principal: &KafkaPrincipal) {
        self.owners
            .entry(broker_id)
            .or_insert_with(|| principal.clone());
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
/// that asks to be fenced is; a broker that asks to shut down goes through
/// a controlled shutdown and is told when it may stop.
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
            metadata_offset: 0,
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
    if request.want_shut_down {
        // Controlled shutdown, as KRaft's controller runs it: first the
        // broker stops leading (BeginShutdown); with no replica to hand its
        // partitions to (RF=1) it is then done, so the next request fences
        // it (it leaves Metadata) and tells it to stop.
        let (command, done) = match (broker.shutting_down, broker.fenced) {
            (false, _) => (
                Some(Command::BeginShutdown {
                    broker_id: broker.id,
                    broker_epoch: broker.epoch,
                }),
                false,
            ),
            (true, false) => (
                Some(Command::FenceBroker {
                    broker_id: broker.id,
                    broker_epoch: broker.epoch,
                }),
                true,
            ),
            (true, true) => (None, true),
        };
        return HeartbeatDecision {
            response: BrokerHeartbeatResponse {
                error: ErrorBody::none(),
                is_caught_up,
                is_fenced: broker.fenced || done,
                should_shut_down: done,
                metadata_offset: 0,
            },
            command,
        };
    }
    let (is_fenced, command) = match (broker.fenced, request.want_fence, is_caught_up) {
        (false, true, _) => (
            true,
            Some(Command::FenceBroker {
                broker_id: broker.id,
                broker_epoch: broker.epoch,
            }),
        ),
        // A broker in controlled shutdown stays fenced.
        (true, false, true) if !broker.shutting_down => (
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
            metadata_offset: 0,
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
                        previous_broker_epoch: None,
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

    fn registration(broker_id: i32, directory: u128) -> BrokerRegistrationRequest {
        BrokerRegistrationRequest {
            broker_id,
            incarnation_id: Uuid::new_v4(),
            listeners: Vec::new(),
            rack: None,
            directory_id: Uuid::from_u128(directory),
            previous_broker_epoch: None,
        }
    }

    /// [`image`] with broker 1 gone: broker 0 alone, registered at index 1.
    fn one_broker_image() -> MetadataImage {
        let mut image = image();
        image
            .apply(
                5,
                &Command::UnregisterBroker {
                    broker_id: 1,
                    broker_epoch: 2,
                },
            )
            .expect("unregister");
        image
    }

    #[test]
    fn brokers_with_other_ids_register_while_one_is_live() {
        let image = one_broker_image();
        let start = Instant::now();
        let mut leases = Leases::new(SESSION_TIMEOUT);
        leases.reset(&image, start);
        leases.register(&registration(0, 7), start);
        for id in [1, 2] {
            assert!(
                leases
                    .decide_registration(
                        &image,
                        &registration(id, 10 + u128::from(id as u8)),
                        start
                    )
                    .is_ok()
            );
        }
    }

    #[test]
    fn the_same_id_from_another_directory_is_a_duplicate_but_a_restart_is_not() {
        let image = one_broker_image();
        let start = Instant::now();
        let mut leases = Leases::new(SESSION_TIMEOUT);
        leases.reset(&image, start);
        // Registered before this coordinator started: it cannot tell.
        assert!(
            leases
                .decide_registration(&image, &registration(0, 9), start)
                .is_ok()
        );
        leases.register(&registration(0, 7), start);
        let duplicate = leases
            .decide_registration(&image, &registration(0, 9), start)
            .expect_err("duplicate");
        assert_eq!(duplicate.code, KafkaCode::DUPLICATE_BROKER_REGISTRATION);
        assert!(
            leases
                .decide_registration(&image, &registration(0, 7), start)
                .is_ok(),
            "a restart from the same data directory"
        );
        let later = start + SESSION_TIMEOUT + Duration::from_secs(1);
        assert!(
            leases
                .decide_registration(&image, &registration(0, 9), later)
                .is_ok(),
            "the old registration lapsed"
        );
    }

    #[test]
    fn a_broker_id_stays_with_the_principal_that_registered_it_first() {
        let mut leases = Leases::new(SESSION_TIMEOUT);
        let broker = KafkaPrincipal::user("CN=broker-0,O=gregor");
        let other = KafkaPrincipal::user("CN=broker-1,O=gregor");
        assert!(leases.check_owner(0, &other).is_ok(), "unclaimed");
        leases.claim(0, &broker);
        leases.claim(0, &other);
        assert!(leases.check_owner(0, &broker).is_ok());
        let refused = leases.check_owner(0, &other).expect_err("taken");
        assert_eq!(refused.code, KafkaCode::DUPLICATE_BROKER_REGISTRATION);
        assert!(
            refused.message.contains("User:CN=broker-0,O=gregor"),
            "{}",
            refused.message
        );
        assert!(leases.check_owner(1, &other).is_ok(), "another id");
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
                    previous_broker_epoch: None,
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
    fn a_controlled_shutdown_stops_leadership_then_fences_and_stays_fenced() {
        let mut image = image();
        let mut request = heartbeat(1, 2, 5);
        request.want_shut_down = true;
        let first = decide_heartbeat(&image, &request);
        assert!(!first.response.should_shut_down && !first.response.is_fenced);
        let begin = first.command.expect("BeginShutdown");
        assert_eq!(
            begin,
            Command::BeginShutdown {
                broker_id: 1,
                broker_epoch: 2
            }
        );
        image.apply(6, &begin).expect("applies");
        let second = decide_heartbeat(&image, &request);
        assert!(second.response.should_shut_down && second.response.is_fenced);
        let fence = second.command.expect("FenceBroker");
        image.apply(7, &fence).expect("applies");
        let third = decide_heartbeat(&image, &request);
        assert!(third.response.should_shut_down);
        assert_eq!(third.command, None);
        // A late ordinary heartbeat does not bring it back.
        let late = decide_heartbeat(&image, &heartbeat(1, 2, 7));
        assert!(late.response.is_fenced);
        assert_eq!(late.command, None);
    }

    #[test]
    fn an_unfenced_broker_heartbeating_changes_nothing() {
        let decision = decide_heartbeat(&image(), &heartbeat(1, 2, 5));
        assert!(!decision.response.is_fenced);
        assert_eq!(decision.command, None);
    }
}
