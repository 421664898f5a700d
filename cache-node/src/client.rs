//! One connection's state ([`Client`]), and the part of it other
//! connections may see and act on ([`Handle`]): `CLIENT LIST`/`KILL`/
//! `UNBLOCK`, and pub/sub messages published by others.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::frame::{Protocol, Reply};
use crate::parse::Decoder;

/// An authenticated identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Default,
    /// The operator's user: may run `TIDECACHE` admin commands.
    Admin,
}

impl User {
    pub fn name(self) -> &'static str {
        match self {
            User::Default => "default",
            User::Admin => tidecache_topology::admin::ADMIN_USER,
        }
    }
}

/// Commands queued between `MULTI` and `EXEC`.
#[derive(Debug, Default)]
pub struct Multi {
    pub queued: Vec<Vec<Bytes>>,
    /// A command failed to queue (unknown, wrong arity): `EXEC` must refuse.
    pub failed: bool,
    /// The slot the queued commands' keys live in (cluster mode keeps a
    /// transaction to one slot).
    pub slot: Option<u16>,
}

/// Why a command could not finish now and must run again later.
#[derive(Debug)]
pub enum Wait {
    /// A blocking command found nothing: run again when one of `keys`
    /// changes, or answer `on_timeout` at `deadline`.
    Keys {
        keys: Vec<Bytes>,
        deadline: Option<tokio::time::Instant>,
        on_timeout: Reply,
    },
    /// `CLIENT PAUSE` holds this command back until the pause ends.
    Pause,
    /// A write to a slot whose migration is handing it over waits for the
    /// handoff to end.
    Frozen,
    /// Run again once `signal` moves past `seen`, or at `deadline`
    /// (a replica's `FETCH` waiting for writes, `WAIT` for acknowledgements).
    Signal {
        signal: std::sync::Arc<crate::db::Signal>,
        seen: u64,
        deadline: Option<tokio::time::Instant>,
        /// A client's blocking command (`WAIT`), which `CLIENT UNBLOCK`
        /// ends and `blocked_clients` counts; not a replica's `FETCH`.
        blocking: bool,
    },
    /// The command's work went to the bulk thread: its reply is the one
    /// that arrives here (`IMPORT APPLY`).
    Done(tokio::sync::oneshot::Receiver<crate::frame::Reply>),
}

/// What a `WAIT` or a `FETCH` that waits remembers between its runs.
#[derive(Debug, Clone, Copy)]
pub struct PendingWait {
    /// The stream offset waited for.
    pub offset: u64,
    /// The stream history the offset is of.
    pub history: u64,
    pub deadline: Option<tokio::time::Instant>,
}

/// `CLIENT REPLY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Set by `CLIENT REPLY SKIP`, which itself has no reply: the next
    /// command's reply is dropped.
    SkipNext,
    /// Drop the reply of the command running now, then back to `On`.
    Skip,
}

/// The channels, patterns and shard channels a client subscribes to.
#[derive(Debug, Default)]
pub struct Subscriptions {
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    pub shard: HashSet<Bytes>,
}

impl Subscriptions {
    /// The count Redis reports in (un)subscribe replies: channels and patterns.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn any(&self) -> bool {
        self.count() + self.shard.len() > 0
    }
}

/// One client connection's state, owned by its task.
pub struct Client {
    pub id: u64,
    pub addr: SocketAddr,
    pub user: Option<User>,
    pub proto: Protocol,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// Set by QUIT: close once the reply is written.
    pub closing: bool,
    pub multi: Option<Multi>,
    /// Running the commands of an `EXEC`: blocking commands answer at once.
    pub in_exec: bool,
    pub watched: Vec<Bytes>,
    /// Set by a command that has to wait; the connection retries it later.
    pub wait: Option<Wait>,
    pub reply: ReplyMode,
    pub subs: Subscriptions,
    pub no_evict: bool,
    pub no_touch: bool,
    /// `READONLY`: a replica serves this client's reads (cluster mode).
    pub readonly: bool,
    /// The `WAIT` (or replica `FETCH`) being retried, if any.
    pub pending: Option<PendingWait>,
    pub handle: Arc<Handle>,
    /// How far the request arriving in the connection's input was decoded.
    pub decoder: Decoder,
    /// When the command about to run started: the end of the one before
    /// it in the same batch, so that timing each command for the slow log
    /// reads the clock once per command, not twice.
    pub tick: std::time::Instant,
}

impl Client {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr, user: Option<User>) -> Self {
        Client {
            id,
            addr,
            user,
            proto: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            closing: false,
            multi: None,
            in_exec: false,
            watched: Vec::new(),
            wait: None,
            reply: ReplyMode::On,
            subs: Subscriptions::default(),
            no_evict: false,
            no_touch: false,
            readonly: false,
            pending: None,
            handle: Arc::new(Handle::new(id, addr, laddr)),
            decoder: Decoder::default(),
            tick: std::time::Instant::now(),
        }
    }

    /// Copies what `CLIENT LIST` shows of this client into its handle.
    pub fn publish_view(&self, last_cmd: &'static str) {
        let mut v = self.handle.view.lock().expect("client view lock");
        v.name.clone_from(&self.name);
        v.lib_name.clone_from(&self.lib_name);
        v.lib_ver.clone_from(&self.lib_ver);
        v.user = self.user.map_or("default", User::name);
        v.resp = if self.proto == Protocol::Resp3 { 3 } else { 2 };
        v.sub = self.subs.channels.len();
        v.psub = self.subs.patterns.len();
        v.ssub = self.subs.shard.len();
        v.multi = self.multi.as_ref().map(|m| m.queued.len());
        v.flags = String::new();
        if self.multi.is_some() {
            v.flags.push('x');
        }
        if self.wait.is_some() {
            v.flags.push('b');
        }
        if self.subs.any() {
            v.flags.push('P');
        }
        if self.no_evict {
            v.flags.push('e');
        }
        if self.no_touch {
            v.flags.push('T');
        }
        if v.flags.is_empty() {
            v.flags.push('N');
        }
        if !last_cmd.is_empty() {
            v.last_cmd = last_cmd;
        }
        v.last_active = Instant::now();
    }
}

/// What `CLIENT LIST` shows of a client, refreshed by its connection after
/// each batch of commands.
#[derive(Debug, Clone)]
pub struct View {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub user: &'static str,
    pub resp: u8,
    pub flags: String,
    pub sub: usize,
    pub psub: usize,
    pub ssub: usize,
    pub multi: Option<usize>,
    pub last_cmd: &'static str,
    pub last_active: Instant,
}

/// How `CLIENT UNBLOCK` ends a blocked command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblock {
    Timeout,
    Error,
}

/// See [`Handle::set_blocked`].
#[derive(Debug, Default)]
struct Block {
    blocked: bool,
    unblock: Option<Unblock>,
}

/// The shared side of a connection, kept in the server's client registry.
pub struct Handle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub view: Mutex<View>,
    /// Set (and `wake` notified) by `CLIENT KILL` or when the client's output
    /// buffer limit is exceeded.
    killed: AtomicBool,
    /// Notified when the connection task has something to do besides reading:
    /// pub/sub messages to write, a kill, a blocked key that changed.
    pub wake: Arc<Notify>,
    /// Whether the client waits in a blocking command, and how `CLIENT
    /// UNBLOCK` asked it to end: one lock, so that an unblock can only be
    /// asked of a wait in progress and never outlives it.
    block: Mutex<Block>,
    outbox: Mutex<VecDeque<Reply>>,
    /// Approximate bytes queued in `outbox` (for output buffer limits).
    outbox_bytes: AtomicUsize,
    /// When the outbox first went over the soft limit, if it is over it now.
    over_soft_since: Mutex<Option<Instant>>,
}

impl Handle {
    fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> Self {
        let now = Instant::now();
        Handle {
            id,
            addr,
            laddr,
            created: now,
            view: Mutex::new(View {
                name: None,
                lib_name: None,
                lib_ver: None,
                user: "default",
                resp: 2,
                flags: "N".into(),
                sub: 0,
                psub: 0,
                ssub: 0,
                multi: None,
                last_cmd: "NULL",
                last_active: now,
            }),
            killed: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            block: Mutex::new(Block::default()),
            outbox: Mutex::new(VecDeque::new()),
            outbox_bytes: AtomicUsize::new(0),
            over_soft_since: Mutex::new(None),
        }
    }

    /// Asks the connection to close as soon as it can.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Marks the client as waiting in a blocking command (or not): what
    /// `CLIENT UNBLOCK` may end. Either way an unblock asked of an earlier
    /// wait is forgotten.
    pub fn set_blocked(&self, blocked: bool) {
        *self.block.lock().expect("block lock") = Block {
            blocked,
            unblock: None,
        };
    }

    pub fn is_blocked(&self) -> bool {
        self.block.lock().expect("block lock").blocked
    }

    /// `CLIENT UNBLOCK`: asks the blocking command in progress to end
    /// `how`; false when the client is not blocked (or was already asked).
    pub fn request_unblock(&self, how: Unblock) -> bool {
        let mut block = self.block.lock().expect("block lock");
        if !block.blocked || block.unblock.is_some() {
            return false;
        }
        block.unblock = Some(how);
        drop(block);
        self.wake.notify_one();
        true
    }

    /// How `CLIENT UNBLOCK` asked the current wait to end, if it did.
    pub fn unblock_requested(&self) -> Option<Unblock> {
        self.block.lock().expect("block lock").unblock
    }

    /// Queues a pub/sub message for this client, or kills the client when
    /// its queue is over `limits` (a subscriber that does not read must not
    /// make the node hold unbounded memory for it).
    pub fn deliver(&self, message: Reply, size: usize, limits: &OutputLimit) {
        let queued = self.outbox_bytes.fetch_add(size, Ordering::AcqRel) + size;
        if limits.exceeded(queued, &self.over_soft_since) {
            tracing::warn!(
                id = self.id,
                addr = %self.addr,
                queued,
                "closing client: pub/sub output buffer limit exceeded"
            );
            self.kill();
            return;
        }
        self.outbox.lock().expect("outbox lock").push_back(message);
        self.wake.notify_one();
    }

    /// Takes every queued message.
    pub fn take_outbox(&self) -> Vec<Reply> {
        let drained: Vec<Reply> = self.outbox.lock().expect("outbox lock").drain(..).collect();
        if !drained.is_empty() {
            self.outbox_bytes.store(0, Ordering::Release);
            *self.over_soft_since.lock().expect("soft limit lock") = None;
        }
        drained
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.lock().expect("outbox lock").len()
    }

    pub fn outbox_bytes(&self) -> usize {
        self.outbox_bytes.load(Ordering::Acquire)
    }
}

/// `client-output-buffer-limit <class> <hard> <soft> <soft-seconds>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    /// Bytes; 0 = no limit.
    pub hard: usize,
    pub soft: usize,
    pub soft_seconds: u64,
}

impl OutputLimit {
    /// Redis's default for pub/sub clients: `32mb 8mb 60`.
    pub const PUBSUB: OutputLimit = OutputLimit {
        hard: 32 << 20,
        soft: 8 << 20,
        soft_seconds: 60,
    };

    /// Whether `queued` bytes break the limit, remembering in `since` when
    /// the soft limit was first passed.
    pub fn exceeded(&self, queued: usize, since: &Mutex<Option<Instant>>) -> bool {
        if self.hard > 0 && queued > self.hard {
            return true;
        }
        if self.soft == 0 || queued <= self.soft {
            return false;
        }
        let mut since = since.lock().expect("soft limit lock");
        let first = *since.get_or_insert_with(Instant::now);
        first.elapsed().as_secs() >= self.soft_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_limit_kills_at_once_soft_limit_after_a_while() {
        let limit = OutputLimit {
            hard: 100,
            soft: 10,
            soft_seconds: 0,
        };
        let since = Mutex::new(None);
        assert!(!limit.exceeded(5, &since));
        assert!(limit.exceeded(101, &since));
        assert!(limit.exceeded(11, &since), "soft limit with 0 s grace");
        let patient = OutputLimit {
            soft_seconds: 3600,
            ..limit
        };
        let since = Mutex::new(None);
        assert!(!patient.exceeded(50, &since));
        assert!(since.lock().unwrap().is_some());
        let none = OutputLimit {
            hard: 0,
            soft: 0,
            soft_seconds: 0,
        };
        assert!(!none.exceeded(usize::MAX, &Mutex::new(None)));
    }

    #[test]
    fn a_subscriber_over_its_limit_is_killed_not_queued() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let h = Handle::new(1, addr, addr);
        let limit = OutputLimit {
            hard: 100,
            soft: 0,
            soft_seconds: 0,
        };
        h.deliver(Reply::Integer(1), 60, &limit);
        assert_eq!(h.outbox_len(), 1);
        assert!(!h.is_killed());
        h.deliver(Reply::Integer(2), 60, &limit);
        assert!(h.is_killed());
        assert_eq!(h.outbox_len(), 1, "the message over the limit is dropped");
        assert_eq!(h.take_outbox().len(), 1);
        assert_eq!(h.outbox_bytes(), 0);
    }
}
