//! SLOWLOG GET|LEN|RESET and MEMORY USAGE|STATS|DOCTOR|MALLOC-STATS|PURGE.

use bytes::Bytes;

use super::Ctx;
use super::util::{NOT_INTEGER, parse_i64};
use crate::frame::Reply;

/// `SLOWLOG GET [count]`: newest first; -1 means all, default 10.
pub fn get(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let count = match args.get(2).map(|a| parse_i64(a)) {
        None => Some(10),
        Some(Some(-1)) => None,
        Some(Some(n)) if n >= 0 => Some(n as usize),
        Some(_) => {
            return Reply::error("ERR count should be greater than or equal to -1");
        }
    };
    let entries = cx.shared.slowlog.newest(count);
    Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::Integer(e.id as i64),
                    Reply::Integer(e.time as i64),
                    Reply::Integer(e.micros as i64),
                    Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                    Reply::text(&e.client_addr),
                    Reply::Bulk(e.client_name),
                ])
            })
            .collect(),
    )
}

pub fn len(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Integer(cx.shared.slowlog.len() as i64)
}

pub fn reset(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    cx.shared.slowlog.reset();
    Reply::OK
}

/// `MEMORY USAGE key [SAMPLES count]`: the bytes the keyspace accounts for
/// the key (exact for every type: collections keep a running total, so
/// SAMPLES is accepted and needs no sampling).
pub fn usage(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match args.len() {
        3 => {}
        5 if super::util::eq(&args[3], "SAMPLES") => {
            if parse_i64(&args[4]).is_none_or(|n| n < 0) {
                return Reply::error(NOT_INTEGER);
            }
        }
        _ => return Reply::error(super::util::SYNTAX),
    }
    match cx.db.memory_usage(&args[2]) {
        Some(n) => Reply::Integer(n as i64),
        None => Reply::Null,
    }
}

/// `MEMORY STATS`: the figures Redis reports that the node has, as a map.
pub fn stats(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let keys = cx.db.len();
    let dataset = cx.db.used_bytes();
    let allocated = crate::memory::allocator_stats().map_or(dataset as u64, |s| s.allocated);
    let n = |v: u64| Reply::Integer(v as i64);
    let mut fields = vec![
        ("peak.allocated", n(allocated)),
        ("total.allocated", n(allocated)),
        ("startup.allocated", n(0)),
        ("replication.backlog", n(0)),
        ("clients.slaves", n(0)),
        ("clients.normal", n(0)),
        ("aof.buffer", n(0)),
        ("keys.count", n(keys as u64)),
        (
            "keys.bytes-per-key",
            n(dataset.checked_div(keys).unwrap_or(0) as u64),
        ),
        ("dataset.bytes", n(dataset as u64)),
        (
            "dataset.percentage",
            Reply::Double(if allocated == 0 {
                0.0
            } else {
                100.0 * dataset as f64 / allocated as f64
            }),
        ),
    ];
    if keys > 0 {
        fields.push((
            "db.0",
            Reply::Map(vec![
                (Reply::text("overhead.hashtable.main"), n(0)),
                (Reply::text("overhead.hashtable.expires"), n(0)),
            ]),
        ));
    }
    Reply::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Reply::text(k), v))
            .collect(),
    )
}

pub fn doctor(_: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Verbatim("Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.".into())
}

pub fn malloc_stats(_: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Verbatim(format!("allocator: {}\n", crate::memory::allocator_name()))
}

pub fn purge(_: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::OK
}
