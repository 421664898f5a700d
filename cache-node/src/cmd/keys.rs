//! Generic keyspace commands: DEL, EXISTS, TYPE, RENAME, COPY, KEYS, SCAN,
//! expiry, DBSIZE, FLUSHALL, OBJECT.

use bytes::Bytes;

use super::Ctx;
use super::args::{ScanOptions, scan_cursor};
use super::encoding::{SHARED_INTEGERS, encoding, is_int_encoded};
use super::util::{SYNTAX, eq, int_arg};
use crate::db::{Entry, ValueRef};
use crate::evict::Kind;
use crate::frame::Reply;

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
    super::scan::reply(next, keys.into_iter().map(Reply::Bulk).collect())
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

/// `DUMP key`: the value in RDB's object encoding, as redis-server 7.0
/// writes it (its `RESTORE` loads it, and ours loads its payloads).
pub fn dump(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    cx.db.get(&args[1]).map_or(Reply::Null, |e| {
        Reply::Bulk(Bytes::from(crate::rdb::dump_payload(e.value)))
    })
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`,
/// checking in redis-server's order, with its error texts.
pub fn restore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    use crate::rdb::{RdbError, load_payload};
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (None, None);
    let mut i = 4;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if eq(&args[i], "REPLACE") {
            replace = true;
        } else if eq(&args[i], "ABSTTL") {
            absttl = true;
        } else if eq(&args[i], "IDLETIME") && has_value && freq.is_none() {
            match super::util::parse_i64(&args[i + 1]) {
                None => return Reply::error(super::util::NOT_INTEGER),
                Some(n) if n < 0 => {
                    return Reply::error("ERR Invalid IDLETIME value, must be >= 0");
                }
                Some(n) => idle = Some(n as u64),
            }
            i += 1;
        } else if eq(&args[i], "FREQ") && has_value && idle.is_none() {
            match super::util::parse_i64(&args[i + 1]) {
                None => return Reply::error(super::util::NOT_INTEGER),
                Some(n) => match u8::try_from(n) {
                    Ok(f) => freq = Some(f),
                    Err(_) => {
                        return Reply::error("ERR Invalid FREQ value, must be >= 0 and <= 255");
                    }
                },
            }
            i += 1;
        } else {
            return Reply::error(SYNTAX);
        }
        i += 1;
    }
    let key = &args[1];
    if !replace && cx.db.peek(key).is_some() {
        return Reply::error("BUSYKEY Target key name already exists.");
    }
    let ttl = match super::util::parse_i64(&args[2]) {
        None => return Reply::error(super::util::NOT_INTEGER),
        Some(n) if n < 0 => return Reply::error("ERR Invalid TTL value, must be >= 0"),
        Some(n) => n as u64,
    };
    let value = match load_payload(&args[3]) {
        Ok(v) => v,
        Err(RdbError::Version(_) | RdbError::Checksum { .. }) => {
            return Reply::error("ERR DUMP payload version or checksum are wrong");
        }
        Err(_) if args[3].len() < 10 => {
            return Reply::error("ERR DUMP payload version or checksum are wrong");
        }
        Err(_) => return Reply::error("ERR Bad data format"),
    };
    let now = cx.db.now_ms();
    let deadline = match ttl {
        0 => None,
        t if absttl => Some(t),
        t => Some(now.saturating_add(t)),
    };
    if deadline.is_some_and(|at| at <= now) {
        // Already expired: nothing is created, and REPLACE still removed the old key.
        if replace {
            cx.db.remove(key);
        }
        return Reply::OK;
    }
    cx.db.set(key.clone(), value, deadline);
    cx.db.set_use(key, idle, freq);
    Reply::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(policy: &str) -> Kind {
        crate::evict::Policy::parse(policy)
            .expect("a policy name")
            .kind()
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
}
