//! String commands.

use bytes::Bytes;

use super::Ctx;
use super::args::parse_float;
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

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`: the longest
/// common subsequence of two strings, as Redis 7.0 computes and reports it.
///
/// The algorithm is Redis's, on purpose: the textbook dynamic programme over
/// a full `(len1 + 1) × (len2 + 1)` table of `u32`, walked back from the end.
/// Several subsequences are often equally long, and which one is answered
/// (and so the IDX ranges) depends on how that walk breaks ties; clients
/// compare against Redis, so the walk is copied exactly rather than replaced
/// by a linear-memory algorithm that would pick another one.
///
/// The table is transient memory the size of the product of the lengths, so
/// it is bounded as Redis bounds it: by proto-max-bulk-len (512 MB unless
/// configured lower), checked before anything is allocated, and the
/// allocation itself is fallible. The work is O(len1 × len2) under the
/// keyspace lock, as it is on Redis's single thread.
pub fn lcs(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let table_limit = cx.shared.config.proto_max_bulk_len;
    let db = &mut *cx.db;
    // Both keys are read (and counted as hits or misses) before any option
    // is looked at, so a wrong type is reported before a syntax error, as
    // in Redis. A missing key is an empty string. Redis answers a wrong type
    // here with its own message, not WRONGTYPE.
    let mut read = |key: &[u8]| match db.get(key).map(|e| e.value) {
        None => Some(Bytes::new()),
        Some(ValueRef::Str(s)) => Some(s.to_bytes()),
        Some(_) => None,
    };
    let (a, b) = match (read(&args[1]), read(&args[2])) {
        (Some(a), Some(b)) => (a, b),
        _ => return Reply::error("ERR The specified keys must contain string values"),
    };
    let (mut want_len, mut want_idx, mut with_match_len) = (false, false, false);
    let mut min_match_len = 0usize;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        if eq(opt, "IDX") {
            want_idx = true;
        } else if eq(opt, "LEN") {
            want_len = true;
        } else if eq(opt, "WITHMATCHLEN") {
            with_match_len = true;
        } else if eq(opt, "MINMATCHLEN") && i + 1 < args.len() {
            // A negative minimum is no minimum, as in Redis.
            match int_arg(&args[i + 1]) {
                Ok(n) => min_match_len = usize::try_from(n).unwrap_or(0),
                Err(e) => return e,
            }
            i += 1;
        } else {
            return Reply::error(SYNTAX);
        }
        i += 1;
    }
    if want_len && want_idx {
        return Reply::error("ERR If you want both the length and indexes, please just use IDX.");
    }
    // Redis's table holds u32 lengths and indexes.
    let too_long = |s: &[u8]| s.len() as u64 >= u64::from(u32::MAX) - 1;
    if too_long(&a) || too_long(&b) {
        return Reply::error("ERR String too long for LCS");
    }
    // Redis refuses when the table it would allocate exceeds
    // proto-max-bulk-len, even for LEN, which needs no table here (below):
    // the same inputs succeed or fail on both. Both lengths are below 2^32,
    // so the cell count fits in a u64; its size in bytes may not.
    const ALLOC_FAILED: &str =
        "ERR Insufficient memory, failed allocating transient memory for LCS";
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    let Some(bytes) = cells.checked_mul(std::mem::size_of::<u32>() as u64) else {
        return Reply::error(ALLOC_FAILED);
    };
    if bytes > table_limit {
        return Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    if want_len {
        return Reply::Integer(lcs_len(&a, &b) as i64);
    }
    let Some(table) = usize::try_from(cells)
        .ok()
        .and_then(|cells| lcs_table(&a, &b, cells))
    else {
        return Reply::error(ALLOC_FAILED);
    };
    let (text, ranges) = lcs_walk(&a, &b, &table);
    if !want_idx {
        return Reply::Bulk(Bytes::from(text));
    }
    let pair = |start: usize, end: usize| {
        Reply::Array(vec![
            Reply::Integer(start as i64),
            Reply::Integer(end as i64),
        ])
    };
    let matches = ranges
        .iter()
        .filter(|r| r.len >= min_match_len)
        .map(|r| {
            let mut item = vec![pair(r.a, r.a + r.len - 1), pair(r.b, r.b + r.len - 1)];
            if with_match_len {
                item.push(Reply::Integer(r.len as i64));
            }
            Reply::Array(item)
        })
        .collect();
    // A map in RESP3; RESP2 flattens it to `matches, [...], len, n`.
    Reply::Map(vec![
        (Reply::text("matches"), Reply::Array(matches)),
        (Reply::text("len"), Reply::Integer(text.len() as i64)),
    ])
}

/// One run of consecutive matched bytes: `len` bytes from `a` in the first
/// string and from `b` in the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LcsRange {
    a: usize,
    b: usize,
    len: usize,
}

/// Redis's LCS table, row-major with `b.len() + 1` columns: cell `(i, j)`
/// holds the LCS length of `a[..i]` and `b[..j]`. `None` if the allocation
/// of `cells` (the caller's checked `(a.len() + 1) × (b.len() + 1)`) fails.
fn lcs_table(a: &[u8], b: &[u8], cells: usize) -> Option<Vec<u32>> {
    let width = b.len() + 1;
    debug_assert_eq!(cells, (a.len() + 1) * width);
    let mut table = Vec::new();
    table.try_reserve_exact(cells).ok()?;
    table.resize(cells, 0u32);
    for (i, &ai) in a.iter().enumerate() {
        // Row i + 1 from row i; row 0 and column 0 stay 0.
        let (done, rest) = table.split_at_mut((i + 1) * width);
        let prev = &done[i * width..];
        let row = &mut rest[..width];
        for (j, &bj) in b.iter().enumerate() {
            row[j + 1] = if ai == bj {
                prev[j] + 1
            } else {
                prev[j + 1].max(row[j])
            };
        }
    }
    Some(table)
}

/// The LCS length alone, from two rows of the table at a time: LEN answers
/// what the last cell of [`lcs_table`] would hold, without the table.
fn lcs_len(a: &[u8], b: &[u8]) -> u32 {
    let mut prev = vec![0u32; b.len() + 1];
    let mut row = prev.clone();
    for &ai in a {
        for (j, &bj) in b.iter().enumerate() {
            row[j + 1] = if ai == bj {
                prev[j] + 1
            } else {
                prev[j + 1].max(row[j])
            };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}

/// Walks `table` back from its last cell as Redis does, and returns the
/// subsequence and its runs of consecutive matches, in the order Redis
/// reports them: from the end of the strings backwards.
///
/// On a mismatch the walk steps up (to a shorter `a`) only when that keeps
/// strictly more of the subsequence than stepping left, else left: that
/// tie-break is what makes the answer Redis's answer. A match always comes
/// right after the previous match or after a mismatch (which closed the run
/// before it), so a run only grows or starts; it ends at a mismatch or at
/// the start of either string.
fn lcs_walk(a: &[u8], b: &[u8], table: &[u32]) -> (Vec<u8>, Vec<LcsRange>) {
    let width = b.len() + 1;
    let at = |i: usize, j: usize| table[i * width + j];
    let total = at(a.len(), b.len()) as usize;
    let mut text = vec![0u8; total];
    let mut ranges = Vec::new();
    // The run being grown backwards: its first byte in each string and its length.
    let mut run: Option<LcsRange> = None;
    let (mut i, mut j, mut k) = (a.len(), b.len(), total);
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            k -= 1;
            text[k] = a[i - 1];
            i -= 1;
            j -= 1;
            let len = run.map_or(0, |r| r.len) + 1;
            run = Some(LcsRange { a: i, b: j, len });
            if i == 0 || j == 0 {
                ranges.extend(run.take());
            }
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            ranges.extend(run.take());
        }
    }
    (text, ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(a: &str, b: &str) -> (String, Vec<(usize, usize, usize)>) {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let table = lcs_table(a, b, (a.len() + 1) * (b.len() + 1)).unwrap();
        let (text, ranges) = lcs_walk(a, b, &table);
        (
            String::from_utf8(text).unwrap(),
            ranges.iter().map(|r| (r.a, r.b, r.len)).collect(),
        )
    }

    #[test]
    fn lcs_walks_back_like_redis() {
        // LCS key1 key2 IDX WITHMATCHLEN on redis-server 7.0.15.
        assert_eq!(
            walk("ohmytext", "mynewtext"),
            ("mytext".into(), vec![(4, 5, 4), (2, 0, 2)])
        );
        assert_eq!(walk("", "abc"), (String::new(), vec![]));
        assert_eq!(walk("abc", "abc"), ("abc".into(), vec![(0, 0, 3)]));
        assert_eq!(walk("abc", "xyz"), (String::new(), vec![]));
    }

    #[test]
    fn lcs_len_is_the_last_cell_of_the_table() {
        use rand::Rng as _;
        let mut rng = rand::rng();
        for _ in 0..500 {
            let mut s = || -> Vec<u8> {
                let n = rng.random_range(0..40);
                (0..n).map(|_| b"abc"[rng.random_range(0..3)]).collect()
            };
            let (a, b) = (s(), s());
            let table = lcs_table(&a, &b, (a.len() + 1) * (b.len() + 1)).unwrap();
            assert_eq!(lcs_len(&a, &b), *table.last().unwrap(), "{a:?} {b:?}");
            let (text, ranges) = lcs_walk(&a, &b, &table);
            assert_eq!(text.len() as u32, lcs_len(&a, &b));
            // The runs spell the subsequence, back to front, and match.
            let mut spelled = Vec::new();
            for r in ranges.iter().rev() {
                assert_eq!(a[r.a..r.a + r.len], b[r.b..r.b + r.len]);
                spelled.extend_from_slice(&a[r.a..r.a + r.len]);
            }
            assert_eq!(spelled, text);
        }
    }
}
