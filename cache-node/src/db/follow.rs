//! Followers: which keys of a set of slots changed since a follower last
//! asked. A slot migration follows the slots it moves, from the instant its
//! capture starts, and streams the current state of each changed key after
//! the captured copy; replication's write stream will follow all slots the
//! same way.
//!
//! Only key names are kept (what changed, not how): the follower reads the
//! key's state when it sends it, so a key written a thousand times between
//! two sends is sent once, as it is then.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tidecache_topology::SlotSet;
use tokio::sync::Notify;

/// A counter that wakes its waiters each time it goes up: what a follower
/// raises on a change, and what replication raises on an acknowledgement.
/// A waiter remembers the count it saw, so a raise between its look and
/// its wait is never missed.
#[derive(Debug, Default)]
pub struct Signal {
    seq: AtomicU64,
    notify: Notify,
}

impl Signal {
    pub fn raise(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Returns once the count differs from `seen`.
    pub async fn changed_since(&self, seen: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.seq() != seen {
                return;
            }
            notified.await;
        }
    }
}

/// Names a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FollowId(u64);

/// What changed in a follower's slots since it last asked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Keys that changed, in the order of their first change, each once.
    pub keys: Vec<Bytes>,
    /// The whole keyspace was flushed (before the changes in `keys`).
    pub cleared: bool,
}

struct Follower {
    id: FollowId,
    slots: SlotSet,
    changes: Changes,
    /// Keys already in `changes.keys`.
    seen: hashbrown::HashSet<Bytes>,
    /// Raised when the follower goes from nothing to tell to something.
    signal: Option<Arc<Signal>>,
}

#[derive(Default)]
pub(super) struct Followers {
    active: Vec<Follower>,
    next_id: u64,
}

impl Followers {
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn start(&mut self, slots: SlotSet, signal: Option<Arc<Signal>>) -> FollowId {
        self.next_id += 1;
        let id = FollowId(self.next_id);
        self.active.push(Follower {
            id,
            slots,
            changes: Changes::default(),
            seen: Default::default(),
            signal,
        });
        id
    }

    pub fn stop(&mut self, id: FollowId) -> bool {
        let before = self.active.len();
        self.active.retain(|f| f.id != id);
        self.active.len() != before
    }

    /// `key`, in `slot`, changed (was written, expired, evicted, deleted).
    pub fn changed(&mut self, slot: u16, key: &[u8]) {
        for f in &mut self.active {
            if f.slots.contains(slot) && !f.seen.contains(key) {
                let key = Bytes::copy_from_slice(key);
                f.seen.insert(key.clone());
                f.changes.keys.push(key);
                if f.changes.keys.len() == 1
                    && let Some(signal) = &f.signal
                {
                    signal.raise();
                }
            }
        }
    }

    /// Every key is gone: what changed before no longer matters.
    pub fn cleared(&mut self) {
        for f in &mut self.active {
            f.changes = Changes {
                keys: Vec::new(),
                cleared: true,
            };
            f.seen.clear();
            if let Some(signal) = &f.signal {
                signal.raise();
            }
        }
    }

    /// The changes since the last call; `None` for an unknown follower.
    pub fn take(&mut self, id: FollowId) -> Option<Changes> {
        let f = self.active.iter_mut().find(|f| f.id == id)?;
        f.seen.clear();
        Some(std::mem::take(&mut f.changes))
    }
}
