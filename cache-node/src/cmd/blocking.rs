//! Blocking commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP.
//!
//! Each first tries what its non-blocking form would do. When every key is
//! empty it sets the client's [`Wait`]: the connection registers with the
//! keyspace for those keys and runs the command again when one changes,
//! or answers the timeout reply. Inside `EXEC` nothing blocks: the timeout
//! reply comes at once, as in Redis.

use bytes::Bytes;

use super::Ctx;
use super::args::{left_right, min_max, mpop};
use super::lists::move_element;
use super::util::SYNTAX;
use crate::client::Wait;
use crate::db::Db;
use crate::frame::Reply;
use crate::types::{End, List, SortedSet};

/// Parses a timeout in seconds (fractions allowed; 0 waits for ever) into
/// a deadline.
pub(super) fn deadline(arg: &[u8]) -> Result<Option<tokio::time::Instant>, Reply> {
    let secs: f64 = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|f: &f64| f.is_finite())
        .ok_or_else(|| Reply::error("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    if secs == 0.0 {
        return Ok(None);
    }
    let wait = std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| Reply::error("ERR timeout is out of range"))?;
    Ok(Some(
        tokio::time::Instant::now()
            .checked_add(wait)
            .ok_or_else(|| Reply::error("ERR timeout is out of range"))?,
    ))
}

/// Makes the client wait for `keys` (or, inside `EXEC`, answers
/// `on_timeout` at once).
pub(super) fn block(
    cx: &mut Ctx,
    keys: &[Bytes],
    deadline: Option<tokio::time::Instant>,
    on_timeout: Reply,
) -> Reply {
    if cx.client.in_exec {
        return on_timeout;
    }
    cx.client.wait = Some(Wait::Keys {
        keys: keys.to_vec(),
        deadline,
        on_timeout: on_timeout.clone(),
    });
    on_timeout
}

/// The first of `keys` holding a non-empty collection of type `T`, or the
/// WRONGTYPE error of the first key holding another type before it.
fn first_ready<T: crate::db::Collection>(
    db: &mut Db,
    keys: &[Bytes],
) -> Result<Option<Bytes>, Reply> {
    for key in keys {
        match db.read::<T, _>(key, |_| ()) {
            Err(e) => return Err(Reply::error(e)),
            Ok(Some(())) => return Ok(Some(key.clone())),
            Ok(None) => {}
        }
    }
    Ok(None)
}

fn bpop(cx: &mut Ctx, args: &[Bytes], end: End) -> Reply {
    let (keys, timeout) = args[1..].split_at(args.len() - 2);
    let deadline = match deadline(&timeout[0]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    match first_ready::<List>(cx.db, keys) {
        Err(e) => e,
        Ok(Some(key)) => {
            let item = cx.db.write::<List, _>(&key, |l| l.pop(end)).ok().flatten();
            match item {
                Some(item) => Reply::Array(vec![Reply::Bulk(key), Reply::Bulk(item)]),
                None => Reply::NullArray,
            }
        }
        Ok(None) => block(cx, keys, deadline, Reply::NullArray),
    }
}

/// `BLPOP key [key ...] timeout`
pub fn blpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bpop(cx, args, End::Left)
}

/// `BRPOP key [key ...] timeout`
pub fn brpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bpop(cx, args, End::Right)
}

fn bmove(cx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End, timeout: &[u8]) -> Reply {
    let deadline = match deadline(timeout) {
        Ok(d) => d,
        Err(e) => return e,
    };
    match first_ready::<List>(cx.db, std::slice::from_ref(src)) {
        Err(e) => e,
        Ok(Some(_)) => move_element(cx.db, src, dst, from, to),
        Ok(None) => block(cx, std::slice::from_ref(src), deadline, Reply::Null),
    }
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`
pub fn blmove(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (Some(from), Some(to)) = (left_right(&args[3]), left_right(&args[4])) else {
        return Reply::error(SYNTAX);
    };
    bmove(cx, &args[1], &args[2], from, to, &args[5])
}

/// `BRPOPLPUSH source destination timeout`
pub fn brpoplpush(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bmove(cx, &args[1], &args[2], End::Right, End::Left, &args[3])
}

fn bzpop(cx: &mut Ctx, args: &[Bytes], max: bool) -> Reply {
    let (keys, timeout) = args[1..].split_at(args.len() - 2);
    let deadline = match deadline(&timeout[0]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    match first_ready::<SortedSet>(cx.db, keys) {
        Err(e) => e,
        Ok(Some(key)) => {
            let popped = cx
                .db
                .write::<SortedSet, _>(&key, |z| {
                    let top = if max {
                        z.iter().next_back()
                    } else {
                        z.iter().next()
                    };
                    let (member, score) = top.map(|(m, s)| (m.clone(), s))?;
                    z.remove(&member);
                    Some((member, score))
                })
                .ok()
                .flatten();
            match popped {
                Some((member, score)) => Reply::Array(vec![
                    Reply::Bulk(key),
                    Reply::Bulk(member),
                    Reply::Double(score),
                ]),
                None => Reply::NullArray,
            }
        }
        Ok(None) => block(cx, keys, deadline, Reply::NullArray),
    }
}

/// `BZPOPMIN key [key ...] timeout`
pub fn bzpopmin(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bzpop(cx, args, false)
}

/// `BZPOPMAX key [key ...] timeout`
pub fn bzpopmax(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bzpop(cx, args, true)
}

/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]` and
/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`: the
/// arguments are checked before the timeout, as in Redis.
fn bmpop(cx: &mut Ctx, args: &[Bytes], zset: bool) -> Reply {
    let keys = if zset {
        mpop(args, 2, min_max).map(|(k, _, _)| k.to_vec())
    } else {
        mpop(args, 2, left_right).map(|(k, _, _)| k.to_vec())
    };
    let keys = match keys {
        Ok(keys) => keys,
        Err(e) => return e,
    };
    let deadline = match deadline(&args[1]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let reply = if zset {
        super::zsets::zmpop_at(cx, args, 2)
    } else {
        super::lists::lmpop_at(cx, args, 2)
    };
    if reply != Reply::NullArray {
        return reply;
    }
    block(cx, &keys, deadline, Reply::NullArray)
}

pub fn blmpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bmpop(cx, args, false)
}

pub fn bzmpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bmpop(cx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(deadline(b"0").unwrap(), None);
        assert!(deadline(b"0.5").unwrap().is_some());
        assert!(deadline(b"-1").is_err());
        assert!(deadline(b"abc").is_err());
        assert!(deadline(b"inf").is_err());
        assert!(deadline(b"nan").is_err());
        assert!(deadline(b"1e300").is_err());
    }
}
