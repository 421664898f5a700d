//! Fuzzes the keyspace (`cache_node::db::Db`) against a model: the input is
//! read as a sequence of operations, each run on a `Db` (manual clock, an
//! LRU eviction policy) and on a `BTreeMap` of key → (value, deadline,
//! LRU clock) that does the same thing the obvious way. The keyspace keeps
//! every key in a hand-laid-out allocation (`db/record.rs`, the crate's
//! only unsafe code), so this target runs under the address sanitizer.
//!
//! Shapes are chosen to cross the record's layout boundaries: strings of
//! 0, 1, 254, 255, 256 and 1000 bytes (`INLINE_MAX` is 255: inline up to
//! it, a buffer of their own past it), appends that move a string across
//! that line, lists (boxed values), deadlines set, changed and cleared
//! (a record with and without its deadline word), keys of 0..=40 bytes
//! and, rarely, of 65534..=65540 (a key of 65535 bytes or more stores its
//! length in a word of its own). Operations: `set`, `replace_value`,
//! `update` (append to a string), `write::<List>` (push, pop to empty),
//! `set_deadline`, `rename`, `remove`, `get`, `touch`, `peek`, moving the
//! clock, `expire_due`, `flush`, `evict_one`, `random_key`, and captures
//! (`start_capture`, `capture_step`, `cancel_capture`) recorded by a sink.
//!
//! Checks, after every operation: `peek` of each key it touched gives the
//! model's value, deadline and LRU clock (and a string is inline exactly
//! when it is at most `INLINE_MAX` bytes); `len()` counts the model's keys,
//! expired ones not reclaimed yet included; every slot holding a model key
//! lists exactly the model's keys there; the deadline count, the
//! hit/miss/expired/evicted statistics and the number of captures agree;
//! an empty keyspace accounts for 0 bytes. `evict_one` evicts iff the
//! policy has a candidate, exactly one key goes, and under `volatile-lru`
//! it had a deadline. A capture, once done, holds exactly the model's live
//! keys of its slots as they were when it started, each slot reported done
//! once and no entry after its slot was done; a cancelled one holds only
//! such entries. At the end, `keys_where` lists the model's live keys,
//! every key compares, and removing them all leaves 0 keys and 0 bytes
//! accounted.
//!
//! `KEYSPACE_TRACE=1` prints each operation (to read a crash input).
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use cache_node::clock::Clock;
use cache_node::db::{CaptureId, Db, INLINE_MAX, Sink, Step, StrRef, Value, ValueRef};
use cache_node::evict::{self, Policy, Settings};
use cache_node::types::{End, List};
use libfuzzer_sys::fuzz_target;
use tidecache_topology::{SLOT_COUNT, key_slot};

#[global_allocator]
static ALLOCATOR: cache_node_fuzz::Limited = cache_node_fuzz::Limited;

const START_MS: u64 = 1_700_000_000_000;
/// Most operations in one input.
const MAX_OPS: usize = 256;
/// Distinct long keys (64 KiB each) per input: enough to meet each other
/// and short keys, few enough to keep runs fast.
const LONG_KEYS: usize = 3;
const VALUE_LENS: [usize; 6] = [0, 1, INLINE_MAX - 1, INLINE_MAX, INLINE_MAX + 1, 1000];
const APPEND_LENS: [usize; 6] = [0, 1, 2, 100, INLINE_MAX, INLINE_MAX + 1];
/// Appends stop growing a string past this length.
const APPEND_UP_TO: usize = 4096;
const ADVANCES: [u64; 10] = [0, 1, 2, 3, 4, 5, 100, 1000, 60_000, 3_600_000];
const BUDGETS: [usize; 6] = [0, 1, 2, 3, 16, usize::MAX];
/// Captures open at once, at most.
const MAX_CAPTURES: usize = 3;

fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("KEYSPACE_TRACE").is_some())
}

// ---------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, PartialEq)]
enum MVal {
    Str(Vec<u8>),
    List(VecDeque<Vec<u8>>),
}

impl MVal {
    fn to_value(&self) -> Value {
        match self {
            MVal::Str(s) => Value::Str(Bytes::copy_from_slice(s)),
            MVal::List(items) => {
                let mut l = List::default();
                for i in items {
                    l.push(End::Right, Bytes::copy_from_slice(i));
                }
                Value::List(l)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct MEntry {
    value: MVal,
    /// As stored: a deadline of 0 is kept as 1.
    deadline: Option<u64>,
    /// The LRU clock of the last access (`evict::lru_clock`).
    access: u32,
    /// The key's slot, computed once (CRC16 over a 64 KiB key, at every
    /// check, would cost more than the rest of the run).
    slot: u16,
}

/// What a capture holds: key → (value, deadline).
type Contents = BTreeMap<Vec<u8>, (MVal, Option<u64>)>;

struct Model {
    /// Every key the keyspace holds, expired ones not reclaimed yet too.
    map: BTreeMap<Vec<u8>, MEntry>,
    now: u64,
    expired: u64,
    evicted: u64,
    hits: u64,
    misses: u64,
}

impl Model {
    fn live(&self, e: &MEntry) -> bool {
        e.deadline.is_none_or(|d| d > self.now)
    }

    fn clock(&self) -> u32 {
        evict::lru_clock(self.now)
    }

    /// Removes `key`; whether it was live (an expired one counts as expired).
    fn take(&mut self, key: &[u8]) -> Option<(MEntry, bool)> {
        let e = self.map.remove(key)?;
        let live = self.live(&e);
        if !live {
            self.expired += 1;
        }
        Some((e, live))
    }

    /// Lazy expiry, as every keyed operation but `remove` starts with.
    fn reclaim(&mut self, key: &[u8]) {
        if self.map.get(key).is_some_and(|e| !self.live(e)) {
            self.take(key);
        }
    }

    fn peek(&mut self, key: &[u8]) -> Option<&MEntry> {
        self.reclaim(key);
        self.map.get(key)
    }

    /// The live entry of `key`, its access recorded.
    fn used(&mut self, key: &[u8]) -> Option<&mut MEntry> {
        self.reclaim(key);
        let clock = self.clock();
        let e = self.map.get_mut(key)?;
        e.access = clock;
        Some(e)
    }

    fn set(&mut self, key: &[u8], value: MVal, deadline: Option<u64>) {
        self.take(key);
        let e = MEntry {
            value,
            deadline: deadline.map(|d| d.max(1)),
            access: self.clock(),
            slot: key_slot(key),
        };
        self.map.insert(key.to_vec(), e);
    }

    /// `write::<List>`: `Err` for another type, a new list when missing,
    /// and a list left empty goes.
    fn write_list<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&mut VecDeque<Vec<u8>>) -> R,
    ) -> Result<R, ()> {
        match self.peek(key) {
            Some(MEntry {
                value: MVal::Str(_),
                ..
            }) => return Err(()),
            Some(_) => {}
            None => self.set(key, MVal::List(VecDeque::new()), None),
        }
        let e = self.used(key).expect("just made");
        let MVal::List(items) = &mut e.value else {
            unreachable!("a list")
        };
        let r = f(items);
        if items.is_empty() {
            self.map.remove(key);
        }
        Ok(r)
    }

    fn live_contents(&self, slots: &Range<u16>) -> Contents {
        self.map
            .iter()
            .filter(|(_, e)| self.live(e) && slots.contains(&e.slot))
            .map(|(k, e)| (k.clone(), (e.value.clone(), e.deadline)))
            .collect()
    }

    fn live_keys(&self) -> BTreeSet<Vec<u8>> {
        self.map
            .iter()
            .filter(|(_, e)| self.live(e))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Reading the input.

#[derive(Debug)]
enum Op {
    Set(Vec<u8>, MVal, Option<u64>),
    Replace(Vec<u8>, MVal),
    Append(Vec<u8>, Vec<u8>),
    Push(Vec<u8>, End, Vec<u8>),
    Pop(Vec<u8>, End),
    SetDeadline(Vec<u8>, Option<u64>),
    Rename(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Get(Vec<u8>),
    Touch(Vec<u8>),
    Peek(Vec<u8>),
    Advance(u64),
    ExpireDue(usize),
    Flush,
    Evict,
    RandomKey,
    StartCapture(Range<u16>),
    CaptureStep(usize, usize),
    Cancel(usize),
}

struct Gen<'a> {
    data: &'a [u8],
    /// The long keys named so far, as (length, fill byte).
    long: Vec<(usize, u8)>,
}

/// Bytes `seed, seed + 1, …`: values that differ along their length, so a
/// misplaced append or a shifted copy shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

impl Gen<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        Some(from[usize::from(self.byte()?) % from.len()])
    }

    /// A key the model holds (half the time, when it holds any) or a new
    /// one: 0..=40 bytes, some of them sharing the slot of hash tag `t`,
    /// or rarely one of 65534..=65540 bytes.
    fn key(&mut self, model: &Model) -> Option<Vec<u8>> {
        let b = self.byte()?;
        if b & 0x80 != 0 && !model.map.is_empty() {
            let i = usize::from(b & 0x7f) % model.map.len();
            return model.map.keys().nth(i).cloned();
        }
        let c = self.byte()?;
        let variant = b & 3;
        let long = (
            usize::from(u16::MAX) - 1 + usize::from(c % 7),
            b'L' + (c >> 7),
        );
        let known = self.long.contains(&long);
        let ((len, fill), tagged) = if b & 0x7f == 0x7f && (known || self.long.len() < LONG_KEYS) {
            if !known {
                self.long.push(long);
            }
            (long, long.1 == b'M')
        } else {
            ((usize::from(c) % 41, b'a' + variant), variant >= 2)
        };
        let mut key = vec![fill; len];
        if tagged && len >= 3 {
            key[..3].copy_from_slice(b"{t}");
        }
        Some(key)
    }

    fn item(&mut self) -> Option<Vec<u8>> {
        let b = self.byte()?;
        Some(pattern(
            VALUE_LENS[usize::from(b) % VALUE_LENS.len()],
            b / 6,
        ))
    }

    /// Mostly a string; sometimes a list of 1..=3 elements.
    fn value(&mut self) -> Option<MVal> {
        let b = self.byte()?;
        if b >= 0xf0 {
            let mut items = VecDeque::new();
            for _ in 0..=b % 3 {
                items.push_back(self.item()?);
            }
            return Some(MVal::List(items));
        }
        Some(MVal::Str(pattern(
            VALUE_LENS[usize::from(b) % VALUE_LENS.len()],
            b / 6,
        )))
    }

    fn deadline(&mut self, now: u64) -> Option<Option<u64>> {
        Some(match self.byte()? % 12 {
            0..=3 => None,
            // Stored as 1: long past.
            4 => Some(0),
            5 => Some(now - 1),
            // Due at once: a key exists while its deadline is in the future.
            6 => Some(now),
            7 => Some(now + 1),
            8 => Some(now + 5),
            9 => Some(now + 1000),
            10 => Some(now + 3_600_000),
            _ => Some(u64::MAX),
        })
    }

    fn end(&mut self) -> Option<End> {
        Some(if self.byte()? & 1 == 0 {
            End::Left
        } else {
            End::Right
        })
    }

    fn op(&mut self, model: &Model) -> Option<Op> {
        let sel = self.byte()? % 64;
        Some(match sel {
            0..=11 => Op::Set(self.key(model)?, self.value()?, self.deadline(model.now)?),
            12..=15 => Op::Replace(self.key(model)?, self.value()?),
            16..=19 => {
                let key = self.key(model)?;
                let b = self.byte()?;
                Op::Append(key, pattern(APPEND_LENS[usize::from(b) % 6], b / 6))
            }
            20..=23 => Op::Push(self.key(model)?, self.end()?, self.item()?),
            24..=25 => Op::Pop(self.key(model)?, self.end()?),
            26..=29 => Op::SetDeadline(self.key(model)?, self.deadline(model.now)?),
            30..=32 => Op::Rename(self.key(model)?, self.key(model)?),
            33..=36 => Op::Remove(self.key(model)?),
            37..=38 => Op::Get(self.key(model)?),
            39 => Op::Touch(self.key(model)?),
            40 => Op::Peek(self.key(model)?),
            41..=45 => Op::Advance(self.pick(&ADVANCES)?),
            46..=48 => Op::ExpireDue(self.pick(&BUDGETS)?),
            49 => {
                // Rare: it empties everything.
                if self.byte()? & 3 != 0 {
                    return self.op(model);
                }
                Op::Flush
            }
            50..=53 => Op::Evict,
            54 => Op::RandomKey,
            55..=57 => {
                let b = self.byte()?;
                let range = match b % 8 {
                    0..=4 => 0..SLOT_COUNT,
                    5 => 0..0,
                    _ => {
                        // Slots around a key's.
                        let s = key_slot(&self.key(model)?);
                        let w = u16::from(b >> 3);
                        s.saturating_sub(w)..(s + 1 + w).min(SLOT_COUNT)
                    }
                };
                Op::StartCapture(range)
            }
            58..=62 => Op::CaptureStep(usize::from(self.byte()?), self.pick(&BUDGETS)?),
            _ => Op::Cancel(usize::from(self.byte()?)),
        })
    }
}

// ---------------------------------------------------------------------------
// Captures.

struct Recorded {
    entries: Contents,
    /// Slots reported done, by number (a set of 16384 would cost more
    /// than the capture itself), and how many.
    done: Vec<bool>,
    slots_done: usize,
}

impl Recorded {
    fn new() -> Self {
        Recorded {
            entries: Contents::new(),
            done: vec![false; usize::from(SLOT_COUNT)],
            slots_done: 0,
        }
    }

    fn is_done(&self, slot: u16) -> bool {
        self.done[usize::from(slot)]
    }
}

/// The sink a capture writes to; the target keeps a handle on what it got.
struct Recorder {
    slots: Range<u16>,
    got: Arc<Mutex<Recorded>>,
}

impl Sink for Recorder {
    fn entry(&mut self, slot: u16, key: &[u8], value: ValueRef<'_>, expires_at: Option<u64>) {
        assert_eq!(slot, key_slot(key), "{} given in slot {slot}", show(key));
        assert!(self.slots.contains(&slot), "slot {slot} not captured");
        let mut got = self.got.lock().expect("recorder");
        assert!(
            !got.is_done(slot),
            "{} given after its slot {slot} was done",
            show(key)
        );
        let v = model_of(value);
        let old = got.entries.insert(key.to_vec(), (v, expires_at));
        assert!(old.is_none(), "{} captured twice", show(key));
    }

    fn slot_done(&mut self, slot: u16) {
        assert!(self.slots.contains(&slot), "slot {slot} not captured");
        let mut got = self.got.lock().expect("recorder");
        assert!(!got.is_done(slot), "slot {slot} done twice");
        got.done[usize::from(slot)] = true;
        got.slots_done += 1;
    }
}

struct Open {
    id: CaptureId,
    slots: Range<u16>,
    /// The model's live keys of `slots` when the capture started.
    expected: Contents,
    got: Arc<Mutex<Recorded>>,
}

impl Open {
    /// A capture that finished: everything, each slot once.
    fn check_done(&self) {
        let got = self.got.lock().expect("recorder");
        if got.entries != self.expected {
            panic!(
                "capture of slots {:?}: {}",
                self.slots,
                first_difference(&got.entries, &self.expected)
            );
        }
        // Each slot done at most once, and only slots of the capture.
        assert_eq!(
            got.slots_done,
            self.slots.len(),
            "capture of {:?}: slots done",
            self.slots
        );
    }

    /// A capture stopped early: what it got is right, and whole slots.
    fn check_partial(&self) {
        let got = self.got.lock().expect("recorder");
        for (k, v) in &got.entries {
            assert_eq!(
                Some(v),
                self.expected.get(k),
                "cancelled capture: {}",
                show(k)
            );
        }
        for k in self.expected.keys() {
            if got.is_done(key_slot(k)) {
                assert!(
                    got.entries.contains_key(k),
                    "cancelled capture: {} missing from a slot done",
                    show(k)
                );
            }
        }
    }
}

fn first_difference(got: &Contents, expected: &Contents) -> String {
    for (k, v) in expected {
        match got.get(k) {
            None => return format!("{} missing (expected {v:?})", show(k)),
            Some(g) if g != v => return format!("{}: got {g:?}, expected {v:?}", show(k)),
            Some(_) => {}
        }
    }
    match got.keys().find(|k| !expected.contains_key(*k)) {
        Some(k) => format!("{} captured but not expected", show(k)),
        None => "no difference".into(),
    }
}

// ---------------------------------------------------------------------------
// Comparing.

fn show(key: &[u8]) -> String {
    if key.len() > 48 {
        format!("<{} bytes: {}…>", key.len(), key[..8].escape_ascii())
    } else {
        format!("{:?}", key.escape_ascii().to_string())
    }
}

/// The model's view of a stored value, checking where a string lives.
fn model_of(value: ValueRef<'_>) -> MVal {
    if let ValueRef::Str(s) = value {
        let inline = matches!(s, StrRef::Inline(_));
        assert_eq!(
            inline,
            s.len() <= INLINE_MAX,
            "a string of {} bytes stored {}",
            s.len(),
            if inline { "inline" } else { "apart" }
        );
    }
    match value.to_value() {
        Value::Str(b) => MVal::Str(b.to_vec()),
        Value::List(l) => {
            assert!(!l.is_empty(), "an empty list is stored");
            MVal::List(l.iter().map(|b| b.to_vec()).collect())
        }
        other => panic!("a {} appeared", other.type_name()),
    }
}

/// `peek` on both sides (each reclaims the key if it expired).
fn check_key(db: &mut Db, model: &mut Model, key: &[u8]) {
    let want = model
        .peek(key)
        .map(|e| (e.value.clone(), e.deadline, e.access));
    let got = db
        .peek(key)
        .map(|e| (model_of(e.value), e.expires_at(), e.access()));
    assert!(
        got == want,
        "{}:\n  db    {got:?}\n  model {want:?}",
        show(key)
    );
}

/// What holds across the keyspace, without changing it.
fn check_counts(db: &Db, model: &Model, captures: usize) {
    assert_eq!(db.now_ms(), model.now);
    assert_eq!(db.len(), model.map.len(), "keys, expired ones included");
    assert_eq!(db.is_empty(), model.map.is_empty());
    let volatile = model.map.values().filter(|e| e.deadline.is_some()).count();
    assert_eq!(db.keys_with_deadline(), volatile, "keys with a deadline");
    let s = db.stats;
    assert_eq!(
        (s.hits, s.misses, s.expired, s.evicted),
        (model.hits, model.misses, model.expired, model.evicted),
        "hits, misses, expired, evicted"
    );
    assert_eq!(db.captures(), captures, "captures in progress");
    if db.is_empty() {
        assert_eq!(db.used_bytes(), 0, "bytes accounted for an empty keyspace");
    } else {
        assert!(
            db.used_bytes() < 1 << 40,
            "{} bytes accounted",
            db.used_bytes()
        );
    }
    let mut by_slot: BTreeMap<u16, BTreeSet<&[u8]>> = BTreeMap::new();
    for (k, e) in &model.map {
        by_slot.entry(e.slot).or_default().insert(k);
    }
    for (slot, keys) in by_slot {
        assert_eq!(db.count_in_slot(slot), keys.len(), "keys in slot {slot}");
        let listed = db.keys_in_slot(slot, usize::MAX);
        let listed: BTreeSet<&[u8]> = listed.iter().map(|k| &k[..]).collect();
        assert!(
            listed == keys,
            "slot {slot} lists {:?}, the model has {:?}",
            listed.iter().map(|k| show(k)).collect::<Vec<_>>(),
            keys.iter().map(|k| show(k)).collect::<Vec<_>>()
        );
    }
}

/// Model keys the keyspace no longer holds (found slot by slot, without
/// reclaiming anything).
fn gone(db: &Db, model: &Model) -> Vec<Vec<u8>> {
    let mut listed: BTreeMap<u16, BTreeSet<Bytes>> = BTreeMap::new();
    model
        .map
        .iter()
        .filter(|(k, e)| {
            let keys = listed
                .entry(e.slot)
                .or_insert_with(|| db.keys_in_slot(e.slot, usize::MAX).into_iter().collect());
            !keys.contains(&k[..])
        })
        .map(|(k, _)| k.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Running.

struct Session {
    db: Db,
    clock: Clock,
    model: Model,
    open: Vec<Open>,
    policy: Policy,
}

impl Session {
    /// Runs `op` on both sides; returns the keys to compare after it.
    fn apply(&mut self, op: Op) -> Vec<Vec<u8>> {
        let (db, model) = (&mut self.db, &mut self.model);
        match op {
            Op::Set(key, value, deadline) => {
                db.set(Bytes::from(key.clone()), value.to_value(), deadline);
                model.set(&key, value, deadline);
                vec![key]
            }
            Op::Replace(key, value) => {
                let done = db.replace_value(&key, value.to_value());
                let want = model.used(&key).map(|e| e.value = value).is_some();
                assert_eq!(done, want, "replace_value {}", show(&key));
                vec![key]
            }
            Op::Append(key, extra) => {
                let append = |s: &mut Vec<u8>| {
                    if s.len() <= APPEND_UP_TO {
                        s.extend_from_slice(&extra);
                    }
                };
                let done = db.update(&key, |v| match v {
                    Value::Str(b) => {
                        let mut s = b.to_vec();
                        append(&mut s);
                        *b = Bytes::from(s);
                        true
                    }
                    _ => false,
                });
                let want = model.used(&key).map(|e| match &mut e.value {
                    MVal::Str(s) => {
                        append(s);
                        true
                    }
                    MVal::List(_) => false,
                });
                assert_eq!(done, want, "update {}", show(&key));
                vec![key]
            }
            Op::Push(key, end, item) => {
                let k = Bytes::from(key.clone());
                let got = db.write::<List, _>(&k, |l| {
                    l.push(end, Bytes::copy_from_slice(&item));
                    l.len()
                });
                let want = model.write_list(&key, |l| {
                    match end {
                        End::Left => l.push_front(item),
                        End::Right => l.push_back(item),
                    }
                    l.len()
                });
                assert_eq!(got.map_err(drop), want, "push to {}", show(&key));
                vec![key]
            }
            Op::Pop(key, end) => {
                let k = Bytes::from(key.clone());
                let got = db.write::<List, _>(&k, |l| l.pop(end).map(|b| b.to_vec()));
                let want = model.write_list(&key, |l| match end {
                    End::Left => l.pop_front(),
                    End::Right => l.pop_back(),
                });
                assert_eq!(got.map_err(drop), want, "pop from {}", show(&key));
                vec![key]
            }
            Op::SetDeadline(key, deadline) => {
                let done = db.set_deadline(&key, deadline);
                let want = model
                    .used(&key)
                    .map(|e| e.deadline = deadline.map(|d| d.max(1)))
                    .is_some();
                assert_eq!(done, want, "set_deadline {}", show(&key));
                vec![key]
            }
            Op::Rename(from, to) => {
                let done = db.rename(&from, Bytes::from(to.clone()));
                model.reclaim(&from);
                let want = match model.take(&from) {
                    Some((mut e, _)) => {
                        model.take(&to);
                        e.slot = key_slot(&to);
                        model.map.insert(to.clone(), e);
                        true
                    }
                    None => false,
                };
                assert_eq!(done, want, "rename {} {}", show(&from), show(&to));
                vec![from, to]
            }
            Op::Remove(key) => {
                let done = db.remove(&key);
                let want = model.take(&key).is_some_and(|(_, live)| live);
                assert_eq!(done, want, "remove {}", show(&key));
                vec![key]
            }
            Op::Get(key) => {
                let got = db.get(&key).map(|e| model_of(e.value));
                let want = model.used(&key).map(|e| e.value.clone());
                if want.is_some() {
                    model.hits += 1;
                } else {
                    model.misses += 1;
                }
                assert_eq!(got, want, "get {}", show(&key));
                vec![key]
            }
            Op::Touch(key) => {
                let found = db.touch(&key);
                assert_eq!(found, model.used(&key).is_some(), "touch {}", show(&key));
                vec![key]
            }
            Op::Peek(key) => vec![key],
            Op::Advance(ms) => {
                self.clock.advance(ms);
                model.now += ms;
                Vec::new()
            }
            Op::ExpireDue(budget) => {
                let n = db.expire_due(budget);
                let mut due: Vec<(u64, Vec<u8>)> = model
                    .map
                    .iter()
                    .filter_map(|(k, e)| {
                        let d = e.deadline.filter(|&d| d <= model.now)?;
                        Some((d, k.clone()))
                    })
                    .collect();
                due.sort();
                due.truncate(budget);
                for (_, k) in &due {
                    model.take(k);
                }
                assert_eq!(n, due.len(), "expire_due({budget})");
                due.into_iter().map(|(_, k)| k).collect()
            }
            Op::Flush => {
                db.flush();
                model.map.clear();
                assert_eq!(db.used_bytes(), 0);
                Vec::new()
            }
            Op::Evict => {
                let (keys, volatile) = (db.len(), db.keys_with_deadline());
                let evicted = db.evict_one();
                let possible = match self.policy {
                    Policy::VolatileLru => volatile > 0,
                    _ => keys > 0,
                };
                assert_eq!(
                    evicted, possible,
                    "evict_one with {keys} keys, {volatile} volatile"
                );
                if !evicted {
                    return Vec::new();
                }
                assert_eq!(db.len(), keys - 1, "evict_one took one key");
                let gone = gone(db, model);
                let [victim] = &gone[..] else {
                    panic!(
                        "evict_one: {:?} went",
                        gone.iter().map(|k| show(k)).collect::<Vec<_>>()
                    );
                };
                let e = &model.map[victim];
                if self.policy == Policy::VolatileLru {
                    assert!(
                        e.deadline.is_some(),
                        "volatile-lru evicted {}",
                        show(victim)
                    );
                }
                if model.take(victim).is_some_and(|(_, live)| live) {
                    model.evicted += 1;
                }
                gone
            }
            Op::RandomKey => {
                let live_before = model.live_keys().len();
                let got = db.random_key();
                // Expired keys it met on the way were reclaimed.
                let gone = gone(db, model);
                for k in &gone {
                    let (_, live) = model.take(k).expect("a model key");
                    assert!(!live, "random_key removed live {}", show(k));
                }
                match &got {
                    Some(k) => {
                        let e = model.map.get(&k[..]);
                        assert!(
                            e.is_some_and(|e| model.live(e)),
                            "random_key gave {}, not a live key",
                            show(k)
                        );
                    }
                    // It gives up only on an empty keyspace or after 64
                    // expired keys.
                    None => assert!(
                        live_before == 0 || gone.len() == 64,
                        "random_key found none of {live_before} live keys ({} reclaimed)",
                        gone.len()
                    ),
                }
                let mut touched = gone;
                touched.extend(got.map(|k| k.to_vec()));
                touched
            }
            Op::StartCapture(slots) => {
                if self.open.len() >= MAX_CAPTURES {
                    return Vec::new();
                }
                let got = Arc::new(Mutex::new(Recorded::new()));
                let sink = Recorder {
                    slots: slots.clone(),
                    got: got.clone(),
                };
                let id = db.start_capture(slots.clone(), Box::new(sink));
                let expected = model.live_contents(&slots);
                self.open.push(Open {
                    id,
                    slots,
                    expected,
                    got,
                });
                Vec::new()
            }
            Op::CaptureStep(i, budget) => {
                if self.open.is_empty() {
                    return Vec::new();
                }
                let i = i % self.open.len();
                match db.capture_step(self.open[i].id, budget) {
                    Some(Step::More) => {}
                    Some(Step::Done(sink)) => {
                        drop(sink);
                        let c = self.open.swap_remove(i);
                        c.check_done();
                        assert!(db.capture_step(c.id, 1).is_none(), "stepped after done");
                        assert!(db.cancel_capture(c.id).is_none(), "cancelled after done");
                    }
                    None => panic!("capture {:?} unknown while in progress", self.open[i].id),
                }
                Vec::new()
            }
            Op::Cancel(i) => {
                if self.open.is_empty() {
                    return Vec::new();
                }
                let c = self.open.swap_remove(i % self.open.len());
                let sink = db.cancel_capture(c.id);
                assert!(sink.is_some(), "cancel_capture: unknown");
                drop(sink);
                c.check_partial();
                assert!(db.capture_step(c.id, 1).is_none(), "stepped after cancel");
                Vec::new()
            }
        }
    }

    fn check(&mut self, touched: &[Vec<u8>]) {
        for k in touched {
            check_key(&mut self.db, &mut self.model, k);
        }
        check_counts(&self.db, &self.model, self.open.len());
    }

    fn finish(&mut self) {
        for c in std::mem::take(&mut self.open) {
            match self.db.capture_step(c.id, usize::MAX) {
                Some(Step::Done(sink)) => drop(sink),
                Some(Step::More) => panic!("a step without a budget left slots"),
                None => panic!("capture {:?} unknown while in progress", c.id),
            }
            c.check_done();
        }
        check_counts(&self.db, &self.model, 0);
        let live = self.model.live_keys();
        let listed: BTreeSet<Vec<u8>> = self
            .db
            .keys_where(|_| true)
            .into_iter()
            .map(|k| k.to_vec())
            .collect();
        assert!(
            listed == live,
            "keys_where lists other keys than the model's live ones"
        );
        let keys: Vec<Vec<u8>> = self.model.map.keys().cloned().collect();
        for k in &keys {
            check_key(&mut self.db, &mut self.model, k);
        }
        check_counts(&self.db, &self.model, 0);
        for k in &keys {
            let want = self.model.take(k).is_some_and(|(_, live)| live);
            assert_eq!(self.db.remove(k), want, "remove {}", show(k));
        }
        check_counts(&self.db, &self.model, 0);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut g = Gen {
        data,
        long: Vec::new(),
    };
    let Some(head) = g.byte() else {
        return;
    };
    let policy = if head & 3 == 3 {
        Policy::VolatileLru
    } else {
        Policy::AllKeysLru
    };
    let settings = Settings {
        policy,
        samples: [1, 5, evict::MAX_SAMPLES][usize::from(head >> 2) % 3],
        ..Settings::default()
    };
    let clock = Clock::manual(START_MS);
    let mut s = Session {
        db: Db::new(clock.clone()).with_eviction(settings),
        clock,
        model: Model {
            map: BTreeMap::new(),
            now: START_MS,
            expired: 0,
            evicted: 0,
            hits: 0,
            misses: 0,
        },
        open: Vec::new(),
        policy,
    };
    if trace() {
        eprintln!("{settings:?}");
    }
    for _ in 0..MAX_OPS {
        let Some(op) = g.op(&s.model) else {
            break;
        };
        if trace() {
            eprintln!("{}", describe(&op));
        }
        let touched = s.apply(op);
        s.check(&touched);
    }
    s.finish();
});

/// An operation, with long keys and values abbreviated.
fn describe(op: &Op) -> String {
    let v = |v: &MVal| match v {
        MVal::Str(s) => format!("str[{}]", s.len()),
        MVal::List(l) => format!("list{:?}", l.iter().map(Vec::len).collect::<Vec<_>>()),
    };
    match op {
        Op::Set(k, val, d) => format!("set {} {} {d:?}", show(k), v(val)),
        Op::Replace(k, val) => format!("replace_value {} {}", show(k), v(val)),
        Op::Append(k, x) => format!("update {} append {}", show(k), x.len()),
        Op::Push(k, e, x) => format!("push {} {e:?} [{}]", show(k), x.len()),
        Op::Pop(k, e) => format!("pop {} {e:?}", show(k)),
        Op::SetDeadline(k, d) => format!("set_deadline {} {d:?}", show(k)),
        Op::Rename(a, b) => format!("rename {} {}", show(a), show(b)),
        Op::Remove(k) => format!("remove {}", show(k)),
        Op::Get(k) => format!("get {}", show(k)),
        Op::Touch(k) => format!("touch {}", show(k)),
        Op::Peek(k) => format!("peek {}", show(k)),
        other => format!("{other:?}"),
    }
}
