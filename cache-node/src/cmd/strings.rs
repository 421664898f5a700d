//! String commands.

use bytes::Bytes;

use super::util::{NOT_INTEGER, SYNTAX, eq, int_arg, parse_i64};
use crate::db::{Db, Value};
use crate::frame::Reply;
use crate::server::{Client, Shared};

pub fn get(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    match db.get(&args[1]) {
        Some(e) => match &e.value {
            Value::Str(s) => Reply::Bulk(s.clone()),
        },
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
pub fn set(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut nx = false;
    let mut xx = false;
    let mut get = false;
    let mut ttl = Ttl::Clear;
    let mut expiry_given = false;
    let mut db = shared.db.lock().expect("db lock");
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
    let old = db.peek(key).cloned();
    let old_value = match (&old, get) {
        (Some(e), true) => match &e.value {
            Value::Str(s) => Reply::Bulk(s.clone()),
        },
        (None, true) => Reply::Null,
        _ => Reply::OK,
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return if get { old_value } else { Reply::Null };
    }
    let deadline = match ttl {
        Ttl::Clear => None,
        Ttl::Keep => old.and_then(|e| e.expires_at),
        Ttl::At(at) => Some(at),
    };
    db.set(key.clone(), Value::Str(args[2].clone()), deadline);
    old_value
}

fn incr_by(shared: &Shared, key: &Bytes, delta: i64) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    let current = match db.peek(key) {
        None => 0,
        Some(e) => match &e.value {
            Value::Str(s) => match parse_i64(s) {
                Some(n) => n,
                None => return Reply::error(NOT_INTEGER),
            },
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return Reply::error("ERR increment or decrement would overflow");
    };
    store_int(&mut db, key, next);
    Reply::Integer(next)
}

/// Stores an integer result, keeping the key's deadline as Redis does.
fn store_int(db: &mut Db, key: &Bytes, n: i64) {
    let value = Value::Str(Bytes::from(n.to_string()));
    if !db.replace_value(key, value.clone()) {
        db.set(key.clone(), value, None);
    }
}

pub fn incr(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    incr_by(shared, &args[1], 1)
}

pub fn decr(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    incr_by(shared, &args[1], -1)
}

pub fn incrby(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]) {
        Ok(n) => incr_by(shared, &args[1], n),
        Err(e) => e,
    }
}

pub fn decrby(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match int_arg(&args[2]).map(i64::checked_neg) {
        Ok(Some(n)) => incr_by(shared, &args[1], n),
        Ok(None) => Reply::error("ERR decrement would overflow"),
        Err(e) => e,
    }
}

pub fn mget(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    Reply::Array(
        args[1..]
            .iter()
            .map(|k| match db.get(k) {
                Some(e) => match &e.value {
                    Value::Str(s) => Reply::Bulk(s.clone()),
                },
                None => Reply::Null,
            })
            .collect(),
    )
}

pub fn mset(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    if args.len() % 2 != 1 {
        return Reply::error("ERR wrong number of arguments for 'mset' command");
    }
    let mut db = shared.db.lock().expect("db lock");
    for pair in args[1..].chunks(2) {
        db.set(pair[0].clone(), Value::Str(pair[1].clone()), None);
    }
    Reply::OK
}
