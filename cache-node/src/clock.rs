//! Wall-clock time for expiry, driven by tokio's clock.
//!
//! Deadlines are Unix milliseconds (EXPIREAT and PEXPIRETIME speak them), but
//! the passing of time is read from `tokio::time::Instant`, so tests can pause
//! and advance time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
enum Inner {
    Tokio {
        base_unix_ms: u64,
        base: tokio::time::Instant,
    },
    Manual(AtomicU64),
}

impl Clock {
    /// Unix time now, advancing with tokio's (possibly paused) clock.
    pub fn tokio() -> Self {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock(Arc::new(Inner::Tokio {
            base_unix_ms,
            base: tokio::time::Instant::now(),
        }))
    }

    /// A clock that only moves when told to (unit tests).
    pub fn manual(start_ms: u64) -> Self {
        Clock(Arc::new(Inner::Manual(AtomicU64::new(start_ms))))
    }

    pub fn now_ms(&self) -> u64 {
        match &*self.0 {
            Inner::Tokio { base_unix_ms, base } => base_unix_ms + base.elapsed().as_millis() as u64,
            Inner::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; a no-op on the tokio clock.
    pub fn advance(&self, ms: u64) {
        if let Inner::Manual(now) = &*self.0 {
            now.fetch_add(ms, Ordering::Relaxed);
        }
    }
}
