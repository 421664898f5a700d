//! Generic keyspace commands: DEL, EXISTS, expiry, DBSIZE, FLUSHALL.

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

/// `EXPIRE|PEXPIRE key n [NX | XX | GT | LT]`; `unit_ms` is 1000 or 1.
fn expire_generic(shared: &Shared, args: &[Bytes], unit_ms: i64, name: &str) -> Reply {
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
    let Some(at) = n.checked_mul(unit_ms).and_then(|ms| ms.checked_add(now)) else {
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
    expire_generic(shared, args, 1000, "expire")
}

pub fn pexpire(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    expire_generic(shared, args, 1, "pexpire")
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
