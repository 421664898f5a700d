//! Consistent copies of the keyspace without `fork()`: the hook snapshots,
//! replication's full sync and slot migration read the keyspace through.
//!
//! A capture copies a set of slots as they were at the instant it started,
//! while writes go on. It walks its slots in order a bounded step at a
//! time (the caller releases the keyspace lock between steps), and is
//! copy-on-write at key granularity: a write to a key of a slot the walk
//! has not reached yet first hands that key's current state — still the
//! start instant's, since nothing wrote to it since — to the capture, and
//! the capture notes the key as given (a key created since the start is
//! noted too: it was absent at the start, so there is nothing to give).
//! When the walk reaches the slot it gives the keys not noted. So every
//! key is given exactly once, before its first later change, as it was at
//! the start instant. A change with no key (a flush) gives the whole
//! slot's remaining keys first.
//!
//! Memory held on the capture's behalf is what its [`Sink`] buffers plus
//! the names of keys written during the capture: under a write load, only
//! the keys actually written are copied early, not their slots (a uniform
//! load touches every slot within a second, and slot-granular copying then
//! amounts to a copy of everything, as a fork's page copying under load
//! can). Nothing is duplicated in the keyspace itself.

use hashbrown::{HashMap, HashSet, HashTable};

use super::record::Record;
use super::value::ValueRef;

/// Where a capture's entries go (an RDB writer, a replication or
/// migration stream). Called with the keyspace locked: it should serialize
/// into a buffer and let another task do the I/O.
pub trait Sink: Send {
    /// One key of a captured slot, as it was when the capture started.
    fn entry(&mut self, slot: u16, key: &[u8], value: ValueRef<'_>, expires_at: Option<u64>);

    /// Every key of `slot` has been given.
    fn slot_done(&mut self, _slot: u16) {}
}

/// Names a capture in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaptureId(u64);

/// What a step of a capture came to.
pub enum Step {
    /// Slots remain; step again.
    More,
    /// Every slot was captured: the sink, with everything given to it.
    Done(Box<dyn Sink>),
}

const WORDS: usize = 16384 / 64;

pub(super) struct Capture {
    id: CaptureId,
    /// The instant the copy is of: keys whose deadline had passed by then
    /// are not part of it.
    at_ms: u64,
    /// Slots not captured yet, one bit each.
    pending: Box<[u64; WORDS]>,
    left: usize,
    /// Where the background walk goes on from.
    cursor: usize,
    /// Per pending slot, the keys already given (or absent at the start)
    /// because a write reached them first: the walk skips them.
    given: HashMap<u16, HashSet<Box<[u8]>>>,
    sink: Box<dyn Sink>,
}

impl Capture {
    fn is_pending(&self, slot: usize) -> bool {
        self.pending[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn give(&mut self, slot: u16, r: &Record) {
        if r.live_at(self.at_ms) {
            let deadline = r.deadline();
            self.sink.entry(
                slot,
                r.key(),
                r.value(),
                (deadline != 0).then_some(deadline),
            );
        }
    }

    /// Gives `table` (slot `slot`'s) to the sink if the capture still
    /// needs it, but for the keys a write gave already; returns how many
    /// keys it looked at.
    fn take(&mut self, slot: usize, table: &HashTable<Record>) -> usize {
        if !self.is_pending(slot) {
            return 0;
        }
        self.pending[slot / 64] &= !(1 << (slot % 64));
        self.left -= 1;
        let slot16 = slot as u16;
        let given = self.given.remove(&slot16).unwrap_or_default();
        for r in table.iter() {
            if given.is_empty() || !given.contains(r.key()) {
                self.give(slot16, r);
            }
        }
        self.sink.slot_done(slot16);
        table.len()
    }

    /// Gives `key`'s state (`record`, `None` if absent) before its first
    /// change, if its slot is still pending.
    fn take_key(&mut self, slot: usize, key: &[u8], record: Option<&Record>) {
        if !self.is_pending(slot) {
            return;
        }
        let given = self.given.entry(slot as u16).or_default();
        if given.contains(key) {
            return;
        }
        given.insert(key.into());
        if let Some(r) = record {
            self.give(slot as u16, r);
        }
    }
}

/// The captures in progress, kept with the tables they copy.
#[derive(Default)]
pub(super) struct Captures {
    active: Vec<Capture>,
    next_id: u64,
}

impl Captures {
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn start(
        &mut self,
        slots: impl IntoIterator<Item = u16>,
        at_ms: u64,
        sink: Box<dyn Sink>,
    ) -> CaptureId {
        let mut pending = Box::new([0u64; WORDS]);
        let mut left = 0;
        for slot in slots {
            let s = usize::from(slot) % 16384;
            if pending[s / 64] & (1 << (s % 64)) == 0 {
                pending[s / 64] |= 1 << (s % 64);
                left += 1;
            }
        }
        self.next_id += 1;
        let id = CaptureId(self.next_id);
        self.active.push(Capture {
            id,
            at_ms,
            pending,
            left,
            cursor: 0,
            given: HashMap::new(),
            sink,
        });
        id
    }

    /// Called before slot `slot` changes as a whole (a flush).
    pub fn before_write(&mut self, slot: usize, table: &HashTable<Record>) {
        for c in &mut self.active {
            c.take(slot, table);
        }
    }

    /// Called before `key` (of slot `slot`, its record `record` if it
    /// exists) changes.
    pub fn before_key_write(&mut self, slot: usize, key: &[u8], record: Option<&Record>) {
        for c in &mut self.active {
            c.take_key(slot, key, record);
        }
    }

    /// Captures whole slots, in order, until at least `budget` keys were
    /// given or none is left. `None` for an unknown capture.
    pub fn step(
        &mut self,
        id: CaptureId,
        slots: &[HashTable<Record>],
        budget: usize,
    ) -> Option<Step> {
        let i = self.active.iter().position(|c| c.id == id)?;
        let c = &mut self.active[i];
        let mut given = 0;
        while c.left > 0 && given < budget.max(1) && c.cursor < slots.len() {
            given += c.take(c.cursor, &slots[c.cursor]);
            c.cursor += 1;
        }
        if c.left > 0 {
            return Some(Step::More);
        }
        Some(Step::Done(self.active.swap_remove(i).sink))
    }

    pub fn cancel(&mut self, id: CaptureId) -> Option<Box<dyn Sink>> {
        let i = self.active.iter().position(|c| c.id == id)?;
        Some(self.active.swap_remove(i).sink)
    }
}
