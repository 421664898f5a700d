//! The keyspace: values organised per hash slot, with expiry.
//!
//! Keys live in one hash map per slot, so that counting, listing and dropping
//! a slot's keys (what `CLUSTER COUNTKEYSINSLOT` and slot migration need)
//! never scans the whole keyspace. Keys with a deadline are also indexed by
//! deadline, so active expiry removes exactly the keys that are due instead of
//! sampling.
//!
//! Memory accounting ([`Db::used_bytes`]) follows what the allocator really
//! holds, in O(1) per change: each slot's table by its capacity, each key and
//! string value rounded up to an allocator size class, each deadline's share
//! of the deadline index. Keys and small values are copied out of the
//! request they came in (see [`own`]) so that evicting a key frees it.
//!
//! Eviction ([`Db::evict_one`]) takes its victims as [`crate::evict`] decides;
//! each entry carries the LRU clock or LFU counter it is ranked by.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tidecache_topology::{SLOT_COUNT, key_slot};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::evict::{self, Pool, Settings, Source};
use crate::memory::{self, Meter};
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
            // Small strings are copies of their own (see `own`); large ones
            // share the request buffer they arrived in, which they fill.
            Value::Str(b) if b.len() <= COPY_MAX => alloc_size(b.len()),
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
    /// Unix time in milliseconds after which the key no longer exists, 0 for
    /// none. Not an `Option<u64>`: that takes 16 bytes, and the 8 it wastes
    /// are where `access` fits, so the entry is no larger than without it.
    deadline: u64,
    /// LRU clock or LFU counter, as [`crate::evict`] reads them.
    access: u32,
}

impl Entry {
    /// Unix time in milliseconds after which the key no longer exists.
    pub fn expires_at(&self) -> Option<u64> {
        (self.deadline != 0).then_some(self.deadline)
    }

    /// The access data eviction ranks the key by (OBJECT IDLETIME and FREQ).
    pub fn access(&self) -> u32 {
        self.access
    }
}

/// A deadline as stored: 0 means none, so a deadline of 0 (long past, like
/// any other past deadline) is kept as 1.
fn deadline_of(expires_at: Option<u64>) -> u64 {
    expires_at.map_or(0, |at| at.max(1))
}

/// Bytes an allocation of `n` bytes takes: jemalloc's size classes (16-byte
/// steps to 128, then four classes per doubling), which glibc's 16-byte
/// chunks with an 8-byte header follow closely.
pub fn alloc_size(n: usize) -> usize {
    match n {
        0 => 0,
        1..=128 => n.next_multiple_of(16),
        _ => {
            // A quarter of the power of two just below.
            let log2 = usize::BITS - 1 - (n - 1).leading_zeros();
            n.next_multiple_of(1 << (log2 - 2))
        }
    }
}

/// Strings up to this long are copied out of the request that brought them
/// (Redis copies arguments below `PROTO_MBULK_BIG_ARG` the same way). A
/// slice would keep the whole read buffer alive, shared with every other
/// key and value of the same read, and evicting the key would free nothing.
const COPY_MAX: usize = 32 * 1024;

/// `b`, in an allocation of its own unless it already has one or is large
/// enough to fill the buffer it shares.
fn own(b: Bytes) -> Bytes {
    if b.len() <= COPY_MAX && !b.is_unique() {
        Bytes::copy_from_slice(&b)
    } else {
        b
    }
}

fn own_value(value: Value) -> Value {
    match value {
        Value::Str(b) => Value::Str(own(b)),
        other => other,
    }
}

/// One bucket of a slot's table: the key, the entry and a control byte.
const BUCKET: usize = std::mem::size_of::<(Bytes, Entry)>() + 1;

/// Bytes of a slot table that can hold `capacity` keys without growing
/// (hashbrown: buckets a power of two, at most 7/8 full, plus one control
/// group of 16 bytes).
fn table_bytes(capacity: usize) -> usize {
    match table_buckets(capacity) {
        0 => 0,
        buckets => alloc_size(buckets * BUCKET + 16),
    }
}

/// Buckets of a hashbrown table that reports `capacity`.
fn table_buckets(capacity: usize) -> usize {
    match capacity {
        0 => 0,
        1..=7 => capacity + 1,
        _ => capacity / 7 * 8,
    }
}

/// A deadline's share of the deadline index: its `(u64, Bytes)` element in
/// B-tree nodes about 60% full, and the shared header the key's bytes get
/// once the index holds a second reference to them.
const DEADLINE_COST: usize = 96;

/// Keyspace statistics for INFO and metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    /// Keys removed to stay within `maxmemory`.
    pub evicted: u64,
}

/// Clients that care when a key changes: those that `WATCH` it (their
/// transaction must fail) and those blocked on it (`BLPOP` and friends, which
/// must look again). Kept in the keyspace so that every write path reaches it
/// through one hook, [`Db::touched`].
#[derive(Default)]
struct Interest {
    watchers: HashMap<Bytes, Vec<u64>>,
    /// Clients whose watched keys changed since they watched them.
    dirty: HashSet<u64>,
    blocked: HashMap<Bytes, Vec<Arc<Notify>>>,
}

pub struct Db {
    slots: Vec<HashMap<Bytes, Entry>>,
    interest: Interest,
    /// (deadline in ms, key) for every key that has a deadline.
    deadlines: BTreeSet<(u64, Bytes)>,
    len: usize,
    used_bytes: usize,
    pub stats: Stats,
    clock: Clock,
    eviction: Settings,
    /// The best eviction candidates seen so far.
    pool: Pool,
    meter: Meter,
    /// Whether lookups record an access (off for a `CLIENT NO-TOUCH` client).
    touching: bool,
}

impl Db {
    pub fn new(clock: Clock) -> Self {
        Self {
            slots: (0..SLOT_COUNT).map(|_| HashMap::new()).collect(),
            interest: Interest::default(),
            deadlines: BTreeSet::new(),
            len: 0,
            used_bytes: 0,
            stats: Stats::default(),
            clock,
            eviction: Settings::default(),
            pool: Pool::default(),
            meter: Meter::default(),
            touching: true,
        }
    }

    /// The keyspace with the given eviction settings.
    pub fn with_eviction(mut self, settings: Settings) -> Self {
        self.set_eviction(settings);
        self
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

    /// The keyspace's own accounting of the memory it holds.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// `used_memory`: the allocator's count when the node runs on jemalloc,
    /// the keyspace's accounting otherwise (see [`crate::memory`]).
    pub fn used_memory(&mut self) -> u64 {
        let now = self.now_ms();
        self.meter
            .used(self.used_bytes as u64, now, memory::allocator_stats)
    }

    /// Every memory figure INFO reports, from a fresh allocator reading.
    pub fn memory_report(&mut self) -> memory::Report {
        let now = self.now_ms();
        let keyspace = self.used_bytes as u64;
        self.meter.refresh(keyspace, now, memory::allocator_stats);
        let used = self.meter.used(keyspace, now, memory::allocator_stats);
        let allocator = self.meter.allocator().unwrap_or_default();
        memory::Report {
            used,
            peak: self.meter.peak(),
            dataset: keyspace,
            rss: memory::process_rss().unwrap_or(allocator.resident),
            allocator,
            allocator_name: memory::allocator_name(),
        }
    }

    pub fn eviction(&self) -> Settings {
        self.eviction
    }

    /// Changes the eviction settings (CONFIG SET). Access data already
    /// recorded stays as it is: after a switch between LRU and LFU it reads
    /// wrongly until keys are used again, as Redis warns.
    pub fn set_eviction(&mut self, settings: Settings) {
        if settings.policy != self.eviction.policy {
            self.pool.clear();
        }
        self.eviction = settings;
    }

    /// Whether the lookups of the command about to run record accesses.
    pub fn set_touching(&mut self, on: bool) {
        self.touching = on;
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

    /// What an entry costs beyond its bucket in the slot's table.
    fn charge(key: &[u8], value: &Value, deadline: u64) -> usize {
        let index = if deadline == 0 { 0 } else { DEADLINE_COST };
        alloc_size(key.len()) + value.footprint() + index
    }

    /// Accounts for a slot table whose capacity was `before` and may have
    /// changed.
    fn retable(&mut self, slot: usize, before: usize) {
        let after = self.slots[slot].capacity();
        if after != before {
            self.used_bytes = self.used_bytes + table_bytes(after) - table_bytes(before);
        }
    }

    /// The live entry of `key`, reclaiming it first if it has expired.
    pub fn get(&mut self, key: &[u8]) -> Option<&Entry> {
        self.lookup(key, true)
    }

    /// Finds the live entry of `key`, recording the access unless the
    /// command runs for a `CLIENT NO-TOUCH` client, and counting a hit or a
    /// miss when `count`.
    fn lookup(&mut self, key: &[u8], count: bool) -> Option<&Entry> {
        let slot = usize::from(key_slot(key));
        let now = self.now_ms();
        let live = match self.slots[slot].get_mut(key) {
            None => None,
            Some(e) if e.deadline != 0 && e.deadline <= now => Some(false),
            Some(e) => {
                if self.touching {
                    record_access(e, &self.eviction, now);
                }
                Some(true)
            }
        };
        if live == Some(false) {
            self.remove(key);
        }
        let live = live == Some(true);
        if count {
            if live {
                self.stats.hits += 1;
            } else {
                self.stats.misses += 1;
            }
        }
        if live {
            self.slots[slot].get(key)
        } else {
            None
        }
    }

    /// `TOUCH`: records an access to `key` even for a `CLIENT NO-TOUCH`
    /// client (that is the command's purpose); whether the key exists.
    pub fn touch(&mut self, key: &[u8]) -> bool {
        let was = std::mem::replace(&mut self.touching, true);
        let found = self.lookup(key, false).is_some();
        self.touching = was;
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
        let now = self.now_ms();
        // Under LFU an overwritten key keeps its counter, and the write
        // counts as an access (Redis's `dbSetValue`); otherwise it is new.
        let previous = self
            .take(&key)
            .and_then(|(old, live)| live.then_some(old.access));
        let settings = self.eviction;
        let access = match previous {
            Some(a) if settings.policy.is_lfu() && self.touching => {
                evict::on_access(&settings, a, now, rand::random())
            }
            Some(a) if settings.policy.is_lfu() => a,
            _ => evict::fresh_access(&settings, now),
        };
        self.insert(own(key), own_value(value), deadline_of(expires_at), access);
    }

    /// Adds an entry for a key known to be absent.
    fn insert(&mut self, key: Bytes, value: Value, deadline: u64, access: u32) {
        let slot = usize::from(key_slot(&key));
        self.used_bytes += Self::charge(&key, &value, deadline);
        if deadline != 0 {
            self.deadlines.insert((deadline, key.clone()));
        }
        self.touched(&key);
        let before = self.slots[slot].capacity();
        self.slots[slot].insert(
            key,
            Entry {
                value,
                deadline,
                access,
            },
        );
        self.retable(slot, before);
        self.len += 1;
    }

    /// Replaces the value of an existing live key, keeping its deadline.
    /// Returns false when the key does not exist.
    pub fn replace_value(&mut self, key: &[u8], value: Value) -> bool {
        self.expire_if_due(key);
        let now = self.now_ms();
        let Some(entry) = self.slots[usize::from(key_slot(key))].get_mut(key) else {
            return false;
        };
        let value = own_value(value);
        self.used_bytes = self.used_bytes - entry.value.footprint() + value.footprint();
        entry.value = value;
        if self.touching {
            record_access(entry, &self.eviction, now);
        }
        self.touched(key);
        true
    }

    /// Runs `f` on the live value of `key`, keeping memory accounting right
    /// and deleting the key if `f` leaves an empty collection behind.
    pub fn update<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Value) -> R) -> Option<R> {
        self.expire_if_due(key);
        let slot = usize::from(key_slot(key));
        let now = self.now_ms();
        let entry = self.slots[slot].get_mut(key)?;
        if self.touching {
            record_access(entry, &self.eviction, now);
        }
        let before = entry.value.footprint();
        let result = f(&mut entry.value);
        self.used_bytes = self.used_bytes - before + entry.value.footprint();
        if entry.value.is_empty_collection() {
            self.remove(key);
        }
        self.touched(key);
        Some(result)
    }

    /// Reads the collection at `key`: `Ok(None)` when the key is missing,
    /// `Err(WRONGTYPE)` when it holds another type.
    pub fn read<T: Collection, R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&T) -> R,
    ) -> Result<Option<R>, &'static str> {
        match self.lookup(key, false) {
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
        self.take(key).is_some_and(|(_, live)| live)
    }

    /// Removes `key` and returns its entry, and whether it was live (an
    /// expired one counts as expired).
    fn take(&mut self, key: &[u8]) -> Option<(Entry, bool)> {
        let slot = usize::from(key_slot(key));
        let (k, entry) = self.slots[slot].remove_entry(key)?;
        self.len -= 1;
        self.used_bytes -= Self::charge(&k, &entry.value, entry.deadline);
        self.shrink_if_sparse(slot);
        self.touched(&k);
        let mut live = true;
        if entry.deadline != 0 {
            let at = entry.deadline;
            self.deadlines.remove(&(at, k));
            if at <= self.now_ms() {
                self.stats.expired += 1;
                live = false;
            }
        }
        Some((entry, live))
    }

    /// Gives memory back from a slot table left empty or mostly empty
    /// (after deletions or evictions), as Redis shrinks its dicts below 1/8
    /// full. An empty table is freed: with 16384 of them, the smallest
    /// tables of slots that each held a key would add up to megabytes.
    fn shrink_if_sparse(&mut self, slot: usize) {
        let table = &mut self.slots[slot];
        let before = table.capacity();
        if (table.is_empty() && before > 0) || (before > 64 && table.len() * 8 < before) {
            table.shrink_to(table.len() * 2);
            self.retable(slot, before);
        }
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
        let now = self.now_ms();
        let entry = self.slots[slot].get_mut(key).expect("present");
        if self.touching {
            record_access(entry, &self.eviction, now);
        }
        let (old, new) = (entry.deadline, deadline_of(expires_at));
        entry.deadline = new;
        if old != 0 {
            self.deadlines.remove(&(old, k.clone()));
            self.used_bytes -= DEADLINE_COST;
        }
        if new != 0 {
            self.deadlines.insert((new, k));
            self.used_bytes += DEADLINE_COST;
        }
        self.touched(key);
        true
    }

    fn expire_if_due(&mut self, key: &[u8]) {
        let slot = usize::from(key_slot(key));
        let due = matches!(self.slots[slot].get(key), Some(e) if e.deadline != 0 && e.deadline <= self.now_ms());
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
        self.expire_if_due(from);
        // The entry moves whole, its access data with it, as in Redis.
        let Some((entry, _)) = self.take(from) else {
            return false;
        };
        self.remove(&to);
        self.insert(own(to), entry.value, entry.deadline, entry.access);
        true
    }

    /// Every live key for which `keep` is true (KEYS). Walks the whole
    /// keyspace: Redis documents KEYS as O(N) and so is this.
    pub fn keys_where(&self, mut keep: impl FnMut(&[u8]) -> bool) -> Vec<Bytes> {
        let now = self.now_ms();
        self.slots
            .iter()
            .flat_map(|slot| slot.iter())
            .filter(|(k, e)| (e.deadline == 0 || e.deadline > now) && keep(k))
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
                if (e.deadline == 0 || e.deadline > now) && keep(k, &e.value) {
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
        // A watched key that existed changed; one that did not still does
        // not exist, so its watchers' transactions may go ahead (Redis 7).
        let interest = &mut self.interest;
        for (key, ids) in &interest.watchers {
            if self.slots[usize::from(key_slot(key))].contains_key(key) {
                interest.dirty.extend(ids.iter().copied());
            }
        }
        for slot in &mut self.slots {
            *slot = HashMap::new();
        }
        self.deadlines.clear();
        self.pool.clear();
        self.len = 0;
        self.used_bytes = 0;
    }

    /// Evicts one key as the eviction policy chooses; false when the policy
    /// allows none (`noeviction`, or a `volatile-*` policy and no key with a
    /// deadline). Goes through [`Db::remove`], so watchers and blocked
    /// clients hear of it like of any other deletion.
    pub fn evict_one(&mut self) -> bool {
        let now = self.now_ms();
        let victim = match evict::source(self.eviction.policy, self.len, self.deadlines.len()) {
            Source::Nothing => None,
            Source::SoonestDeadline => self.deadlines.first().map(|(_, k)| k.clone()),
            Source::Random { volatile } => {
                let mut found = None;
                sample(
                    &self.slots,
                    &self.deadlines,
                    self.len,
                    volatile,
                    1,
                    |k, _| {
                        found = Some(k.clone());
                    },
                );
                found
            }
            Source::Ranked { volatile } => self.best_victim(volatile, now),
        };
        let Some(key) = victim else {
            return false;
        };
        // An expired key found here is reclaimed and counted as expired.
        if self.remove(&key) {
            self.stats.evicted += 1;
        }
        true
    }

    /// Samples keys into the pool and takes the best one that still exists
    /// and still ranks as well as when it was sampled.
    fn best_victim(&mut self, volatile: bool, now: u64) -> Option<Bytes> {
        let settings = self.eviction;
        // Every key sampled may have gone since (then the pool drains and
        // samples again); bounded, for a keyspace that changes under us.
        for _ in 0..4 {
            let pool = &mut self.pool;
            sample(
                &self.slots,
                &self.deadlines,
                self.len,
                volatile,
                settings.samples,
                |k, e| pool.offer(evict::rank(&settings, e.access, now), k),
            );
            while let Some((ranked, key)) = self.pool.pop() {
                let Some(e) = self.slots[usize::from(key_slot(&key))].get(&key) else {
                    continue;
                };
                if volatile && e.deadline == 0 {
                    continue;
                }
                // Used since it was ranked: it goes back at its new rank.
                let rank = evict::rank(&settings, e.access, now);
                if rank < ranked {
                    self.pool.offer(rank, &key);
                    continue;
                }
                return Some(key);
            }
        }
        None
    }

    /// Called on every change of `key`: invalidates the transactions that
    /// watch it and wakes the clients blocked on it. Two emptiness checks
    /// when nobody watches or blocks, which is the common case.
    fn touched(&mut self, key: &[u8]) {
        let interest = &mut self.interest;
        if !interest.watchers.is_empty()
            && let Some(ids) = interest.watchers.get(key)
        {
            interest.dirty.extend(ids.iter().copied());
        }
        if !interest.blocked.is_empty()
            && let Some(wakers) = interest.blocked.remove(key)
        {
            for w in wakers {
                w.notify_one();
            }
        }
    }

    /// Bytes accounted for `key` (MEMORY USAGE), or `None` when missing.
    pub fn memory_usage(&mut self, key: &[u8]) -> Option<usize> {
        let entry = self.peek(key)?;
        Some(Self::charge(key, &entry.value, entry.deadline))
    }

    /// `WATCH key` for `client`.
    pub fn watch(&mut self, client: u64, key: Bytes) {
        let ids = self.interest.watchers.entry(key).or_default();
        if !ids.contains(&client) {
            ids.push(client);
        }
    }

    /// Forgets `client`'s watches on `keys` and whether they changed.
    pub fn unwatch(&mut self, client: u64, keys: &[Bytes]) {
        for key in keys {
            if let Some(ids) = self.interest.watchers.get_mut(key) {
                ids.retain(|&id| id != client);
                if ids.is_empty() {
                    self.interest.watchers.remove(key);
                }
            }
        }
        self.interest.dirty.remove(&client);
    }

    /// Whether a key `client` watches changed since it watched it.
    pub fn watch_broken(&self, client: u64) -> bool {
        self.interest.dirty.contains(&client)
    }

    /// Registers `waker` to be notified when any of `keys` changes. A waker
    /// is dropped from a key once notified; the client registers again if it
    /// still has to wait.
    pub fn block_on(&mut self, keys: &[Bytes], waker: &Arc<Notify>) {
        for key in keys {
            let wakers = self.interest.blocked.entry(key.clone()).or_default();
            if !wakers.iter().any(|w| Arc::ptr_eq(w, waker)) {
                wakers.push(waker.clone());
            }
        }
    }

    /// Removes `waker` from `keys` (the client stopped waiting).
    pub fn unblock(&mut self, keys: &[Bytes], waker: &Arc<Notify>) {
        for key in keys {
            if let Some(wakers) = self.interest.blocked.get_mut(key) {
                wakers.retain(|w| !Arc::ptr_eq(w, waker));
                if wakers.is_empty() {
                    self.interest.blocked.remove(key);
                }
            }
        }
    }

    /// Keys watched by some client (INFO `watching_clients` and friends).
    pub fn watched_keys(&self) -> usize {
        self.interest.watchers.len()
    }
}

/// Records an access to `entry` at `now` under `settings`.
fn record_access(entry: &mut Entry, settings: &Settings, now: u64) {
    // Only the LFU counter needs a random draw.
    let r = if settings.policy.is_lfu() {
        rand::random()
    } else {
        0.0
    };
    entry.access = evict::on_access(settings, entry.access, now, r);
}

/// Calls `f` on up to `n` keys drawn at random, only keys with a deadline
/// when `volatile`, as eviction samples them (Redis's `dictGetSomeKeys`).
fn sample(
    slots: &[HashMap<Bytes, Entry>],
    deadlines: &BTreeSet<(u64, Bytes)>,
    len: usize,
    volatile: bool,
    n: usize,
    mut f: impl FnMut(&Bytes, &Entry),
) {
    let mut rng = rand::rng();
    // When few keys have a deadline, walking the keyspace would mostly meet
    // others: go to the deadline index straight away.
    let taken = if volatile && deadlines.len() * 2 < len {
        0
    } else {
        walk(slots, len, volatile, n, &mut rng, &mut f)
    };
    // A walk can also fall short where keys without a deadline cluster
    // (random eviction leaves such runs behind): the index never does.
    if volatile && taken < n {
        from_deadlines(slots, deadlines, n - taken, &mut rng, &mut f);
    }
}

/// Consecutive keys from a random point: a slot's keys are in hash order,
/// as random as any other with respect to their use. Visits at most `16 n`
/// keys; returns how many it passed to `f`.
fn walk(
    slots: &[HashMap<Bytes, Entry>],
    len: usize,
    volatile: bool,
    n: usize,
    rng: &mut impl rand::Rng,
    f: &mut impl FnMut(&Bytes, &Entry),
) -> usize {
    if len == 0 || n == 0 {
        return 0;
    }
    let start = rng.random_range(0..slots.len());
    let (mut taken, mut visited) = (0, 0);
    let budget = n.saturating_mul(16);
    for i in 0..slots.len() {
        let slot = &slots[(start + i) % slots.len()];
        if slot.is_empty() {
            continue;
        }
        let skip = if visited == 0 {
            rng.random_range(0..slot.len())
        } else {
            0
        };
        for (k, e) in slot.iter().skip(skip) {
            visited += 1;
            if !volatile || e.deadline != 0 {
                f(k, e);
                taken += 1;
                if taken >= n {
                    return taken;
                }
            }
            if visited >= budget {
                return taken;
            }
        }
    }
    taken
}

/// Keys with a deadline, from the deadline index: at random deadlines
/// between the first and the last, a few steps into the keys there (keys
/// set together often share a deadline).
fn from_deadlines(
    slots: &[HashMap<Bytes, Entry>],
    deadlines: &BTreeSet<(u64, Bytes)>,
    n: usize,
    rng: &mut impl rand::Rng,
    f: &mut impl FnMut(&Bytes, &Entry),
) {
    let (Some(&(lo, _)), Some(&(hi, _))) = (deadlines.first(), deadlines.last()) else {
        return;
    };
    for _ in 0..n {
        let from = (rng.random_range(lo..=hi), Bytes::new());
        let step = rng.random_range(0..8);
        let found = deadlines
            .range(from.clone()..)
            .nth(step)
            .or_else(|| deadlines.range(from..).next());
        if let Some((_, k)) = found
            && let Some(e) = slots[usize::from(key_slot(k))].get(k)
        {
            f(k, e);
        }
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

    fn s(v: &str) -> Value {
        Value::Str(Bytes::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn memory_accounting_returns_to_the_empty_tables_then_to_zero() {
        let (mut db, _) = db();
        for i in 0..100 {
            db.set(
                Bytes::from(format!("k{i}")),
                Value::Str(Bytes::from(vec![0u8; i])),
                Some(2_000_000),
            );
        }
        let values: usize = (0..100).map(alloc_size).sum();
        assert!(db.used_bytes() > values + 100 * (BUCKET + DEADLINE_COST));
        db.replace_value(b"k5", s("longer value than before"));
        db.set_deadline(b"k6", None);
        db.set_deadline(b"k7", Some(3_000_000));
        for i in 1..100 {
            db.remove(format!("k{i}").as_bytes());
        }
        // What remains: one entry and the one table left holding it.
        let tables: usize = db.slots.iter().map(|t| table_bytes(t.capacity())).sum();
        assert_eq!(tables, table_bytes(3));
        assert_eq!(db.used_bytes(), tables + alloc_size(2) + DEADLINE_COST);
        db.remove(b"k0");
        assert_eq!(db.used_bytes(), 0, "emptied tables are freed");
        assert!(db.slots.iter().all(|t| t.capacity() == 0));
        assert_eq!(db.keys_with_deadline(), 0);
        db.set(Bytes::from("k"), s("v"), None);
        db.flush();
        assert_eq!(db.used_bytes(), 0);
    }

    #[test]
    fn access_data_costs_no_space() {
        // The deadline's `u64` and the access `u32` fit in the 16 bytes an
        // `Option<u64>` deadline alone used to take.
        assert!(std::mem::size_of::<Entry>() <= std::mem::size_of::<Value>() + 16);
    }

    #[test]
    fn allocations_round_up_to_size_classes() {
        let cases = [
            (0, 0),
            (1, 16),
            (16, 16),
            (17, 32),
            (100, 112),
            (128, 128),
            (129, 160),
            (160, 160),
            (161, 192),
            (257, 320),
            (1000, 1024),
            (1025, 1280),
            (5000, 5120),
            (1 << 20, 1 << 20),
            ((1 << 20) + 1, (1 << 20) + (1 << 18)),
        ];
        for (n, size) in cases {
            assert_eq!(alloc_size(n), size, "{n}");
        }
        for n in 1..100_000 {
            let a = alloc_size(n);
            // Never less than asked, never more than a quarter over (past 16).
            assert!(a >= n && (n < 16 || a <= n + n / 4 + 16), "{n} -> {a}");
        }
    }

    #[test]
    fn table_accounting_follows_the_table_capacity() {
        let mut t: HashMap<Bytes, Entry> = HashMap::new();
        assert_eq!(table_bytes(t.capacity()), 0);
        let mut last = 0;
        for i in 0..5000 {
            t.insert(
                Bytes::from(format!("k{i}")),
                Entry {
                    value: s(""),
                    deadline: 0,
                    access: 0,
                },
            );
            let cap = t.capacity();
            let bytes = table_bytes(cap);
            assert!(bytes >= cap * BUCKET, "{cap}");
            // Buckets: a power of two, 7/8 of them usable (all but one when
            // small), so never more than 16/7 of the keys just after growing.
            let buckets = table_buckets(cap);
            assert!(buckets.is_power_of_two(), "{cap}");
            assert_eq!(
                cap,
                if buckets < 8 {
                    buckets - 1
                } else {
                    buckets / 8 * 7
                }
            );
            assert!(buckets <= t.len() * 16 / 7 + 16, "{cap}");
            assert!(bytes >= last);
            last = bytes;
        }
    }

    #[test]
    fn tables_shrink_when_mostly_empty() {
        let (mut db, _) = db();
        let keys: Vec<Bytes> = (0..2000)
            .map(|i| Bytes::from(format!("{{t}}{i}")))
            .collect();
        for k in &keys {
            db.set(k.clone(), s("v"), None);
        }
        let slot = usize::from(key_slot(b"t"));
        let full = db.slots[slot].capacity();
        for k in &keys[10..] {
            db.remove(k);
        }
        assert!(db.slots[slot].capacity() * 8 < full, "shrunk");
        let tables: usize = db.slots.iter().map(|t| table_bytes(t.capacity())).sum();
        let entries: usize = 10 * (alloc_size(5) + alloc_size(1));
        assert_eq!(db.used_bytes(), tables + entries);
    }

    #[test]
    fn stored_strings_do_not_pin_their_request() {
        let (mut db, _) = db();
        let frame = Bytes::from(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n".to_vec());
        let (key, value) = (frame.slice(17..18), frame.slice(24..29));
        assert_eq!((&key[..], &value[..]), (&b"k"[..], &b"value"[..]));
        db.set(key.clone(), Value::Str(value.clone()), None);
        let Some(Entry {
            value: Value::Str(stored),
            ..
        }) = db.peek(b"k")
        else {
            panic!("stored");
        };
        assert!(stored.is_unique(), "a copy of its own");
        assert!(!value.is_unique());
        // A large value fills its buffer: kept as it came.
        let big = Bytes::from(vec![b'x'; COPY_MAX + 1]);
        db.set(Bytes::from("big"), Value::Str(big.clone()), None);
        let Some(Entry {
            value: Value::Str(stored),
            ..
        }) = db.peek(b"big")
        else {
            panic!("stored");
        };
        assert_eq!(stored.as_ptr(), big.as_ptr());
    }

    fn lru_db(policy: evict::Policy) -> (Db, Clock) {
        let clock = Clock::manual(1_700_000_000_000);
        let db = Db::new(clock.clone()).with_eviction(Settings {
            policy,
            // Sample everything: the tests check the policy, not the luck.
            samples: evict::MAX_SAMPLES,
            ..Settings::default()
        });
        (db, clock)
    }

    fn live(db: &mut Db, keys: &[&str]) -> Vec<bool> {
        keys.iter()
            .map(|k| db.peek(k.as_bytes()).is_some())
            .collect()
    }

    #[test]
    fn lru_evicts_the_idlest_key_and_reads_count_as_use() {
        let (mut db, clock) = lru_db(evict::Policy::AllKeysLru);
        for k in ["a", "b", "c"] {
            db.set(Bytes::from(k), s("v"), None);
            clock.advance(1000);
        }
        assert!(db.get(b"a").is_some(), "a is now the most recent");
        let idle = |db: &mut Db, k: &str| {
            let now = db.now_ms();
            evict::lru_idle_ms(db.peek(k.as_bytes()).unwrap().access(), now)
        };
        clock.advance(1000);
        assert_eq!(idle(&mut db, "b"), 3000);
        assert_eq!(idle(&mut db, "a"), 1000);
        assert!(db.evict_one());
        assert_eq!(live(&mut db, &["a", "b", "c"]), [true, false, true]);
        assert!(db.evict_one());
        assert_eq!(live(&mut db, &["a", "b", "c"]), [true, false, false]);
        assert_eq!(db.stats.evicted, 2);
        // A NO-TOUCH client's reads leave no trace; TOUCH always does.
        db.set(Bytes::from("d"), s("v"), None);
        clock.advance(1000);
        db.set_touching(false);
        assert!(db.get(b"a").is_some());
        assert!(db.read::<Hash, _>(b"d", |_| ()).is_err());
        assert_eq!(idle(&mut db, "a"), 2000);
        assert_eq!(idle(&mut db, "d"), 1000);
        assert!(db.touch(b"d"));
        assert!(!db.touch(b"nope"));
        assert_eq!(idle(&mut db, "d"), 0);
        db.set_touching(true);
        assert!(db.evict_one());
        assert_eq!(live(&mut db, &["a", "d"]), [false, true]);
        assert!(db.evict_one());
        assert!(!db.evict_one(), "nothing left");
        assert!(db.is_empty());
    }

    #[test]
    fn lfu_evicts_the_least_used_key_and_overwrites_keep_the_count() {
        let (mut db, clock) = lru_db(evict::Policy::AllKeysLfu);
        for k in ["hot", "warm", "cold"] {
            db.set(Bytes::from(k), s("v"), None);
        }
        for _ in 0..50 {
            db.get(b"hot");
        }
        db.get(b"warm");
        let freq = |db: &mut Db, k: &str| {
            let now = db.now_ms();
            evict::lfu_count(db.peek(k.as_bytes()).unwrap().access(), now, 1)
        };
        assert_eq!(freq(&mut db, "cold"), evict::LFU_INIT);
        assert_eq!(freq(&mut db, "warm"), evict::LFU_INIT + 1);
        let hot = freq(&mut db, "hot");
        assert!(hot > evict::LFU_INIT + 1, "{hot}");
        // An overwrite keeps the counter (and counts as a use).
        db.set(Bytes::from("hot"), s("new value"), None);
        assert!(freq(&mut db, "hot") >= hot);
        // Renaming keeps the access data too.
        assert!(db.rename(b"hot", Bytes::from("hot2")));
        assert!(freq(&mut db, "hot2") >= hot);
        assert!(db.evict_one());
        assert_eq!(
            live(&mut db, &["hot2", "warm", "cold"]),
            [true, true, false]
        );
        // Decay: a minute later every counter is one lower.
        clock.advance(60_000);
        assert_eq!(freq(&mut db, "warm"), evict::LFU_INIT);
        assert!(db.evict_one());
        assert_eq!(live(&mut db, &["hot2", "warm"]), [true, false]);
    }

    #[test]
    fn volatile_policies_only_take_keys_with_a_deadline() {
        for policy in [
            evict::Policy::VolatileLru,
            evict::Policy::VolatileLfu,
            evict::Policy::VolatileRandom,
            evict::Policy::VolatileTtl,
        ] {
            let (mut db, clock) = lru_db(policy);
            let at = db.now_ms() + 60_000;
            db.set(Bytes::from("persistent"), s("v"), None);
            db.set(Bytes::from("ttl1"), s("v"), Some(at + 2));
            db.set(Bytes::from("ttl2"), s("v"), Some(at + 1));
            clock.advance(1000);
            assert!(db.evict_one(), "{policy:?}");
            assert!(db.evict_one(), "{policy:?}");
            assert!(!db.evict_one(), "{policy:?}: only persistent keys left");
            assert_eq!(live(&mut db, &["persistent"]), [true]);
            assert_eq!(db.stats.evicted, 2);
        }
    }

    #[test]
    fn volatile_ttl_takes_the_soonest_deadline() {
        let (mut db, _) = lru_db(evict::Policy::VolatileTtl);
        let now = db.now_ms();
        for (k, ttl) in [("c", 300), ("a", 100), ("d", 400), ("b", 200)] {
            db.set(Bytes::from(k), s("v"), Some(now + ttl));
        }
        let mut order = vec![];
        while db.evict_one() {
            let left: Vec<&str> = ["a", "b", "c", "d"]
                .into_iter()
                .filter(|k| db.peek(k.as_bytes()).is_some())
                .collect();
            order.push(left.len());
            assert_eq!(left, ["a", "b", "c", "d"][4 - left.len()..]);
        }
        assert_eq!(order, [3, 2, 1, 0]);
    }

    #[test]
    fn volatile_first_takes_deadlines_then_the_least_recently_used() {
        let (mut db, clock) = lru_db(evict::Policy::VolatileFirst);
        let now = db.now_ms();
        db.set(Bytes::from("old"), s("v"), None);
        clock.advance(1000);
        db.set(Bytes::from("new"), s("v"), None);
        db.set(Bytes::from("late"), s("v"), Some(now + 90_000));
        db.set(Bytes::from("soon"), s("v"), Some(now + 50_000));
        assert!(db.evict_one());
        assert_eq!(live(&mut db, &["soon", "late"]), [false, true]);
        assert!(db.evict_one());
        assert_eq!(live(&mut db, &["late", "old", "new"]), [false, true, true]);
        // No deadlines left: least recently used first.
        assert!(db.evict_one());
        assert_eq!(live(&mut db, &["old", "new"]), [false, true]);
    }

    #[test]
    fn noeviction_and_random_policies() {
        let (mut db, _) = lru_db(evict::Policy::NoEviction);
        db.set(Bytes::from("k"), s("v"), None);
        assert!(!db.evict_one());
        db.set_eviction(Settings {
            policy: evict::Policy::AllKeysRandom,
            ..db.eviction()
        });
        for i in 0..100 {
            db.set(Bytes::from(format!("k{i}")), s("v"), None);
        }
        let mut n = 0;
        while db.evict_one() {
            n += 1;
        }
        assert_eq!(n, 101);
        assert!(db.is_empty());
        assert_eq!(db.stats.evicted, 101);
    }

    #[test]
    fn sampling_a_few_volatile_keys_among_many_finds_them() {
        let (mut db, _) = lru_db(evict::Policy::VolatileRandom);
        let now = db.now_ms();
        for i in 0..1000 {
            db.set(Bytes::from(format!("p{i}")), s("v"), None);
        }
        for i in 0..10 {
            // All ten share one deadline, as keys set together do.
            db.set(Bytes::from(format!("t{i}")), s("v"), Some(now + 1000));
        }
        for _ in 0..10 {
            assert!(db.evict_one());
        }
        assert_eq!(db.keys_with_deadline(), 0);
        assert_eq!(db.len(), 1000);
        assert!(!db.evict_one());
    }

    #[test]
    fn volatile_sampling_finds_every_key_with_a_deadline() {
        // Random eviction by walks leaves runs of persistent keys behind;
        // the sampler must still find the last volatile keys, every time.
        for policy in [evict::Policy::VolatileRandom, evict::Policy::VolatileLru] {
            for _ in 0..5 {
                let (mut db, _) = lru_db(policy);
                db.set_eviction(Settings {
                    samples: 5,
                    ..db.eviction()
                });
                let now = db.now_ms();
                for i in 0..570 {
                    db.set(Bytes::from(format!("p{i}")), s("v"), None);
                }
                for i in 0..1790 {
                    db.set(Bytes::from(format!("t{i}")), s("v"), Some(now + 3_600_000));
                }
                let mut n = 0;
                while db.evict_one() {
                    n += 1;
                }
                assert_eq!((n, db.len()), (1790, 570), "{policy:?}");
            }
        }
    }

    #[test]
    fn used_memory_is_the_keyspace_accounting_without_jemalloc() {
        let (mut db, _) = db();
        db.set(Bytes::from("k"), s("v"), None);
        assert_eq!(db.used_memory(), db.used_bytes() as u64);
        let report = db.memory_report();
        assert_eq!(report.used, db.used_bytes() as u64);
        assert_eq!(report.dataset, report.used);
        assert_eq!(report.peak, report.used);
        assert_eq!(report.allocator_name, "libc");
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
