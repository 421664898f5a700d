//! List commands (the blocking variants come with client blocking support).

use bytes::Bytes;

use super::Ctx;
use super::args::{left_right, mpop};
use super::util::{SYNTAX, eq, int_arg};
use crate::db::Db;
use crate::frame::Reply;
use crate::types::{End, List};

fn read<R>(db: &mut Db, key: &[u8], f: impl FnOnce(&List) -> R) -> Result<Option<R>, Reply> {
    db.read(key, f).map_err(Reply::error)
}

fn write<R>(db: &mut Db, key: &Bytes, f: impl FnOnce(&mut List) -> R) -> Result<R, Reply> {
    db.write(key, f).map_err(Reply::error)
}

/// Like `write`, but does nothing (returns `Ok(None)`) when the key is missing.
fn write_existing<R>(
    db: &mut Db,
    key: &Bytes,
    f: impl FnOnce(&mut List) -> R,
) -> Result<Option<R>, Reply> {
    match read(db, key, |_| ())? {
        None => Ok(None),
        Some(()) => write(db, key, f).map(Some),
    }
}

/// Resolves a possibly negative index against `len`.
fn index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// Resolves a `start stop` pair (inclusive, negative from the end) to a
/// half-open range, as LRANGE and LTRIM do.
fn range(start: i64, stop: i64, len: usize) -> std::ops::Range<usize> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        0..0
    } else {
        start as usize..stop as usize + 1
    }
}

fn push(cx: &mut Ctx, args: &[Bytes], end: End, only_existing: bool) -> Reply {
    let db = &mut *cx.db;
    let apply = |l: &mut List| {
        for item in &args[2..] {
            l.push(end, item.clone());
        }
        l.len()
    };
    let result = if only_existing {
        write_existing(db, &args[1], apply).map(|n| n.unwrap_or(0))
    } else {
        write(db, &args[1], apply)
    };
    result.map_or_else(|e| e, |n| Reply::Integer(n as i64))
}

pub fn lpush(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    push(cx, args, End::Left, false)
}

pub fn rpush(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    push(cx, args, End::Right, false)
}

pub fn lpushx(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    push(cx, args, End::Left, true)
}

pub fn rpushx(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    push(cx, args, End::Right, true)
}

/// `LPOP|RPOP key [count]`
fn pop(cx: &mut Ctx, args: &[Bytes], end: End) -> Reply {
    let count = match args.get(2).map(|a| int_arg(a)) {
        None => None,
        Some(Ok(n)) if n < 0 => return Reply::error("ERR value is out of range, must be positive"),
        Some(Ok(n)) => Some(n as usize),
        Some(Err(e)) => return e,
    };
    let db = &mut *cx.db;
    let popped = write_existing(db, &args[1], |l| {
        (0..count.unwrap_or(1))
            .map_while(|_| l.pop(end))
            .collect::<Vec<_>>()
    });
    match (popped, count) {
        (Err(e), _) => e,
        (Ok(None), None) => Reply::Null,
        (Ok(None), Some(_)) => Reply::NullArray,
        (Ok(Some(items)), None) => items.into_iter().next().map_or(Reply::Null, Reply::Bulk),
        (Ok(Some(items)), Some(_)) => Reply::Array(items.into_iter().map(Reply::Bulk).collect()),
    }
}

pub fn lpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop(cx, args, End::Left)
}

pub fn rpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop(cx, args, End::Right)
}

pub fn llen(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    read(db, &args[1], List::len).map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

pub fn lindex(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let i = match int_arg(&args[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    read(db, &args[1], |l| {
        index(i, l.len()).and_then(|i| l.get(i).cloned())
    })
    .map_or_else(|e| e, |v| v.flatten().map_or(Reply::Null, Reply::Bulk))
}

pub fn lset(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let i = match int_arg(&args[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    match write_existing(db, &args[1], |l| {
        index(i, l.len()).map(|i| l.set(i, args[3].clone()))
    }) {
        Err(e) => e,
        Ok(None) => Reply::error("ERR no such key"),
        Ok(Some(None)) => Reply::error("ERR index out of range"),
        Ok(Some(Some(_))) => Reply::OK,
    }
}

pub fn lrange(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (start, stop) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let db = &mut *cx.db;
    read(db, &args[1], |l| {
        let r = range(start, stop, l.len());
        l.iter()
            .skip(r.start)
            .take(r.len())
            .cloned()
            .map(Reply::Bulk)
            .collect::<Vec<_>>()
    })
    .map_or_else(|e| e, |items| Reply::Array(items.unwrap_or_default()))
}

pub fn ltrim(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (start, stop) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let db = &mut *cx.db;
    write_existing(db, &args[1], |l| {
        let r = range(start, stop, l.len());
        l.retain_range(r.start, r.end);
    })
    .map_or_else(|e| e, |_| Reply::OK)
}

/// `LREM key count element`: count > 0 from the head, < 0 from the tail, 0 all.
pub fn lrem(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let count = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let removed = write_existing(db, &args[1], |l| {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let hits: Vec<usize> = if count < 0 {
            (0..l.len())
                .rev()
                .filter(|&i| l.get(i) == Some(&args[3]))
                .take(limit)
                .collect()
        } else {
            (0..l.len())
                .filter(|&i| l.get(i) == Some(&args[3]))
                .take(limit)
                .collect()
        };
        let mut hits = hits;
        // Remove from the back so earlier indices stay valid.
        hits.sort_unstable_by(|a, b| b.cmp(a));
        for &i in &hits {
            l.remove(i);
        }
        hits.len()
    });
    removed.map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

/// `LINSERT key BEFORE|AFTER pivot element`
pub fn linsert(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let after = if eq(&args[2], "AFTER") {
        true
    } else if eq(&args[2], "BEFORE") {
        false
    } else {
        return Reply::error(SYNTAX);
    };
    let db = &mut *cx.db;
    let result = write_existing(db, &args[1], |l| {
        let pivot = l.iter().position(|x| *x == args[3]);
        match pivot {
            None => -1,
            Some(i) => {
                l.insert(if after { i + 1 } else { i }, args[4].clone());
                l.len() as i64
            }
        }
    });
    result.map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0)))
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`
pub fn lpos(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<usize>, 0usize);
    let mut i = 3;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Reply::error(SYNTAX);
        };
        let n = match int_arg(value) {
            Ok(n) => n,
            Err(e) => return e,
        };
        if eq(&args[i], "RANK") {
            if n == 0 || n == i64::MIN {
                return Reply::error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                );
            }
            rank = n;
        } else if eq(&args[i], "COUNT") {
            if n < 0 {
                return Reply::error("ERR COUNT can't be negative");
            }
            count = Some(n as usize);
        } else if eq(&args[i], "MAXLEN") {
            if n < 0 {
                return Reply::error("ERR MAXLEN can't be negative");
            }
            maxlen = n as usize;
        } else {
            return Reply::error(SYNTAX);
        }
        i += 2;
    }
    let db = &mut *cx.db;
    let found = read(db, &args[1], |l| {
        let len = l.len();
        let scan = if maxlen == 0 { len } else { maxlen.min(len) };
        let wanted = match count {
            Some(0) => usize::MAX,
            Some(n) => n,
            None => 1,
        };
        let skip = (rank.unsigned_abs() - 1) as usize;
        let positions: Box<dyn Iterator<Item = usize>> = if rank > 0 {
            Box::new(0..scan)
        } else {
            Box::new((len - scan..len).rev())
        };
        positions
            .filter(|&p| l.get(p) == Some(&args[2]))
            .skip(skip)
            .take(wanted)
            .collect::<Vec<_>>()
    });
    match (found, count) {
        (Err(e), _) => e,
        (Ok(hits), None) => hits
            .and_then(|h| h.first().copied())
            .map_or(Reply::Null, |p| Reply::Integer(p as i64)),
        (Ok(hits), Some(_)) => Reply::Array(
            hits.unwrap_or_default()
                .into_iter()
                .map(|p| Reply::Integer(p as i64))
                .collect(),
        ),
    }
}

/// Pops from `src` at `from` and pushes onto `dst` at `to`, atomically.
pub(super) fn move_element(db: &mut Db, src: &Bytes, dst: &Bytes, from: End, to: End) -> Reply {
    if let Err(e) = read(db, dst, |_| ()) {
        return e;
    }
    match write_existing(db, src, |l| l.pop(from)) {
        Err(e) => e,
        Ok(None) | Ok(Some(None)) => Reply::Null,
        Ok(Some(Some(item))) => {
            write(db, dst, |l| l.push(to, item.clone())).map_or_else(|e| e, |_| Reply::Bulk(item))
        }
    }
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`
pub fn lmove(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (Some(from), Some(to)) = (left_right(&args[3]), left_right(&args[4])) else {
        return Reply::error(SYNTAX);
    };
    let db = &mut *cx.db;
    move_element(db, &args[1], &args[2], from, to)
}

pub fn rpoplpush(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    move_element(db, &args[1], &args[2], End::Right, End::Left)
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`: pops from the
/// first non-empty list; `[key, [elements]]`, or a null array when all are
/// empty.
pub fn lmpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    lmpop_at(cx, args, 1)
}

/// LMPOP with its numkeys argument at `at` (BLMPOP has a timeout before it).
pub(super) fn lmpop_at(cx: &mut Ctx, args: &[Bytes], at: usize) -> Reply {
    let (keys, end, count) = match mpop(args, at, left_right) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    for key in keys {
        // Missing keys are skipped; a key of another type stops the search.
        let popped = match write_existing(db, key, |l| {
            (0..count).map_while(|_| l.pop(end)).collect::<Vec<_>>()
        }) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(items)) => items,
        };
        return Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
        ]);
    }
    Reply::NullArray
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_redis() {
        assert_eq!(range(0, -1, 5), 0..5);
        assert_eq!(range(-3, 2, 5), 2..3);
        assert_eq!(range(-100, 100, 5), 0..5);
        assert_eq!(range(5, 10, 5), 0..0);
        assert_eq!(range(3, 1, 5), 0..0);
        assert_eq!(range(0, 0, 0), 0..0);
        assert_eq!(index(-1, 3), Some(2));
        assert_eq!(index(3, 3), None);
        assert_eq!(index(-4, 3), None);
    }
}
