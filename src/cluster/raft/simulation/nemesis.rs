//! The faults, chosen from the seed: crashes that lose unsynced writes and
//! restarts, partitions (one member isolated, a majority from a minority,
//! one direction of one link) and their repair, broken links, latency spikes, and quiet periods.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

use super::super::MemberId;

/// One nemesis action.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    Quiet,
    /// Crash the member: its process stops, unsynced writes are lost.
    Crash(MemberId),
    Restart(MemberId),
    /// Cut the member off from every other host.
    Isolate(MemberId),
    /// Cut these members (and the client, with `client_inside`) off from
    /// the others.
    Split {
        side: Vec<MemberId>,
        client_inside: bool,
    },
    /// Drop what `from` sends to `to` (member `0` is the client); the
    /// other direction still works.
    OneWay {
        from: MemberId,
        to: MemberId,
    },
    /// Heal every partition.
    Repair,
    /// Links break at random with this probability per tick (turmoil
    /// breaks the TCP connections on them) and mend at random.
    BreakLinks(f64),
    /// Messages take up to this long.
    Latency(Duration),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Quiet => write!(f, "quiet"),
            Self::Crash(m) => write!(f, "crash m{m}"),
            Self::Restart(m) => write!(f, "restart m{m}"),
            Self::Isolate(m) => write!(f, "isolate m{m}"),
            Self::Split {
                side,
                client_inside,
            } => write!(f, "split {side:?} (client inside: {client_inside})"),
            Self::OneWay { from, to } => write!(f, "drop m{from} -> m{to} (m0: client)"),
            Self::Repair => write!(f, "repair partitions"),
            Self::BreakLinks(p) => write!(f, "break links at {p}/tick"),
            Self::Latency(d) => write!(f, "latency up to {d:?}"),
        }
    }
}

/// Chooses faults from its own seeded generator.
pub struct Nemesis {
    rng: StdRng,
    members: Vec<MemberId>,
}

impl Nemesis {
    pub fn new(rng: StdRng, members: Vec<MemberId>) -> Self {
        Self { rng, members }
    }

    fn any_member(&mut self) -> MemberId {
        self.members[self.rng.gen_range(0..self.members.len())]
    }

    /// The next fault, given which members are down.
    pub fn next(&mut self, down: &BTreeSet<MemberId>) -> Fault {
        loop {
            let fault = match self.rng.gen_range(0..17) {
                0..=2 => Fault::Quiet,
                3..=5 => {
                    let m = self.any_member();
                    if down.contains(&m) {
                        continue;
                    }
                    Fault::Crash(m)
                }
                6..=8 => match down.iter().nth(self.rng.gen_range(0..down.len().max(1))) {
                    Some(m) => Fault::Restart(*m),
                    None => continue,
                },
                9 => Fault::Isolate(self.any_member()),
                10 => {
                    let mut side: Vec<MemberId> = self
                        .members
                        .iter()
                        .copied()
                        .filter(|_| self.rng.gen_bool(0.5))
                        .collect();
                    if side.is_empty() || side.len() == self.members.len() {
                        side = vec![self.any_member()];
                    }
                    Fault::Split {
                        side,
                        client_inside: self.rng.gen_bool(0.5),
                    }
                }
                11 | 12 => Fault::Repair,
                15 => {
                    let from = self.rng.gen_range(0..=self.members.len() as MemberId);
                    let to = self.any_member();
                    if from == to {
                        continue;
                    }
                    Fault::OneWay { from, to }
                }
                13 => Fault::BreakLinks(0.002 * f64::from(self.rng.gen_range(0u8..=5))),
                _ => Fault::Latency(Duration::from_millis(match self.rng.gen_range(0..3) {
                    0 => 10,
                    1 => 200,
                    _ => 800,
                })),
            };
            return fault;
        }
    }
}
