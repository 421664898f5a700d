//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Queued commands run inside `EXEC` under the keyspace lock the connection
//! already holds, so nothing else runs in between. `WATCH` is optimistic
//! locking: the keyspace marks a watcher dirty on any change of a watched
//! key ([`crate::db::Db::watch`]), and `EXEC` then answers a null array.

use bytes::Bytes;

use super::{Ctx, execute, lookup_request};
use crate::client::Multi;
use crate::frame::Reply;

pub fn multi(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    if cx.client.multi.is_some() {
        return Reply::error("ERR MULTI calls can not be nested");
    }
    cx.client.multi = Some(Multi::default());
    Reply::OK
}

pub fn exec(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let Some(multi) = cx.client.multi.take() else {
        return Reply::error("ERR EXEC without MULTI");
    };
    let broken = cx.db.watch_broken(cx.client.id);
    unwatch_all(cx);
    if multi.failed {
        return Reply::error("EXECABORT Transaction discarded because of previous errors.");
    }
    if broken {
        return Reply::NullArray;
    }
    // The transaction's slot moved since it was queued (a migration's
    // handoff): the redirect answers EXEC itself, and the transaction is
    // discarded, as in Redis, so that a cluster client retries it whole at
    // the new owner instead of reading one MOVED per command.
    if cx.shared.cluster_mode
        && let Some(slot) = multi.slot
        && let Some(redirect) = cx
            .shared
            .cluster
            .read()
            .expect("cluster lock")
            .route_write(std::iter::once(slot))
    {
        return Reply::error(redirect.message());
    }
    cx.client.in_exec = true;
    let replies = multi
        .queued
        .iter()
        .map(|args| match lookup_request(args) {
            Ok(spec) => one_element(execute(cx, spec, args)),
            Err(e) => e,
        })
        .collect();
    cx.client.in_exec = false;
    Reply::Array(replies)
}

/// A queued command's reply as one element of EXEC's array. `SUBSCRIBE a b`
/// and its kin answer with one message per channel; Redis writes them all
/// into the array, which then holds more elements than it announced and
/// desynchronises the client (redis/redis#12207). A single message stays
/// as it is, as in Redis; several become one nested array, so the reply
/// stays well-formed.
fn one_element(reply: Reply) -> Reply {
    match reply {
        Reply::Many(mut replies) if replies.len() == 1 => replies.remove(0),
        Reply::Many(replies) => Reply::Array(replies),
        other => other,
    }
}

pub fn discard(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    if cx.client.multi.take().is_none() {
        return Reply::error("ERR DISCARD without MULTI");
    }
    unwatch_all(cx);
    Reply::OK
}

pub fn watch(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if cx.client.multi.is_some() {
        return Reply::error("ERR WATCH inside MULTI is not allowed");
    }
    for key in &args[1..] {
        if !cx.client.watched.contains(key) {
            cx.client.watched.push(key.clone());
            cx.db.watch(cx.client.id, key.clone());
        }
    }
    Reply::OK
}

pub fn unwatch(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    unwatch_all(cx);
    Reply::OK
}

/// Forgets every key the client watches.
pub fn unwatch_all(cx: &mut Ctx) {
    let keys = std::mem::take(&mut cx.client.watched);
    cx.db.unwatch(cx.client.id, &keys);
}
