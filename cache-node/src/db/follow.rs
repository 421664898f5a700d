//! Followers: which keys of a set of slots changed since a follower last
//! asked. A slot migration follows the slots it moves, from the instant its
//! capture starts, and streams the current state of each changed key after
//! the captured copy; replication's write stream will follow all slots the
//! same way.
//!
//! Only key names are kept (what changed, not how): the follower reads the
//! key's state when it sends it, so a key written a thousand times between
//! two sends is sent once, as it is then.

use bytes::Bytes;
use tidecache_topology::SlotSet;

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

    pub fn start(&mut self, slots: SlotSet) -> FollowId {
        self.next_id += 1;
        let id = FollowId(self.next_id);
        self.active.push(Follower {
            id,
            slots,
            changes: Changes::default(),
            seen: Default::default(),
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
        }
    }

    /// The changes since the last call; `None` for an unknown follower.
    pub fn take(&mut self, id: FollowId) -> Option<Changes> {
        let f = self.active.iter_mut().find(|f| f.id == id)?;
        f.seen.clear();
        Some(std::mem::take(&mut f.changes))
    }
}
