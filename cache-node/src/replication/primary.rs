//! The primary's side: the write stream, its backlog, full syncs and what
//! each replica acknowledged. Everything here runs inside commands, under
//! the keyspace lock (lock order: keyspace, then replication).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidecache_topology::{SLOT_COUNT, SlotSet};

use crate::db::{CaptureId, Db, FollowId, Signal, Sink, Step, ValueRef, wire};
use tracing::warn;

/// Keys a full sync's capture copies per step.
const STEP_KEYS: usize = 512;
/// Bytes a `SNAPSHOT` reply or a `FETCH` reply carries at most (one larger
/// chunk goes alone): bounds the time under the lock and the reply size.
pub const MAX_REPLY_BYTES: usize = 1 << 20;
/// A full sync the replica stopped asking for is abandoned after this.
const SYNC_ABANDONED: Duration = Duration::from_secs(30);
/// A replica that has not fetched for this long is shown offline.
const ONLINE_FOR: Duration = Duration::from_secs(5);
/// A replica that has not fetched for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// The stream keeps what a known replica still needs up to this many times
/// the backlog size; a replica further behind does a full sync.
const NEEDED_FACTOR: usize = 16;

/// A replica, as the primary knows it from its requests.
#[derive(Debug, Clone)]
pub struct Peer {
    pub host: String,
    pub port: u16,
    /// The offset up to which it applied the stream.
    pub ack: u64,
    pub last_seen: Instant,
    /// Copying the snapshot of a full sync.
    pub syncing: bool,
    /// Done with a full sync and not heard from since.
    fresh: bool,
    /// When this node last sent it a reply (node clock, ms): what its next
    /// request renews the write lease to (see [`Stream::replied_at`]).
    replied_ms: Option<u64>,
}

impl Peer {
    pub fn online(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < ONLINE_FOR
    }
}

/// A full sync in progress: a capture of every slot, encoded as it goes.
struct FullSync {
    capture: CaptureId,
    encoded: Arc<Mutex<Encoded>>,
    /// The capture has given every slot.
    captured: bool,
    replica: String,
    touched: Instant,
}

impl FullSync {
    /// Bytes encoded for the replica and not sent yet.
    fn held(&self) -> usize {
        self.encoded.lock().expect("sync buffer lock").bytes.len()
    }
}

/// A snapshot's encoded entries not sent yet, with the places where a
/// part may end (every [`MAX_REPLY_BYTES`] or so, between entries): writes
/// to slots the capture has not reached can pile up more than one reply
/// should carry.
#[derive(Default)]
struct Encoded {
    bytes: Vec<u8>,
    cuts: std::collections::VecDeque<usize>,
}

impl Encoded {
    /// The next part: up to the first cut, or everything.
    fn take_part(&mut self) -> Vec<u8> {
        match self.cuts.pop_front() {
            Some(cut) => {
                let rest = self.bytes.split_off(cut);
                for c in &mut self.cuts {
                    *c -= cut;
                }
                std::mem::replace(&mut self.bytes, rest)
            }
            None => std::mem::take(&mut self.bytes),
        }
    }
}

/// A capture sink that encodes entries as stream changes.
struct Encoder(Arc<Mutex<Encoded>>);

impl Sink for Encoder {
    fn entry(&mut self, _slot: u16, key: &[u8], value: ValueRef<'_>, expires_at: Option<u64>) {
        let mut e = self.0.lock().expect("sync buffer lock");
        wire::put(&mut e.bytes, key, value, expires_at);
        let last = e.cuts.back().copied().unwrap_or(0);
        if e.bytes.len() - last >= MAX_REPLY_BYTES {
            let end = e.bytes.len();
            e.cuts.push_back(end);
        }
    }
}

/// How a replica's `PSYNC` is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Psync {
    /// The stream from the replica's offset is still here.
    Continue { replid: String, offset: u64 },
    /// Copy the snapshot (`SNAPSHOT sync`), then fetch the stream from
    /// `offset`.
    Full {
        replid: String,
        offset: u64,
        sync: u64,
    },
}

/// Why a `FETCH` cannot be served: the replica starts over with `PSYNC`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("replication id {0} is not this primary's history")]
    OtherHistory(String),
    #[error("offset {0} is no longer in the backlog")]
    Trimmed(u64),
    #[error("offset {0} is not a change boundary of the stream")]
    NotABoundary(u64),
}

/// The write stream of this node as a primary.
pub struct Stream {
    /// Names this history of writes: offsets mean something only with it.
    replid: String,
    /// Counts the histories this node started.
    generation: u64,
    /// Bytes of the stream so far.
    offset: u64,
    /// The latest stretch of the stream, as the chunks it was made of
    /// (start offset, changes); every chunk starts at a change boundary.
    backlog: VecDeque<(u64, Bytes)>,
    backlog_bytes: usize,
    backlog_size: usize,
    /// Records the changed keys; started by the first replica.
    follow: Option<FollowId>,
    /// Raised when a key changes and the stream has something to add.
    pub changed: Arc<Signal>,
    /// Raised when a replica acknowledges a new offset.
    pub acked: Arc<Signal>,
    replicas: BTreeMap<String, Peer>,
    syncs: HashMap<u64, FullSync>,
    next_sync: u64,
    /// Bytes a full sync may buffer before it is abandoned.
    sync_buffer_limit: usize,
    /// Full syncs abandoned for going past that.
    syncs_over_limit: u64,
}

impl Stream {
    pub fn new(backlog_size: usize) -> Self {
        Self {
            replid: crate::ident::random_hex(40),
            generation: 0,
            offset: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            backlog_size: backlog_size.max(1),
            follow: None,
            changed: Arc::default(),
            acked: Arc::default(),
            replicas: BTreeMap::new(),
            syncs: HashMap::new(),
            next_sync: 0,
            sync_buffer_limit: usize::MAX,
            syncs_over_limit: 0,
        }
    }

    /// Bounds what each full sync may buffer (see `--repl-sync-buffer-limit`).
    pub fn with_sync_buffer_limit(mut self, bytes: usize) -> Self {
        self.sync_buffer_limit = bytes.max(1);
        self
    }

    /// Full syncs abandoned because their buffer went past the limit.
    pub fn syncs_over_limit(&self) -> u64 {
        self.syncs_over_limit
    }

    /// Bytes the full syncs in progress hold for their replicas.
    pub fn sync_buffer_bytes(&self) -> usize {
        self.syncs.values().map(FullSync::held).sum()
    }

    pub fn replid(&self) -> &str {
        &self.replid
    }

    /// A number that changes with the replication id (cheap to compare).
    pub fn history(&self) -> u64 {
        self.generation
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The first offset the backlog still holds.
    pub fn backlog_start(&self) -> u64 {
        self.backlog
            .front()
            .map_or(self.offset, |(start, _)| *start)
    }

    pub fn backlog_bytes(&self) -> usize {
        self.backlog_bytes
    }

    pub fn backlog_size(&self) -> usize {
        self.backlog_size
    }

    pub fn is_active(&self) -> bool {
        self.follow.is_some()
    }

    pub fn replicas(&self) -> impl Iterator<Item = (&String, &Peer)> {
        self.replicas.iter()
    }

    /// Starts a new history: after a promotion or a demotion, nothing of
    /// the old stream applies. Replicas of the old history do a full sync.
    pub fn restart(&mut self, db: &mut Db) {
        if let Some(f) = self.follow.take() {
            db.unfollow(f);
        }
        for (_, sync) in self.syncs.drain() {
            db.cancel_capture(sync.capture);
        }
        self.replicas.clear();
        self.backlog.clear();
        self.backlog_bytes = 0;
        self.new_history();
        self.acked.raise();
        self.account(db);
    }

    /// Tells the keyspace how much the stream holds, which `maxmemory`
    /// does not count (see `Db::used_memory`).
    fn account(&self, db: &mut Db) {
        db.set_replication_buffers((self.backlog_bytes + self.sync_buffer_bytes()) as u64);
    }

    /// Moves the keys changed since the last pump into the stream, as
    /// their current states.
    pub fn pump(&mut self, db: &mut Db) {
        let Some(follow) = self.follow else {
            return;
        };
        let Some(changes) = db.take_changes(follow) else {
            return;
        };
        let mut chunk = Vec::new();
        if changes.cleared {
            wire::clear(&mut chunk);
        }
        for key in &changes.keys {
            match db.state(key) {
                Some((value, expires_at)) => wire::put(&mut chunk, key, value, expires_at),
                None => wire::del(&mut chunk, key),
            }
            if chunk.len() >= MAX_REPLY_BYTES {
                self.append(std::mem::take(&mut chunk));
            }
        }
        self.append(chunk);
        self.account(db);
    }

    fn new_history(&mut self) {
        self.replid = crate::ident::random_hex(40);
        self.generation += 1;
    }

    fn append(&mut self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        let len = chunk.len();
        self.backlog.push_back((self.offset, Bytes::from(chunk)));
        self.offset += len as u64;
        self.backlog_bytes += len;
        self.trim();
    }

    /// Drops the oldest chunks past the backlog size, except what a known
    /// replica or a full sync still needs, up to a hard bound.
    fn trim(&mut self) {
        let now = Instant::now();
        let needed = self
            .replicas
            .values()
            .filter(|p| now.duration_since(p.last_seen) < FORGET_AFTER)
            .map(|p| p.ack)
            .min()
            .unwrap_or(self.offset);
        let hard = self.backlog_size.saturating_mul(NEEDED_FACTOR);
        while self.backlog_bytes > self.backlog_size {
            let (start, chunk) = self.backlog.front().expect("bytes are in chunks");
            let end = start + chunk.len() as u64;
            if end > needed && self.backlog_bytes <= hard {
                break;
            }
            self.backlog_bytes -= chunk.len();
            self.backlog.pop_front();
        }
    }

    fn touch(&mut self, id: &str, host: &str, port: u16) -> &mut Peer {
        let peer = self.replicas.entry(id.to_owned()).or_insert_with(|| Peer {
            host: host.to_owned(),
            port,
            ack: 0,
            last_seen: Instant::now(),
            syncing: false,
            fresh: false,
            replied_ms: None,
        });
        peer.host = host.to_owned();
        peer.port = port;
        peer.last_seen = Instant::now();
        peer
    }

    /// A replica asks to follow the stream from `offset` of history
    /// `replid` (what it holds), or from scratch.
    pub fn psync(
        &mut self,
        db: &mut Db,
        id: &str,
        (host, port): (&str, u16),
        replid: &str,
        offset: u64,
    ) -> Psync {
        if self.follow.is_none() {
            // Changes before now were never recorded: a new history.
            self.new_history();
            self.follow = Some(db.follow_signalled(
                SlotSet::from_ranges(&[tidecache_topology::SlotRange {
                    start: 0,
                    end: SLOT_COUNT - 1,
                }]),
                self.changed.clone(),
            ));
        }
        // A replica's earlier full sync, if any, is over.
        let stale: Vec<u64> = self
            .syncs
            .iter()
            .filter(|(_, s)| s.replica == id)
            .map(|(n, _)| *n)
            .collect();
        for n in stale {
            self.end_sync(db, n);
        }
        if replid == self.replid && self.locate(offset).is_ok() {
            let peer = self.touch(id, host, port);
            peer.ack = offset;
            peer.syncing = false;
            // A `WAIT` for less than this offset may be satisfied now.
            self.acked.raise();
            return Psync::Continue {
                replid: self.replid.clone(),
                offset,
            };
        }
        let encoded = Arc::new(Mutex::new(Encoded::default()));
        // The capture is of this instant; every change after it is pumped
        // into the stream from `self.offset` on, as a state at least as
        // new, so snapshot then stream is the keyspace.
        let capture = db.start_capture(0..SLOT_COUNT, Box::new(Encoder(encoded.clone())));
        self.next_sync += 1;
        let sync = self.next_sync;
        self.syncs.insert(
            sync,
            FullSync {
                capture,
                encoded,
                captured: false,
                replica: id.to_owned(),
                touched: Instant::now(),
            },
        );
        let offset = self.offset;
        let peer = self.touch(id, host, port);
        peer.ack = offset;
        peer.syncing = true;
        Psync::Full {
            replid: self.replid.clone(),
            offset,
            sync,
        }
    }

    fn end_sync(&mut self, db: &mut Db, sync: u64) {
        if let Some(s) = self.syncs.remove(&sync) {
            db.cancel_capture(s.capture);
        }
    }

    /// The next part of full sync `sync`'s snapshot, and whether it is the
    /// last; `None` for an unknown (abandoned) sync.
    pub fn snapshot(&mut self, db: &mut Db, sync: u64) -> Option<(bool, Vec<u8>)> {
        let s = self.syncs.get_mut(&sync)?;
        s.touched = Instant::now();
        while !s.captured && s.held() < MAX_REPLY_BYTES {
            match db.capture_step(s.capture, STEP_KEYS) {
                Some(Step::More) => {}
                Some(Step::Done(_)) => s.captured = true,
                None => return None,
            }
        }
        let (part, left) = {
            let mut e = s.encoded.lock().expect("sync buffer lock");
            (e.take_part(), !e.bytes.is_empty())
        };
        // Writes to slots the capture had not reached encode into the
        // buffer too: the sync ends once the capture is done and the
        // buffer is sent.
        if s.captured && !left {
            let s = self.syncs.remove(&sync).expect("looked up above");
            if let Some(peer) = self.replicas.get_mut(&s.replica) {
                // Its ack, the sync's offset, counts once this last part
                // is applied: the replica's next fetch says so.
                peer.syncing = false;
                peer.fresh = true;
            }
            return Some((true, part));
        }
        Some((false, part))
    }

    /// Where `offset` starts in the backlog: the chunk index, or the end.
    fn locate(&self, offset: u64) -> Result<usize, FetchError> {
        if offset == self.offset {
            return Ok(self.backlog.len());
        }
        if offset < self.backlog_start() || offset > self.offset {
            return Err(FetchError::Trimmed(offset));
        }
        self.backlog
            .binary_search_by_key(&offset, |(start, _)| *start)
            .map_err(|_| FetchError::NotABoundary(offset))
    }

    /// A replica applied the stream up to `offset` and asks for what
    /// follows: `None` when there is nothing yet.
    pub fn fetch(
        &mut self,
        db: &mut Db,
        id: &str,
        replid: &str,
        offset: u64,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        if replid != self.replid {
            return Err(FetchError::OtherHistory(replid.to_owned()));
        }
        self.locate(offset)?;
        if let Some(peer) = self.replicas.get_mut(id) {
            peer.last_seen = Instant::now();
            // The first fetch after a full sync acknowledges the
            // snapshot's offset, which the sync recorded already.
            let first = std::mem::take(&mut peer.fresh);
            if offset > peer.ack || first {
                peer.ack = offset;
                self.acked.raise();
            }
        }
        // The ack first (trimming keeps what it still needs), then the
        // pump, then where the offset is now: the pump's appends may have
        // trimmed chunks off the front.
        self.pump(db);
        let i = self.locate(offset)?;
        let mut out = Vec::new();
        for (_, chunk) in self.backlog.iter().skip(i) {
            if !out.is_empty() && out.len() + chunk.len() > MAX_REPLY_BYTES {
                break;
            }
            out.extend_from_slice(chunk);
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// When this node last replied to replica `id`. A replica's request
    /// proves it had that reply, so it was following this node then: the
    /// write lease is renewed to that time, not to the request's arrival.
    /// A request that a partition held up (TCP retransmits it once the
    /// partition heals) thus renews nothing past the partition's start,
    /// and a primary replaced meanwhile does not take writes again.
    pub fn replied_at(&self, id: &str) -> Option<u64> {
        self.replicas.get(id).and_then(|p| p.replied_ms)
    }

    /// Records a reply to replica `id` sent at `now_ms`.
    pub fn reply_sent(&mut self, id: &str, now_ms: u64) {
        if let Some(p) = self.replicas.get_mut(id) {
            p.replied_ms = Some(now_ms);
        }
    }

    /// The replica a full sync copies to.
    pub fn sync_replica(&self, sync: u64) -> Option<&str> {
        self.syncs.get(&sync).map(|s| s.replica.as_str())
    }

    /// Replicas that applied the stream up to `offset` at least.
    pub fn acknowledged(&self, offset: u64) -> usize {
        let now = Instant::now();
        self.replicas
            .values()
            .filter(|p| p.ack >= offset && !p.syncing && !p.fresh && p.online(now))
            .count()
    }

    /// When a replica was last heard from.
    pub fn last_replica_contact(&self) -> Option<Instant> {
        self.replicas.values().map(|p| p.last_seen).max()
    }

    /// Periodic upkeep: abandoned syncs end, and so do syncs whose buffer
    /// went past the limit (their replica starts over, as Redis drops a
    /// replica past its output buffer limit); long-gone replicas are
    /// forgotten.
    pub fn tick(&mut self, db: &mut Db) {
        let now = Instant::now();
        let abandoned: Vec<u64> = self
            .syncs
            .iter()
            .filter(|(_, s)| now.duration_since(s.touched) > SYNC_ABANDONED)
            .map(|(n, _)| *n)
            .collect();
        for n in abandoned {
            self.end_sync(db, n);
        }
        let over: Vec<(u64, String, usize)> = self
            .syncs
            .iter()
            .filter_map(|(n, s)| {
                let held = s.held();
                (held > self.sync_buffer_limit).then(|| (*n, s.replica.clone(), held))
            })
            .collect();
        for (n, replica, held) in over {
            warn!(
                replica,
                held,
                limit = self.sync_buffer_limit,
                "full sync abandoned: its buffer went past --repl-sync-buffer-limit; the replica starts over"
            );
            self.end_sync(db, n);
            self.syncs_over_limit += 1;
        }
        self.replicas
            .retain(|_, p| now.duration_since(p.last_seen) < FORGET_AFTER);
        if self.replicas.is_empty() && self.syncs.is_empty() {
            // Nobody to stream to: stop recording changed keys (the first
            // replica to come starts a new history).
            if let Some(f) = self.follow.take() {
                db.unfollow(f);
                self.backlog.clear();
                self.backlog_bytes = 0;
            }
        } else {
            // Changed keys go into the backlog, bounded by its trimming,
            // rather than piling up while no replica fetches.
            self.pump(db);
        }
        self.account(db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::db::Value;

    fn new_db() -> Db {
        Db::new(Clock::manual(1_000_000))
    }

    fn apply(into: &mut Db, bytes: Vec<u8>) {
        super::super::apply(into, wire::decode_all(Bytes::from(bytes)).unwrap());
    }

    /// A new replica's PSYNC: (replid, offset, sync) of its full sync.
    fn full_sync(stream: &mut Stream, primary: &mut Db) -> (String, u64, u64) {
        match stream.psync(primary, "r", ("h", 1), "?", 0) {
            Psync::Full {
                replid,
                offset,
                sync,
            } => (replid, offset, sync),
            other => panic!("a new replica does a full sync, not {other:?}"),
        }
    }

    /// Fetches and applies the stream from `offset` until nothing is left;
    /// the offset reached.
    fn drain(
        stream: &mut Stream,
        primary: &mut Db,
        replica: &mut Db,
        replid: &str,
        mut offset: u64,
    ) -> u64 {
        while let Some(part) = stream.fetch(primary, "r", replid, offset).unwrap() {
            offset += part.len() as u64;
            apply(replica, part);
        }
        offset
    }

    fn set(db: &mut Db, k: &str, v: &str) {
        db.set(
            Bytes::from(k.to_owned()),
            Value::Str(Bytes::from(v.to_owned())),
            None,
        );
    }

    fn keys(db: &mut Db) -> Vec<(String, String)> {
        let mut all: Vec<_> = db
            .keys_where(|_| true)
            .into_iter()
            .map(|k| {
                let v = match db.state(&k) {
                    Some((ValueRef::Str(s), _)) => String::from_utf8_lossy(&s).into_owned(),
                    _ => String::new(),
                };
                (String::from_utf8_lossy(&k).into_owned(), v)
            })
            .collect();
        all.sort();
        all
    }

    /// Full sync, then the stream: the replica ends up equal, whatever
    /// was written during the copy.
    #[test]
    fn the_stream_tells_the_keyspace_what_it_holds() {
        let mut db = new_db();
        let mut stream = Stream::new(1 << 20);
        let _ = full_sync(&mut stream, &mut db);
        for i in 0..100 {
            set(&mut db, &format!("k{i}"), "a value of some length");
        }
        stream.pump(&mut db);
        assert!(stream.backlog_bytes() > 0);
        assert_eq!(db.replication_buffers(), stream.backlog_bytes() as u64);
        stream.restart(&mut db);
        assert_eq!(db.replication_buffers(), 0);
    }

    #[test]
    fn snapshot_then_stream_is_the_keyspace() {
        let mut primary = new_db();
        // 3 MB: the snapshot takes several parts.
        let old = "o".repeat(1000);
        for i in 0..3000 {
            set(&mut primary, &format!("k{i}"), &old);
        }
        let mut stream = Stream::new(1 << 20);
        let (replid, mut offset, sync) = full_sync(&mut stream, &mut primary);
        let mut replica = new_db();
        let mut i = 0;
        loop {
            // Writes between the parts: some to copied slots, some not yet.
            set(&mut primary, &format!("k{}", i * 7 % 3000), "new");
            primary.remove(format!("k{}", i * 13 % 3000).as_bytes());
            set(&mut primary, &format!("fresh{i}"), "x");
            i += 1;
            let (done, part) = stream.snapshot(&mut primary, sync).unwrap();
            apply(&mut replica, part);
            if done {
                break;
            }
        }
        set(&mut primary, "after", "1");
        offset = drain(&mut stream, &mut primary, &mut replica, &replid, offset);
        assert!(i > 1, "the snapshot came in several parts");
        assert_eq!(keys(&mut replica), keys(&mut primary));
        // The fetch that found nothing more acknowledged everything.
        assert_eq!(stream.acknowledged(offset), 1);
        set(&mut primary, "later", "1");
        stream.pump(&mut primary);
        assert_eq!(stream.acknowledged(stream.offset()), 0);
    }

    #[test]
    fn a_known_offset_continues_and_others_resync() {
        let mut db = new_db();
        let mut stream = Stream::new(64);
        let (replid, _, sync) = full_sync(&mut stream, &mut db);
        while !stream.snapshot(&mut db, sync).unwrap().0 {}
        set(&mut db, "a", "1");
        let first = stream.fetch(&mut db, "r", &replid, 0).unwrap().unwrap();
        let at = first.len() as u64;
        assert_eq!(
            stream.psync(&mut db, "r", ("h", 1), &replid, at),
            Psync::Continue {
                replid: replid.clone(),
                offset: at
            }
        );
        assert_eq!(
            stream.fetch(&mut db, "r", &replid, 1),
            Err(FetchError::NotABoundary(1))
        );
        assert!(matches!(
            stream.fetch(&mut db, "r", "other", at),
            Err(FetchError::OtherHistory(_))
        ));
        // Writes past the backlog size, while the replica is away long
        // enough to be forgotten, trim its offset away.
        stream.replicas.clear();
        for i in 0..100 {
            set(&mut db, &format!("k{i}"), &"v".repeat(20));
            stream.pump(&mut db);
        }
        assert!(stream.backlog_bytes() <= 64 + 40);
        assert!(matches!(
            stream.psync(&mut db, "r", ("h", 1), &replid, at),
            Psync::Full { .. }
        ));
    }

    #[test]
    fn a_known_replica_keeps_its_part_of_the_backlog() {
        let mut db = new_db();
        let mut stream = Stream::new(64);
        let (replid, _, sync) = full_sync(&mut stream, &mut db);
        while !stream.snapshot(&mut db, sync).unwrap().0 {}
        for i in 0..20 {
            set(&mut db, &format!("k{i}"), &"v".repeat(20));
            stream.pump(&mut db);
        }
        // Still at 0, and recent: nothing it needs went.
        assert_eq!(stream.backlog_start(), 0);
        let mut replica = new_db();
        drain(&mut stream, &mut db, &mut replica, &replid, 0);
        assert_eq!(keys(&mut replica), keys(&mut db));
    }

    /// A FLUSHALL during a full sync hands every slot not captured yet to
    /// the capture at once: it still goes out in parts of bounded size.
    #[test]
    fn snapshot_parts_stay_bounded_when_writes_hand_slots_over() {
        let mut primary = new_db();
        let v = "v".repeat(2000);
        for i in 0..4000 {
            set(&mut primary, &format!("k{i}"), &v);
        }
        let mut stream = Stream::new(1 << 20);
        let (replid, offset, sync) = full_sync(&mut stream, &mut primary);
        let mut replica = new_db();
        let mut parts = 0;
        loop {
            let (done, part) = stream.snapshot(&mut primary, sync).unwrap();
            assert!(
                part.len() < MAX_REPLY_BYTES + 4096,
                "part of {} bytes",
                part.len()
            );
            apply(&mut replica, part);
            parts += 1;
            if parts == 1 {
                primary.flush();
                set(&mut primary, "after", "1");
            }
            if done {
                break;
            }
        }
        assert!(parts > 4, "{parts} parts");
        drain(&mut stream, &mut primary, &mut replica, &replid, offset);
        assert_eq!(keys(&mut replica), keys(&mut primary));
    }

    /// Writes that hand uncopied slots to a slow replica's sync fill its
    /// buffer; past the limit the sync ends (its capture too) and the
    /// replica's next part request finds it gone, so it starts over.
    #[test]
    fn a_sync_whose_buffer_passes_the_limit_is_abandoned() {
        let mut primary = new_db();
        let v = "v".repeat(1000);
        for i in 0..2000 {
            set(&mut primary, &format!("k{i}"), &v);
        }
        let mut stream = Stream::new(1 << 20).with_sync_buffer_limit(500_000);
        let (_, _, sync) = full_sync(&mut stream, &mut primary);
        assert_eq!(primary.captures(), 1);
        // Under the limit: the tick leaves it alone.
        set(&mut primary, "k0", "w");
        stream.tick(&mut primary);
        assert!(stream.sync_buffer_bytes() > 0);
        assert_eq!(stream.syncs_over_limit(), 0);
        // Every slot handed over at once (about 2 MB of entries).
        for i in 0..2000 {
            set(&mut primary, &format!("k{i}"), "w");
        }
        assert!(stream.sync_buffer_bytes() > 500_000);
        stream.tick(&mut primary);
        assert_eq!(stream.syncs_over_limit(), 1);
        assert_eq!(stream.sync_buffer_bytes(), 0, "the buffer is freed");
        assert_eq!(primary.captures(), 0, "and the capture ended");
        assert!(stream.snapshot(&mut primary, sync).is_none());
        // A new full sync goes ahead as usual.
        let (replid, offset, sync) = full_sync(&mut stream, &mut primary);
        let mut replica = new_db();
        loop {
            let (done, part) = stream.snapshot(&mut primary, sync).unwrap();
            apply(&mut replica, part);
            if done {
                break;
            }
        }
        drain(&mut stream, &mut primary, &mut replica, &replid, offset);
        assert_eq!(keys(&mut replica), keys(&mut primary));
    }

    /// A fetch whose pump appends past the backlog size (trimming chunks
    /// off the front) still sends the stream from exactly its offset.
    #[test]
    fn a_fetch_that_trims_sends_from_its_own_offset() {
        let mut primary = new_db();
        let mut stream = Stream::new(2 * MAX_REPLY_BYTES);
        let (replid, _, sync) = full_sync(&mut stream, &mut primary);
        let mut replica = new_db();
        while !stream.snapshot(&mut primary, sync).unwrap().0 {}
        let mut offset = 0;
        let big = "x".repeat(100_000);
        for round in 0..6 {
            // More than the backlog holds between two fetches.
            for i in 0..40 {
                set(&mut primary, &format!("k{round}-{i}"), &big);
            }
            offset = drain(&mut stream, &mut primary, &mut replica, &replid, offset);
        }
        assert_eq!(offset, stream.offset());
        assert_eq!(keys(&mut replica), keys(&mut primary));
    }

    #[test]
    fn flushall_and_expiry_reach_the_replica() {
        let mut db = new_db();
        let mut stream = Stream::new(1 << 20);
        let (replid, _, sync) = full_sync(&mut stream, &mut db);
        while !stream.snapshot(&mut db, sync).unwrap().0 {}
        let mut replica = new_db();
        set(&mut replica, "stale", "x");
        set(&mut db, "a", "1");
        db.flush();
        set(&mut db, "b", "2");
        db.set(
            Bytes::from_static(b"ttl"),
            Value::Str(Bytes::from_static(b"v")),
            Some(u64::MAX / 2),
        );
        let part = stream.fetch(&mut db, "r", &replid, 0).unwrap().unwrap();
        apply(&mut replica, part);
        assert_eq!(keys(&mut replica), keys(&mut db));
        assert_eq!(replica.state(b"ttl").unwrap().1, Some(u64::MAX / 2));
    }

    #[test]
    fn an_abandoned_sync_ends_and_a_new_psync_replaces_it() {
        let mut db = new_db();
        set(&mut db, "a", "1");
        let mut stream = Stream::new(1 << 20);
        let (_, _, first) = full_sync(&mut stream, &mut db);
        assert_eq!(db.captures(), 1);
        let (_, _, second) = full_sync(&mut stream, &mut db);
        assert_eq!(db.captures(), 1, "the first sync's capture ended");
        assert!(stream.snapshot(&mut db, first).is_none());
        stream.syncs.get_mut(&second).unwrap().touched -= SYNC_ABANDONED * 2;
        stream.tick(&mut db);
        assert_eq!(db.captures(), 0);
        assert!(stream.snapshot(&mut db, second).is_none());
    }
}
