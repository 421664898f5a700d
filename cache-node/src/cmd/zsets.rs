//! Sorted set commands (the numkeys forms ZUNION/ZINTER/ZDIFF come later).

use bytes::Bytes;

use super::util::{SYNTAX, eq, int_arg};
use crate::db::Db;
use crate::frame::{Protocol, Reply};
use crate::server::{Client, Shared};
use crate::types::SortedSet;

fn read<R>(db: &mut Db, key: &[u8], f: impl FnOnce(&SortedSet) -> R) -> Result<Option<R>, Reply> {
    db.read(key, f).map_err(Reply::error)
}

fn write<R>(db: &mut Db, key: &Bytes, f: impl FnOnce(&mut SortedSet) -> R) -> Result<R, Reply> {
    db.write(key, f).map_err(Reply::error)
}

const NOT_FLOAT: &str = "ERR value is not a valid float";

/// A score argument: a float, or `inf`, `+inf`, `-inf`; never NaN.
fn parse_score(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        lower
            if lower.contains("nan")
                || lower.contains("inf")
                || s.starts_with(char::is_whitespace) =>
        {
            None
        }
        _ => s.parse().ok(),
    }
}

/// One end of a score range: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
#[derive(Debug, Clone, Copy)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

impl ScoreBound {
    fn parse(arg: &[u8]) -> Option<Self> {
        match arg.strip_prefix(b"(") {
            Some(rest) => Some(Self {
                value: parse_score(rest)?,
                exclusive: true,
            }),
            None => Some(Self {
                value: parse_score(arg)?,
                exclusive: false,
            }),
        }
    }

    fn below(&self, s: f64) -> bool {
        if self.exclusive {
            s < self.value
        } else {
            s <= self.value
        }
    }

    fn above(&self, s: f64) -> bool {
        if self.exclusive {
            s > self.value
        } else {
            s >= self.value
        }
    }
}

/// One end of a lexicographic range: `-`, `+`, `[x` (inclusive), `(x`.
#[derive(Debug, Clone)]
enum LexBound {
    Min,
    Max,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl LexBound {
    fn parse(arg: &Bytes) -> Option<Self> {
        match arg.first() {
            Some(b'-') if arg.len() == 1 => Some(LexBound::Min),
            Some(b'+') if arg.len() == 1 => Some(LexBound::Max),
            Some(b'[') => Some(LexBound::Inclusive(arg.slice(1..))),
            Some(b'(') => Some(LexBound::Exclusive(arg.slice(1..))),
            _ => None,
        }
    }

    fn at_least(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Inclusive(b) => m >= &b[..],
            LexBound::Exclusive(b) => m > &b[..],
        }
    }

    fn at_most(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Inclusive(b) => m <= &b[..],
            LexBound::Exclusive(b) => m < &b[..],
        }
    }
}

/// What a range query selects.
#[derive(Debug, Clone)]
enum By {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

#[derive(Debug, Clone)]
struct RangeQuery {
    by: By,
    rev: bool,
    /// (offset, count); a negative count means all.
    limit: Option<(i64, i64)>,
}

impl RangeQuery {
    /// Members and scores in the order the query asks for.
    fn run(&self, z: &SortedSet) -> Vec<(Bytes, f64)> {
        let ordered: Box<dyn Iterator<Item = (&Bytes, f64)>> = if self.rev {
            Box::new(z.iter().rev())
        } else {
            Box::new(z.iter())
        };
        let selected: Vec<(Bytes, f64)> = match &self.by {
            By::Rank(start, stop) => {
                let len = z.len() as i64;
                let start = if *start < 0 {
                    (len + start).max(0)
                } else {
                    *start
                };
                let stop = if *stop < 0 {
                    len + stop
                } else {
                    (*stop).min(len - 1)
                };
                if start > stop || start >= len {
                    return vec![];
                }
                return ordered
                    .skip(start as usize)
                    .take((stop - start + 1) as usize)
                    .map(|(m, s)| (m.clone(), s))
                    .collect();
            }
            // With REV the bounds come as (max, min).
            By::Score(a, b) => {
                let (min, max) = if self.rev { (b, a) } else { (a, b) };
                ordered
                    .filter(|(_, s)| min.above(*s) && max.below(*s))
                    .map(|(m, s)| (m.clone(), s))
                    .collect()
            }
            By::Lex(a, b) => {
                let (min, max) = if self.rev { (b, a) } else { (a, b) };
                ordered
                    .filter(|(m, _)| min.at_least(m) && max.at_most(m))
                    .map(|(m, s)| (m.clone(), s))
                    .collect()
            }
        };
        match self.limit {
            Some((offset, _)) if offset < 0 => vec![],
            Some((offset, count)) => {
                let it = selected.into_iter().skip(offset as usize);
                if count < 0 {
                    it.collect()
                } else {
                    it.take(count as usize).collect()
                }
            }
            None => selected,
        }
    }
}

/// Members (and scores) as Redis replies them: RESP2 alternates member and
/// score; RESP3 pairs them.
fn with_scores(items: Vec<(Bytes, f64)>, scores: bool, proto: Protocol) -> Reply {
    if !scores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    match proto {
        Protocol::Resp3 => Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect(),
        ),
        Protocol::Resp2 => Reply::Array(
            items
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        ),
    }
}

/// Parses `start stop` plus the options from `args[i..]`, in the syntax of
/// ZRANGE (`by`/`rev` may also be fixed by the legacy command names).
fn parse_range(
    args: &[Bytes],
    first: usize,
    mut by_score: bool,
    mut by_lex: bool,
    mut rev: bool,
    allow_withscores: bool,
) -> Result<(RangeQuery, bool), Reply> {
    let mut withscores = false;
    let mut limit = None;
    let mut i = first + 2;
    while i < args.len() {
        let a = &args[i];
        if eq(a, "WITHSCORES") && allow_withscores {
            withscores = true;
        } else if eq(a, "BYSCORE") && first == 2 && !by_lex {
            by_score = true;
        } else if eq(a, "BYLEX") && first == 2 && !by_score {
            by_lex = true;
        } else if eq(a, "REV") && first == 2 {
            rev = true;
        } else if eq(a, "LIMIT") && i + 2 < args.len() {
            limit = Some((int_arg(&args[i + 1])?, int_arg(&args[i + 2])?));
            i += 2;
        } else {
            return Err(Reply::error(SYNTAX));
        }
        i += 1;
    }
    let (lo, hi) = (&args[first], &args[first + 1]);
    let by = if by_score {
        match (ScoreBound::parse(lo), ScoreBound::parse(hi)) {
            (Some(a), Some(b)) => By::Score(a, b),
            _ => return Err(Reply::error("ERR min or max is not a float")),
        }
    } else if by_lex {
        if withscores {
            return Err(Reply::error(
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        match (LexBound::parse(lo), LexBound::parse(hi)) {
            (Some(a), Some(b)) => By::Lex(a, b),
            _ => return Err(Reply::error("ERR min or max not valid string range item")),
        }
    } else {
        if limit.is_some() {
            return Err(Reply::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        By::Rank(int_arg(lo)?, int_arg(hi)?)
    };
    Ok((RangeQuery { by, rev, limit }, withscores))
}

fn range_reply(
    shared: &Shared,
    client: &Client,
    args: &[Bytes],
    by_score: bool,
    by_lex: bool,
    rev: bool,
) -> Reply {
    let (query, scores) = match parse_range(args, 2, by_score, by_lex, rev, !by_lex) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let mut db = shared.db.lock().expect("db lock");
    read(&mut db, &args[1], |z| query.run(z)).map_or_else(
        |e| e,
        |items| with_scores(items.unwrap_or_default(), scores, client.proto),
    )
}

pub fn zrange(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    range_reply(shared, client, args, false, false, false)
}

pub fn zrevrange(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    range_reply(shared, client, args, false, false, true)
}

pub fn zrangebyscore(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    range_reply(shared, client, args, true, false, false)
}

pub fn zrevrangebyscore(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    range_reply(shared, client, args, true, false, true)
}

pub fn zrangebylex(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    range_reply(shared, client, args, false, true, false)
}

pub fn zrevrangebylex(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    range_reply(shared, client, args, false, true, true)
}

/// `ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]`
pub fn zrangestore(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    // Parse as ZRANGE over args[1..] so that option positions line up.
    let (query, _) = match parse_range(&args[1..], 2, false, false, false, false) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let mut db = shared.db.lock().expect("db lock");
    let items = match read(&mut db, &args[2], |z| query.run(z)) {
        Ok(items) => items.unwrap_or_default(),
        Err(e) => return e,
    };
    let n = items.len();
    db.remove(&args[1]);
    if n > 0 {
        let _ = write(&mut db, &args[1], |z| {
            for (m, s) in items {
                z.insert(m, s);
            }
        });
    }
    Reply::Integer(n as i64)
}

/// `ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]`
pub fn zadd(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        match () {
            _ if eq(a, "NX") => nx = true,
            _ if eq(a, "XX") => xx = true,
            _ if eq(a, "GT") => gt = true,
            _ if eq(a, "LT") => lt = true,
            _ if eq(a, "CH") => ch = true,
            _ if eq(a, "INCR") => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Reply::error(SYNTAX);
    }
    if nx && xx {
        return Reply::error("ERR XX and NX options at the same time are not compatible");
    }
    if ((gt || lt) && nx) || (gt && lt) {
        return Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs.len() > 2 {
        return Reply::error("ERR INCR option supports a single increment-element pair");
    }
    let mut parsed = Vec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks(2) {
        match parse_score(&p[0]) {
            Some(s) => parsed.push((s, p[1].clone())),
            None => return Reply::error(NOT_FLOAT),
        }
    }
    let mut db = shared.db.lock().expect("db lock");
    if let Err(e) = read(&mut db, &args[1], |_| ()) {
        return e;
    }
    if xx && db.peek(&args[1]).is_none() {
        return if incr { Reply::Null } else { Reply::Integer(0) };
    }
    let outcome = write(&mut db, &args[1], |z| {
        let (mut added, mut changed) = (0, 0);
        let mut last = None;
        for (score, member) in parsed {
            let current = z.score(&member);
            let target = match (incr, current) {
                (true, Some(c)) => c + score,
                _ => score,
            };
            if target.is_nan() {
                return Err(Reply::error("ERR resulting score is not a number (NaN)"));
            }
            let allowed = match current {
                None => !xx,
                Some(c) => !nx && (!gt || target > c) && (!lt || target < c),
            };
            if !allowed {
                continue;
            }
            match current {
                None => added += 1,
                Some(c) if c != target => changed += 1,
                Some(_) => {}
            }
            z.insert(member, target);
            last = Some(target);
        }
        Ok((added, changed, last))
    });
    match outcome {
        Err(e) | Ok(Err(e)) => e,
        Ok(Ok((added, changed, last))) => {
            if incr {
                last.map_or(Reply::Null, Reply::Double)
            } else {
                Reply::Integer(if ch { added + changed } else { added })
            }
        }
    }
}

pub fn zincrby(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let Some(delta) = parse_score(&args[2]) else {
        return Reply::error(NOT_FLOAT);
    };
    let mut db = shared.db.lock().expect("db lock");
    let result = write(&mut db, &args[1], |z| {
        let next = z.score(&args[3]).unwrap_or(0.0) + delta;
        if next.is_nan() {
            return Err(Reply::error("ERR resulting score is not a number (NaN)"));
        }
        z.insert(args[3].clone(), next);
        Ok(next)
    });
    match result {
        Err(e) | Ok(Err(e)) => e,
        Ok(Ok(s)) => Reply::Double(s),
    }
}

pub fn zscore(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    read(&mut db, &args[1], |z| z.score(&args[2]))
        .map_or_else(|e| e, |s| s.flatten().map_or(Reply::Null, Reply::Double))
}

pub fn zmscore(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    let members = &args[2..];
    read(&mut db, &args[1], |z| {
        members.iter().map(|m| z.score(m)).collect::<Vec<_>>()
    })
    .map_or_else(
        |e| e,
        |s| {
            Reply::Array(
                s.unwrap_or_else(|| vec![None; members.len()])
                    .into_iter()
                    .map(|s| s.map_or(Reply::Null, Reply::Double))
                    .collect(),
            )
        },
    )
}

pub fn zcard(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    read(&mut db, &args[1], SortedSet::len)
        .map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

fn count_reply(shared: &Shared, args: &[Bytes], lex: bool) -> Reply {
    let by = if lex {
        match (LexBound::parse(&args[2]), LexBound::parse(&args[3])) {
            (Some(a), Some(b)) => By::Lex(a, b),
            _ => return Reply::error("ERR min or max not valid string range item"),
        }
    } else {
        match (ScoreBound::parse(&args[2]), ScoreBound::parse(&args[3])) {
            (Some(a), Some(b)) => By::Score(a, b),
            _ => return Reply::error("ERR min or max is not a float"),
        }
    };
    let query = RangeQuery {
        by,
        rev: false,
        limit: None,
    };
    let mut db = shared.db.lock().expect("db lock");
    read(&mut db, &args[1], |z| query.run(z).len())
        .map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

pub fn zcount(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    count_reply(shared, args, false)
}

pub fn zlexcount(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    count_reply(shared, args, true)
}

fn rank_reply(shared: &Shared, args: &[Bytes], rev: bool) -> Reply {
    let withscore = match args.get(3) {
        None => false,
        Some(a) if eq(a, "WITHSCORE") && args.len() == 4 => true,
        Some(_) => return Reply::error(SYNTAX),
    };
    let mut db = shared.db.lock().expect("db lock");
    let found = read(&mut db, &args[1], |z| {
        let rank = z.rank(&args[2])?;
        let score = z.score(&args[2])?;
        Some((if rev { z.len() - 1 - rank } else { rank }, score))
    });
    match found.map(Option::flatten) {
        Err(e) => e,
        Ok(None) if withscore => Reply::NullArray,
        Ok(None) => Reply::Null,
        Ok(Some((rank, score))) if withscore => {
            Reply::Array(vec![Reply::Integer(rank as i64), Reply::Double(score)])
        }
        Ok(Some((rank, _))) => Reply::Integer(rank as i64),
    }
}

pub fn zrank(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    rank_reply(shared, args, false)
}

pub fn zrevrank(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    rank_reply(shared, args, true)
}

pub fn zrem(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let mut db = shared.db.lock().expect("db lock");
    match read(&mut db, &args[1], |_| ()) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(())) => write(&mut db, &args[1], |z| {
            args[2..].iter().filter(|m| z.remove(m).is_some()).count()
        })
        .map_or_else(|e| e, |n| Reply::Integer(n as i64)),
    }
}

fn remove_range(shared: &Shared, args: &[Bytes], by: By) -> Reply {
    let query = RangeQuery {
        by,
        rev: false,
        limit: None,
    };
    let mut db = shared.db.lock().expect("db lock");
    match read(&mut db, &args[1], |z| query.run(z)) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(items)) => write(&mut db, &args[1], |z| {
            for (m, _) in &items {
                z.remove(m);
            }
            items.len()
        })
        .map_or_else(|e| e, |n| Reply::Integer(n as i64)),
    }
}

pub fn zremrangebyrank(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(a), Ok(b)) => remove_range(shared, args, By::Rank(a, b)),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

pub fn zremrangebyscore(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match (ScoreBound::parse(&args[2]), ScoreBound::parse(&args[3])) {
        (Some(a), Some(b)) => remove_range(shared, args, By::Score(a, b)),
        _ => Reply::error("ERR min or max is not a float"),
    }
}

pub fn zremrangebylex(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match (LexBound::parse(&args[2]), LexBound::parse(&args[3])) {
        (Some(a), Some(b)) => remove_range(shared, args, By::Lex(a, b)),
        _ => Reply::error("ERR min or max not valid string range item"),
    }
}

/// `ZPOPMIN|ZPOPMAX key [count]`
fn pop(shared: &Shared, client: &Client, args: &[Bytes], max: bool) -> Reply {
    let count = match args.get(2).map(|a| int_arg(a)) {
        None => None,
        Some(Ok(n)) if n < 0 => return Reply::error("ERR value is out of range, must be positive"),
        Some(Ok(n)) => Some(n as usize),
        Some(Err(e)) => return e,
    };
    let mut db = shared.db.lock().expect("db lock");
    let popped = match read(&mut db, &args[1], |_| ()) {
        Err(e) => return e,
        Ok(None) => vec![],
        Ok(Some(())) => {
            let result = write(&mut db, &args[1], |z| {
                let n = count.unwrap_or(1);
                let picked: Vec<(Bytes, f64)> = if max {
                    z.iter()
                        .rev()
                        .take(n)
                        .map(|(m, s)| (m.clone(), s))
                        .collect()
                } else {
                    z.iter().take(n).map(|(m, s)| (m.clone(), s)).collect()
                };
                for (m, _) in &picked {
                    z.remove(m);
                }
                picked
            });
            match result {
                Ok(p) => p,
                Err(e) => return e,
            }
        }
    };
    match count {
        // Without a count the reply is flat: [member, score].
        None => Reply::Array(
            popped
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        ),
        Some(_) => with_scores(popped, true, client.proto),
    }
}

pub fn zpopmin(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    pop(shared, client, args, false)
}

pub fn zpopmax(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    pop(shared, client, args, true)
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`
pub fn zrandmember(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    use rand::seq::IteratorRandom as _;
    let count = match args.get(2).map(|a| int_arg(a)) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => return e,
    };
    let scores = match args.get(3) {
        None => false,
        Some(a) if eq(a, "WITHSCORES") && args.len() == 4 => true,
        Some(_) => return Reply::error(SYNTAX),
    };
    if count.is_some_and(|n| n.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Reply::error("ERR value is out of range");
    }
    let mut db = shared.db.lock().expect("db lock");
    let mut rng = rand::rng();
    let picked = read(&mut db, &args[1], |z| match count {
        None | Some(0..) => z
            .iter()
            .map(|(m, s)| (m.clone(), s))
            .choose_multiple(&mut rng, count.map_or(1, |n| n as usize)),
        // A negative count allows repeats and returns exactly |count| members.
        Some(n) => {
            let all: Vec<_> = z.iter().collect();
            (0..n.unsigned_abs().min(10_000_000))
                .map(|_| {
                    let (m, s) = all[rand::Rng::random_range(&mut rng, 0..all.len())];
                    (m.clone(), s)
                })
                .collect()
        }
    });
    match (picked, count) {
        (Err(e), _) => e,
        (Ok(p), None) => p
            .unwrap_or_default()
            .into_iter()
            .next()
            .map_or(Reply::Null, |(m, _)| Reply::Bulk(m)),
        (Ok(p), Some(_)) => with_scores(p.unwrap_or_default(), scores, client.proto),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_like_redis() {
        assert!(ScoreBound::parse(b"(1.5").is_some_and(|b| b.exclusive && b.value == 1.5));
        assert!(ScoreBound::parse(b"-inf").is_some_and(|b| b.value == f64::NEG_INFINITY));
        assert!(ScoreBound::parse(b"+inf").is_some_and(|b| b.value == f64::INFINITY));
        assert!(ScoreBound::parse(b"nan").is_none());
        assert!(ScoreBound::parse(b"abc").is_none());
        assert!(matches!(
            LexBound::parse(&Bytes::from("[a")),
            Some(LexBound::Inclusive(_))
        ));
        assert!(matches!(
            LexBound::parse(&Bytes::from("-")),
            Some(LexBound::Min)
        ));
        assert!(LexBound::parse(&Bytes::from("a")).is_none());
    }
}
