//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE.
//!
//! A HyperLogLog is an ordinary string value (GET returns its bytes, TYPE
//! says string) in Redis's format; [`crate::hll`] does the work, these
//! handlers check types and edit values in place.

use bytes::Bytes;

use super::Ctx;
use super::bits::edit_str;
use crate::db::{Value, ValueRef, WRONGTYPE};
use crate::frame::Reply;
use crate::hll::{self, REGISTERS, SPARSE_MAX_BYTES};

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// The HyperLogLog at `key` for reading: `None` when missing, the generic
/// WRONGTYPE for another type, Redis's HyperLogLog WRONGTYPE for a string
/// that is not one.
fn hll_at(cx: &mut Ctx, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    match cx.db.get(key).map(|e| e.value) {
        None => Ok(None),
        Some(ValueRef::Str(s)) if hll::is_hll(&s) => Ok(Some(s.to_bytes())),
        Some(ValueRef::Str(_)) => Err(Reply::error(NOT_HLL)),
        Some(_) => Err(Reply::error(WRONGTYPE)),
    }
}

/// Merges the HyperLogLogs at `keys` into one register array; also says
/// whether any of them is dense.
fn union(cx: &mut Ctx, keys: &[Bytes]) -> Result<(Box<[u8; REGISTERS]>, bool), Reply> {
    let mut max = Box::new([0u8; REGISTERS]);
    let mut dense = false;
    for key in keys {
        // Missing keys count as empty HyperLogLogs.
        let Some(v) = hll_at(cx, key)? else {
            continue;
        };
        dense |= hll::is_dense(&v);
        hll::merge_into(&mut max, &v).map_err(|_| Reply::error(CORRUPT))?;
    }
    Ok((max, dense))
}

/// `PFADD key [element ...]`: 1 when an estimate may have changed (or the key
/// was created), else 0.
pub fn pfadd(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    let mut updated = false;
    match cx.db.peek(key).map(|e| e.value) {
        None => {
            cx.db
                .set(key.clone(), Value::Str(Bytes::from(hll::empty())), None);
            updated = true;
        }
        Some(ValueRef::Str(s)) if hll::is_hll(&s) => {
            // Nothing to raise: answer without writing, so that the key
            // counts as unchanged (a WATCH on it holds), as in Redis.
            if args[2..]
                .iter()
                .all(|e| hll::would_change(&s, e) == Ok(false))
            {
                return Reply::Integer(0);
            }
        }
        Some(ValueRef::Str(_)) => return Reply::error(NOT_HLL),
        Some(_) => return Reply::error(WRONGTYPE),
    }
    let result = cx.db.update(key, |v| {
        edit_str(v, |buf| {
            for e in &args[2..] {
                // Elements added before a corruption is met stay added, as
                // in Redis.
                updated |= hll::add(buf, e, SPARSE_MAX_BYTES)?;
            }
            if updated {
                hll::invalidate(buf);
            }
            Ok::<_, hll::Corrupt>(())
        })
    });
    match result.flatten() {
        Some(Ok(())) => Reply::Integer(i64::from(updated)),
        _ => Reply::error(CORRUPT),
    }
}

/// `PFCOUNT key [key ...]`: the estimate for one key (cached in the value, as
/// Redis does, so the value's bytes change), or for the union of several.
pub fn pfcount(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        return match union(cx, &args[1..]) {
            Ok((max, _)) => Reply::Integer(hll::estimate(&hll::raw_histogram(&max)) as i64),
            Err(e) => e,
        };
    }
    let key = &args[1];
    let v = match hll_at(cx, key) {
        Ok(Some(v)) => v,
        Ok(None) => return Reply::Integer(0),
        Err(e) => return e,
    };
    if let Some(n) = hll::cached_count(&v) {
        return Reply::Integer(n as i64);
    }
    let Ok(n) = hll::count(&v) else {
        return Reply::error(CORRUPT);
    };
    // Let go of our handle first so the edit can reuse the buffer.
    drop(v);
    cx.db
        .update(key, |v| edit_str(v, |buf| hll::set_cached_count(buf, n)));
    Reply::Integer(n as i64)
}

/// `PFMERGE destkey [sourcekey ...]`: the destination (itself one of the
/// inputs) becomes the union, keeping its TTL.
pub fn pfmerge(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (max, dense) = match union(cx, &args[1..]) {
        Ok(u) => u,
        Err(e) => return e,
    };
    let dest = &args[1];
    if cx.db.peek(dest).is_none() {
        cx.db
            .set(dest.clone(), Value::Str(Bytes::from(hll::empty())), None);
    }
    let result = cx.db.update(dest, |v| {
        edit_str(v, |buf| hll::raise_all(buf, &max, dense, SPARSE_MAX_BYTES))
    });
    match result.flatten() {
        Some(Ok(())) => Reply::OK,
        _ => Reply::error(CORRUPT),
    }
}
