//! Set commands.

use bytes::Bytes;

use super::util::int_arg;
use crate::db::{Db, Value};
use crate::frame::Reply;
use crate::server::{Client, Shared};
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

pub fn sadd(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    write(&mut db, &args[1], |s| {
        args[2..].iter().filter(|m| s.insert((*m).clone())).count()
    })
    .map_or_else(|e| e, |n| Reply::Integer(n as i64))
}

pub fn srem(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    match read(&mut db, &args[1], |_| ()) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(())) => write(&mut db, &args[1], |s| {
            args[2..].iter().filter(|m| s.remove(m)).count()
        })
        .map_or_else(|e| e, |n| Reply::Integer(n as i64)),
    }
}

pub fn smembers(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    read(&mut db, &args[1], |s| s.iter().cloned().collect::<Vec<_>>())
        .map_or_else(|e| e, |m| members(m.unwrap_or_default()))
}

pub fn sismember(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    read(&mut db, &args[1], |s| s.contains(&args[2]))
        .map_or_else(|e| e, |b| Reply::Integer(i64::from(b.unwrap_or(false))))
}

pub fn smismember(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    let asked = &args[2..];
    read(&mut db, &args[1], |s| {
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

pub fn scard(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    read(&mut db, &args[1], Set::len).map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

/// Parses the optional count of SPOP and SRANDMEMBER.
fn count_arg(args: &[Bytes], negative_ok: bool) -> Result<Option<i64>, Reply> {
    match args.get(2) {
        None => Ok(None),
        Some(a) => match int_arg(a) {
            Ok(n) if n < 0 && !negative_ok => {
                Err(Reply::error("ERR value is out of range, must be positive"))
            }
            Ok(n) => Ok(Some(n)),
            Err(e) => Err(e),
        },
    }
}

pub fn spop(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    use rand::seq::IteratorRandom as _;
    if args.len() > 3 {
        return Reply::error(super::util::SYNTAX);
    }
    let count = match count_arg(args, false) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut db = shared.db.lock().expect("db lock");
    let picked = match read(&mut db, &args[1], |s| {
        s.iter()
            .cloned()
            .choose_multiple(&mut rand::rng(), count.unwrap_or(1) as usize)
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
    let _ = write(&mut db, &args[1], |s| {
        picked.iter().for_each(|m| {
            s.remove(m);
        })
    });
    match count {
        None => picked.into_iter().next().map_or(Reply::Null, Reply::Bulk),
        Some(_) => members(picked),
    }
}

pub fn srandmember(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    use rand::seq::IteratorRandom as _;
    if args.len() > 3 {
        return Reply::error(super::util::SYNTAX);
    }
    let count = match count_arg(args, true) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut db = shared.db.lock().expect("db lock");
    let mut rng = rand::rng();
    let picked = read(&mut db, &args[1], |s| match count {
        None | Some(0..) => s
            .iter()
            .cloned()
            .choose_multiple(&mut rng, count.unwrap_or(1) as usize),
        // A negative count allows repeats and returns exactly |count| members.
        Some(n) => {
            let all: Vec<_> = s.iter().collect();
            (0..n.unsigned_abs().min(10_000_000))
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

fn algebra(shared: &Shared, args: &[Bytes], op: Op) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    load(&mut db, &args[1..]).map_or_else(
        |e| e,
        |sets| members(combine(sets, op).iter().cloned().collect::<Vec<_>>()),
    )
}

fn algebra_store(shared: &Shared, args: &[Bytes], op: Op) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    let result = match load(&mut db, &args[2..]) {
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

pub fn sinter(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    algebra(shared, args, Op::Inter)
}

pub fn sunion(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    algebra(shared, args, Op::Union)
}

pub fn sdiff(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    algebra(shared, args, Op::Diff)
}

pub fn sinterstore(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    algebra_store(shared, args, Op::Inter)
}

pub fn sunionstore(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    algebra_store(shared, args, Op::Union)
}

pub fn sdiffstore(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    algebra_store(shared, args, Op::Diff)
}

/// `SMOVE source destination member`
pub fn smove(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    let present = match (
        read(&mut db, &args[1], |s| s.contains(&args[3])),
        read(&mut db, &args[2], |_| ()),
    ) {
        (Err(e), _) | (_, Err(e)) => return e,
        (Ok(p), _) => p.unwrap_or(false),
    };
    if !present {
        return Reply::Integer(0);
    }
    let _ = write(&mut db, &args[1], |s| s.remove(&args[3]));
    let _ = write(&mut db, &args[2], |s| s.insert(args[3].clone()));
    Reply::Integer(1)
}
