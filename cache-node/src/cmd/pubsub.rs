//! Pub/sub: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB.
//!
//! The registry is [`crate::pubsub::PubSub`]; this module keeps each
//! client's own list of subscriptions in step with it and builds the
//! confirmation pushes.

use bytes::Bytes;

use super::Ctx;
use super::util::eq;
use crate::frame::Reply;
use crate::pubsub::Kind;

pub fn subscribe(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    add(cx, Kind::Channel, &args[1..])
}

pub fn psubscribe(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    add(cx, Kind::Pattern, &args[1..])
}

pub fn ssubscribe(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    add(cx, Kind::Shard, &args[1..])
}

pub fn unsubscribe(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    remove(cx, Kind::Channel, &args[1..])
}

pub fn punsubscribe(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    remove(cx, Kind::Pattern, &args[1..])
}

pub fn sunsubscribe(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    remove(cx, Kind::Shard, &args[1..])
}

/// The client's own set of names of `kind`.
fn names<'c>(cx: &'c mut Ctx, kind: Kind) -> &'c mut std::collections::HashSet<Bytes> {
    let subs = &mut cx.client.subs;
    match kind {
        Kind::Channel => &mut subs.channels,
        Kind::Pattern => &mut subs.patterns,
        Kind::Shard => &mut subs.shard,
    }
}

/// The count a confirmation carries: shard subscriptions are counted apart.
fn count(cx: &Ctx, kind: Kind) -> i64 {
    let subs = &cx.client.subs;
    (if kind == Kind::Shard {
        subs.shard.len()
    } else {
        subs.count()
    }) as i64
}

fn confirmation(verb: &str, name: Option<Bytes>, count: i64) -> Reply {
    Reply::Push(vec![
        Reply::text(verb),
        name.map_or(Reply::Null, Reply::Bulk),
        Reply::Integer(count),
    ])
}

fn add(cx: &mut Ctx, kind: Kind, targets: &[Bytes]) -> Reply {
    let (verb, _) = kind.verbs();
    let mut replies = Vec::with_capacity(targets.len());
    for name in targets {
        if names(cx, kind).insert(name.clone()) {
            cx.shared.pubsub.lock().expect("pubsub lock").subscribe(
                kind,
                name.clone(),
                &cx.client.handle,
            );
        }
        replies.push(confirmation(verb, Some(name.clone()), count(cx, kind)));
    }
    Reply::Many(replies)
}

fn remove(cx: &mut Ctx, kind: Kind, targets: &[Bytes]) -> Reply {
    let (_, verb) = kind.verbs();
    // No names means every subscription of this kind.
    let targets: Vec<Bytes> = if targets.is_empty() {
        names(cx, kind).iter().cloned().collect()
    } else {
        targets.to_vec()
    };
    if targets.is_empty() {
        return Reply::Many(vec![confirmation(verb, None, count(cx, kind))]);
    }
    let mut replies = Vec::with_capacity(targets.len());
    for name in targets {
        if names(cx, kind).remove(&name) {
            cx.shared
                .pubsub
                .lock()
                .expect("pubsub lock")
                .unsubscribe(kind, &name, cx.client.id);
        }
        replies.push(confirmation(verb, Some(name), count(cx, kind)));
    }
    Reply::Many(replies)
}

pub fn publish(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    deliver(cx, args, false)
}

pub fn spublish(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    deliver(cx, args, true)
}

fn deliver(cx: &mut Ctx, args: &[Bytes], shard: bool) -> Reply {
    let n = cx.shared.pubsub.lock().expect("pubsub lock").publish(
        &args[1],
        &args[2],
        shard,
        &cx.shared.pubsub_limit,
    );
    Reply::Integer(n as i64)
}

/// `PUBSUB CHANNELS|SHARDCHANNELS [pattern]`
pub fn channels(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let kind = if eq(&args[1], "SHARDCHANNELS") {
        Kind::Shard
    } else {
        Kind::Channel
    };
    if args.len() > 3 {
        return wrong_arity(&args[1]);
    }
    let ps = cx.shared.pubsub.lock().expect("pubsub lock");
    Reply::Array(
        ps.names(kind, args.get(2).map(|p| &p[..]))
            .into_iter()
            .map(Reply::Bulk)
            .collect(),
    )
}

/// `PUBSUB NUMSUB|SHARDNUMSUB [channel ...]`: channel, count, channel,
/// count... as a flat array in RESP3 too (Redis does not make it a map, and
/// a channel asked for twice is answered twice).
pub fn numsub(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let kind = if eq(&args[1], "SHARDNUMSUB") {
        Kind::Shard
    } else {
        Kind::Channel
    };
    let ps = cx.shared.pubsub.lock().expect("pubsub lock");
    Reply::Array(
        args[2..]
            .iter()
            .flat_map(|c| {
                [
                    Reply::Bulk(c.clone()),
                    Reply::Integer(ps.count(kind, c) as i64),
                ]
            })
            .collect(),
    )
}

pub fn numpat(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Integer(
        cx.shared
            .pubsub
            .lock()
            .expect("pubsub lock")
            .pattern_count() as i64,
    )
}

fn wrong_arity(sub: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for 'pubsub|{}' command",
        String::from_utf8_lossy(sub).to_lowercase()
    ))
}
