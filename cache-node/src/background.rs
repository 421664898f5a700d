//! Bulk work below the clients' priority.
//!
//! A slot migration copies and applies a large part of the keyspace: the
//! source walks and encodes every key of the moving slots, the target
//! decodes and inserts them, and the source then frees its copy. Run on the
//! connections' threads, that work competes with the requests for the CPU
//! as an equal, and a request that arrives while both cores are busy
//! copying waits for the scheduler's time slice to end, which takes
//! milliseconds. On the 2-core machines that wait was most of the p99 a
//! client saw during a move (`bench/migrate.sh`).
//!
//! So that work runs here: on one thread of its own with its own
//! single-threaded runtime, at the lowest CPU priority a process may give
//! itself (nice 19). The kernel runs a request thread that wakes up ahead
//! of it at once, and hands it the CPU that requests leave idle. Nice 19
//! and not `SCHED_IDLE`: a niced thread still gets a small share of a
//! saturated CPU, so a migration started because the node is busy (the
//! autoscaler's scale-out) still finishes, and it needs no privilege.
//!
//! The bulk work takes the keyspace lock a bounded step at a time, as it
//! did on the connections' threads; a request thread that finds the lock
//! held sleeps on it, which leaves the core to the lock's holder.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::warn;

/// The nice value of the bulk thread: the lowest priority there is.
pub const NICE: i32 = 19;

/// The bulk-work thread. Dropping it stops the thread once the tasks
/// running on it have reached an await point.
pub struct Background {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Background {
    /// Starts the thread. Lowering its priority cannot fail for want of
    /// privilege; if it fails anyway the thread runs at normal priority and
    /// a warning says so.
    pub fn start() -> std::io::Result<Background> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tidecache-bulk".into())
            .spawn(move || {
                lower_priority();
                // The tasks run while this thread waits for the stop.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Background {
            handle,
            _stop: stop,
        })
    }

    /// Runs `task` on the bulk thread.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// Runs `work` on the bulk thread; its result arrives on the receiver.
    pub fn run<T, W>(&self, work: W) -> oneshot::Receiver<T>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(work());
        });
        rx
    }
}

/// Sets this thread's nice value to [`NICE`]. On Linux a nice value
/// belongs to a thread, so the connections' threads keep theirs.
fn lower_priority() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), NICE) {
        warn!(error = %e, "could not lower the bulk-work thread's priority; migrations compete with clients for the CPU");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_thread_of_its_own_at_the_lowest_priority() {
        let bg = Background::start().unwrap();
        let here = std::thread::current().id();
        let (thread, nice) = bg
            .run(|| {
                (
                    std::thread::current().id(),
                    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap(),
                )
            })
            .await
            .unwrap();
        assert_ne!(thread, here);
        assert_eq!(nice, NICE);
        let mine = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_ne!(mine, NICE, "only the bulk thread is lowered");
        // Tasks with awaits run there too.
        let slept = bg
            .spawn(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                std::thread::current().id()
            })
            .await
            .unwrap();
        assert_eq!(slept, thread);
    }
}
