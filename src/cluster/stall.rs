//! [`StallGuard`]: a broker that stopped running for a while (SIGSTOP, a
//! frozen VM, a long page-fault storm) may have been fenced meanwhile and
//! its partitions given to other leaders, but the image it resumes with
//! still names it leader. Until its metadata has caught up with the
//! coordinator as of a moment after it resumed, it leads nothing: produces
//! and fetches are answered NOT_LEADER_OR_FOLLOWER and clients ask the
//! others. A coordinator that is merely unreachable changes nothing here —
//! nobody can fence the broker then — so it keeps serving its last image.
//!
//! The guard notices a stall two ways, whichever runs first after the
//! resume: the ticker ([`StallGuard::tick`], every [`TICK_INTERVAL`]) sees
//! the gap since its last tick, or a request's check
//! ([`StallGuard::may_lead`]) sees the last tick too old. It is cleared by
//! a heartbeat sent after the stall was noticed: its answer carries the
//! coordinator's metadata offset, and once the local image has reached it
//! every leader change made during the stall is known here.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the ticker proves the broker is running.
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);

/// A gap this long may have cost the broker its lease: half the
/// coordinator's session timeout, so any stall that could have fenced it
/// (the session timeout less up to one heartbeat interval) is caught with
/// room to spare on a loaded machine.
pub const STALL_LIMIT: Duration = Duration::from_millis(4500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Suspicion {
    /// When the stall was noticed: only heartbeats sent later count.
    noticed: Instant,
    /// The coordinator's metadata offset from such a heartbeat's answer.
    needed_offset: Option<u64>,
}

#[derive(Debug)]
struct State {
    last_tick: Instant,
    suspicion: Option<Suspicion>,
}

#[derive(Debug)]
pub struct StallGuard {
    state: Mutex<State>,
}

impl StallGuard {
    pub fn new(now: Instant) -> Self {
        StallGuard {
            state: Mutex::new(State {
                last_tick: now,
                suspicion: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ticker ran at `now`.
    pub fn tick(&self, now: Instant) {
        let mut state = self.state();
        notice_stall(&mut state, now);
        state.last_tick = state.last_tick.max(now);
    }

    /// Whether a stall awaits confirmation (the heartbeat loop then beats
    /// at its fast pace).
    pub fn is_suspect(&self, now: Instant) -> bool {
        let mut state = self.state();
        notice_stall(&mut state, now);
        state.suspicion.is_some()
    }

    /// A heartbeat sent at `sent` was answered by a coordinator whose
    /// metadata had reached `metadata_offset`.
    pub fn heartbeat_answered(&self, sent: Instant, metadata_offset: u64) {
        let mut state = self.state();
        if let Some(suspicion) = state.suspicion.as_mut()
            && sent >= suspicion.noticed
        {
            suspicion.needed_offset = Some(
                suspicion
                    .needed_offset
                    .map_or(metadata_offset, |n| n.max(metadata_offset)),
            );
        }
    }

    /// Whether this broker may act as a leader at `now`, with its image at
    /// `image_offset`.
    pub fn may_lead(&self, now: Instant, image_offset: u64) -> bool {
        let mut state = self.state();
        notice_stall(&mut state, now);
        match state.suspicion {
            None => true,
            Some(Suspicion {
                needed_offset: Some(needed),
                ..
            }) if image_offset >= needed => {
                tracing::info!(
                    metadata_offset = image_offset,
                    "metadata caught up after a stall; leading again"
                );
                state.suspicion = None;
                true
            }
            Some(_) => false,
        }
    }
}

/// A tick older than the limit: the process was not running. The suspicion
/// starts now (a heartbeat sent before now may have been answered during
/// the stall) and the tick is renewed, so it is noticed once.
fn notice_stall(state: &mut State, now: Instant) {
    let gap = now.saturating_duration_since(state.last_tick);
    if gap <= STALL_LIMIT {
        return;
    }
    tracing::warn!(
        stalled_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
        "this broker did not run for longer than its lease allows; leading nothing \
         until its metadata has caught up with the coordinator"
    );
    state.last_tick = now;
    state.suspicion = Some(Suspicion {
        noticed: now,
        needed_offset: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_broker_that_keeps_ticking_may_always_lead() {
        let t0 = Instant::now();
        let guard = StallGuard::new(t0);
        for i in 1..100 {
            guard.tick(t0 + TICK_INTERVAL * i);
            assert!(guard.may_lead(t0 + TICK_INTERVAL * i + ms(10), 0));
        }
    }

    #[test]
    fn a_request_that_sees_the_stall_first_is_refused() {
        let t0 = Instant::now();
        let guard = StallGuard::new(t0);
        let resumed = t0 + ms(10_000);
        assert!(!guard.may_lead(resumed, 40));
        // The ticker running next does not clear it.
        guard.tick(resumed + ms(1));
        assert!(!guard.may_lead(resumed + ms(2), 40));
    }

    #[test]
    fn only_a_heartbeat_sent_after_the_stall_was_noticed_clears_it_once_caught_up() {
        let t0 = Instant::now();
        let guard = StallGuard::new(t0);
        let resumed = t0 + ms(10_000);
        guard.tick(resumed);
        assert!(guard.is_suspect(resumed));
        // Sent before the stall, answered during it: says nothing.
        guard.heartbeat_answered(t0, 10);
        assert!(!guard.may_lead(resumed + ms(5), 40));
        // Sent after: the coordinator was at 50; the image must get there.
        guard.heartbeat_answered(resumed + ms(100), 50);
        assert!(!guard.may_lead(resumed + ms(150), 49));
        assert!(guard.may_lead(resumed + ms(200), 50));
        assert!(!guard.is_suspect(resumed + ms(200)));
    }

    #[test]
    fn a_short_gap_is_no_stall() {
        let t0 = Instant::now();
        let guard = StallGuard::new(t0);
        assert!(guard.may_lead(t0 + STALL_LIMIT, 0));
        assert!(!guard.is_suspect(t0 + STALL_LIMIT));
    }
}
