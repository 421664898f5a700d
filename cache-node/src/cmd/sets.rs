//! Set commands.

use bytes::Bytes;

use super::Ctx;
use super::util::{MAX_RANDOM_REPEATS, int_arg};
use crate::db::{Db, Value};
use crate::frame::Reply;
use crate::types::Set;

fn read<R>(db: &mut Db, key: &[u8], f: impl FnOnce(&Set) -> R) -> Result<Option<R>, Reply> {
    db.read(key, f).map_err(Reply::error)
}

fn write<R>(db: &mut Db, key: &Bytes, f: impl FnOnce(&mut Set) -> R) -> Result<R, Reply> {
    db.write(key, f).map_err(Reply::error)
}

fn members(s: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Set(s.into_iter().map(Reply::Bulk).collect())
}

pub fn sadd(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    write(db, &args[1], |s| {
        args[2..].iter().filter(|m| s.insert((*m).clone())).count()
    })
    .map_or_else(|e| e, |n| Reply::Integer(n as i64))
}

pub fn srem(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    match read(db, &args[1], |_| ()) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(())) => write(db, &args[1], |s| {
            args[2..].iter().filter(|m| s.remove(m)).count()
        })
        .map_or_else(|e| e, |n| Reply::Integer(n as i64)),
    }
}

pub fn smembers(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    read(db, &args[1], |s| s.iter().cloned().collect::<Vec<_>>())
        .map_or_else(|e| e, |m| members(m.unwrap_or_default()))
}

pub fn sismember(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    read(db, &args[1], |s| s.contains(&args[2]))
        .map_or_else(|e| e, |b| Reply::Integer(i64::from(b.unwrap_or(false))))
}

pub fn smismember(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    let asked = &args[2..];
    read(db, &args[1], |s| {
        asked.iter().map(|m| s.contains(m)).collect::<Vec<_>>()
    })
    .map_or_else(
        |e| e,
        |hits| {
            Reply::Array(
                hits.unwrap_or_else(|| vec![false; asked.len()])
                    .into_iter()
                    .map(|b| Reply::Integer(i64::from(b)))
                    .collect(),
            )
        },
    )
}

pub fn scard(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    read(db, &args[1], Set::len).map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

/// Parses the optional count of SPOP and SRANDMEMBER.
fn count_arg(args: &[Bytes], negative_ok: bool) -> Result<Option<i64>, Reply> {
    match args.get(2) {
        None => Ok(None),
        Some(a) => match int_arg(a) {
            Ok(n) if n < 0 && !negative_ok => {
                Err(Reply::error("ERR value is out of range, must be positive"))
            }
            Ok(n) if n < 0 && n.unsigned_abs() > MAX_RANDOM_REPEATS => {
                Err(Reply::error("ERR value is out of range"))
            }
            Ok(n) => Ok(Some(n)),
            Err(e) => Err(e),
        },
    }
}

/// A non-negative count, capped at the collection's size: `choose_multiple`
/// reserves room for as many members as asked before it picks any.
fn at_most(count: i64, len: usize) -> usize {
    usize::try_from(count).map_or(0, |n| n.min(len))
}

pub fn spop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    use rand::seq::IteratorRandom as _;
    if args.len() > 3 {
        return Reply::error(super::util::SYNTAX);
    }
    let count = match count_arg(args, false) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let picked = match read(db, &args[1], |s| {
        s.iter()
            .cloned()
            .choose_multiple(&mut rand::rng(), at_most(count.unwrap_or(1), s.len()))
    }) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::Set(vec![])
            } else {
                Reply::Null
            };
        }
        Ok(Some(p)) => p,
    };
    let _ = write(db, &args[1], |s| {
        picked.iter().for_each(|m| {
            s.remove(m);
        })
    });
    match count {
        None => picked.into_iter().next().map_or(Reply::Null, Reply::Bulk),
        Some(_) => members(picked),
    }
}

pub fn srandmember(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    use rand::seq::IteratorRandom as _;
    if args.len() > 3 {
        return Reply::error(super::util::SYNTAX);
    }
    let count = match count_arg(args, true) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let mut rng = rand::rng();
    let picked = read(db, &args[1], |s| match count {
        None | Some(0..) => s
            .iter()
            .cloned()
            .choose_multiple(&mut rng, at_most(count.unwrap_or(1), s.len())),
        // A negative count allows repeats and returns exactly |count|
        // members (at most MAX_RANDOM_REPEATS, checked by `count_arg`).
        Some(n) => {
            let all: Vec<_> = s.iter().collect();
            (0..n.unsigned_abs())
                .map(|_| all[rand::Rng::random_range(&mut rng, 0..all.len())].clone())
                .collect()
        }
    });
    match (picked, count) {
        (Err(e), _) => e,
        (Ok(None), None) => Reply::Null,
        (Ok(p), None) => p
            .unwrap_or_default()
            .into_iter()
            .next()
            .map_or(Reply::Null, Reply::Bulk),
        (Ok(p), Some(_)) => {
            Reply::Array(p.unwrap_or_default().into_iter().map(Reply::Bulk).collect())
        }
    }
}

/// The sets at `keys` (missing keys are empty sets).
fn load(db: &mut Db, keys: &[Bytes]) -> Result<Vec<Set>, Reply> {
    keys.iter()
        .map(|k| read(db, k, Set::clone).map(Option::unwrap_or_default))
        .collect()
}

#[derive(Clone, Copy)]
enum Op {
    Inter,
    Union,
    Diff,
}

fn combine(sets: Vec<Set>, op: Op) -> Set {
    let mut iter = sets.into_iter();
    let Some(first) = iter.next() else {
        return Set::default();
    };
    iter.fold(first, |acc, s| match op {
        Op::Inter => acc.iter().filter(|m| s.contains(m)).cloned().collect(),
        Op::Union => acc.iter().chain(s.iter()).cloned().collect(),
        Op::Diff => acc.iter().filter(|m| !s.contains(m)).cloned().collect(),
    })
}

fn algebra(cx: &mut Ctx, args: &[Bytes], op: Op) -> Reply {
    let db = &mut *cx.db;
    load(db, &args[1..]).map_or_else(
        |e| e,
        |sets| members(combine(sets, op).iter().cloned().collect::<Vec<_>>()),
    )
}

fn algebra_store(cx: &mut Ctx, args: &[Bytes], op: Op) -> Reply {
    let db = &mut *cx.db;
    let result = match load(db, &args[2..]) {
        Ok(sets) => combine(sets, op),
        Err(e) => return e,
    };
    let n = result.len();
    db.remove(&args[1]);
    if n > 0 {
        db.set(args[1].clone(), Value::Set(result), None);
    }
    Reply::Integer(n as i64)
}

pub fn sinter(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra(cx, args, Op::Inter)
}

pub fn sunion(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra(cx, args, Op::Union)
}

pub fn sdiff(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra(cx, args, Op::Diff)
}

pub fn sinterstore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_store(cx, args, Op::Inter)
}

pub fn sunionstore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_store(cx, args, Op::Union)
}

pub fn sdiffstore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_store(cx, args, Op::Diff)
}

/// `SMOVE source destination member`
pub fn smove(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    let present = match (
        read(db, &args[1], |s| s.contains(&args[3])),
        read(db, &args[2], |_| ()),
    ) {
        (Err(e), _) | (_, Err(e)) => return e,
        (Ok(p), _) => p.unwrap_or(false),
    };
    if !present {
        return Reply::Integer(0);
    }
    let _ = write(db, &args[1], |s| s.remove(&args[3]));
    let _ = write(db, &args[2], |s| s.insert(args[3].clone()));
    Reply::Integer(1)
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`: the size of the
/// intersection, counting stopped at `limit` (0 = no limit).
pub fn sintercard(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let numkeys = match super::util::parse_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Reply::error("ERR numkeys should be greater than 0"),
    };
    if numkeys > (args.len() - 2) as u64 {
        return Reply::error("ERR Number of keys can't be greater than number of args");
    }
    let keys = &args[2..2 + numkeys as usize];
    let mut limit = 0u64;
    let mut rest = args[2 + keys.len()..].iter();
    while let Some(opt) = rest.next() {
        match rest.next() {
            Some(value) if super::util::eq(opt, "LIMIT") => {
                limit = match super::util::parse_i64(value) {
                    Some(n) if n >= 0 => n as u64,
                    _ => return Reply::error("ERR LIMIT can't be negative"),
                }
            }
            _ => return Reply::error(super::util::SYNTAX),
        }
    }
    // Repeating a key changes no intersection: load each one once.
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<Bytes> = keys.iter().filter(|k| seen.insert(*k)).cloned().collect();
    let db = &mut *cx.db;
    let mut sets = match load(db, &distinct) {
        Ok(sets) => sets,
        Err(e) => return e,
    };
    // Walk the smallest set, probing the others.
    sets.sort_by_key(Set::len);
    let Some((smallest, others)) = sets.split_first() else {
        return Reply::Integer(0);
    };
    let mut n = 0u64;
    for m in smallest.iter() {
        if others.iter().all(|s| s.contains(m)) {
            n += 1;
            if n == limit {
                break;
            }
        }
    }
    Reply::Integer(n as i64)
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`.
pub fn sscan(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    super::scan::scan_collection(
        cx,
        args,
        |s: &Set| (s.iter().map(|m| (m, ())), s.len()),
        |m, ()| vec![Reply::Bulk(m.clone())],
    )
}
