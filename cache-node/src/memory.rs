//! How much memory the node uses, for `maxmemory`, INFO and `/metrics`.
//!
//! The node binary runs on jemalloc and says so at start-up
//! ([`use_jemalloc`]); `used_memory` is then what the allocator has handed
//! out (`stats.allocated`), everything included, as in Redis. The library
//! itself picks no allocator (the tests run it on the system one), and there
//! the keyspace's own accounting ([`crate::db::Db::used_bytes`]) stands in.
//!
//! Reading jemalloc's statistics means advancing its epoch, which merges the
//! per-arena counters: cheap, but not something to do before every write. A
//! [`Meter`] reads them at most every [`REFRESH_MS`] or every
//! [`REFRESH_CALLS`] measurements, and in between adds what the keyspace
//! accounting says changed since the last reading, so a burst of writes or
//! evictions is seen at once.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the process's global allocator is jemalloc. Only the binary knows
/// which `#[global_allocator]` is in force, so it has to tell.
static JEMALLOC: AtomicBool = AtomicBool::new(false);

/// Declares that jemalloc is the global allocator: from now on memory is
/// measured from its statistics. Called once by the node binary.
pub fn use_jemalloc() {
    JEMALLOC.store(true, Ordering::Relaxed);
}

pub fn jemalloc_in_use() -> bool {
    JEMALLOC.load(Ordering::Relaxed)
}

/// Longest time a cached allocator reading is used.
pub const REFRESH_MS: u64 = 5;
/// Most measurements served from one allocator reading.
pub const REFRESH_CALLS: u32 = 256;

/// What the allocator reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes in allocations the program holds.
    pub allocated: u64,
    /// Bytes of physical memory the allocator's pages occupy.
    pub resident: u64,
}

/// A fresh reading of jemalloc's statistics; `None` when jemalloc is not
/// the allocator (its statistics would describe an idle heap) or a read fails.
pub fn allocator_stats() -> Option<AllocatorStats> {
    if !jemalloc_in_use() {
        return None;
    }
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

/// INFO's `mem_allocator`: `jemalloc-5.3.0` or `libc`, as Redis names them.
pub fn allocator_name() -> String {
    if jemalloc_in_use()
        && let Ok(v) = tikv_jemalloc_ctl::version::read()
    {
        // "5.3.0-0-g<hash>": Redis shows only the release.
        return format!("jemalloc-{}", v.split('-').next().unwrap_or(v));
    }
    "libc".into()
}

/// The process's resident set size (`used_memory_rss`), from procfs; `None`
/// where there is none.
pub fn process_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:   1234 kB` line of `/proc/<pid>/status`, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// `used_memory`, measured cheaply: see the module documentation.
#[derive(Debug, Default)]
pub struct Meter {
    /// The last allocator reading, if there is an allocator to read.
    last: Option<AllocatorStats>,
    /// The keyspace accounting when `last` was taken.
    keyspace_then: u64,
    /// Clock (ms) when `last` was taken.
    read_at_ms: u64,
    /// Measurements served since `last` was taken.
    calls: u32,
    peak: u64,
}

impl Meter {
    /// Used memory now, given the keyspace accounting `keyspace` and the
    /// time; reads the allocator through `read` only when the cached reading
    /// is stale.
    pub fn used(
        &mut self,
        keyspace: u64,
        now_ms: u64,
        read: impl FnOnce() -> Option<AllocatorStats>,
    ) -> u64 {
        self.calls = self.calls.saturating_add(1);
        let stale = self.last.is_none()
            || self.calls >= REFRESH_CALLS
            || now_ms.saturating_sub(self.read_at_ms) >= REFRESH_MS
            || now_ms < self.read_at_ms;
        if stale {
            self.refresh(keyspace, now_ms, read);
        }
        let used = match self.last {
            // The allocator's number, moved by what the keyspace did since.
            Some(s) => (s.allocated + keyspace).saturating_sub(self.keyspace_then),
            None => keyspace,
        };
        self.peak = self.peak.max(used);
        used
    }

    /// Takes a fresh allocator reading (INFO and `/metrics` want exact numbers).
    pub fn refresh(
        &mut self,
        keyspace: u64,
        now_ms: u64,
        read: impl FnOnce() -> Option<AllocatorStats>,
    ) {
        self.last = read();
        self.keyspace_then = keyspace;
        self.read_at_ms = now_ms;
        self.calls = 0;
    }

    /// The last allocator reading, if any.
    pub fn allocator(&self) -> Option<AllocatorStats> {
        self.last
    }

    /// The highest `used` seen (`used_memory_peak`).
    pub fn peak(&self) -> u64 {
        self.peak
    }
}

/// INFO's memory figures at one moment.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub used: u64,
    pub peak: u64,
    /// The keyspace's own accounting (`used_memory_dataset`).
    pub dataset: u64,
    pub rss: u64,
    pub allocator: AllocatorStats,
    pub allocator_name: String,
}

impl Report {
    /// `mem_fragmentation_ratio`: resident over used, as Redis computes it.
    pub fn fragmentation_ratio(&self) -> f64 {
        if self.used == 0 {
            0.0
        } else {
            self.rss as f64 / self.used as f64
        }
    }
}

/// Redis's `bytesToHuman`: `1.50M`, `512B`, two decimals.
pub fn human(n: u64) -> String {
    const UNITS: &[&str] = &["B", "K", "M", "G", "T", "P"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(allocated: u64) -> impl FnOnce() -> Option<AllocatorStats> {
        move || {
            Some(AllocatorStats {
                allocated,
                resident: allocated * 2,
            })
        }
    }

    #[test]
    fn without_an_allocator_the_keyspace_accounting_is_the_answer() {
        let mut m = Meter::default();
        assert_eq!(m.used(1000, 0, || None), 1000);
        assert_eq!(m.used(400, 1, || None), 400);
        assert_eq!(m.peak(), 1000);
        assert_eq!(m.allocator(), None);
    }

    #[test]
    fn a_cached_reading_moves_with_the_keyspace() {
        let mut m = Meter::default();
        assert_eq!(m.used(1000, 0, reading(50_000)), 50_000);
        // Within the refresh interval the allocator is not asked again...
        let never = || -> Option<AllocatorStats> { panic!("read too soon") };
        assert_eq!(m.used(1500, 1, never), 50_500);
        // ...and an eviction that freed keyspace bytes shows at once.
        assert_eq!(m.used(200, 2, never), 49_200);
        assert_eq!(m.peak(), 50_500);
        assert_eq!(m.allocator().map(|s| s.resident), Some(100_000));
    }

    #[test]
    fn readings_refresh_by_time_and_by_count() {
        let mut m = Meter::default();
        m.used(0, 100, reading(10));
        assert_eq!(m.used(0, 100 + REFRESH_MS, reading(20)), 20, "by time");
        for _ in 1..REFRESH_CALLS {
            assert_eq!(m.used(0, 100 + REFRESH_MS, reading(99)), 20);
        }
        assert_eq!(m.used(0, 100 + REFRESH_MS, reading(30)), 30, "by count");
        // A clock that went backwards does not pin a reading forever.
        assert_eq!(m.used(0, 1, reading(40)), 40);
        // Never below zero, whatever the keyspace did since.
        m.refresh(1_000_000, 1, reading(10));
        assert_eq!(m.used(0, 1, reading(0)), 0);
    }

    #[test]
    fn rss_parses_from_procfs_status() {
        let status = "Name:\tcache-node\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
        if cfg!(target_os = "linux") {
            assert!(process_rss().is_some_and(|n| n > 0));
        }
    }

    #[test]
    fn humans_read_sizes_like_redis_prints_them() {
        assert_eq!(human(0), "0.00B");
        assert_eq!(human(1023), "1023.00B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(1536 * 1024), "1.50M");
        assert_eq!(human(2 << 30), "2.00G");
        assert_eq!(human(u64::MAX), "16384.00P");
    }

    #[test]
    fn fragmentation_is_rss_over_used() {
        let r = Report {
            used: 1000,
            rss: 1500,
            ..Report::default()
        };
        assert_eq!(r.fragmentation_ratio(), 1.5);
        assert_eq!(Report::default().fragmentation_ratio(), 0.0);
        assert!(
            !jemalloc_in_use(),
            "the library's tests run on the system allocator"
        );
        assert_eq!(allocator_stats(), None);
        assert_eq!(allocator_name(), "libc");
    }
}
