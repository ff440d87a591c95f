//! `log.cleaner.io.max.bytes.per.second`: the cleaner sleeps whenever the
//! bytes it read and wrote since the clean began run ahead of the rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest single sleep, so a stop request is seen promptly.
const NAP: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: Option<f64>,
    started: Instant,
    bytes: f64,
}

impl Throttle {
    pub fn new(bytes_per_second: Option<f64>) -> Self {
        Throttle {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0.0,
        }
    }

    /// Starts counting afresh (no burst is saved up while idle).
    pub fn reset(&mut self) {
        self.started = Instant::now();
        self.bytes = 0.0;
    }

    /// How long to wait after `bytes` more, `elapsed` into the clean.
    fn wait_for(&mut self, bytes: usize, elapsed: Duration) -> Duration {
        let Some(rate) = self.bytes_per_second else {
            return Duration::ZERO;
        };
        self.bytes += bytes as f64;
        let due = Duration::from_secs_f64(self.bytes / rate);
        due.saturating_sub(elapsed)
    }

    /// Accounts for `bytes` of I/O and sleeps while they run ahead of the
    /// rate. False if `stop` was raised meanwhile.
    pub fn pace(&mut self, bytes: usize, stop: &AtomicBool) -> bool {
        let mut wait = self.wait_for(bytes, self.started.elapsed());
        while !wait.is_zero() {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            let nap = wait.min(NAP);
            std::thread::sleep(nap);
            wait -= nap;
        }
        !stop.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_when_ahead_of_the_rate() {
        let mut t = Throttle::new(Some(1000.0));
        assert_eq!(t.wait_for(500, Duration::ZERO), Duration::from_millis(500));
        assert_eq!(t.wait_for(500, Duration::from_secs(2)), Duration::ZERO);
        let mut unlimited = Throttle::new(None);
        assert_eq!(unlimited.wait_for(1 << 30, Duration::ZERO), Duration::ZERO);
    }
}
