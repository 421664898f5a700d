//! `SORT` and `SORT_RO`, with Redis 7.0's semantics: the elements of a list,
//! set or sorted set, ordered by their numeric value (or, with `ALPHA`, as
//! byte strings), or by the values of other keys a `BY` pattern names, cut
//! by `LIMIT`, each replaced by what `GET` patterns name, and optionally
//! stored as a list (`STORE`).

use std::cmp::Ordering;

use bytes::Bytes;
use tidecache_topology::key_slot;
use tidecache_topology::slot::crc16;

use super::Ctx;
use super::util::{SYNTAX, eq, int_arg};
use crate::db::{Db, Value, ValueRef};
use crate::frame::Reply;
use crate::types::{End, List};

const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// What `SORT` was asked.
struct Query {
    by: Option<Bytes>,
    /// `BY` a pattern without `*`: keep the collection's own order.
    dont_sort: bool,
    gets: Vec<Bytes>,
    /// `LIMIT offset count`.
    limit: Option<(i64, i64)>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

pub fn sort(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    run(cx, args, true)
}

pub fn sort_ro(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    run(cx, args, false)
}

fn run(cx: &mut Ctx, args: &[Bytes], may_store: bool) -> Reply {
    let query = match parse(args, may_store, cx.shared.cluster_mode) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let (elements, of_set) = match elements(db, &args[1], &query) {
        Ok(e) => e,
        Err(e) => return e,
    };
    let output = match order(db, elements, of_set, &query) {
        Ok(o) => o,
        Err(e) => return e,
    };
    // Each element, or what each GET pattern names for it.
    let rows: Vec<Option<Bytes>> = if query.gets.is_empty() {
        output.into_iter().map(Some).collect()
    } else {
        let mut rows = Vec::with_capacity(output.len() * query.gets.len());
        for e in &output {
            for p in &query.gets {
                rows.push(lookup(db, p, e));
            }
        }
        rows
    };
    match &query.store {
        Some(dst) => {
            let n = rows.len();
            db.remove(dst);
            if n > 0 {
                let mut list = List::default();
                for r in rows {
                    list.push(End::Right, r.unwrap_or_default());
                }
                db.set(dst.clone(), Value::List(list), None);
            }
            Reply::Integer(n as i64)
        }
        None => Reply::Array(
            rows.into_iter()
                .map(|r| r.map_or(Reply::Null, Reply::Bulk))
                .collect(),
        ),
    }
}

fn parse(args: &[Bytes], may_store: bool, cluster: bool) -> Result<Query, Reply> {
    let mut q = Query {
        by: None,
        dont_sort: false,
        gets: Vec::new(),
        limit: None,
        desc: false,
        alpha: false,
        store: None,
    };
    let key_slot_of_sorted = key_slot(&args[1]);
    // In cluster mode a pattern may name only keys of the sorted key's slot.
    let same_slot = |pattern: &[u8]| pattern_slot(pattern) == Some(key_slot_of_sorted);
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        let a = &args[i];
        if eq(a, "ASC") {
            q.desc = false;
        } else if eq(a, "DESC") {
            q.desc = true;
        } else if eq(a, "ALPHA") {
            q.alpha = true;
        } else if eq(a, "LIMIT") && left >= 2 {
            q.limit = Some((int_arg(&args[i + 1])?, int_arg(&args[i + 2])?));
            i += 2;
        } else if eq(a, "STORE") && left >= 1 && may_store {
            q.store = Some(args[i + 1].clone());
            i += 1;
        } else if eq(a, "BY") && left >= 1 {
            let pattern = args[i + 1].clone();
            // A pattern without `*` names one key for every element: there
            // is nothing to sort by.
            if !pattern.contains(&b'*') {
                q.dont_sort = true;
            } else if cluster && !same_slot(&pattern) {
                return Err(Reply::error(
                    "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.",
                ));
            }
            q.by = Some(pattern);
            i += 1;
        } else if eq(a, "GET") && left >= 1 {
            let pattern = &args[i + 1];
            if cluster && &pattern[..] != b"#" && !same_slot(pattern) {
                return Err(Reply::error(
                    "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.",
                ));
            }
            q.gets.push(pattern.clone());
            i += 1;
        } else {
            return Err(Reply::error(SYNTAX));
        }
        i += 1;
    }
    Ok(q)
}

/// The slot every key a pattern can form lies in, if there is one (Redis's
/// `patternHashSlot`): a hash tag before any glob character, or no glob
/// character at all.
fn pattern_slot(pattern: &[u8]) -> Option<u16> {
    let mut open = None;
    let mut empty_tag = false;
    for (i, &c) in pattern.iter().enumerate() {
        match c {
            b'*' | b'?' | b'[' | b'\\' => return None,
            b'{' if open.is_none() && !empty_tag => open = Some(i),
            b'}' if open == Some(i.wrapping_sub(1)) => {
                // `{}`: the whole key is hashed.
                open = None;
                empty_tag = true;
            }
            b'}' if open.is_some() => {
                let start = open.expect("checked") + 1;
                return Some(crc16(&pattern[start..i]) & 0x3FFF);
            }
            _ => {}
        }
    }
    Some(crc16(pattern) & 0x3FFF)
}

/// The elements of the collection at `key` in its own order (a sorted set's
/// by rank), reversed for `DESC` when they are not to be sorted (a list or
/// sorted set keeps its order, as Redis does); and whether it is a set.
fn elements(db: &mut Db, key: &Bytes, q: &Query) -> Result<(Vec<Bytes>, bool), Reply> {
    let Some(entry) = db.get(key) else {
        return Ok((Vec::new(), false));
    };
    let reverse = q.dont_sort && q.desc;
    let mut elements: Vec<Bytes> = match entry.value {
        ValueRef::List(l) => l.iter().cloned().collect(),
        ValueRef::Set(s) => return Ok((s.iter().cloned().collect(), true)),
        ValueRef::ZSet(z) => z.iter().map(|(m, _)| m.clone()).collect(),
        _ => return Err(Reply::error(crate::db::WRONGTYPE)),
    };
    if reverse {
        elements.reverse();
    }
    Ok((elements, false))
}

/// Sorts (unless told not to) and applies `LIMIT`.
fn order(
    db: &mut Db,
    mut elements: Vec<Bytes>,
    of_set: bool,
    q: &Query,
) -> Result<Vec<Bytes>, Reply> {
    // Sets have no order of their own: one that is stored gets sorted, so
    // that the stored list does not depend on the set's layout (Redis does
    // the same for replication and scripts).
    let sorted_set_store = q.dont_sort && q.store.is_some() && of_set;
    if !q.dont_sort || sorted_set_store {
        let alpha = q.alpha || sorted_set_store;
        let by = if sorted_set_store {
            None
        } else {
            q.by.as_ref()
        };
        let mut keyed: Vec<(SortKey, Bytes)> = Vec::with_capacity(elements.len());
        for e in elements {
            let weight = match by {
                Some(pattern) => lookup(db, pattern, &e),
                None => Some(e.clone()),
            };
            let k = if alpha {
                SortKey::Alpha(weight)
            } else {
                SortKey::Score(match weight {
                    Some(w) => score(&w).ok_or_else(|| Reply::error(NOT_DOUBLE))?,
                    None => 0.0,
                })
            };
            keyed.push((k, e));
        }
        keyed.sort_by(|(ka, ea), (kb, eb)| {
            let o = match (ka, kb) {
                (SortKey::Score(a), SortKey::Score(b)) => a
                    .partial_cmp(b)
                    .unwrap_or(Ordering::Equal)
                    // Equal scores: by the elements, so the order is defined.
                    .then_with(|| ea.cmp(eb)),
                // A missing weight sorts first.
                (SortKey::Alpha(a), SortKey::Alpha(b)) => a.cmp(b),
                _ => Ordering::Equal,
            };
            if q.desc { o.reverse() } else { o }
        });
        elements = keyed.into_iter().map(|(_, e)| e).collect();
    }
    if let Some((offset, count)) = q.limit {
        let len = elements.len();
        let start = usize::try_from(offset.max(0))
            .unwrap_or(usize::MAX)
            .min(len);
        let end = if count < 0 {
            len
        } else {
            start
                .saturating_add(usize::try_from(count).unwrap_or(usize::MAX))
                .min(len)
        };
        elements.truncate(end);
        elements.drain(..start);
    }
    Ok(elements)
}

enum SortKey {
    Score(f64),
    Alpha(Option<Bytes>),
}

/// An element or weight as a number, as Redis's `strtod` with nothing left
/// over and no NaN.
fn score(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b)
        .ok()?
        .trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    s.parse::<f64>().ok().filter(|f| !f.is_nan())
}

/// What `pattern` names for `element` (Redis's `lookupKeyByPattern`): `#`
/// is the element itself; otherwise the first `*` is replaced by it, and
/// the key's string value is taken, or with `->field` after the `*` that
/// field of the hash. `None` when there is no such key, field or `*`, or the
/// key holds another type.
fn lookup(db: &mut Db, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(element.clone());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let (suffix, field) = match after.windows(2).position(|w| w == b"->") {
        Some(arrow) if arrow + 2 < after.len() => (&after[..arrow], Some(&after[arrow + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(suffix);
    let entry = db.get(&key)?;
    match (entry.value, field) {
        (ValueRef::Str(s), None) => Some(s.to_bytes()),
        (ValueRef::Hash(h), Some(f)) => h.get(f).cloned(),
        _ => None,
    }
}
