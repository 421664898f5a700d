//! The keyspace: values organised per hash slot, with expiry.
//!
//! Keys live in one hash table per slot, so that counting, listing and
//! dropping a slot's keys (what `CLUSTER COUNTKEYSINSLOT` and slot migration
//! need) never scans the whole keyspace, and so that no table is ever large:
//! with 16384 of them a table that grows rehashes 1/16384 of the keys, a
//! pause measured in microseconds even at tens of millions of keys. A table
//! holds one pointer per key, to a [`Record`] that keeps the key, its value
//! (inline when it is a short string), its deadline and its access data in
//! one allocation. Keys with a deadline are also indexed by deadline, so
//! active expiry removes exactly the keys that are due instead of sampling.
//!
//! Memory accounting ([`Db::used_bytes`]) follows what the allocator really
//! holds, in O(1) per change: each slot's table by its capacity, each record
//! by its allocator size class and its payload, each deadline's share of
//! the deadline index.
//!
//! Eviction ([`Db::evict_one`]) takes its victims as [`crate::evict`] decides;
//! each record carries the LRU clock or LFU counter it is ranked by.

// A record packs a key and its value into one allocation, which safe Rust
// cannot express without a second allocation or a fat pointer per key; the
// unsafe code is confined to that module and tested shape by shape.
mod capture;
mod follow;
#[allow(unsafe_code)]
mod record;
mod room;
mod sample;
pub mod traffic;
mod value;
pub mod wire;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
use tidecache_topology::{SLOT_COUNT, SlotSet, key_slot};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::evict::{self, Pool, Settings, Source};
use crate::memory::{self, Meter};
use capture::Captures;
pub use capture::{CaptureId, Sink, Step};
use follow::Followers;
pub use follow::{Changes, FollowId, Signal};
pub use record::INLINE_MAX;
use record::Record;
pub use room::{OOM, Room, make_room};
use sample::{SlotCounts, sample};
pub use value::{Collection, StrRef, Value, ValueRef, WRONGTYPE, alloc_size};

pub use crate::types::{COPY_MAX, own};

/// A live key's stored data, borrowed from the keyspace.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub value: ValueRef<'a>,
    /// Unix ms after which the key no longer exists, 0 for none.
    deadline: u64,
    access: u32,
}

impl<'a> Entry<'a> {
    fn of(record: &'a Record) -> Self {
        Entry {
            value: record.value(),
            deadline: record.deadline(),
            access: record.access(),
        }
    }

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

/// One bucket of a slot's table: a record pointer and a control byte.
const BUCKET: usize = std::mem::size_of::<Record>() + 1;

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
/// B-tree nodes about 60% full, and the key's copy the index holds.
const DEADLINE_COST: usize = 96;

/// What a record costs beyond its bucket, deadline index included.
fn charge(record: &Record) -> usize {
    let index = if record.deadline() == 0 {
        0
    } else {
        DEADLINE_COST
    };
    record.bytes() + index
}

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

/// The per-slot tables, the hasher they share and their key counts.
struct Tables {
    slots: Vec<HashTable<Record>>,
    /// Each table's length, summed for uniform sampling (see [`sample`]).
    counts: SlotCounts,
    /// Consistent copies in progress: each sees a slot before it changes.
    captures: Captures,
    /// foldhash with a per-process random seed: clients choose the keys, so
    /// the hash must not be predictable.
    hasher: DefaultHashBuilder,
}

/// Where a key lives: its slot and its hash, computed once per operation
/// (both hash the key: CRC16 for the slot, foldhash for the table).
#[derive(Clone, Copy)]
struct At {
    slot: usize,
    hash: u64,
}

impl Tables {
    fn new() -> Self {
        Tables {
            slots: (0..SLOT_COUNT).map(|_| HashTable::new()).collect(),
            counts: SlotCounts::new(),
            captures: Captures::default(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Called before the contents of `slot` change as a whole.
    fn before_write(&mut self, slot: usize) {
        if !self.captures.is_empty() {
            self.captures.before_write(slot, &self.slots[slot]);
        }
    }

    /// Called before `key` (at `at`) changes (not its access data).
    fn before_key_write(&mut self, at: At, key: &[u8]) {
        if !self.captures.is_empty() {
            let record = self.slots[at.slot].find(at.hash, |r| r.key() == key);
            self.captures.before_key_write(at.slot, key, record);
        }
    }

    fn at(&self, key: &[u8]) -> At {
        At {
            slot: slot_of(key),
            hash: self.hasher.hash_one(key),
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Record> {
        self.get_at(self.at(key), key)
    }

    fn get_at(&self, at: At, key: &[u8]) -> Option<&Record> {
        self.slots[at.slot].find(at.hash, |r| r.key() == key)
    }

    fn get_mut_at(&mut self, at: At, key: &[u8]) -> Option<&mut Record> {
        self.slots[at.slot].find_mut(at.hash, |r| r.key() == key)
    }

    /// Adds the record of a key known to be absent; `at` is its key's.
    fn insert_at(&mut self, at: At, record: Record) {
        self.before_key_write(at, record.key());
        let hasher = &self.hasher;
        self.slots[at.slot].insert_unique(at.hash, record, |r| hasher.hash_one(r.key()));
        self.counts.add(at.slot, 1);
    }

    fn remove_at(&mut self, at: At, key: &[u8]) -> Option<Record> {
        // Removing an absent key changes nothing a capture must see: the
        // hook runs only on a found entry, with the one lookup.
        let found = self.slots[at.slot]
            .find_entry(at.hash, |r| r.key() == key)
            .ok()?;
        if !self.captures.is_empty() {
            self.captures
                .before_key_write(at.slot, key, Some(found.get()));
        }
        let record = found.remove().0;
        self.counts.add(at.slot, -1);
        Some(record)
    }

    fn clear(&mut self) {
        for slot in 0..self.slots.len() {
            self.before_write(slot);
        }
        for slot in &mut self.slots {
            *slot = HashTable::new();
        }
        self.counts.clear();
    }

    /// Replaces the record of `key` by what `f` makes of it, in the same
    /// bucket; `None` when the key is absent.
    fn replace_at<R>(
        &mut self,
        at: At,
        key: &[u8],
        f: impl FnOnce(Record) -> (Record, R),
    ) -> Option<R> {
        self.before_key_write(at, key);
        let found = self.slots[at.slot].find_entry(at.hash, |r| r.key() == key);
        let (record, vacant) = found.ok()?.remove();
        let (record, result) = f(record);
        vacant.insert(record);
        Some(result)
    }
}

fn slot_of(key: &[u8]) -> usize {
    usize::from(key_slot(key))
}

pub struct Db {
    tables: Tables,
    interest: Interest,
    /// (deadline in ms, key) for every key that has a deadline.
    deadlines: BTreeSet<(u64, Bytes)>,
    len: usize,
    used_bytes: usize,
    /// `used_bytes` per slot (its records and its table): what `TIDECACHE
    /// SLOTSTATS` reports, and the rebalance planner balances.
    slot_bytes: Vec<usize>,
    /// Commands and their time per slot, recently: what `TIDECACHE
    /// SLOTSTATS LOAD` reports beside the bytes.
    pub traffic: traffic::Traffic,
    pub stats: Stats,
    clock: Clock,
    /// The time a batch of commands runs at (see [`Db::freeze_time`]).
    frozen_ms: Option<u64>,
    eviction: Settings,
    /// The best eviction candidates seen so far.
    pool: Pool,
    meter: Meter,
    /// Bytes the replication stream holds (see [`Db::used_memory`]).
    replication_buffers: u64,
    /// Whether lookups record an access (off for a `CLIENT NO-TOUCH` client).
    touching: bool,
    /// Who hears of every change in some slots (migrations).
    followers: Followers,
}

impl Db {
    pub fn new(clock: Clock) -> Self {
        Self {
            tables: Tables::new(),
            interest: Interest::default(),
            deadlines: BTreeSet::new(),
            len: 0,
            used_bytes: 0,
            slot_bytes: vec![0; usize::from(SLOT_COUNT)],
            traffic: traffic::Traffic::default(),
            stats: Stats::default(),
            clock,
            frozen_ms: None,
            eviction: Settings::default(),
            pool: Pool::default(),
            meter: Meter::default(),
            replication_buffers: 0,
            touching: true,
            followers: Followers::default(),
        }
    }

    /// The keyspace with the given eviction settings.
    pub fn with_eviction(mut self, settings: Settings) -> Self {
        self.set_eviction(settings);
        self
    }

    pub fn now_ms(&self) -> u64 {
        self.frozen_ms.unwrap_or_else(|| self.clock.now_ms())
    }

    /// Reads the clock once for the commands about to run (a pipelined
    /// batch, a transaction): each command otherwise reads it several
    /// times, and one instant for all of them is also what Redis gives a
    /// transaction. Until [`Db::thaw_time`], time stands still.
    pub fn freeze_time(&mut self) {
        self.frozen_ms = Some(self.clock.now_ms());
    }

    pub fn thaw_time(&mut self) {
        self.frozen_ms = None;
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

    /// The memory `maxmemory` limits: the allocator's count when the node
    /// runs on jemalloc, less the replication buffers (as Redis leaves them
    /// out: a replica falling behind must not make the primary evict its
    /// data), or the keyspace's accounting otherwise (see [`crate::memory`]).
    pub fn used_memory(&mut self) -> u64 {
        let now = self.now_ms();
        let used = self
            .meter
            .used(self.used_bytes as u64, now, memory::allocator_stats);
        used.saturating_sub(self.not_counted_for_evict())
    }

    /// Bytes the replication stream holds (its backlog and the full syncs'
    /// buffers): set by the stream whenever it works on the keyspace.
    pub fn set_replication_buffers(&mut self, bytes: u64) {
        self.replication_buffers = bytes;
    }

    /// Bytes the replication stream holds, as it last said.
    pub fn replication_buffers(&self) -> u64 {
        self.replication_buffers
    }

    /// What [`Db::used_memory`] leaves out of the allocator's count
    /// (`mem_not_counted_for_evict`); nothing when the count is the
    /// keyspace's own, which never included the buffers.
    pub fn not_counted_for_evict(&self) -> u64 {
        if self.meter.allocator().is_some() {
            self.replication_buffers
        } else {
            0
        }
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
        self.tables.slots[usize::from(slot)].len()
    }

    /// The bytes accounted to `slot`: its records and its table.
    pub fn bytes_in_slot(&self, slot: u16) -> usize {
        self.slot_bytes[usize::from(slot)]
    }

    pub fn keys_in_slot(&self, slot: u16, limit: usize) -> Vec<Bytes> {
        self.tables.slots[usize::from(slot)]
            .iter()
            .take(limit)
            .map(|r| Bytes::copy_from_slice(r.key()))
            .collect()
    }

    /// Accounts for a slot table whose capacity was `before` and may have
    /// changed.
    fn retable(&mut self, slot: usize, before: usize) {
        let after = self.tables.slots[slot].capacity();
        if after != before {
            self.used_bytes = self.used_bytes + table_bytes(after) - table_bytes(before);
            self.slot_bytes[slot] =
                self.slot_bytes[slot] + table_bytes(after) - table_bytes(before);
        }
    }

    /// The live entry of `key`, reclaiming it first if it has expired.
    pub fn get(&mut self, key: &[u8]) -> Option<Entry<'_>> {
        self.lookup(key, true)
    }

    /// Finds the live entry of `key`, recording the access unless the
    /// command runs for a `CLIENT NO-TOUCH` client, and counting a hit or a
    /// miss when `count`.
    fn lookup(&mut self, key: &[u8], count: bool) -> Option<Entry<'_>> {
        let at = self.tables.at(key);
        self.expire_if_due_at(at, key);
        let now = self.now_ms();
        let Some(record) = self.tables.get_mut_at(at, key) else {
            if count {
                self.stats.misses += 1;
            }
            return None;
        };
        if self.touching {
            record_access(record, &self.eviction, now);
        }
        if count {
            self.stats.hits += 1;
        }
        Some(Entry::of(record))
    }

    /// Sets what eviction knows of `key`'s use, as `RESTORE`'s `IDLETIME`
    /// and `FREQ` (and an RDB file's LRU/LFU data) do: the LFU counter
    /// under an LFU policy, the idle time under any other; the one the
    /// policy does not track is ignored, as in Redis.
    pub fn set_use(&mut self, key: &[u8], idle_secs: Option<u64>, freq: Option<u8>) {
        let now = self.now_ms();
        let settings = self.eviction;
        let access = if settings.policy.is_lfu() {
            freq.map(|f| evict::lfu_pack(evict::lfu_minutes(now), f))
        } else {
            idle_secs.map(|s| evict::lru_clock(now.saturating_sub(s.saturating_mul(1000))))
        };
        let at = self.tables.at(key);
        if let (Some(access), Some(record)) = (access, self.tables.get_mut_at(at, key)) {
            record.set_access(access);
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
    pub fn peek(&mut self, key: &[u8]) -> Option<Entry<'_>> {
        let at = self.tables.at(key);
        self.expire_if_due_at(at, key);
        self.tables.get_at(at, key).map(Entry::of)
    }

    /// Stores `value` under `key` with the given deadline, replacing any
    /// previous value and deadline.
    pub fn set(&mut self, key: Bytes, value: Value, expires_at: Option<u64>) {
        let now = self.now_ms();
        let at = self.tables.at(&key);
        // Under LFU an overwritten key keeps its counter, and the write
        // counts as an access (Redis's `dbSetValue`); otherwise it is new.
        let previous = self
            .take_at(at, &key)
            .and_then(|(old, live)| live.then(|| old.access()));
        let settings = self.eviction;
        let access = match previous {
            Some(a) if settings.policy.is_lfu() && self.touching => {
                evict::on_access(&settings, a, now, rand::random())
            }
            Some(a) if settings.policy.is_lfu() => a,
            _ => evict::fresh_access(&settings, now),
        };
        self.insert_at(
            at,
            Record::new(&key, value, deadline_of(expires_at), access),
        );
    }

    /// Adds the record of a key known to be absent.
    fn insert(&mut self, record: Record) {
        self.insert_at(self.tables.at(record.key()), record);
    }

    /// [`Db::insert`] where the key's place is known.
    fn insert_at(&mut self, at: At, record: Record) {
        let slot = at.slot;
        self.used_bytes += charge(&record);
        self.slot_bytes[slot] += charge(&record);
        if record.deadline() != 0 {
            let key = Bytes::copy_from_slice(record.key());
            self.deadlines.insert((record.deadline(), key));
        }
        self.touched(record.key());
        let before = self.tables.slots[slot].capacity();
        self.tables.insert_at(at, record);
        self.retable(slot, before);
        self.len += 1;
    }

    /// Replaces the record of an existing live key (reclaiming it first if
    /// it expired) by what `f` makes of it, recording the access unless the
    /// command runs for a `CLIENT NO-TOUCH` client, and keeping the memory
    /// accounting right (the deadline index is the caller's). The one path of
    /// every in-place change: the key's slot and hash are computed once.
    fn rewrite<R>(&mut self, key: &[u8], f: impl FnOnce(Record) -> (Record, R)) -> Option<R> {
        let at = self.tables.at(key);
        self.expire_if_due_at(at, key);
        let now = self.now_ms();
        let (settings, touching) = (self.eviction, self.touching);
        let mut delta = (0, 0);
        let result = self.tables.replace_at(at, key, |mut old| {
            if touching {
                record_access(&mut old, &settings, now);
            }
            delta.0 = charge(&old);
            let (new, result) = f(old);
            delta.1 = charge(&new);
            (new, result)
        })?;
        self.used_bytes = self.used_bytes - delta.0 + delta.1;
        self.slot_bytes[at.slot] = self.slot_bytes[at.slot] - delta.0 + delta.1;
        Some(result)
    }

    /// Replaces the value of an existing live key, keeping its deadline.
    /// Returns false when the key does not exist.
    pub fn replace_value(&mut self, key: &[u8], value: Value) -> bool {
        let replaced = self.rewrite(key, |record| {
            let deadline = record.deadline();
            (record.rebuilt(value, deadline), ())
        });
        if replaced.is_some() {
            self.touched(key);
        }
        replaced.is_some()
    }

    /// Runs `f` on the live value of `key`, keeping memory accounting right
    /// and deleting the key if `f` leaves an empty collection behind.
    pub fn update<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Value) -> R) -> Option<R> {
        let (result, emptied) = self.rewrite(key, |mut record| {
            // Collections change in place; strings are rebuilt, which for
            // a long one moves its buffer without copying it.
            if let Some(v) = record.collection_mut() {
                let result = f(v);
                let emptied = v.is_empty_collection();
                return (record, (result, emptied));
            }
            record.into_parts(|key, mut value, deadline, access| {
                let result = f(&mut value);
                let emptied = value.is_empty_collection();
                (Record::new(key, value, deadline, access), (result, emptied))
            })
        })?;
        if emptied {
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
            Some(e) => T::of(e.value).map(|c| Some(f(c))).ok_or(WRONGTYPE),
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
            Some(e) if T::of(e.value).is_none() => return Err(WRONGTYPE),
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

    /// Removes `key` and returns its record, and whether it was live (an
    /// expired one counts as expired).
    fn take(&mut self, key: &[u8]) -> Option<(Record, bool)> {
        self.take_at(self.tables.at(key), key)
    }

    /// [`Db::take`] where the key's place is known.
    fn take_at(&mut self, at: At, key: &[u8]) -> Option<(Record, bool)> {
        let record = self.tables.remove_at(at, key)?;
        let slot = at.slot;
        self.len -= 1;
        self.used_bytes -= charge(&record);
        self.slot_bytes[slot] -= charge(&record);
        self.shrink_if_sparse(slot);
        self.touched(key);
        let mut live = true;
        let at = record.deadline();
        if at != 0 {
            self.deadlines.remove(&(at, Bytes::copy_from_slice(key)));
            if at <= self.now_ms() {
                self.stats.expired += 1;
                live = false;
            }
        }
        Some((record, live))
    }

    /// Gives memory back from a slot table left empty or mostly empty
    /// (after deletions or evictions), as Redis shrinks its dicts below 1/8
    /// full. An empty table is freed: with 16384 of them, the smallest
    /// tables of slots that each held a key would add up to megabytes.
    fn shrink_if_sparse(&mut self, slot: usize) {
        let Tables { slots, hasher, .. } = &mut self.tables;
        let table = &mut slots[slot];
        let before = table.capacity();
        if (table.is_empty() && before > 0) || (before > 64 && table.len() * 8 < before) {
            table.shrink_to(table.len() * 2, |r| hasher.hash_one(r.key()));
            self.retable(slot, before);
        }
    }

    /// Sets or clears the deadline of an existing live key. Returns false
    /// when the key does not exist.
    pub fn set_deadline(&mut self, key: &[u8], expires_at: Option<u64>) -> bool {
        let new = deadline_of(expires_at);
        let Some(old) = self.rewrite(key, |record| {
            let old = record.deadline();
            (record.with_deadline(new), old)
        }) else {
            return false;
        };
        let k = Bytes::copy_from_slice(key);
        if old != 0 {
            self.deadlines.remove(&(old, k.clone()));
        }
        if new != 0 {
            self.deadlines.insert((new, k));
        }
        self.touched(key);
        true
    }

    fn expire_if_due(&mut self, key: &[u8]) {
        self.expire_if_due_at(self.tables.at(key), key);
    }

    fn expire_if_due_at(&mut self, at: At, key: &[u8]) {
        let now = self.now_ms();
        if self.tables.get_at(at, key).is_some_and(|r| !r.live_at(now)) {
            self.take_at(at, key);
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
        let Some((record, _)) = self.take(from) else {
            return false;
        };
        self.remove(&to);
        let moved = record
            .into_parts(|_, value, deadline, access| Record::new(&to, value, deadline, access));
        self.insert(moved);
        true
    }

    /// Every live key for which `keep` is true (KEYS). Walks the whole
    /// keyspace: Redis documents KEYS as O(N) and so is this.
    pub fn keys_where(&self, mut keep: impl FnMut(&[u8]) -> bool) -> Vec<Bytes> {
        let now = self.now_ms();
        self.tables
            .slots
            .iter()
            .flat_map(|slot| slot.iter())
            .filter(|r| r.live_at(now) && keep(r.key()))
            .map(|r| Bytes::copy_from_slice(r.key()))
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
        mut keep: impl FnMut(&[u8], ValueRef<'_>) -> bool,
    ) -> (u64, Vec<Bytes>) {
        let now = self.now_ms();
        let slots = &self.tables.slots;
        let mut slot = usize::try_from(cursor).unwrap_or(usize::MAX);
        let (mut visited, mut out) = (0, Vec::new());
        while slot < slots.len() && visited < count.max(1) {
            for r in &slots[slot] {
                visited += 1;
                if r.live_at(now) && keep(r.key(), r.value()) {
                    out.push(Bytes::copy_from_slice(r.key()));
                }
            }
            slot += 1;
        }
        let next = if slot >= slots.len() { 0 } else { slot as u64 };
        (next, out)
    }

    /// A random live key, every key equally likely.
    pub fn random_key(&mut self) -> Option<Bytes> {
        // Bounded retries: expired keys are reclaimed as they are met.
        for _ in 0..64 {
            let mut key = None;
            sample(&self.tables, &self.deadlines, self.len, false, 1, |r| {
                key = Some(Bytes::copy_from_slice(r.key()));
            });
            let key = key?;
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
            if self.tables.get(key).is_some() {
                interest.dirty.extend(ids.iter().copied());
            }
        }
        self.tables.clear();
        self.deadlines.clear();
        self.pool.clear();
        self.len = 0;
        self.used_bytes = 0;
        self.slot_bytes.fill(0);
        self.followers.cleared();
    }

    /// Deletes every key of `slot` (a slot migrated away, or stale keys in
    /// a slot about to be imported); returns how many went. Watchers and
    /// blocked clients hear of each, as of any deletion.
    pub fn drop_slot(&mut self, slot: u16) -> usize {
        let keys = self.keys_in_slot(slot, usize::MAX);
        for key in &keys {
            self.take(key);
        }
        keys.len()
    }

    /// The live value and deadline of `key`, without recording an access,
    /// counting a hit or reclaiming it (what a follower sends).
    pub fn state(&self, key: &[u8]) -> Option<(ValueRef<'_>, Option<u64>)> {
        let now = self.now_ms();
        let record = self.tables.get(key).filter(|r| r.live_at(now))?;
        let deadline = record.deadline();
        Some((record.value(), (deadline != 0).then_some(deadline)))
    }

    /// Wakes every client blocked on a key, to run its command again: the
    /// slots this node serves changed, and a blocked client whose key is no
    /// longer served here must get its `MOVED` rather than wait forever.
    pub fn wake_blocked(&mut self) {
        for (_, wakers) in self.interest.blocked.drain() {
            for w in wakers {
                w.notify_one();
            }
        }
    }

    /// Starts recording which keys of `slots` change (see [`follow`]).
    pub fn follow(&mut self, slots: SlotSet) -> FollowId {
        self.followers.start(slots, None)
    }

    /// [`Db::follow`], raising `signal` whenever the follower goes from
    /// nothing to tell to something (a replication stream's waiting
    /// replicas wake on it).
    pub fn follow_signalled(&mut self, slots: SlotSet, signal: Arc<Signal>) -> FollowId {
        self.followers.start(slots, Some(signal))
    }

    /// The keys of follower `id`'s slots that changed since it last asked.
    pub fn take_changes(&mut self, id: FollowId) -> Option<Changes> {
        self.followers.take(id)
    }

    pub fn unfollow(&mut self, id: FollowId) -> bool {
        self.followers.stop(id)
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
                sample(&self.tables, &self.deadlines, self.len, volatile, 1, |r| {
                    found = Some(Bytes::copy_from_slice(r.key()));
                });
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
                &self.tables,
                &self.deadlines,
                self.len,
                volatile,
                settings.samples,
                |r| pool.offer(evict::rank(&settings, r.access(), now), r.key()),
            );
            while let Some((ranked, key)) = self.pool.pop() {
                let Some(r) = self.tables.get(&key) else {
                    continue;
                };
                if volatile && r.deadline() == 0 {
                    continue;
                }
                // Used since it was ranked: it goes back at its new rank.
                let rank = evict::rank(&settings, r.access(), now);
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
        if !self.followers.is_empty() {
            self.followers.changed(key_slot(key), key);
        }
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

    /// Bytes accounted for `key` (MEMORY USAGE), or `None` when missing:
    /// its record, its bucket and its share of the deadline index.
    pub fn memory_usage(&mut self, key: &[u8]) -> Option<usize> {
        self.expire_if_due(key);
        self.tables.get(key).map(|r| charge(r) + BUCKET)
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

    /// Starts a consistent copy of `slots` as they are now, given to `sink`
    /// slot by slot as [`Db::capture_step`] walks them or as writes are
    /// about to change them (see [`capture`]).
    pub fn start_capture(
        &mut self,
        slots: impl IntoIterator<Item = u16>,
        sink: Box<dyn Sink>,
    ) -> CaptureId {
        let at = self.now_ms();
        self.tables.captures.start(slots, at, sink)
    }

    /// Copies whole slots of capture `id` until at least `budget` keys went
    /// to its sink; `None` for an unknown (finished or cancelled) capture.
    pub fn capture_step(&mut self, id: CaptureId, budget: usize) -> Option<Step> {
        let Tables {
            slots, captures, ..
        } = &mut self.tables;
        captures.step(id, slots, budget)
    }

    /// Stops capture `id`; its sink, with what it got so far.
    pub fn cancel_capture(&mut self, id: CaptureId) -> Option<Box<dyn Sink>> {
        self.tables.captures.cancel(id)
    }

    /// Captures in progress (INFO).
    pub fn captures(&self) -> usize {
        self.tables.captures.len()
    }

    /// Keys watched by some client (INFO `watching_clients` and friends).
    pub fn watched_keys(&self) -> usize {
        self.interest.watchers.len()
    }
}

/// Records an access to `record` at `now` under `settings`.
fn record_access(record: &mut Record, settings: &Settings, now: u64) {
    // Only the LFU counter needs a random draw.
    let r = if settings.policy.is_lfu() {
        rand::random()
    } else {
        0.0
    };
    record.set_access(evict::on_access(settings, record.access(), now, r));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Hash;
    use std::collections::BTreeMap;

    fn db() -> (Db, Clock) {
        let clock = Clock::manual(1_000_000);
        (Db::new(clock.clone()), clock)
    }

    #[test]
    fn followers_hear_of_every_change_in_their_slots_once() {
        let (mut db, clock) = db();
        let s = |v: &str| Value::Str(Bytes::from(v.to_owned()));
        let slot = key_slot(b"a");
        db.set(Bytes::from("{a}old"), s("1"), Some(clock.now_ms() + 10));
        db.set(Bytes::from("{a}kept"), s("1"), None);
        let id = db.follow(SlotSet::from_ranges(&[tidecache_topology::SlotRange::new(
            slot, slot,
        )
        .unwrap()]));
        assert_eq!(db.take_changes(id), Some(Changes::default()));
        // Writes, updates, deadlines, deletes, renames within the slot; a
        // write elsewhere is not heard of; reads are not changes.
        db.set(Bytes::from("{a}x"), s("1"), None);
        db.set(Bytes::from("{a}x"), s("2"), None);
        db.set(Bytes::from("elsewhere"), s("1"), None);
        db.write::<Hash, _>(&Bytes::from("{a}h"), |h| h.insert("f".into(), "v".into()))
            .unwrap();
        db.set_deadline(b"{a}kept", Some(clock.now_ms() + 1_000));
        assert!(db.get(b"{a}kept").is_some());
        db.remove(b"{a}x");
        assert!(db.rename(b"{a}h", Bytes::from("{a}h2")));
        let keys = |c: Changes| {
            c.keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(db.take_changes(id).unwrap()),
            ["{a}x", "{a}h", "{a}kept", "{a}h2"]
        );
        assert_eq!(db.state(b"{a}x").map(|_| ()), None);
        let (value, deadline) = db.state(b"{a}kept").unwrap();
        assert_eq!(
            (value.as_str().map(|v| v.to_vec()), deadline),
            (Some(b"1".to_vec()), Some(clock.now_ms() + 1_000))
        );
        // Expiry (active or on access) is a change; so is an eviction-like drop.
        clock.advance(20);
        assert_eq!(
            db.state(b"{a}old").map(|_| ()),
            None,
            "dead, though not reclaimed yet"
        );
        assert_eq!(db.expire_due(10), 1);
        assert_eq!(keys(db.take_changes(id).unwrap()), ["{a}old"]);
        assert_eq!(db.drop_slot(slot), 2);
        assert_eq!(db.count_in_slot(slot), 0);
        assert_eq!(keys(db.take_changes(id).unwrap()).len(), 2);
        // FLUSHALL: one mark replaces what came before it.
        db.set(Bytes::from("{a}y"), s("1"), None);
        db.flush();
        db.set(Bytes::from("{a}z"), s("1"), None);
        let c = db.take_changes(id).unwrap();
        assert!(c.cleared);
        assert_eq!(keys(c), ["{a}z"]);
        assert!(db.unfollow(id));
        assert_eq!(db.take_changes(id), None);
        db.set(Bytes::from("{a}w"), s("1"), None);
        assert_eq!(
            db.take_changes(id),
            None,
            "an ended follower records nothing"
        );
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

    fn table_total(db: &Db) -> usize {
        db.tables
            .slots
            .iter()
            .map(|t| table_bytes(t.capacity()))
            .sum()
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
        // What remains: one record (header, deadline, key "k0", no value)
        // and the one table left holding it.
        assert_eq!(table_total(&db), table_bytes(3));
        let record = alloc_size(8 + 8 + 2);
        assert_eq!(db.used_bytes(), table_bytes(3) + record + DEADLINE_COST);
        assert_eq!(
            db.memory_usage(b"k0"),
            Some(record + DEADLINE_COST + BUCKET)
        );
        db.remove(b"k0");
        assert_eq!(db.used_bytes(), 0, "emptied tables are freed");
        assert!(db.tables.slots.iter().all(|t| t.capacity() == 0));
        assert_eq!(db.keys_with_deadline(), 0);
        db.set(Bytes::from("k"), s("v"), None);
        db.flush();
        assert_eq!(db.used_bytes(), 0);
    }

    #[test]
    fn a_small_key_costs_one_record_and_a_pointer() {
        let (mut db, _) = db();
        db.set(Bytes::from(vec![b'k'; 16]), s("0123456789abcdef"), None);
        let table = table_total(&db);
        assert_eq!(db.used_bytes(), table + 48);
        // Longer than inline: the string gets a buffer of its own.
        db.set(
            Bytes::from(vec![b'k'; 16]),
            Value::Str(Bytes::from(vec![1; 300])),
            None,
        );
        assert_eq!(
            db.used_bytes(),
            table + alloc_size(8 + 32 + 16) + alloc_size(300)
        );
        assert_eq!(BUCKET, 9);
    }

    #[test]
    fn collections_change_in_place_and_strings_are_rebuilt() {
        let (mut db, _) = db();
        let key = Bytes::from("h");
        db.write::<Hash, _>(&key, |h| h.insert(Bytes::from("f"), Bytes::from("v")))
            .unwrap();
        let before = db.used_bytes();
        db.write::<Hash, _>(&key, |h| h.insert(Bytes::from("g"), Bytes::from("w")))
            .unwrap();
        assert!(db.used_bytes() > before);
        assert_eq!(db.read::<Hash, _>(b"h", |h| h.len()), Ok(Some(2)));
        db.write::<Hash, _>(&key, |h| {
            h.remove(b"f");
            h.remove(b"g");
        })
        .unwrap();
        assert!(db.peek(b"h").is_none(), "an emptied hash goes");
        db.set(Bytes::from("s"), s("abc"), Some(5_000_000));
        db.update(b"s", |v| {
            if let Value::Str(b) = v {
                *b = Bytes::from(vec![b'x'; 1000]);
            }
        });
        let e = db.peek(b"s").unwrap();
        assert_eq!(e.value.as_str().map(|s| s.len()), Some(1000));
        assert_eq!(e.expires_at(), Some(5_000_000));
        assert_eq!(
            db.used_bytes(),
            table_total(&db) + charge(db.tables.get(b"s").unwrap())
        );
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
        let mut t: HashTable<Record> = HashTable::new();
        let hasher = DefaultHashBuilder::default();
        assert_eq!(table_bytes(t.capacity()), 0);
        let mut last = 0;
        for i in 0..5000 {
            let record = Record::new(format!("k{i}").as_bytes(), s(""), 0, 0);
            let hash = hasher.hash_one(record.key());
            t.insert_unique(hash, record, |r| hasher.hash_one(r.key()));
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
        let full = db.tables.slots[slot].capacity();
        for k in &keys[10..] {
            db.remove(k);
        }
        assert!(db.tables.slots[slot].capacity() * 8 < full, "shrunk");
        // Ten records: header, a key of 4 or 5 bytes, a 1-byte value.
        assert_eq!(db.used_bytes(), table_total(&db) + 10 * 16);
    }

    #[test]
    fn stored_strings_do_not_pin_their_request() {
        let (mut db, _) = db();
        let long = vec![b'v'; INLINE_MAX + 1];
        let mut frame = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$256\r\n".to_vec();
        frame.extend_from_slice(&long);
        let frame = Bytes::from(frame);
        let (key, value) = (frame.slice(17..18), frame.slice(frame.len() - long.len()..));
        db.set(key.clone(), Value::Str(value.clone()), None);
        let Some(ValueRef::Str(StrRef::Shared(stored))) = db.peek(b"k").map(|e| e.value) else {
            panic!("a long string is a buffer of its own");
        };
        assert!(stored.is_unique(), "a copy of its own");
        assert!(!value.is_unique());
        // A large value fills its buffer: kept as it came.
        let big = Bytes::from(vec![b'x'; COPY_MAX + 1]);
        db.set(Bytes::from("big"), Value::Str(big.clone()), None);
        let Some(ValueRef::Str(StrRef::Shared(stored))) = db.peek(b"big").map(|e| e.value) else {
            panic!("stored");
        };
        assert_eq!(stored.as_ptr(), big.as_ptr());
    }

    #[test]
    fn sampling_draws_every_key_equally_often() {
        let (mut db, _) = db();
        // Fewer keys than slots, some slots crowded: where a walk from a
        // random slot would favour keys after empty runs.
        for i in 0..200 {
            db.set(Bytes::from(format!("k{i}")), s("v"), None);
            db.set(Bytes::from(format!("{{crowd}}{i}")), s("v"), None);
        }
        let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
        for _ in 0..400_000 {
            sample(&db.tables, &db.deadlines, db.len, false, 1, |r| {
                *seen.entry(r.key().to_vec()).or_default() += 1;
            });
        }
        // 1000 expected each; the binomial deviation is about 32.
        assert_eq!(seen.len(), 400);
        let (lo, hi) = (seen.values().min().unwrap(), seen.values().max().unwrap());
        assert!(*lo > 800 && *hi < 1200, "{lo}..{hi}");
    }

    #[test]
    fn lru_eviction_takes_every_old_key_eventually() {
        // The shape that once let old keys survive: a few thousand keys
        // spread thinly over the slots, many times that written through.
        let (mut db, clock) = lru_db(evict::Policy::AllKeysLru);
        db.set_eviction(Settings {
            samples: 5,
            ..db.eviction()
        });
        for i in 0..12_000 {
            clock.advance(4);
            db.set(Bytes::from(format!("k{i}")), s("v"), None);
            if db.len() > 3000 {
                assert!(db.evict_one());
            }
        }
        let old = (0..2000)
            .filter(|i| db.peek(format!("k{i}").as_bytes()).is_some())
            .count();
        assert_eq!(old, 0);
    }

    /// Collects what a capture gives, for comparison with the keyspace.
    #[derive(Clone, Default)]
    struct Collect(Arc<std::sync::Mutex<Contents>>);

    /// Key → (value, deadline).
    type Contents = BTreeMap<Vec<u8>, (Value, Option<u64>)>;

    impl Sink for Collect {
        fn entry(&mut self, slot: u16, key: &[u8], value: ValueRef<'_>, at: Option<u64>) {
            assert_eq!(slot, key_slot(key));
            let old = self
                .0
                .lock()
                .unwrap()
                .insert(key.to_vec(), (value.to_value(), at));
            assert!(old.is_none(), "{key:?} captured twice");
        }
    }

    fn contents(db: &mut Db) -> Contents {
        let now = db.now_ms();
        let keys = db.keys_where(|_| true);
        keys.into_iter()
            .filter_map(|k| {
                let e = db.peek(&k)?;
                let v = (e.value.to_value(), e.expires_at());
                (e.expires_at().is_none_or(|at| at > now)).then(|| (k.to_vec(), v))
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u8),
        SetTtl(u8, u64),
        Del(u8),
        Push(u8, u8),
        Rename(u8, u8),
        Advance(u64),
        Step(usize),
        Flush,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Set(k, v)),
            1 => (any::<u8>(), 1..50u64).prop_map(|(k, t)| Op::SetTtl(k, t)),
            2 => any::<u8>().prop_map(Op::Del),
            2 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Push(k, v)),
            1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Rename(a, b)),
            1 => (1..20u64).prop_map(Op::Advance),
            3 => (1..40usize).prop_map(Op::Step),
            1 => Just(Op::Flush),
        ]
    }

    fn key(k: u8) -> Bytes {
        // Two keys per tag share a slot, so writes meet captured and
        // uncaptured neighbours alike.
        Bytes::from(format!("{{t{}}}k{k}", k / 2))
    }

    fn apply(db: &mut Db, clock: &Clock, op: &Op, capture: Option<CaptureId>) -> bool {
        match *op {
            Op::Set(k, v) => db.set(key(k), s(&v.to_string()), None),
            Op::SetTtl(k, ttl) => {
                let at = db.now_ms() + ttl;
                db.set(key(k), s("t"), Some(at));
            }
            Op::Del(k) => {
                db.remove(&key(k));
            }
            Op::Push(k, v) => {
                let _ = db.write::<crate::types::List, _>(&key(k), |l| {
                    l.push(crate::types::End::Right, Bytes::from(vec![v]))
                });
            }
            Op::Rename(a, b) => {
                db.rename(&key(a), key(b));
            }
            Op::Advance(ms) => clock.advance(ms),
            Op::Step(n) => {
                if let Some(id) = capture {
                    return matches!(db.capture_step(id, n), Some(Step::Done(_)));
                }
            }
            Op::Flush => db.flush(),
        }
        false
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn a_capture_is_the_keyspace_as_it_was_when_it_started(
            before in proptest::collection::vec(op(), 0..80),
            during in proptest::collection::vec(op(), 0..200),
        ) {
            let (mut db, clock) = db();
            for op in &before {
                apply(&mut db, &clock, op, None);
            }
            let expected = contents(&mut db);
            let sink = Collect::default();
            let id = db.start_capture(0..SLOT_COUNT, Box::new(sink.clone()));
            let mut done = false;
            for op in &during {
                done = done || apply(&mut db, &clock, op, Some(id));
            }
            while !done {
                done = matches!(db.capture_step(id, 1000), Some(Step::Done(_)));
            }
            proptest::prop_assert_eq!(db.captures(), 0);
            proptest::prop_assert_eq!(&*sink.0.lock().unwrap(), &expected);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn each_slot_is_accounted_its_own_bytes(
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let (mut db, clock) = db();
            for op in &ops {
                apply(&mut db, &clock, op, None);
            }
            let mut total = 0;
            for (slot, table) in db.tables.slots.iter().enumerate() {
                let own: usize = table.iter().map(charge).sum::<usize>() + table_bytes(table.capacity());
                proptest::prop_assert_eq!(db.bytes_in_slot(slot as u16), own, "slot {}", slot);
                total += own;
            }
            proptest::prop_assert_eq!(total, db.used_bytes());
            db.flush();
            proptest::prop_assert!((0..SLOT_COUNT).all(|s| db.bytes_in_slot(s) == 0));
        }
    }

    #[test]
    fn captures_cover_only_their_slots_and_can_be_cancelled() {
        let (mut db, _) = db();
        for i in 0..50 {
            db.set(key(i), s("v"), None);
        }
        let wanted: Vec<u16> = (0..10).map(|i| key_slot(&key(i))).collect();
        let sink = Collect::default();
        let id = db.start_capture(wanted.iter().copied(), Box::new(sink.clone()));
        let other = db.start_capture(0..SLOT_COUNT, Box::new(Collect::default()));
        db.set(key(0), s("changed"), None);
        db.remove(&key(2));
        assert!(matches!(
            db.capture_step(id, usize::MAX),
            Some(Step::Done(_))
        ));
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(got.len(), 10);
        assert_eq!(
            got[&key(0).to_vec()].0,
            s("v"),
            "the value before the write"
        );
        assert!(
            got.contains_key(&key(2).to_vec()),
            "deleted after the start"
        );
        assert!(db.cancel_capture(other).is_some());
        assert_eq!(db.captures(), 0);
        assert!(db.capture_step(id, 1).is_none(), "finished");
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
        // The counter grows with probability 1/11 from 6: 500 reads make
        // it stay at 6 a chance in 10^20 (50 left it there one run in 100).
        for _ in 0..500 {
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
