//! String commands.

use bytes::Bytes;

use super::Ctx;
use super::util::{NOT_INTEGER, SYNTAX, eq, int_arg, parse_i64};
use crate::db::{Db, Value, ValueRef, WRONGTYPE};
use crate::frame::Reply;

pub fn get(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    match db.get(&args[1]).map(|e| e.value) {
        Some(ValueRef::Str(s)) => Reply::Bulk(s.to_bytes()),
        Some(_) => Reply::error(WRONGTYPE),
        None => Reply::Null,
    }
}

/// How SET treats the key's deadline.
enum Ttl {
    Clear,
    Keep,
    At(u64),
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL]`
pub fn set(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut nx = false;
    let mut xx = false;
    let mut get = false;
    let mut ttl = Ttl::Clear;
    let mut expiry_given = false;
    let db = &mut *cx.db;
    let now = db.now_ms();
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        if eq(a, "NX") && !xx {
            nx = true;
        } else if eq(a, "XX") && !nx {
            xx = true;
        } else if eq(a, "GET") {
            get = true;
        } else if eq(a, "KEEPTTL") && !expiry_given {
            ttl = Ttl::Keep;
            expiry_given = true;
        } else if (eq(a, "EX") || eq(a, "PX") || eq(a, "EXAT") || eq(a, "PXAT"))
            && !expiry_given
            && i + 1 < args.len()
        {
            let n = match parse_i64(&args[i + 1]) {
                Some(n) => n,
                None => return Reply::error(NOT_INTEGER),
            };
            let at = if n <= 0 {
                None
            } else if eq(a, "EX") {
                n.checked_mul(1000)
                    .and_then(|ms| ms.checked_add(now as i64))
            } else if eq(a, "PX") {
                n.checked_add(now as i64)
            } else if eq(a, "EXAT") {
                n.checked_mul(1000)
            } else {
                Some(n)
            };
            match at {
                Some(at) => ttl = Ttl::At(at as u64),
                None => return Reply::error("ERR invalid expire time in 'set' command"),
            }
            expiry_given = true;
            i += 1;
        } else {
            return Reply::error(SYNTAX);
        }
        i += 1;
    }
    let key = &args[1];
    let old = db
        .peek(key)
        .map(|e| (e.value.as_str().map(|s| s.to_bytes()), e.expires_at()));
    let old_value = match (&old, get) {
        (Some((Some(s), _)), true) => Reply::Bulk(s.clone()),
        (Some((None, _)), true) => return Reply::error(WRONGTYPE),
        (None, true) => Reply::Null,
        _ => Reply::OK,
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return if get { old_value } else { Reply::Null };
    }
    let deadline = match ttl {
        Ttl::Clear => None,
        Ttl::Keep => old.and_then(|(_, at)| at),
        Ttl::At(at) => Some(at),
    };
    db.set(key.clone(), Value::Str(args[2].clone()), deadline);
    old_value
}

fn incr_by(cx: &mut Ctx, key: &Bytes, delta: i64) -> Reply {
    let db = &mut *cx.db;
    let current = match string_at(db, key) {
        Err(e) => return e,
        Ok(None) => 0,
        Ok(Some(s)) => match parse_i64(&s) {
            Some(n) => n,
            None => return Reply::error(NOT_INTEGER),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return Reply::error("ERR increment or decrement would overflow");
    };
    store_int(db, key, next);
    Reply::Integer(next)
}

/// Stores an integer result, keeping the key's deadline as Redis does.
fn store_int(db: &mut Db, key: &Bytes, n: i64) {
    let value = Value::Str(Bytes::from(n.to_string()));
    if !db.replace_value(key, value.clone()) {
        db.set(key.clone(), value, None);
    }
}

pub fn incr(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    incr_by(cx, &args[1], 1)
}

pub fn decr(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    incr_by(cx, &args[1], -1)
}

pub fn incrby(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(n) => incr_by(cx, &args[1], n),
        Err(e) => e,
    }
}

pub fn decrby(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]).map(i64::checked_neg) {
        Ok(Some(n)) => incr_by(cx, &args[1], n),
        Ok(None) => Reply::error("ERR decrement would overflow"),
        Err(e) => e,
    }
}

pub fn mget(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    Reply::Array(
        args[1..]
            .iter()
            // MGET answers nil for keys of other types rather than failing.
            .map(|k| match db.get(k).map(|e| e.value) {
                Some(ValueRef::Str(s)) => Reply::Bulk(s.to_bytes()),
                _ => Reply::Null,
            })
            .collect(),
    )
}

pub fn mset(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() % 2 != 1 {
        return Reply::error("ERR wrong number of arguments for 'mset' command");
    }
    let db = &mut *cx.db;
    for pair in args[1..].chunks(2) {
        db.set(pair[0].clone(), Value::Str(pair[1].clone()), None);
    }
    Reply::OK
}

/// The string at `key`, if any; `WRONGTYPE` for another type.
fn string_at(db: &mut Db, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    match db.peek(key).map(|e| e.value) {
        None => Ok(None),
        Some(ValueRef::Str(s)) => Ok(Some(s.to_bytes())),
        Some(_) => Err(Reply::error(WRONGTYPE)),
    }
}

/// Evaluates to the string at `key` or returns the WRONGTYPE reply.
macro_rules! string_or_return {
    ($db:expr, $key:expr) => {
        match string_at($db, $key) {
            Ok(v) => v,
            Err(e) => return e,
        }
    };
}

/// Largest string a command may build: the configured proto-max-bulk-len,
/// as Redis checks it, so a smaller limit also bounds what one command can
/// make the node allocate.
fn max_string(cx: &Ctx) -> usize {
    usize::try_from(cx.shared.config.proto_max_bulk_len).unwrap_or(usize::MAX)
}

pub fn append(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let max = max_string(cx);
    let db = &mut *cx.db;
    let value = match string_or_return!(db, &args[1]) {
        None => args[2].clone(),
        Some(old) => {
            if old.len() + args[2].len() > max {
                return Reply::error(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                );
            }
            let mut v = Vec::with_capacity(old.len() + args[2].len());
            v.extend_from_slice(&old);
            v.extend_from_slice(&args[2]);
            Bytes::from(v)
        }
    };
    let len = value.len();
    if !db.replace_value(&args[1], Value::Str(value.clone())) {
        db.set(args[1].clone(), Value::Str(value), None);
    }
    Reply::Integer(len as i64)
}

pub fn strlen(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    Reply::Integer(string_or_return!(db, &args[1]).map_or(0, |s| s.len() as i64))
}

/// `GETRANGE key start end`, both inclusive, negative counting from the end.
pub fn getrange(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let db = &mut *cx.db;
    let Some(s) = string_or_return!(db, &args[1]) else {
        return Reply::bulk(Bytes::new());
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::bulk(Bytes::new());
    }
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (norm(start), norm(end).min(len - 1));
    if start > end || len == 0 {
        return Reply::bulk(Bytes::new());
    }
    Reply::Bulk(s.slice(start as usize..=end as usize))
}

pub fn setrange(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let offset = match int_arg(&args[2]) {
        Ok(n) if n < 0 => return Reply::error("ERR offset is out of range"),
        Ok(n) => n as usize,
        Err(e) => return e,
    };
    let patch = &args[3];
    if offset.saturating_add(patch.len()) > max_string(cx) {
        return Reply::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let db = &mut *cx.db;
    let old = string_or_return!(db, &args[1]);
    if patch.is_empty() {
        // Nothing to write: report the length without creating the key.
        return Reply::Integer(old.map_or(0, |s| s.len() as i64));
    }
    let mut v = old.as_deref().unwrap_or_default().to_vec();
    if v.len() < offset + patch.len() {
        v.resize(offset + patch.len(), 0);
    }
    v[offset..offset + patch.len()].copy_from_slice(patch);
    let len = v.len();
    let value = Value::Str(Bytes::from(v));
    if !db.replace_value(&args[1], value.clone()) {
        db.set(args[1].clone(), value, None);
    }
    Reply::Integer(len as i64)
}

pub fn getdel(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    match string_or_return!(db, &args[1]) {
        Some(s) => {
            db.remove(&args[1]);
            Reply::Bulk(s)
        }
        None => Reply::Null,
    }
}

/// `GETEX key [EX s | PX ms | EXAT unix-s | PXAT unix-ms | PERSIST]`
pub fn getex(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    let now = db.now_ms() as i64;
    // None: leave the deadline alone; Some(None): persist; Some(Some(at)): set.
    let change: Option<Option<i64>> = match args.len() {
        2 => None,
        3 if eq(&args[2], "PERSIST") => Some(None),
        4 => {
            let n = match parse_i64(&args[3]) {
                Some(n) => n,
                None => return Reply::error(NOT_INTEGER),
            };
            let at = if eq(&args[2], "EX") {
                n.checked_mul(1000).and_then(|ms| ms.checked_add(now))
            } else if eq(&args[2], "PX") {
                n.checked_add(now)
            } else if eq(&args[2], "EXAT") {
                n.checked_mul(1000)
            } else if eq(&args[2], "PXAT") {
                Some(n)
            } else {
                return Reply::error(SYNTAX);
            };
            match at {
                Some(at) if n > 0 => Some(Some(at)),
                _ => return Reply::error("ERR invalid expire time in 'getex' command"),
            }
        }
        _ => return Reply::error(SYNTAX),
    };
    let Some(value) = string_or_return!(db, &args[1]) else {
        return Reply::Null;
    };
    match change {
        None => {}
        Some(None) => {
            db.set_deadline(&args[1], None);
        }
        Some(Some(at)) if at <= now => {
            db.remove(&args[1]);
        }
        Some(Some(at)) => {
            db.set_deadline(&args[1], Some(at as u64));
        }
    }
    Reply::Bulk(value)
}

pub fn setnx(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    if db.peek(&args[1]).is_some() {
        return Reply::Integer(0);
    }
    db.set(args[1].clone(), Value::Str(args[2].clone()), None);
    Reply::Integer(1)
}

fn set_with_ttl(cx: &mut Ctx, args: &[Bytes], unit_ms: i64, name: &str) -> Reply {
    let n = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let now = db.now_ms() as i64;
    match n.checked_mul(unit_ms).and_then(|ms| ms.checked_add(now)) {
        Some(at) if n > 0 => {
            db.set(
                args[1].clone(),
                Value::Str(args[3].clone()),
                Some(at as u64),
            );
            Reply::OK
        }
        _ => Reply::error(format!("ERR invalid expire time in '{name}' command")),
    }
}

pub fn setex(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_with_ttl(cx, args, 1000, "setex")
}

pub fn psetex(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_with_ttl(cx, args, 1, "psetex")
}

pub fn msetnx(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() % 2 != 1 {
        return Reply::error("ERR wrong number of arguments for 'msetnx' command");
    }
    let db = &mut *cx.db;
    if args[1..].chunks(2).any(|pair| db.peek(&pair[0]).is_some()) {
        return Reply::Integer(0);
    }
    for pair in args[1..].chunks(2) {
        db.set(pair[0].clone(), Value::Str(pair[1].clone()), None);
    }
    Reply::Integer(1)
}

/// Parses a float as Redis does for INCRBYFLOAT: no spaces, no NaN or infinity.
pub(super) fn parse_float(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty()
        || s.len() > 5000
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    s.parse().ok()
}

pub fn incrbyfloat(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(incr) = parse_float(&args[2]) else {
        return Reply::error("ERR value is not a valid float");
    };
    let db = &mut *cx.db;
    let current = match string_or_return!(db, &args[1]) {
        None => 0.0,
        Some(s) => match parse_float(&s) {
            Some(f) => f,
            None => return Reply::error("ERR value is not a valid float"),
        },
    };
    let next = current + incr;
    if !next.is_finite() {
        return Reply::error("ERR increment would produce NaN or Infinity");
    }
    let text = Bytes::from(crate::frame::format_double(next));
    if !db.replace_value(&args[1], Value::Str(text.clone())) {
        db.set(args[1].clone(), Value::Str(text.clone()), None);
    }
    Reply::Bulk(text)
}

/// `GETSET key value`: what `SET key value GET` does (the deadline goes too).
pub fn getset(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    set(
        cx,
        &[
            Bytes::from_static(b"SET"),
            args[1].clone(),
            args[2].clone(),
            Bytes::from_static(b"GET"),
        ],
    )
}
