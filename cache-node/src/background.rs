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
//! The bulk thread never takes the keyspace lock. A thread at nice 19 that
//! holds it and is preempted keeps every request waiting until the kernel
//! runs it again, and on a machine that other processes keep busy (other
//! pods on a Kubernetes node) that is rarely: two busy loops beside a move
//! made single writes wait 780 ms (`bench/migrate.sh` with two `while :`
//! loops running). So each step that needs the lock (a capture step, the
//! apply of an imported batch, the drop of a slot's copy) is sent to the
//! connections' runtime with [`Background::urgent`] and runs there at
//! their priority, bounded as before; what stays here is the work without
//! the lock: decoding, building and sending batches, waiting on the target.

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
    /// The runtime that started this one: the connections'. `None` when
    /// started outside a runtime (unit tests), where urgent work runs in
    /// place.
    urgent: Option<Handle>,
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
            urgent: Handle::try_current().ok(),
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

    /// The connections' runtime, for a thread of its own that steps bulk
    /// work under the keyspace lock (a snapshot): `None` in unit tests.
    pub fn urgent_handle(&self) -> Option<Handle> {
        self.urgent.clone()
    }

    /// Runs `task` on the connections' runtime, at their priority, and
    /// waits for it: for the steps of bulk work that take the keyspace
    /// lock, and for what must not wait for a niced thread's turn (the
    /// handoff of a migration, while writes to its slots are paused). A
    /// panic there goes on here, as if the task had run in place.
    pub async fn urgent<F>(&self, task: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Some(urgent) = &self.urgent else {
            return task.await;
        };
        match urgent.spawn(task).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels its tasks; the node is
            // stopping and nobody waits for this work.
            Err(_) => std::future::pending().await,
        }
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
            .spawn(async {
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
        // Urgent work goes back to this runtime, at this priority.
        let bg = std::sync::Arc::new(bg);
        let bg2 = bg.clone();
        let (urgent, urgent_nice) = bg
            .spawn(async move {
                bg2.urgent(async {
                    (
                        std::thread::current().id(),
                        rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                            .unwrap(),
                    )
                })
                .await
            })
            .await
            .unwrap();
        assert_ne!(urgent, thread);
        assert_eq!(urgent_nice, mine);
    }
}
