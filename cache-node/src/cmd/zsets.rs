//! Sorted set commands.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;

use super::Ctx;
use super::args::{min_max, mpop};
use super::util::{MAX_RANDOM_REPEATS, SYNTAX, eq, int_arg};
use crate::db::{Db, Value, ValueRef, WRONGTYPE};
use crate::frame::{Protocol, Reply, format_double};
use crate::types::{Set, SortedSet};

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

fn range_reply(cx: &mut Ctx, args: &[Bytes], by_score: bool, by_lex: bool, rev: bool) -> Reply {
    let (query, scores) = match parse_range(args, 2, by_score, by_lex, rev, !by_lex) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let proto = cx.client.proto;
    read(cx.db, &args[1], |z| query.run(z)).map_or_else(
        |e| e,
        |items| with_scores(items.unwrap_or_default(), scores, proto),
    )
}

pub fn zrange(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_reply(cx, args, false, false, false)
}

pub fn zrevrange(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_reply(cx, args, false, false, true)
}

pub fn zrangebyscore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_reply(cx, args, true, false, false)
}

pub fn zrevrangebyscore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_reply(cx, args, true, false, true)
}

pub fn zrangebylex(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_reply(cx, args, false, true, false)
}

pub fn zrevrangebylex(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    range_reply(cx, args, false, true, true)
}

/// `ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]`
pub fn zrangestore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    // Parse as ZRANGE over args[1..] so that option positions line up.
    let (query, _) = match parse_range(&args[1..], 2, false, false, false, false) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    let items = match read(db, &args[2], |z| query.run(z)) {
        Ok(items) => items.unwrap_or_default(),
        Err(e) => return e,
    };
    let n = items.len();
    db.remove(&args[1]);
    if n > 0 {
        let _ = write(db, &args[1], |z| {
            for (m, s) in items {
                z.insert(m, s);
            }
        });
    }
    Reply::Integer(n as i64)
}

/// `ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]`
pub fn zadd(cx: &mut Ctx, args: &[Bytes]) -> Reply {
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
    let db = &mut *cx.db;
    if let Err(e) = read(db, &args[1], |_| ()) {
        return e;
    }
    if xx && db.peek(&args[1]).is_none() {
        return if incr { Reply::Null } else { Reply::Integer(0) };
    }
    let outcome = write(db, &args[1], |z| {
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

pub fn zincrby(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(delta) = parse_score(&args[2]) else {
        return Reply::error(NOT_FLOAT);
    };
    let db = &mut *cx.db;
    let result = write(db, &args[1], |z| {
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

pub fn zscore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    read(db, &args[1], |z| z.score(&args[2]))
        .map_or_else(|e| e, |s| s.flatten().map_or(Reply::Null, Reply::Double))
}

pub fn zmscore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    let members = &args[2..];
    read(db, &args[1], |z| {
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

pub fn zcard(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    read(db, &args[1], SortedSet::len).map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

fn count_reply(cx: &mut Ctx, args: &[Bytes], lex: bool) -> Reply {
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
    let db = &mut *cx.db;
    read(db, &args[1], |z| query.run(z).len())
        .map_or_else(|e| e, |n| Reply::Integer(n.unwrap_or(0) as i64))
}

pub fn zcount(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    count_reply(cx, args, false)
}

pub fn zlexcount(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    count_reply(cx, args, true)
}

fn rank_reply(cx: &mut Ctx, args: &[Bytes], rev: bool) -> Reply {
    let withscore = match args.get(3) {
        None => false,
        Some(a) if eq(a, "WITHSCORE") && args.len() == 4 => true,
        Some(_) => return Reply::error(SYNTAX),
    };
    let db = &mut *cx.db;
    let found = read(db, &args[1], |z| {
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

pub fn zrank(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    rank_reply(cx, args, false)
}

pub fn zrevrank(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    rank_reply(cx, args, true)
}

pub fn zrem(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let db = &mut *cx.db;
    match read(db, &args[1], |_| ()) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(())) => write(db, &args[1], |z| {
            args[2..].iter().filter(|m| z.remove(m).is_some()).count()
        })
        .map_or_else(|e| e, |n| Reply::Integer(n as i64)),
    }
}

fn remove_range(cx: &mut Ctx, args: &[Bytes], by: By) -> Reply {
    let query = RangeQuery {
        by,
        rev: false,
        limit: None,
    };
    let db = &mut *cx.db;
    match read(db, &args[1], |z| query.run(z)) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(items)) => write(db, &args[1], |z| {
            for (m, _) in &items {
                z.remove(m);
            }
            items.len()
        })
        .map_or_else(|e| e, |n| Reply::Integer(n as i64)),
    }
}

pub fn zremrangebyrank(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(a), Ok(b)) => remove_range(cx, args, By::Rank(a, b)),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

pub fn zremrangebyscore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match (ScoreBound::parse(&args[2]), ScoreBound::parse(&args[3])) {
        (Some(a), Some(b)) => remove_range(cx, args, By::Score(a, b)),
        _ => Reply::error("ERR min or max is not a float"),
    }
}

pub fn zremrangebylex(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match (LexBound::parse(&args[2]), LexBound::parse(&args[3])) {
        (Some(a), Some(b)) => remove_range(cx, args, By::Lex(a, b)),
        _ => Reply::error("ERR min or max not valid string range item"),
    }
}

/// `ZPOPMIN|ZPOPMAX key [count]`
fn pop(cx: &mut Ctx, args: &[Bytes], max: bool) -> Reply {
    let count = match args.get(2).map(|a| int_arg(a)) {
        None => None,
        Some(Ok(n)) if n < 0 => return Reply::error("ERR value is out of range, must be positive"),
        Some(Ok(n)) => Some(n as usize),
        Some(Err(e)) => return e,
    };
    let db = &mut *cx.db;
    let popped = match read(db, &args[1], |_| ()) {
        Err(e) => return e,
        Ok(None) => vec![],
        Ok(Some(())) => {
            let result = write(db, &args[1], |z| pop_extremes(z, count.unwrap_or(1), max));
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
        Some(_) => with_scores(popped, true, cx.client.proto),
    }
}

pub fn zpopmin(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop(cx, args, false)
}

pub fn zpopmax(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop(cx, args, true)
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`
pub fn zrandmember(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let client = &mut *cx.client;
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
    if count.is_some_and(|n| {
        n.unsigned_abs() > (i64::MAX / 2) as u64 || (n < 0 && n.unsigned_abs() > MAX_RANDOM_REPEATS)
    }) {
        return Reply::error("ERR value is out of range");
    }
    let db = &mut *cx.db;
    let mut rng = rand::rng();
    let picked = read(db, &args[1], |z| match count {
        // At most the whole set: `choose_multiple` reserves room for as
        // many members as asked before it picks any.
        None | Some(0..) => z
            .iter()
            .map(|(m, s)| (m.clone(), s))
            .choose_multiple(&mut rng, count.map_or(1, |n| n as usize).min(z.len())),
        // A negative count allows repeats and returns exactly |count| members.
        Some(n) => {
            let all: Vec<_> = z.iter().collect();
            (0..n.unsigned_abs())
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

/// An input of ZUNION and friends: a sorted set, or a plain set whose
/// members all score 1 (a missing key is an empty input).
enum Source {
    Missing,
    Sorted(SortedSet),
    Plain(Set),
}

impl Source {
    fn load(db: &mut Db, key: &[u8]) -> Result<Self, Reply> {
        match db.peek(key).map(|e| e.value) {
            None => Ok(Source::Missing),
            Some(ValueRef::ZSet(z)) => Ok(Source::Sorted(z.clone())),
            Some(ValueRef::Set(s)) => Ok(Source::Plain(s.clone())),
            Some(_) => Err(Reply::error(WRONGTYPE)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::Sorted(z) => z.len(),
            Source::Plain(s) => s.len(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::Sorted(z) => z.score(member),
            Source::Plain(s) => s.contains(member).then_some(1.0),
        }
    }

    fn members(&self) -> Box<dyn Iterator<Item = (&Bytes, f64)> + '_> {
        match self {
            Source::Missing => Box::new(std::iter::empty()),
            Source::Sorted(z) => Box::new(z.iter()),
            Source::Plain(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

/// How ZUNION and ZINTER combine the scores of a member found in several inputs.
#[derive(Debug, Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, acc: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *acc += value;
                // inf + -inf: Redis settles on 0 rather than store NaN.
                if acc.is_nan() {
                    *acc = 0.0;
                }
            }
            Aggregate::Min if value < *acc => *acc = value,
            Aggregate::Max if value > *acc => *acc = value,
            Aggregate::Min | Aggregate::Max => {}
        }
    }
}

/// What a form of the command replies with, which decides its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// ZUNION, ZINTER, ZDIFF: the members (`WITHSCORES` allowed).
    Members,
    /// The ...STORE forms: stored, the count replied.
    Store,
    /// ZINTERCARD: the count only (`LIMIT` allowed, no weights).
    Cardinality,
}

/// A parsed ZUNION-family request.
struct Algebra {
    /// Inputs with their weights, in argument order. A key named twice is
    /// loaded once and shared, so repeating a big key cannot multiply the
    /// copies.
    sources: Vec<(Rc<Source>, f64)>,
    aggregate: Aggregate,
    withscores: bool,
    /// Stop counting here (ZINTERCARD); 0 means no limit.
    limit: u64,
}

/// Parses `numkeys key [key ...]` at `args[at..]` and the options after the
/// keys, loading the inputs on the way. Redis's order: the count, then the
/// inputs' types, then the options.
fn parse_algebra(
    db: &mut Db,
    args: &[Bytes],
    at: usize,
    op: SetOp,
    output: Output,
    name: &str,
) -> Result<Algebra, Reply> {
    let numkeys = int_arg(&args[at])?;
    if numkeys < 1 {
        return Err(Reply::error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let available = args.len().saturating_sub(at + 1);
    if numkeys as u64 > available as u64 {
        return Err(Reply::error(SYNTAX));
    }
    let keys = &args[at + 1..at + 1 + numkeys as usize];
    let mut loaded: HashMap<&Bytes, Rc<Source>> = HashMap::new();
    let mut sources = Vec::with_capacity(keys.len());
    for key in keys {
        let source = match loaded.get(key) {
            Some(source) => Rc::clone(source),
            None => {
                let source = Rc::new(Source::load(db, key)?);
                loaded.insert(key, Rc::clone(&source));
                source
            }
        };
        sources.push((source, 1.0));
    }
    let mut algebra = Algebra {
        sources,
        aggregate: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    let scored = op != SetOp::Diff && output != Output::Cardinality;
    let mut i = at + 1 + keys.len();
    while i < args.len() {
        let remaining = args.len() - i;
        let a = &args[i];
        if scored && eq(a, "WEIGHTS") && remaining > keys.len() {
            for (j, (_, weight)) in algebra.sources.iter_mut().enumerate() {
                *weight = parse_score(&args[i + 1 + j])
                    .ok_or_else(|| Reply::error("ERR weight value is not a float"))?;
            }
            i += 1 + keys.len();
        } else if scored && eq(a, "AGGREGATE") && remaining >= 2 {
            let how = &args[i + 1];
            algebra.aggregate = if eq(how, "SUM") {
                Aggregate::Sum
            } else if eq(how, "MIN") {
                Aggregate::Min
            } else if eq(how, "MAX") {
                Aggregate::Max
            } else {
                return Err(Reply::error(SYNTAX));
            };
            i += 2;
        } else if output == Output::Members && eq(a, "WITHSCORES") {
            algebra.withscores = true;
            i += 1;
        } else if output == Output::Cardinality && eq(a, "LIMIT") && remaining >= 2 {
            algebra.limit = match super::util::parse_i64(&args[i + 1]) {
                Some(n) if n >= 0 => n as u64,
                _ => return Err(Reply::error("ERR LIMIT can't be negative")),
            };
            i += 2;
        } else {
            return Err(Reply::error(SYNTAX));
        }
    }
    Ok(algebra)
}

/// A weighted score; `inf * 0` counts as 0, as in Redis.
fn weighted(score: f64, weight: f64) -> f64 {
    let s = score * weight;
    if s.is_nan() { 0.0 } else { s }
}

impl Algebra {
    /// The result, or (with `count_only`) just its size up to `limit`, with
    /// an empty set.
    fn run(mut self, op: SetOp, count_only: bool) -> (SortedSet, u64) {
        let mut out = SortedSet::default();
        if op != SetOp::Diff {
            // Smallest first, as Redis orders them: an intersection walks the
            // smallest input, and sums add up in the same order.
            self.sources.sort_by_key(|(s, _)| s.len());
        }
        let aggregate = self.aggregate;
        let Some(((first, w0), rest)) = self.sources.split_first() else {
            return (out, 0);
        };
        match op {
            SetOp::Inter => {
                let mut n = 0;
                for (m, s) in first.members() {
                    let mut score = weighted(s, *w0);
                    let everywhere = rest.iter().all(|(src, w)| match src.score(m) {
                        Some(s) => {
                            aggregate.apply(&mut score, s * w);
                            true
                        }
                        None => false,
                    });
                    if !everywhere {
                        continue;
                    }
                    n += 1;
                    if count_only {
                        if n == self.limit {
                            break;
                        }
                    } else {
                        out.insert(m.clone(), score);
                    }
                }
                (out, n)
            }
            SetOp::Union => {
                let mut acc: HashMap<Bytes, f64> = HashMap::new();
                for (src, w) in &self.sources {
                    for (m, s) in src.members() {
                        let score = weighted(s, *w);
                        match acc.get_mut(m) {
                            Some(total) => aggregate.apply(total, score),
                            None => {
                                acc.insert(m.clone(), score);
                            }
                        }
                    }
                }
                for (m, s) in acc {
                    out.insert(m, s);
                }
                let n = out.len() as u64;
                (out, n)
            }
            SetOp::Diff => {
                for (m, s) in first.members() {
                    if rest.iter().all(|(src, _)| src.score(m).is_none()) {
                        out.insert(m.clone(), s);
                    }
                }
                let n = out.len() as u64;
                (out, n)
            }
        }
    }
}

/// `ZUNION|ZINTER|ZDIFF numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES]`
fn algebra_reply(cx: &mut Ctx, args: &[Bytes], op: SetOp, name: &str) -> Reply {
    let algebra = match parse_algebra(cx.db, args, 1, op, Output::Members, name) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let withscores = algebra.withscores;
    let (result, _) = algebra.run(op, false);
    let items = result.iter().map(|(m, s)| (m.clone(), s)).collect();
    with_scores(items, withscores, cx.client.proto)
}

/// `ZUNIONSTORE|ZINTERSTORE|ZDIFFSTORE destination numkeys key [key ...] ...`
fn algebra_store(cx: &mut Ctx, args: &[Bytes], op: SetOp, name: &str) -> Reply {
    let db = &mut *cx.db;
    let algebra = match parse_algebra(db, args, 2, op, Output::Store, name) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let (result, n) = algebra.run(op, false);
    // The destination is replaced whatever it held, and deleted when the
    // result is empty.
    db.remove(&args[1]);
    if n > 0 {
        db.set(args[1].clone(), Value::ZSet(result), None);
    }
    Reply::Integer(n as i64)
}

pub fn zunion(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_reply(cx, args, SetOp::Union, "zunion")
}

pub fn zinter(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_reply(cx, args, SetOp::Inter, "zinter")
}

pub fn zdiff(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_reply(cx, args, SetOp::Diff, "zdiff")
}

pub fn zunionstore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_store(cx, args, SetOp::Union, "zunionstore")
}

pub fn zinterstore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_store(cx, args, SetOp::Inter, "zinterstore")
}

pub fn zdiffstore(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    algebra_store(cx, args, SetOp::Diff, "zdiffstore")
}

/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`
pub fn zintercard(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match parse_algebra(
        cx.db,
        args,
        1,
        SetOp::Inter,
        Output::Cardinality,
        "zintercard",
    ) {
        Ok(algebra) => Reply::Integer(algebra.run(SetOp::Inter, true).1 as i64),
        Err(e) => e,
    }
}

/// Removes and returns the `n` lowest (or highest) members.
fn pop_extremes(z: &mut SortedSet, n: usize, max: bool) -> Vec<(Bytes, f64)> {
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
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`: pops from the first
/// non-empty sorted set; `[key, [[member, score], ...]]`, or a null array.
pub fn zmpop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    zmpop_at(cx, args, 1)
}

/// ZMPOP with its numkeys argument at `at` (BZMPOP has a timeout before it).
pub(super) fn zmpop_at(cx: &mut Ctx, args: &[Bytes], at: usize) -> Reply {
    let (keys, max, count) = match mpop(args, at, min_max) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let db = &mut *cx.db;
    for key in keys {
        // Missing keys are skipped; a key of another type stops the search.
        match read(db, key, |_| ()) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(())) => {}
        }
        return match write(db, key, |z| pop_extremes(z, count, max)) {
            Err(e) => e,
            Ok(popped) => Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(
                    popped
                        .into_iter()
                        .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                        .collect(),
                ),
            ]),
        };
    }
    Reply::NullArray
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`: members and scores
/// (scores as strings, in RESP3 too).
pub fn zscan(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    super::scan::scan_collection(
        cx,
        args,
        |z: &SortedSet| (z.iter(), z.len()),
        |m, s| vec![Reply::Bulk(m.clone()), Reply::text(&format_double(s))],
    )
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
