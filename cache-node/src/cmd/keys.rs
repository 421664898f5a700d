//! Generic keyspace commands: DEL, EXISTS, TYPE, RENAME, COPY, KEYS, expiry,
//! DBSIZE, FLUSHALL, OBJECT; and the cursor shared by SCAN, HSCAN, SSCAN and
//! ZSCAN.

use bytes::Bytes;

use super::Ctx;
use super::util::{SYNTAX, eq, int_arg};
use crate::db::{Entry, ValueRef};
use crate::evict::Kind;
use crate::frame::Reply;
use crate::types::List;

pub fn del(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    Reply::Integer(args[1..].iter().filter(|k| db.remove(k)).count() as i64)
}

pub fn exists(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    // Repeated keys count repeatedly, as in Redis.
    Reply::Integer(args[1..].iter().filter(|k| db.peek(k).is_some()).count() as i64)
}

/// How an expiry command gives its deadline; the number is the unit in ms.
#[derive(Clone, Copy)]
enum Deadline {
    Relative(i64),
    Absolute(i64),
}

/// `EXPIRE|PEXPIRE|EXPIREAT|PEXPIREAT key n [NX | XX | GT | LT]`.
fn set_expiry(cx: &mut Ctx, args: &[Bytes], how: Deadline, name: &str) -> Reply {
    // Options first, then the number: Redis reports a bad option before a bad time.
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if eq(opt, "NX") {
            nx = true;
        } else if eq(opt, "XX") {
            xx = true;
        } else if eq(opt, "GT") {
            gt = true;
        } else if eq(opt, "LT") {
            lt = true;
        } else {
            return Reply::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Reply::error("ERR GT and LT options at the same time are not compatible");
    }
    let n = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let now = db.now_ms() as i64;
    let at = match how {
        Deadline::Relative(unit) => n.checked_mul(unit).and_then(|ms| ms.checked_add(now)),
        Deadline::Absolute(unit) => n.checked_mul(unit),
    };
    let Some(at) = at else {
        return Reply::error(format!("ERR invalid expire time in '{name}' command"));
    };
    let Some(current) = db.peek(&args[1]).map(|e| e.expires_at()) else {
        return Reply::Integer(0);
    };
    // A key without a deadline counts as an infinite TTL for GT and LT.
    let skip = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| at <= c as i64))
        || (lt && current.is_some_and(|c| at >= c as i64));
    if skip {
        return Reply::Integer(0);
    }
    if at <= now {
        db.remove(&args[1]);
    } else {
        db.set_deadline(&args[1], Some(at as u64));
    }
    Reply::Integer(1)
}

pub fn expire(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_expiry(cx, args, Deadline::Relative(1000), "expire")
}

pub fn pexpire(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_expiry(cx, args, Deadline::Relative(1), "pexpire")
}

/// Remaining time to live in ms; -2 for a missing key, -1 for no deadline.
fn ttl_ms(cx: &mut Ctx, key: &[u8]) -> i64 {
    let db = &mut *cx.db;
    let now = db.now_ms();
    match db.peek(key) {
        None => -2,
        Some(e) => e
            .expires_at()
            .map_or(-1, |at| at.saturating_sub(now) as i64),
    }
}

pub fn ttl(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let ms = ttl_ms(cx, &args[1]);
    // Redis rounds to the nearest second.
    Reply::Integer(if ms < 0 { ms } else { (ms + 500) / 1000 })
}

pub fn pttl(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    Reply::Integer(ttl_ms(cx, &args[1]))
}

pub fn persist(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    let had_deadline = db.peek(&args[1]).is_some_and(|e| e.expires_at().is_some());
    if had_deadline {
        db.set_deadline(&args[1], None);
    }
    Reply::Integer(i64::from(had_deadline))
}

pub fn dbsize(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Integer(cx.db.len() as i64)
}

/// `FLUSHALL [ASYNC | SYNC]`; both run synchronously for now.
pub fn flushall(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match args.get(1) {
        None => {}
        Some(a) if eq(a, "ASYNC") || eq(a, "SYNC") => {}
        Some(_) => return Reply::error(SYNTAX),
    }
    if args.len() > 2 {
        return Reply::error(SYNTAX);
    }
    cx.db.flush();
    // A partial import just lost what it had received: end it, so its
    // source's next batch fails and the move is run again, rather than
    // committing a copy with holes.
    let mut migrations = cx.shared.migrations.lock().expect("migrations lock");
    let open: Vec<String> = migrations.imports().map(|(id, _)| id.clone()).collect();
    for id in open {
        migrations.end_import(&id, crate::migration::ImportState::Aborted);
        tracing::warn!(id, "import aborted by FLUSHALL");
    }
    Reply::OK
}

/// `EXPIREAT|PEXPIREAT key unix-time [NX | XX | GT | LT]`.
pub fn expireat(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_expiry(cx, args, Deadline::Absolute(1000), "expireat")
}

pub fn pexpireat(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_expiry(cx, args, Deadline::Absolute(1), "pexpireat")
}

/// The deadline as Unix time; -2 for a missing key, -1 for no deadline.
fn expiretime_ms(cx: &mut Ctx, key: &[u8]) -> i64 {
    let db = &mut *cx.db;
    match db.peek(key) {
        None => -2,
        Some(e) => e.expires_at().map_or(-1, |at| at as i64),
    }
}

pub fn expiretime(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let ms = expiretime_ms(cx, &args[1]);
    Reply::Integer(if ms < 0 { ms } else { ms / 1000 })
}

pub fn pexpiretime(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    Reply::Integer(expiretime_ms(cx, &args[1]))
}

pub fn type_(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    Reply::Simple(db.peek(&args[1]).map_or("none", |e| e.value.type_name()))
}

pub fn touch(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    Reply::Integer(args[1..].iter().filter(|k| db.touch(k)).count() as i64)
}

fn rename_generic(cx: &mut Ctx, args: &[Bytes], only_if_new: bool) -> Reply {
    let db = &mut *cx.db;
    if db.peek(&args[1]).is_none() {
        return Reply::error("ERR no such key");
    }
    if only_if_new && db.peek(&args[2]).is_some() {
        return Reply::Integer(0);
    }
    if args[1] != args[2] {
        db.rename(&args[1], args[2].clone());
    }
    if only_if_new {
        Reply::Integer(1)
    } else {
        Reply::OK
    }
}

pub fn rename(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    rename_generic(cx, args, false)
}

pub fn renamenx(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    rename_generic(cx, args, true)
}

/// `COPY source destination [DB 0] [REPLACE]`
pub fn copy(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if eq(&args[i], "REPLACE") {
            replace = true;
        } else if eq(&args[i], "DB") && i + 1 < args.len() {
            match super::util::parse_i64(&args[i + 1]) {
                Some(0) => {}
                Some(_) => return Reply::error("ERR DB index is out of range"),
                None => return Reply::error(super::util::NOT_INTEGER),
            }
            i += 1;
        } else {
            return Reply::error(SYNTAX);
        }
        i += 1;
    }
    let db = &mut *cx.db;
    if args[1] == args[2] {
        return Reply::error("ERR source and destination objects are the same");
    }
    let Some((value, deadline)) = db
        .peek(&args[1])
        .map(|e| (e.value.to_value(), e.expires_at()))
    else {
        return Reply::Integer(0);
    };
    if !replace && db.peek(&args[2]).is_some() {
        return Reply::Integer(0);
    }
    db.set(args[2].clone(), value, deadline);
    Reply::Integer(1)
}

pub fn keys(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &*cx.db;
    let pattern = &args[1];
    let all = &pattern[..] == b"*";
    Reply::Array(
        db.keys_where(|k| all || crate::glob::matches(pattern, k))
            .into_iter()
            .map(Reply::Bulk)
            .collect(),
    )
}

pub fn randomkey(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    // The caller holds the keyspace lock: locking `shared.db` here would deadlock.
    cx.db.random_key().map_or(Reply::Null, Reply::Bulk)
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`; see [`crate::db::Db::scan`]
/// for what the cursor is.
pub fn scan(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let cursor = match scan_cursor(&args[1]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let opts = match ScanOptions::parse(&args[2..], true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let db = &*cx.db;
    let (next, keys) = db.scan(cursor, opts.count, |k, v| {
        opts.matches(k) && opts.type_.as_deref().is_none_or(|t| t == v.type_name())
    });
    scan_reply(next, keys.into_iter().map(Reply::Bulk).collect())
}

/// A SCAN-family cursor: an unsigned decimal integer.
pub(super) fn scan_cursor(arg: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::error("ERR invalid cursor"))
}

/// `[MATCH pattern] [COUNT count]`, plus `[TYPE type]` for SCAN itself.
pub(super) struct ScanOptions {
    pattern: Option<Bytes>,
    pub count: usize,
    type_: Option<String>,
}

impl ScanOptions {
    pub fn parse(args: &[Bytes], allow_type: bool) -> Result<Self, Reply> {
        let mut opts = ScanOptions {
            pattern: None,
            count: 10,
            type_: None,
        };
        for pair in args.chunks(2) {
            let [name, value] = pair else {
                return Err(Reply::error(SYNTAX));
            };
            if eq(name, "MATCH") {
                // `*` matches everything: skip the matcher, as Redis does.
                opts.pattern = (&value[..] != b"*").then(|| value.clone());
            } else if eq(name, "COUNT") {
                match super::util::parse_i64(value) {
                    Some(n) if n >= 1 => opts.count = usize::try_from(n).unwrap_or(usize::MAX),
                    Some(_) => return Err(Reply::error(SYNTAX)),
                    None => return Err(Reply::error(super::util::NOT_INTEGER)),
                }
            } else if eq(name, "TYPE") && allow_type {
                opts.type_ = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
            } else {
                return Err(Reply::error(SYNTAX));
            }
        }
        Ok(opts)
    }

    pub fn matches(&self, name: &[u8]) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|p| crate::glob::matches(p, name))
    }
}

/// `[cursor, [items...]]`, the cursor as a bulk string.
pub(super) fn scan_reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::text(&next.to_string()), Reply::Array(items)])
}

/// Below this many calls a whole element scan never takes more; see
/// [`scan_members`].
const SCAN_ROUNDS: usize = 32;

/// HSCAN, SSCAN and ZSCAN: the cursor, then the key (a missing key is an
/// empty scan), its type, then the options, in Redis's order; then one page
/// of the collection's `members` (with its length), each chosen member
/// turned into its replies by `emit`.
pub(super) fn scan_collection<'v, C, T, I>(
    cx: &'v mut Ctx,
    args: &[Bytes],
    members: impl FnOnce(&'v C) -> (I, usize),
    emit: impl Fn(&Bytes, T) -> Vec<Reply>,
) -> Reply
where
    C: crate::db::Collection + 'v,
    I: Iterator<Item = (&'v Bytes, T)>,
{
    let cursor = match scan_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(entry) = cx.db.peek(&args[1]) else {
        return scan_reply(0, vec![]);
    };
    let value = entry.value;
    let Some(collection) = C::of(value) else {
        return Reply::error(crate::db::WRONGTYPE);
    };
    let opts = match ScanOptions::parse(&args[3..], false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (iter, len) = members(collection);
    let (next, items) = scan_members(iter, len, is_compact(value), cursor, &opts);
    scan_reply(
        next,
        items.into_iter().flat_map(|(m, t)| emit(m, t)).collect(),
    )
}

/// One step of HSCAN, SSCAN or ZSCAN over a collection's `members` (each
/// with what the reply needs of it), starting at `cursor`. Returns the next
/// cursor (0 when done) and the members chosen, already filtered by MATCH.
///
/// A collection Redis keeps compact (`compact`: listpack or intset) comes
/// back whole with cursor 0, whatever the cursor, as in Redis. A larger one
/// is walked in the order of a hash of each member that is fixed for the
/// life of the process, and the cursor is the position in that hash space
/// where the next call starts. Positions never move, so a member present for
/// the whole iteration is returned exactly once however the collection
/// grows, shrinks or changes between calls (Redis's reverse-binary cursor
/// exists to survive rehashing, which a fixed hash space does not have).
///
/// The collection types keep no index by that hash, so each call walks the
/// whole collection. So that a full iteration costs O(n · SCAN_ROUNDS)
/// rather than O(n² / COUNT), a call returns at least 1/SCAN_ROUNDS of the
/// collection: COUNT is only a hint in Redis too.
pub(super) fn scan_members<'a, T>(
    members: impl Iterator<Item = (&'a Bytes, T)>,
    len: usize,
    compact: bool,
    cursor: u64,
    opts: &ScanOptions,
) -> (u64, Vec<(&'a Bytes, T)>) {
    let keep = |(m, _): &(&'a Bytes, T)| opts.matches(m);
    if compact {
        return (0, members.filter(keep).collect());
    }
    let batch = opts.count.max(len.div_ceil(SCAN_ROUNDS)).max(1);
    let mut ahead: Vec<(u64, (&'a Bytes, T))> = members
        .map(|item| (scan_hash(item.0), item))
        .filter(|(h, _)| *h >= cursor)
        .collect();
    if ahead.len() <= batch {
        return (
            0,
            ahead
                .into_iter()
                .map(|(_, item)| item)
                .filter(keep)
                .collect(),
        );
    }
    ahead.select_nth_unstable_by_key(batch - 1, |(h, _)| *h);
    let last = ahead[batch - 1].0;
    let total = ahead.len();
    // Members sharing the last hash go in this batch too: the next cursor
    // starts after that hash.
    let taken: Vec<_> = ahead.into_iter().filter(|(h, _)| *h <= last).collect();
    let next = match last.checked_add(1) {
        Some(next) if taken.len() < total => next,
        _ => 0,
    };
    (
        next,
        taken
            .into_iter()
            .map(|(_, item)| item)
            .filter(keep)
            .collect(),
    )
}

/// The position of a member in the element-scan order: a keyed hash, the
/// key drawn once per process so that clients cannot aim at collisions.
fn scan_hash(member: &[u8]) -> u64 {
    use std::hash::BuildHasher as _;
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new)
        .hash_one(member)
}

// Redis 7.2's defaults for its compact encodings.
/// `hash-`, `set-` and `zset-max-listpack-entries`.
pub(super) const LISTPACK_ENTRIES: usize = 128;
/// `hash-`, `set-` and `zset-max-listpack-value`.
pub(super) const LISTPACK_VALUE: usize = 64;
/// `set-max-intset-entries`.
pub(super) const INTSET_ENTRIES: usize = 512;
/// `list-max-listpack-size -2`: a list stays one listpack up to 8 KiB.
const LIST_LISTPACK_BYTES: usize = 8192;
/// Longest string Redis allocates together with its object header.
const EMBSTR_MAX: usize = 44;
/// Redis shares the objects of the integers 0..10000 (`OBJ_SHARED_INTEGERS`).
const SHARED_INTEGERS: i64 = 10_000;

/// Whether a string would be stored as an integer (`int` encoding).
fn is_int_encoded(s: &[u8]) -> bool {
    s.len() <= 20 && super::util::parse_i64(s).is_some()
}

/// The encoding Redis 7.2 reports for the same value under its default
/// thresholds. Judged from the contents alone: Redis never converts a
/// collection back after it shrinks, and we keep no history, so a
/// collection that grew and shrank again reads as compact here.
pub(super) fn encoding(value: ValueRef<'_>) -> &'static str {
    let short = |b: &Bytes| b.len() <= LISTPACK_VALUE;
    match value {
        ValueRef::Str(s) if is_int_encoded(&s) => "int",
        ValueRef::Str(s) if s.len() <= EMBSTR_MAX => "embstr",
        ValueRef::Str(_) => "raw",
        ValueRef::Hash(h)
            if h.len() <= LISTPACK_ENTRIES && h.iter().all(|(f, v)| short(f) && short(v)) =>
        {
            "listpack"
        }
        ValueRef::Hash(_) => "hashtable",
        // Intset members are integers Redis's `string2ll` accepts.
        ValueRef::Set(s)
            if s.len() <= INTSET_ENTRIES
                && s.iter().all(|m| super::util::parse_i64(m).is_some()) =>
        {
            "intset"
        }
        ValueRef::Set(s) if s.len() <= LISTPACK_ENTRIES && s.iter().all(short) => "listpack",
        ValueRef::Set(_) => "hashtable",
        ValueRef::ZSet(z) if z.len() <= LISTPACK_ENTRIES && z.iter().all(|(m, _)| short(m)) => {
            "listpack"
        }
        ValueRef::ZSet(_) => "skiplist",
        ValueRef::List(l) if fits_one_listpack(l) => "listpack",
        ValueRef::List(_) => "quicklist",
    }
}

/// Whether a list fits the 8 KiB listpack Redis 7.2 keeps small lists in,
/// sizing entries as the listpack format does.
fn fits_one_listpack(list: &List) -> bool {
    // Header (total bytes, count) and end marker.
    let mut bytes = 7;
    for item in list.iter() {
        let entry = match super::util::parse_i64(item).filter(|_| item.len() <= 20) {
            Some(0..=127) => 1,
            Some(-4096..=4095) => 2,
            Some(-32_768..=32_767) => 3,
            Some(-8_388_608..=8_388_607) => 4,
            Some(-2_147_483_648..=2_147_483_647) => 5,
            Some(_) => 9,
            None if item.len() < 64 => 1 + item.len(),
            None if item.len() < 4096 => 2 + item.len(),
            None => 5 + item.len(),
        };
        // Each entry ends with its own length, for walking backwards.
        let backlen = match entry {
            0..=127 => 1,
            128..=16_382 => 2,
            16_383..=2_097_150 => 3,
            2_097_151..=268_435_454 => 4,
            _ => 5,
        };
        bytes += entry + backlen;
        if bytes > LIST_LISTPACK_BYTES {
            return false;
        }
    }
    true
}

/// Whether a collection comes back whole from its *SCAN (Redis's compact
/// encodings ignore the cursor).
pub(super) fn is_compact(value: ValueRef<'_>) -> bool {
    matches!(encoding(value), "listpack" | "intset")
}

/// `OBJECT ENCODING key`
pub fn object_encoding(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    cx.db
        .peek(&args[2])
        .map_or(Reply::Null, |e| Reply::text(encoding(e.value)))
}

/// `OBJECT REFCOUNT key`: 1, except for the integers Redis shares between
/// keys, which report `OBJ_SHARED_REFCOUNT` (INT_MAX).
pub fn object_refcount(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let shared = cx.shared;
    // Redis stops sharing integers when an LRU/LFU policy needs per-key access data.
    let sharing = shared.maxmemory() == 0 || !cx.db.eviction().policy.kind().tracks_access();
    cx.db.peek(&args[2]).map_or(Reply::Null, |e| match e.value {
        ValueRef::Str(s)
            if sharing
                && is_int_encoded(&s)
                && super::util::parse_i64(&s)
                    .is_some_and(|n| (0..SHARED_INTEGERS).contains(&n)) =>
        {
            Reply::Integer(i64::from(i32::MAX))
        }
        _ => Reply::Integer(1),
    })
}

/// `OBJECT IDLETIME key`
pub fn object_idletime(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let settings = cx.db.eviction();
    let now = cx.db.now_ms();
    cx.db.peek(&args[2]).map_or(Reply::Null, |e| {
        idletime_reply(settings.policy.kind(), access(&e, now, &settings))
    })
}

/// `OBJECT FREQ key`
pub fn object_freq(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let settings = cx.db.eviction();
    let now = cx.db.now_ms();
    cx.db.peek(&args[2]).map_or(Reply::Null, |e| {
        freq_reply(settings.policy.kind(), access(&e, now, &settings))
    })
}

/// What is known of a key's use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Access {
    /// Seconds since the key was last read or written.
    idle_secs: u64,
    /// Redis's logarithmic LFU counter (0..=255).
    lfu_counter: u8,
}

/// The access data of one key, read as the policy in force records it:
/// under LFU the entry holds a counter and no clock, under the others the
/// reverse, so only one of the two fields means anything.
fn access(entry: &Entry, now_ms: u64, settings: &crate::evict::Settings) -> Access {
    use crate::evict;
    Access {
        idle_secs: evict::lru_idle_ms(entry.access(), now_ms) / 1000,
        lfu_counter: evict::lfu_count(entry.access(), now_ms, settings.lfu_decay_time),
    }
}

fn idletime_reply(policy: Kind, access: Access) -> Reply {
    if policy == Kind::Lfu {
        return Reply::error(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        );
    }
    Reply::Integer(i64::try_from(access.idle_secs).unwrap_or(i64::MAX))
}

fn freq_reply(policy: Kind, access: Access) -> Reply {
    if policy != Kind::Lfu {
        return Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        );
    }
    Reply::Integer(access.lfu_counter.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Value;
    use crate::types::{End, Hash, Set, SortedSet};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn kind(policy: &str) -> Kind {
        crate::evict::Policy::parse(policy)
            .expect("a policy name")
            .kind()
    }

    #[test]
    fn strings_encode_like_redis() {
        let enc = |s: &str| encoding(Value::Str(b(s)).as_ref());
        assert_eq!(enc("12345"), "int");
        assert_eq!(enc("-9223372036854775808"), "int");
        assert_eq!(enc("9223372036854775808"), "embstr");
        assert_eq!(enc("007"), "embstr");
        assert_eq!(enc(&"x".repeat(44)), "embstr");
        assert_eq!(enc(&"x".repeat(45)), "raw");
    }

    #[test]
    fn collections_encode_by_redis_default_thresholds() {
        let set = |n: usize, f: &dyn Fn(usize) -> String| {
            Value::Set((0..n).map(|i| b(&f(i))).collect::<Set>())
        };
        assert_eq!(encoding(set(512, &|i| i.to_string()).as_ref()), "intset");
        assert_eq!(encoding(set(513, &|i| i.to_string()).as_ref()), "hashtable");
        assert_eq!(
            encoding(set(128, &|i| format!("m{i}")).as_ref()),
            "listpack"
        );
        assert_eq!(
            encoding(set(129, &|i| format!("m{i}")).as_ref()),
            "hashtable"
        );
        assert_eq!(encoding(set(1, &|_| "x".repeat(65)).as_ref()), "hashtable");

        let mut h = Hash::default();
        h.insert(b("f"), b(&"v".repeat(64)));
        assert_eq!(encoding(Value::Hash(h.clone()).as_ref()), "listpack");
        h.insert(b("g"), b(&"v".repeat(65)));
        assert_eq!(encoding(Value::Hash(h).as_ref()), "hashtable");

        let mut z = SortedSet::default();
        for i in 0..128 {
            z.insert(b(&i.to_string()), i as f64);
        }
        assert_eq!(encoding(Value::ZSet(z.clone()).as_ref()), "listpack");
        z.insert(b("one more"), 0.0);
        assert_eq!(encoding(Value::ZSet(z).as_ref()), "skiplist");

        let mut l = List::default();
        for _ in 0..1000 {
            l.push(End::Right, b("abcde"));
        }
        // 1000 entries of 1 + 5 bytes and a 1-byte back length: 7007 bytes.
        assert_eq!(encoding(Value::List(l.clone()).as_ref()), "listpack");
        for _ in 0..200 {
            l.push(End::Right, b("abcde"));
        }
        assert_eq!(encoding(Value::List(l).as_ref()), "quicklist");
        let mut big = List::default();
        big.push(End::Left, b(&"x".repeat(9000)));
        assert_eq!(encoding(Value::List(big).as_ref()), "quicklist");
    }

    #[test]
    fn access_replies_follow_the_policy() {
        let used = Access {
            idle_secs: 12,
            lfu_counter: 5,
        };
        assert_eq!(idletime_reply(kind("noeviction"), used), Reply::Integer(12));
        assert_eq!(
            idletime_reply(kind("allkeys-lru"), used),
            Reply::Integer(12)
        );
        assert!(idletime_reply(kind("allkeys-lfu"), used).is_error());
        assert_eq!(freq_reply(kind("volatile-lfu"), used), Reply::Integer(5));
        let Reply::Error(e) = freq_reply(kind("noeviction"), used) else {
            panic!("FREQ without LFU must fail");
        };
        assert!(e.starts_with("ERR An LFU maxmemory policy is not selected"));
        assert!(kind("volatile-lru").tracks_access());
        assert!(!kind("noeviction").tracks_access());
    }

    fn opts(count: usize) -> ScanOptions {
        ScanOptions {
            pattern: None,
            count,
            type_: None,
        }
    }

    /// Runs a whole element scan over `live`, changing it between calls
    /// with `change`, and returns everything returned.
    fn full_scan(
        live: &mut std::collections::BTreeSet<Bytes>,
        count: usize,
        mut change: impl FnMut(&mut std::collections::BTreeSet<Bytes>, usize),
    ) -> Vec<Bytes> {
        let (mut cursor, mut seen, mut round) = (0, Vec::new(), 0);
        loop {
            let items: Vec<Bytes> = live.iter().cloned().collect();
            let (next, got) = scan_members(
                items.iter().map(|m| (m, ())),
                items.len(),
                false,
                cursor,
                &opts(count),
            );
            seen.extend(got.into_iter().map(|(m, _)| m.clone()));
            if next == 0 {
                return seen;
            }
            assert!(next > cursor, "the cursor moves forward");
            cursor = next;
            change(live, round);
            round += 1;
            assert!(round < 10_000, "the scan terminates");
        }
    }

    #[test]
    fn element_scans_return_every_stable_member_despite_changes() {
        let start: std::collections::BTreeSet<Bytes> =
            (0..2000).map(|i| b(&format!("m{i}"))).collect();
        // Remove some of the original members and add new ones between calls.
        let mut live = start.clone();
        let seen = full_scan(&mut live, 10, |live, round| {
            live.remove(&b(&format!("m{}", round * 7)));
            for j in 0..20 {
                live.insert(b(&format!("new{round}-{j}")));
            }
        });
        let seen: std::collections::HashSet<_> = seen.into_iter().collect();
        for m in start.iter().filter(|m| live.contains(*m)) {
            assert!(seen.contains(m), "{m:?} missed");
        }
        // Unchanged collection: each member exactly once.
        let mut live = start.clone();
        let seen = full_scan(&mut live, 10, |_, _| {});
        assert_eq!(seen.len(), start.len());
        assert_eq!(
            seen.into_iter().collect::<std::collections::BTreeSet<_>>(),
            start
        );
    }

    #[test]
    fn element_scans_take_a_share_of_the_collection_per_call() {
        let items: Vec<Bytes> = (0..3200).map(|i| b(&i.to_string())).collect();
        let (next, got) = scan_members(
            items.iter().map(|m| (m, ())),
            items.len(),
            false,
            0,
            &opts(10),
        );
        assert_ne!(next, 0);
        assert_eq!(got.len(), 100);
        // A huge COUNT returns everything at once.
        let (next, got) = scan_members(
            items.iter().map(|m| (m, ())),
            items.len(),
            false,
            0,
            &opts(usize::MAX),
        );
        assert_eq!((next, got.len()), (0, 3200));
        // Compact collections come back whole even from a later cursor.
        let (next, got) = scan_members(
            items.iter().take(5).map(|m| (m, ())),
            5,
            true,
            12345,
            &opts(1),
        );
        assert_eq!((next, got.len()), (0, 5));
    }
}
