//! Container restart back-off.
//!
//! The kubelet restarts a crashed container at once the first time, then
//! waits 10 s, doubling up to 5 min, and forgets the back-off once a container
//! has run for twice the maximum. We keep the shape but start at 1 s and cap
//! at 30 s: e2e tests kill and crash containers on purpose (failover, liveness
//! probes, bad configs) and must see them recover within seconds, not
//! minutes, while a crash loop still shows `CrashLoopBackOff` and a growing
//! `restartCount` as it would on a real node.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// The delay used last; `None` after a reset.
    last: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            last: None,
        }
    }

    /// The delay before the next restart of a container that ran for
    /// `ran_for`: zero for the first restart (or after a long healthy run),
    /// then `initial`, doubling up to `max`.
    pub fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.max * 2 {
            self.last = None;
        }
        match self.last {
            None => {
                self.last = Some(Duration::ZERO);
                Duration::ZERO
            }
            Some(d) => {
                let next = if d.is_zero() {
                    self.initial
                } else {
                    (d * 2).min(self.max)
                };
                self.last = Some(next);
                next
            }
        }
    }

    /// The delay for retrying something that is not a restart (an image
    /// "pull", a missing Secret): `initial`, doubling up to `max`.
    pub fn next_retry(&mut self) -> Duration {
        let next = match self.last {
            None => self.initial,
            Some(d) if d.is_zero() => self.initial,
            Some(d) => (d * 2).min(self.max),
        };
        self.last = Some(next);
        next
    }

    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_to_the_cap() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(100);
        let delays: Vec<u64> = (0..8).map(|_| b.next(short).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(100);
        b.next(short);
        b.next(short);
        assert_eq!(b.next(short), Duration::from_secs(2));
        assert_eq!(b.next(Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(b.next(short), Duration::from_secs(1));
    }

    #[test]
    fn retries() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| b.next_retry().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_retry(), Duration::from_secs(1));
    }
}
