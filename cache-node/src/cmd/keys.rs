//! Generic keyspace commands: DEL, EXISTS, TYPE, RENAME, COPY, KEYS, expiry,
//! DBSIZE, FLUSHALL.

use bytes::Bytes;

use super::util::{SYNTAX, eq, int_arg};
use crate::frame::Reply;
use crate::server::{Client, Shared};

pub fn del(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    Reply::Integer(args[1..].iter().filter(|k| db.remove(k)).count() as i64)
}

pub fn exists(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
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
fn set_expiry(shared: &Shared, args: &[Bytes], how: Deadline, name: &str) -> Reply {
    let n = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
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
    let mut db = shared.db.lock().expect("db lock");
    let now = db.now_ms() as i64;
    let at = match how {
        Deadline::Relative(unit) => n.checked_mul(unit).and_then(|ms| ms.checked_add(now)),
        Deadline::Absolute(unit) => n.checked_mul(unit),
    };
    let Some(at) = at else {
        return Reply::error(format!("ERR invalid expire time in '{name}' command"));
    };
    let Some(current) = db.peek(&args[1]).map(|e| e.expires_at) else {
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

pub fn expire(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    set_expiry(shared, args, Deadline::Relative(1000), "expire")
}

pub fn pexpire(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    set_expiry(shared, args, Deadline::Relative(1), "pexpire")
}

/// Remaining time to live in ms; -2 for a missing key, -1 for no deadline.
fn ttl_ms(shared: &Shared, key: &[u8]) -> i64 {
    let mut db = shared.db.lock().expect("db lock");
    let now = db.now_ms();
    match db.peek(key) {
        None => -2,
        Some(e) => e.expires_at.map_or(-1, |at| at.saturating_sub(now) as i64),
    }
}

pub fn ttl(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let ms = ttl_ms(shared, &args[1]);
    // Redis rounds to the nearest second.
    Reply::Integer(if ms < 0 { ms } else { (ms + 500) / 1000 })
}

pub fn pttl(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    Reply::Integer(ttl_ms(shared, &args[1]))
}

pub fn persist(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    let had_deadline = db.peek(&args[1]).is_some_and(|e| e.expires_at.is_some());
    if had_deadline {
        db.set_deadline(&args[1], None);
    }
    Reply::Integer(i64::from(had_deadline))
}

pub fn dbsize(shared: &Shared, _: &mut Client, _: &[Bytes]) -> Reply {
    Reply::Integer(shared.db.lock().expect("db lock").len() as i64)
}

/// `FLUSHALL [ASYNC | SYNC]`; both run synchronously for now.
pub fn flushall(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match args.get(1) {
        None => {}
        Some(a) if eq(a, "ASYNC") || eq(a, "SYNC") => {}
        Some(_) => return Reply::error(SYNTAX),
    }
    if args.len() > 2 {
        return Reply::error(SYNTAX);
    }
    shared.db.lock().expect("db lock").flush();
    Reply::OK
}

/// `EXPIREAT|PEXPIREAT key unix-time [NX | XX | GT | LT]`.
pub fn expireat(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    set_expiry(shared, args, Deadline::Absolute(1000), "expireat")
}

pub fn pexpireat(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    set_expiry(shared, args, Deadline::Absolute(1), "pexpireat")
}

/// The deadline as Unix time; -2 for a missing key, -1 for no deadline.
fn expiretime_ms(shared: &Shared, key: &[u8]) -> i64 {
    let mut db = shared.db.lock().expect("db lock");
    match db.peek(key) {
        None => -2,
        Some(e) => e.expires_at.map_or(-1, |at| at as i64),
    }
}

pub fn expiretime(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let ms = expiretime_ms(shared, &args[1]);
    Reply::Integer(if ms < 0 { ms } else { ms / 1000 })
}

pub fn pexpiretime(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    Reply::Integer(expiretime_ms(shared, &args[1]))
}

pub fn type_(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    Reply::Simple(db.peek(&args[1]).map_or("none", |e| e.value.type_name()))
}

pub fn touch(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    Reply::Integer(args[1..].iter().filter(|k| db.peek(k).is_some()).count() as i64)
}

fn rename_generic(shared: &Shared, args: &[Bytes], only_if_new: bool) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
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

pub fn rename(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    rename_generic(shared, args, false)
}

pub fn renamenx(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    rename_generic(shared, args, true)
}

/// `COPY source destination [DB 0] [REPLACE]`
pub fn copy(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
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
    let mut db = shared.db.lock().expect("db lock");
    if args[1] == args[2] {
        return Reply::error("ERR source and destination objects are the same");
    }
    let Some(src) = db.peek(&args[1]).cloned() else {
        return Reply::Integer(0);
    };
    if !replace && db.peek(&args[2]).is_some() {
        return Reply::Integer(0);
    }
    db.set(args[2].clone(), src.value, src.expires_at);
    Reply::Integer(1)
}

pub fn keys(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let db = shared.db.lock().expect("db lock");
    let pattern = &args[1];
    let all = &pattern[..] == b"*";
    Reply::Array(
        db.keys_where(|k| all || crate::glob::matches(pattern, k))
            .into_iter()
            .map(Reply::Bulk)
            .collect(),
    )
}

pub fn randomkey(shared: &Shared, _: &mut Client, _: &[Bytes]) -> Reply {
    shared
        .db
        .lock()
        .expect("db lock")
        .random_key()
        .map_or(Reply::Null, Reply::Bulk)
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`; see [`crate::db::Db::scan`]
/// for what the cursor is.
pub fn scan(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let Some(cursor) = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::error("ERR invalid cursor");
    };
    let (mut pattern, mut count, mut type_) = (None, 10usize, None);
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Reply::error(SYNTAX);
        };
        if eq(&args[i], "MATCH") {
            pattern = Some(value.clone());
        } else if eq(&args[i], "COUNT") {
            match super::util::parse_i64(value) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => return Reply::error(SYNTAX),
                None => return Reply::error(super::util::NOT_INTEGER),
            }
        } else if eq(&args[i], "TYPE") {
            type_ = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        } else {
            return Reply::error(SYNTAX);
        }
        i += 2;
    }
    let db = shared.db.lock().expect("db lock");
    let (next, keys) = db.scan(cursor, count, |k, v| {
        pattern.as_ref().is_none_or(|p| crate::glob::matches(p, k))
            && type_.as_deref().is_none_or(|t| t == v.type_name())
    });
    Reply::Array(vec![
        Reply::text(&next.to_string()),
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
    ])
}
