//! Per-slot traffic: how many commands each slot served and how long they
//! ran, over the last one to two periods of [`PERIOD_MS`]. It is what
//! `TIDECACHE SLOTSTATS LOAD` reports, as Valkey's `CLUSTER SLOT-STATS`
//! reports `cpu-usec`, so that the operator's planner can give a shard made
//! hot by a few slots relief even when its bytes are even.
//!
//! Two generations of counters rotate lazily, on the first record or read
//! of a new period, so nothing runs on a timer and an idle node reports
//! nothing. The counters exist only once a command has named a slot (in
//! cluster mode): a standalone node pays nothing.

use tidecache_topology::SLOT_COUNT;

/// How long one generation of counters covers. What a reader sees spans
/// one to two of them: recent enough to follow a shift of load, long
/// enough to smooth a burst.
pub const PERIOD_MS: u64 = 10_000;

/// What one slot served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Commands run.
    pub calls: u64,
    /// Time the commands' handlers ran, in nanoseconds.
    pub nanos: u64,
}

impl Counts {
    fn add(self, other: Counts) -> Counts {
        Counts {
            calls: self.calls.saturating_add(other.calls),
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }
}

#[derive(Debug, Default)]
pub struct Traffic {
    /// The period `current` counts (`now / PERIOD_MS`).
    period: u64,
    current: Vec<Counts>,
    /// The period before `period`'s, zeroed when more than one went by.
    previous: Vec<Counts>,
}

impl Traffic {
    /// Counts one command on `slot` that ran `nanos`.
    pub fn record(&mut self, now_ms: u64, slot: u16, nanos: u64) {
        if self.current.is_empty() {
            self.current = vec![Counts::default(); usize::from(SLOT_COUNT)];
            self.previous = self.current.clone();
            self.period = now_ms / PERIOD_MS;
        }
        self.rotate(now_ms);
        let c = &mut self.current[usize::from(slot)];
        c.calls = c.calls.saturating_add(1);
        c.nanos = c.nanos.saturating_add(nanos);
    }

    /// What `slot` served in the current and the previous period.
    pub fn recent(&mut self, now_ms: u64, slot: u16) -> Counts {
        if self.current.is_empty() {
            return Counts::default();
        }
        self.rotate(now_ms);
        let i = usize::from(slot);
        self.current[i].add(self.previous[i])
    }

    /// Forgets everything (`CONFIG RESETSTAT`).
    pub fn reset(&mut self) {
        *self = Traffic::default();
    }

    fn rotate(&mut self, now_ms: u64) {
        let period = now_ms / PERIOD_MS;
        if period <= self.period {
            return;
        }
        if period == self.period + 1 {
            std::mem::swap(&mut self.current, &mut self.previous);
        } else {
            self.previous.fill(Counts::default());
        }
        self.current.fill(Counts::default());
        self.period = period;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_allocated_or_reported_before_a_command() {
        let mut t = Traffic::default();
        assert_eq!(t.recent(0, 5), Counts::default());
        assert!(t.current.is_empty());
    }

    #[test]
    fn counts_cover_the_current_and_the_previous_period() {
        let mut t = Traffic::default();
        t.record(1_000, 7, 300);
        t.record(2_000, 7, 200);
        t.record(2_000, 8, 50);
        assert_eq!(
            t.recent(3_000, 7),
            Counts {
                calls: 2,
                nanos: 500
            }
        );
        // Next period: the first one is still seen.
        t.record(PERIOD_MS + 1, 7, 100);
        assert_eq!(
            t.recent(PERIOD_MS + 2, 7),
            Counts {
                calls: 3,
                nanos: 600
            }
        );
        assert_eq!(
            t.recent(PERIOD_MS + 2, 8),
            Counts {
                calls: 1,
                nanos: 50
            }
        );
        // The one after: the first period is gone, the second remains.
        assert_eq!(
            t.recent(2 * PERIOD_MS, 7),
            Counts {
                calls: 1,
                nanos: 100
            }
        );
        assert_eq!(t.recent(2 * PERIOD_MS, 8), Counts::default());
    }

    #[test]
    fn a_long_silence_forgets_both_periods() {
        let mut t = Traffic::default();
        t.record(0, 1, 10);
        t.record(PERIOD_MS, 1, 10);
        assert_eq!(t.recent(5 * PERIOD_MS, 1), Counts::default());
    }

    #[test]
    fn a_clock_that_steps_back_keeps_counting_in_the_current_period() {
        let mut t = Traffic::default();
        t.record(5 * PERIOD_MS, 3, 1);
        t.record(4 * PERIOD_MS, 3, 1);
        assert_eq!(t.recent(5 * PERIOD_MS, 3).calls, 2);
    }

    #[test]
    fn reset_forgets() {
        let mut t = Traffic::default();
        t.record(0, 1, 10);
        t.reset();
        assert_eq!(t.recent(0, 1), Counts::default());
    }
}
