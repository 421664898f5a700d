//! Hash commands.

use bytes::Bytes;

use super::Ctx;
use super::args::{Args, parse_float};
use super::util::{MAX_RANDOM_REPEATS, eq, int_arg, parse_i64};
use crate::db::Db;
use crate::frame::{Protocol, Reply, format_double};
use crate::types::Hash;

fn read<R>(db: &mut Db, key: &[u8], f: impl FnOnce(&Hash) -> R) -> Result<Option<R>, Reply> {
    db.read(key, f).map_err(Reply::error)
}

fn write<R>(db: &mut Db, key: &Bytes, f: impl FnOnce(&mut Hash) -> R) -> Result<R, Reply> {
    db.write(key, f).map_err(Reply::error)
}

fn reply<T>(r: Result<T, Reply>, ok: impl FnOnce(T) -> Reply) -> Reply {
    r.map_or_else(|e| e, ok)
}

/// `HSET key field value [field value ...]` (and `HMSET`, which answers OK).
pub fn hset(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if !args.len().is_multiple_of(2) {
        return Reply::error(format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(&args[0]).to_lowercase()
        ));
    }
    let db = &mut *cx.db;
    let added = write(db, &args[1], |h| {
        args[2..]
            .chunks(2)
            .filter(|p| h.insert(p[0].clone(), p[1].clone()))
            .count()
    });
    if eq(&args[0], "HMSET") {
        reply(added, |_| Reply::OK)
    } else {
        reply(added, |n| Reply::Integer(n as i64))
    }
}

pub fn hsetnx(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    match read(db, &args[1], |h| h.get(&args[2]).is_some()) {
        Err(e) => return e,
        Ok(Some(true)) => return Reply::Integer(0),
        Ok(_) => {}
    }
    reply(
        write(db, &args[1], |h| h.insert(args[2].clone(), args[3].clone())),
        |_| Reply::Integer(1),
    )
}

pub fn hget(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    reply(read(db, &args[1], |h| h.get(&args[2]).cloned()), |v| {
        v.flatten().map_or(Reply::Null, Reply::Bulk)
    })
}

pub fn hmget(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    let fields = &args[2..];
    reply(
        read(db, &args[1], |h| {
            fields.iter().map(|f| h.get(f).cloned()).collect::<Vec<_>>()
        }),
        |v| {
            let values = v.unwrap_or_else(|| vec![None; fields.len()]);
            Reply::Array(
                values
                    .into_iter()
                    .map(|v| v.map_or(Reply::Null, Reply::Bulk))
                    .collect(),
            )
        },
    )
}

pub fn hdel(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    match read(db, &args[1], |_| ()) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(())) => reply(
            write(db, &args[1], |h| {
                args[2..].iter().filter(|f| h.remove(f)).count()
            }),
            |n| Reply::Integer(n as i64),
        ),
    }
}

pub fn hlen(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    reply(read(db, &args[1], Hash::len), |n| {
        Reply::Integer(n.unwrap_or(0) as i64)
    })
}

pub fn hexists(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    reply(read(db, &args[1], |h| h.get(&args[2]).is_some()), |b| {
        Reply::Integer(i64::from(b.unwrap_or(false)))
    })
}

pub fn hstrlen(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    reply(
        read(db, &args[1], |h| h.get(&args[2]).map_or(0, Bytes::len)),
        |n| Reply::Integer(n.unwrap_or(0) as i64),
    )
}

/// Fields, values or both, in the hash's iteration order.
fn listing(cx: &mut Ctx, key: &[u8], fields: bool, values: bool) -> Reply {
    let db = &mut *cx.db;
    reply(
        read(db, key, |h| {
            if fields && values {
                Reply::Map(
                    h.iter()
                        .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                        .collect(),
                )
            } else {
                Reply::Array(
                    h.iter()
                        .map(|(f, v)| Reply::Bulk(if fields { f.clone() } else { v.clone() }))
                        .collect(),
                )
            }
        }),
        |r| {
            r.unwrap_or(if fields && values {
                Reply::Map(vec![])
            } else {
                Reply::Array(vec![])
            })
        },
    )
}

pub fn hgetall(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    listing(cx, &args[1], true, true)
}

pub fn hkeys(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    listing(cx, &args[1], true, false)
}

pub fn hvals(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    listing(cx, &args[1], false, true)
}

pub fn hincrby(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let delta = match int_arg(&args[3]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let current = match read(db, &args[1], |h| h.get(&args[2]).cloned()) {
        Err(e) => return e,
        Ok(v) => v.flatten(),
    };
    let current = match current {
        None => 0,
        Some(v) => match parse_i64(&v) {
            Some(n) => n,
            None => return Reply::error("ERR hash value is not an integer"),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return Reply::error("ERR increment or decrement would overflow");
    };
    reply(
        write(db, &args[1], |h| {
            h.insert(args[2].clone(), Bytes::from(next.to_string()))
        }),
        |_| Reply::Integer(next),
    )
}

pub fn hincrbyfloat(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let delta = match Args::new(args, 3).next_float() {
        Ok(d) => d,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let current = match read(db, &args[1], |h| h.get(&args[2]).cloned()) {
        Err(e) => return e,
        Ok(v) => v.flatten(),
    };
    let current = match current {
        None => 0.0,
        Some(v) => match parse_float(&v) {
            Some(f) => f,
            None => return Reply::error("ERR hash value is not a float"),
        },
    };
    let next = current + delta;
    if !next.is_finite() {
        return Reply::error("ERR increment would produce NaN or Infinity");
    }
    let text = Bytes::from(format_double(next));
    reply(
        write(db, &args[1], |h| h.insert(args[2].clone(), text.clone())),
        |_| Reply::Bulk(text),
    )
}

/// `HRANDFIELD key [count [WITHVALUES]]`
pub fn hrandfield(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let client = &mut *cx.client;
    use rand::seq::IteratorRandom as _;
    let mut a = Args::new(args, 2);
    let count = match a.remaining() {
        [] => None,
        _ => match a.next_int() {
            Ok(n) => Some(n),
            Err(e) => return e,
        },
    };
    let with_values = a.eat("WITHVALUES");
    if let Err(e) = a.finish() {
        return e;
    }
    if count.is_some_and(|n| {
        n.unsigned_abs() > (i64::MAX / 2) as u64 || (n < 0 && n.unsigned_abs() > MAX_RANDOM_REPEATS)
    }) {
        return Reply::error("ERR value is out of range");
    }
    let db = &mut *cx.db;
    let mut rng = rand::rng();
    let picked = read(db, &args[1], |h| {
        let pairs: Vec<(Bytes, Bytes)> = match count {
            None | Some(0..) => {
                // At most the whole hash: `choose_multiple` reserves room
                // for as many fields as asked before it picks any.
                let n = count.map_or(1, |n| n as usize).min(h.len());
                h.iter()
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .choose_multiple(&mut rng, n)
            }
            // A negative count allows repeats and returns exactly |count| fields.
            Some(n) => {
                let all: Vec<_> = h.iter().collect();
                (0..n.unsigned_abs())
                    .filter_map(|_| {
                        all.get(rand::Rng::random_range(&mut rng, 0..all.len()))
                            .map(|(f, v)| ((*f).clone(), (*v).clone()))
                    })
                    .collect()
            }
        };
        pairs
    });
    let picked = match picked {
        Err(e) => return e,
        Ok(p) => p,
    };
    match (count, picked) {
        (None, None) => Reply::Null,
        (None, Some(p)) => p
            .into_iter()
            .next()
            .map_or(Reply::Null, |(f, _)| Reply::Bulk(f)),
        (Some(_), p) => {
            let p = p.unwrap_or_default();
            if with_values && client.proto == Protocol::Resp3 {
                Reply::Array(
                    p.into_iter()
                        .map(|(f, v)| Reply::Array(vec![Reply::Bulk(f), Reply::Bulk(v)]))
                        .collect(),
                )
            } else if with_values {
                // RESP2 has no pairs: fields and values alternate.
                Reply::Array(
                    p.into_iter()
                        .flat_map(|(f, v)| [Reply::Bulk(f), Reply::Bulk(v)])
                        .collect(),
                )
            } else {
                Reply::Array(p.into_iter().map(|(f, _)| Reply::Bulk(f)).collect())
            }
        }
    }
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: fields and values.
pub fn hscan(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    super::scan::scan_collection(
        cx,
        args,
        |h: &Hash| (h.iter(), h.len()),
        |f, v| vec![Reply::Bulk(f.clone()), Reply::Bulk(v.clone())],
    )
}
