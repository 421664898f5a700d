//! The keyspace: values organised per hash slot, with expiry.
//!
//! Keys live in one hash map per slot, so that counting, listing and dropping
//! a slot's keys (what `CLUSTER COUNTKEYSINSLOT` and slot migration need)
//! never scans the whole keyspace. Keys with a deadline are also indexed by
//! deadline, so active expiry removes exactly the keys that are due instead of
//! sampling.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use tidecache_topology::{SLOT_COUNT, key_slot};

use crate::clock::Clock;
use crate::types::{Hash, List, Set, SortedSet};

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Bytes),
    Hash(Hash),
    List(List),
    Set(Set),
    ZSet(SortedSet),
}

impl Value {
    /// Bytes this value accounts for in `used_memory`; O(1).
    fn footprint(&self) -> usize {
        match self {
            Value::Str(b) => b.len(),
            Value::Hash(h) => h.bytes(),
            Value::List(l) => l.bytes(),
            Value::Set(s) => s.bytes(),
            Value::ZSet(z) => z.bytes(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Collections vanish when their last element goes, as in Redis.
    fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// A collection type stored in a [`Value`] variant; lets commands read and
/// write any collection through one pair of helpers.
pub trait Collection: Default + Sized {
    fn of(value: &Value) -> Option<&Self>;
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    fn into_value(self) -> Value;
}

macro_rules! collection {
    ($ty:ident, $variant:ident) => {
        impl Collection for $ty {
            fn of(value: &Value) -> Option<&Self> {
                match value {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
        }
    };
}
collection!(Hash, Hash);
collection!(List, List);
collection!(Set, Set);
collection!(SortedSet, ZSet);

/// The reply for a command applied to a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Unix time in milliseconds after which the key no longer exists.
    pub expires_at: Option<u64>,
}

/// A rough per-key overhead (hash table slot, entry header, expiry index
/// share) added to key and value lengths so that `used_memory` tracks the
/// real footprint closely enough for `maxmemory`. Issue #3 replaces this
/// estimate with the allocator's own statistics.
const ENTRY_OVERHEAD: usize = 64;

/// Keyspace statistics for INFO and metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
}

pub struct Db {
    slots: Vec<HashMap<Bytes, Entry>>,
    /// (deadline in ms, key) for every key that has a deadline.
    deadlines: BTreeSet<(u64, Bytes)>,
    len: usize,
    used_bytes: usize,
    pub stats: Stats,
    clock: Clock,
}

impl Db {
    pub fn new(clock: Clock) -> Self {
        Self {
            slots: (0..SLOT_COUNT).map(|_| HashMap::new()).collect(),
            deadlines: BTreeSet::new(),
            len: 0,
            used_bytes: 0,
            stats: Stats::default(),
            clock,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Number of keys, including ones that expired but were not reclaimed yet.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn keys_with_deadline(&self) -> usize {
        self.deadlines.len()
    }

    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.slots[usize::from(slot)].len()
    }

    pub fn keys_in_slot(&self, slot: u16, limit: usize) -> Vec<Bytes> {
        self.slots[usize::from(slot)]
            .keys()
            .take(limit)
            .cloned()
            .collect()
    }

    fn charge(key: &[u8], value: &Value) -> usize {
        key.len() + value.footprint() + ENTRY_OVERHEAD
    }

    /// The live entry of `key`, reclaiming it first if it has expired.
    pub fn get(&mut self, key: &[u8]) -> Option<&Entry> {
        self.expire_if_due(key);
        let found = self.slots[usize::from(key_slot(key))].get(key);
        if found.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        found
    }

    /// Like [`Db::get`] but without touching hit/miss statistics (for
    /// commands that only check existence or TTL).
    pub fn peek(&mut self, key: &[u8]) -> Option<&Entry> {
        self.expire_if_due(key);
        self.slots[usize::from(key_slot(key))].get(key)
    }

    /// Stores `value` under `key` with the given deadline, replacing any
    /// previous value and deadline.
    pub fn set(&mut self, key: Bytes, value: Value, expires_at: Option<u64>) {
        self.remove(&key);
        self.used_bytes += Self::charge(&key, &value);
        if let Some(at) = expires_at {
            self.deadlines.insert((at, key.clone()));
        }
        self.slots[usize::from(key_slot(&key))].insert(key, Entry { value, expires_at });
        self.len += 1;
    }

    /// Replaces the value of an existing live key, keeping its deadline.
    /// Returns false when the key does not exist.
    pub fn replace_value(&mut self, key: &[u8], value: Value) -> bool {
        self.expire_if_due(key);
        let Some(entry) = self.slots[usize::from(key_slot(key))].get_mut(key) else {
            return false;
        };
        self.used_bytes = self.used_bytes - entry.value.footprint() + value.footprint();
        entry.value = value;
        true
    }

    /// Runs `f` on the live value of `key`, keeping memory accounting right
    /// and deleting the key if `f` leaves an empty collection behind.
    pub fn update<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Value) -> R) -> Option<R> {
        self.expire_if_due(key);
        let slot = usize::from(key_slot(key));
        let entry = self.slots[slot].get_mut(key)?;
        let before = entry.value.footprint();
        let result = f(&mut entry.value);
        self.used_bytes = self.used_bytes - before + entry.value.footprint();
        if entry.value.is_empty_collection() {
            self.remove(key);
        }
        Some(result)
    }

    /// Reads the collection at `key`: `Ok(None)` when the key is missing,
    /// `Err(WRONGTYPE)` when it holds another type.
    pub fn read<T: Collection, R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&T) -> R,
    ) -> Result<Option<R>, &'static str> {
        match self.peek(key) {
            None => Ok(None),
            Some(e) => T::of(&e.value).map(|c| Some(f(c))).ok_or(WRONGTYPE),
        }
    }

    /// Changes the collection at `key`, creating an empty one when the key
    /// is missing; `Err(WRONGTYPE)` when it holds another type. A collection
    /// left empty is deleted.
    pub fn write<T: Collection, R>(
        &mut self,
        key: &Bytes,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, &'static str> {
        match self.peek(key) {
            Some(e) if T::of(&e.value).is_none() => return Err(WRONGTYPE),
            Some(_) => {}
            None => self.set(key.clone(), T::default().into_value(), None),
        }
        let result = self.update(key, |v| T::of_mut(v).map(f)).flatten();
        Ok(result.expect("the key exists and holds a T"))
    }

    /// Removes `key`; returns whether a live key was removed.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let slot = usize::from(key_slot(key));
        let Some((k, entry)) = self.slots[slot].remove_entry(key) else {
            return false;
        };
        self.len -= 1;
        self.used_bytes -= Self::charge(&k, &entry.value);
        if let Some(at) = entry.expires_at {
            self.deadlines.remove(&(at, k));
            if at <= self.now_ms() {
                self.stats.expired += 1;
                return false;
            }
        }
        true
    }

    /// Sets or clears the deadline of an existing live key. Returns false
    /// when the key does not exist.
    pub fn set_deadline(&mut self, key: &[u8], expires_at: Option<u64>) -> bool {
        self.expire_if_due(key);
        let slot = usize::from(key_slot(key));
        let Some((k, _)) = self.slots[slot].get_key_value(key) else {
            return false;
        };
        let k = k.clone();
        let entry = self.slots[slot].get_mut(key).expect("present");
        if let Some(old) = entry.expires_at.take() {
            self.deadlines.remove(&(old, k.clone()));
        }
        entry.expires_at = expires_at;
        if let Some(at) = expires_at {
            self.deadlines.insert((at, k));
        }
        true
    }

    fn expire_if_due(&mut self, key: &[u8]) {
        let slot = usize::from(key_slot(key));
        let due = matches!(self.slots[slot].get(key), Some(Entry { expires_at: Some(at), .. }) if *at <= self.now_ms());
        if due {
            self.remove(key);
        }
    }

    /// Active expiry: reclaims up to `budget` keys whose deadline has passed,
    /// oldest first. Returns how many it reclaimed.
    pub fn expire_due(&mut self, budget: usize) -> usize {
        let now = self.now_ms();
        let mut n = 0;
        while n < budget {
            let Some((at, key)) = self.deadlines.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            self.remove(&key);
            n += 1;
        }
        n
    }

    /// Moves the value and deadline of `from` to `to`, replacing `to`.
    /// Returns false when `from` does not exist.
    pub fn rename(&mut self, from: &[u8], to: Bytes) -> bool {
        let Some(entry) = self.peek(from).cloned() else {
            return false;
        };
        self.remove(from);
        self.set(to, entry.value, entry.expires_at);
        true
    }

    /// Every live key for which `keep` is true (KEYS). Walks the whole
    /// keyspace: Redis documents KEYS as O(N) and so is this.
    pub fn keys_where(&self, mut keep: impl FnMut(&[u8]) -> bool) -> Vec<Bytes> {
        let now = self.now_ms();
        self.slots
            .iter()
            .flat_map(|slot| slot.iter())
            .filter(|(k, e)| e.expires_at.is_none_or(|at| at > now) && keep(k))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// One step of SCAN. The cursor is a slot number: each call returns every
    /// live key of whole slots, starting at `cursor`, until at least `count`
    /// keys were visited, and the next slot as the new cursor (0 when done).
    /// Slots never move, so the cursor stays valid however the keyspace grows
    /// or shrinks, and a key present for the whole iteration is returned
    /// exactly once.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        mut keep: impl FnMut(&[u8], &Value) -> bool,
    ) -> (u64, Vec<Bytes>) {
        let now = self.now_ms();
        let mut slot = usize::try_from(cursor).unwrap_or(usize::MAX);
        let (mut visited, mut out) = (0, Vec::new());
        while slot < self.slots.len() && visited < count.max(1) {
            for (k, e) in &self.slots[slot] {
                visited += 1;
                if e.expires_at.is_none_or(|at| at > now) && keep(k, &e.value) {
                    out.push(k.clone());
                }
            }
            slot += 1;
        }
        let next = if slot >= self.slots.len() {
            0
        } else {
            slot as u64
        };
        (next, out)
    }

    /// A random live key: a random non-empty slot, then a random key in it.
    /// Not uniform across keys when slots differ in size, which RANDOMKEY's
    /// uses (sampling, debugging) tolerate.
    pub fn random_key(&mut self) -> Option<Bytes> {
        use rand::Rng as _;
        let mut rng = rand::rng();
        // Bounded retries: expired keys are reclaimed as they are met.
        for _ in 0..64 {
            if self.len == 0 {
                return None;
            }
            let start = rng.random_range(0..self.slots.len());
            let slot = (0..self.slots.len())
                .map(|i| (start + i) % self.slots.len())
                .find(|&i| !self.slots[i].is_empty())?;
            let n = rng.random_range(0..self.slots[slot].len());
            let key = self.slots[slot].keys().nth(n).cloned()?;
            if self.peek(&key).is_some() {
                return Some(key);
            }
        }
        None
    }

    pub fn flush(&mut self) {
        for slot in &mut self.slots {
            *slot = HashMap::new();
        }
        self.deadlines.clear();
        self.len = 0;
        self.used_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (Db, Clock) {
        let clock = Clock::manual(1_000_000);
        (Db::new(clock.clone()), clock)
    }

    #[test]
    fn values_live_in_their_slot() {
        let (mut db, _) = db();
        db.set(Bytes::from("{a}1"), Value::Str(Bytes::from("x")), None);
        db.set(Bytes::from("{a}2"), Value::Str(Bytes::from("y")), None);
        let slot = key_slot(b"a");
        assert_eq!(db.count_in_slot(slot), 2);
        assert_eq!(db.len(), 2);
        assert!(db.remove(b"{a}1"));
        assert!(!db.remove(b"{a}1"));
        assert_eq!(db.count_in_slot(slot), 1);
    }

    #[test]
    fn memory_accounting_returns_to_zero() {
        let (mut db, _) = db();
        for i in 0..100 {
            db.set(
                Bytes::from(format!("k{i}")),
                Value::Str(Bytes::from(vec![0u8; i])),
                Some(2_000_000),
            );
        }
        assert!(db.used_bytes() > 100 * ENTRY_OVERHEAD);
        db.replace_value(b"k5", Value::Str(Bytes::from("longer value than before")));
        for i in 0..100 {
            db.remove(format!("k{i}").as_bytes());
        }
        assert_eq!(db.used_bytes(), 0);
        assert_eq!(db.keys_with_deadline(), 0);
    }

    #[test]
    fn expired_keys_vanish_lazily_and_actively() {
        let (mut db, clock) = db();
        db.set(
            Bytes::from("a"),
            Value::Str(Bytes::from("1")),
            Some(1_000_100),
        );
        db.set(
            Bytes::from("b"),
            Value::Str(Bytes::from("1")),
            Some(1_000_200),
        );
        db.set(Bytes::from("c"), Value::Str(Bytes::from("1")), None);
        clock.advance(150);
        assert!(db.get(b"a").is_none(), "lazily expired");
        assert!(db.get(b"b").is_some());
        clock.advance(100);
        assert_eq!(db.expire_due(10), 1, "b actively expired");
        assert_eq!(db.len(), 1);
        assert_eq!(db.stats.expired, 2);
    }

    #[test]
    fn deadlines_can_change_and_clear() {
        let (mut db, clock) = db();
        db.set(
            Bytes::from("a"),
            Value::Str(Bytes::from("1")),
            Some(1_000_100),
        );
        assert!(db.set_deadline(b"a", None));
        clock.advance(1000);
        assert_eq!(db.expire_due(10), 0);
        assert!(db.get(b"a").is_some());
        assert!(!db.set_deadline(b"missing", Some(5)));
    }
}
