//! Who subscribes to what, and delivery of published messages.
//!
//! Subscribers are connection [`Handle`]s; a message is queued on each
//! subscriber's handle and written by that connection's own task, so a
//! publisher never waits on a slow subscriber. A subscriber whose queue
//! passes the pub/sub output buffer limit is disconnected instead.
//!
//! Classic channels are node-local: a message reaches the clients
//! subscribed on the node that received the `PUBLISH`. Shard channels
//! (`SSUBSCRIBE`/`SPUBLISH`) are routed by hash slot like keys, so in a
//! cluster publisher and subscribers meet on the slot's owner.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::client::{Handle, OutputLimit};
use crate::frame::Reply;
use crate::glob;

/// The three subscription namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    /// The words of the confirmation pushes: (subscribe, unsubscribe).
    pub fn verbs(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

type Subscribers = HashMap<Bytes, HashMap<u64, Arc<Handle>>>;

#[derive(Default)]
pub struct PubSub {
    channels: Subscribers,
    patterns: Subscribers,
    shard: Subscribers,
}

impl PubSub {
    fn table(&self, kind: Kind) -> &Subscribers {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    fn table_mut(&mut self, kind: Kind) -> &mut Subscribers {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    pub fn subscribe(&mut self, kind: Kind, name: Bytes, who: &Arc<Handle>) {
        self.table_mut(kind)
            .entry(name)
            .or_default()
            .insert(who.id, who.clone());
    }

    pub fn unsubscribe(&mut self, kind: Kind, name: &[u8], id: u64) {
        let table = self.table_mut(kind);
        if let Some(subs) = table.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                table.remove(name);
            }
        }
    }

    /// Delivers `payload` on `channel` (a shard channel when `shard`) to every
    /// matching subscriber; returns how many received it.
    pub fn publish(
        &self,
        channel: &Bytes,
        payload: &Bytes,
        shard: bool,
        limit: &OutputLimit,
    ) -> usize {
        // What a message costs queued: payload, channel and framing.
        let size = payload.len() + channel.len() + 32;
        let mut n = 0;
        let direct = if shard { &self.shard } else { &self.channels };
        if let Some(subs) = direct.get(channel) {
            let verb = if shard { "smessage" } else { "message" };
            for h in subs.values() {
                h.deliver(
                    Reply::Push(vec![
                        Reply::text(verb),
                        Reply::Bulk(channel.clone()),
                        Reply::Bulk(payload.clone()),
                    ]),
                    size,
                    limit,
                );
                n += 1;
            }
        }
        if !shard {
            for (pattern, subs) in &self.patterns {
                if !glob::matches(pattern, channel) {
                    continue;
                }
                for h in subs.values() {
                    h.deliver(
                        Reply::Push(vec![
                            Reply::text("pmessage"),
                            Reply::Bulk(pattern.clone()),
                            Reply::Bulk(channel.clone()),
                            Reply::Bulk(payload.clone()),
                        ]),
                        size + pattern.len(),
                        limit,
                    );
                    n += 1;
                }
            }
        }
        n
    }

    /// Active channels (`PUBSUB CHANNELS`/`SHARDCHANNELS`), optionally
    /// filtered by a glob.
    pub fn names(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let table = self.table(kind);
        table
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c)))
            .cloned()
            .collect()
    }

    /// Subscribers of one channel (`PUBSUB NUMSUB`/`SHARDNUMSUB`).
    pub fn count(&self, kind: Kind, name: &[u8]) -> usize {
        let table = self.table(kind);
        table.get(name).map_or(0, HashMap::len)
    }

    /// Distinct patterns subscribed (`PUBSUB NUMPAT`).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;

    fn handle(id: u64) -> Arc<Handle> {
        let addr = "127.0.0.1:1".parse().unwrap();
        Client::new(id, addr, addr, None).handle
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers() {
        let mut ps = PubSub::default();
        let (a, b) = (handle(1), handle(2));
        ps.subscribe(Kind::Channel, Bytes::from("news"), &a);
        ps.subscribe(Kind::Pattern, Bytes::from("n*"), &b);
        ps.subscribe(Kind::Pattern, Bytes::from("x*"), &b);
        let limit = OutputLimit::PUBSUB;
        let n = ps.publish(&Bytes::from("news"), &Bytes::from("hi"), false, &limit);
        assert_eq!(n, 2);
        assert_eq!(a.take_outbox().len(), 1);
        assert_eq!(b.take_outbox().len(), 1);
        // Shard channels are a namespace of their own.
        assert_eq!(
            ps.publish(&Bytes::from("news"), &Bytes::from("hi"), true, &limit),
            0
        );
        ps.unsubscribe(Kind::Channel, b"news", 1);
        assert!(ps.names(Kind::Channel, None).is_empty());
        assert_eq!(ps.pattern_count(), 2);
        assert_eq!(ps.count(Kind::Pattern, b"n*"), 1);
    }
}
