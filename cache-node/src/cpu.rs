//! The CPU the node process has used: what `INFO cpu` reports and what the
//! operator's autoscaler divides by the node's CPU allowance
//! (`--cpu-limit-millicores`, from the pod's CPU limit).

use std::time::Duration;

/// CPU time the process spent, in the kernel and in user space, over all
/// its threads (`getrusage(RUSAGE_SELF)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub system: Duration,
    pub user: Duration,
}

/// What the process has used so far; zero when the kernel will not say.
pub fn used() -> Used {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return Used::default();
    };
    let duration = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Used {
        system: duration(usage.system_time()),
        user: duration(usage.user_time()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_used_grows_with_work() {
        let before = used();
        // Busy for a little while (getrusage's resolution is the tick).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = used();
        assert!(after.user + after.system > before.user + before.system);
    }
}
