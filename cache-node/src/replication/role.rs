//! What this node is to its shard, as the node's state holds it: its
//! role, the write lease, the stream it serves and the link it follows.
//! Plain data: the tasks that change it ([`super::follow`],
//! [`super::replica::run`]) live beside it and use the node's state.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use super::primary;

/// What this node is to its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    Primary = 0,
    Replica = 1,
    /// A replica whose keyspace a full sync is replacing.
    Loading = 2,
}

/// The role, readable on every command without a lock.
#[derive(Default)]
pub struct RoleCell(AtomicU8);

impl RoleCell {
    pub fn get(&self) -> Role {
        match self.0.load(Ordering::Acquire) {
            1 => Role::Replica,
            2 => Role::Loading,
            _ => Role::Primary,
        }
    }

    pub fn set(&self, role: Role) {
        self.0.store(role as u8, Ordering::Release);
    }
}

/// The write lease (see the module documentation), readable on every write
/// without a lock. Times are milliseconds since the node started.
#[derive(Default)]
pub struct Lease {
    /// 0: the lease does not apply (no replicas to promote, standalone).
    pub length_ms: AtomicU64,
    /// When an admin request last came.
    pub renewed_ms: AtomicU64,
    /// Writes wait until then (a promoted replica waits out its old
    /// primary's lease).
    pub writes_from_ms: AtomicU64,
}

/// Why a write is refused by the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    /// Nobody reached this primary for a whole lease.
    Expired,
    /// Promoted: waits for the old primary's lease to end.
    Promoted,
}

impl Fenced {
    pub fn message(self) -> &'static str {
        match self {
            Fenced::Expired => {
                "CLUSTERDOWN Write lease expired: this primary has not heard from its replicas or the operator"
            }
            Fenced::Promoted => {
                "TRYAGAIN This replica was just promoted and waits for the old primary's write lease to end"
            }
        }
    }
}

impl Lease {
    pub fn renew(&self, now_ms: u64) {
        self.renewed_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Whether a write may run now.
    pub fn check(&self, now_ms: u64) -> Result<(), Fenced> {
        if now_ms < self.writes_from_ms.load(Ordering::Relaxed) {
            return Err(Fenced::Promoted);
        }
        let length = self.length_ms.load(Ordering::Relaxed);
        if length > 0 && now_ms > self.renewed_ms.load(Ordering::Relaxed) + length {
            return Err(Fenced::Expired);
        }
        Ok(())
    }
}

/// This node's replication state, behind `Shared::repl`.
pub struct Replication {
    /// The write stream this node serves as a primary.
    pub stream: primary::Stream,
    /// The primary this node follows, if any.
    pub link: Option<Link>,
    /// As a replica: the history and offset the keyspace is at (`None`
    /// until a full sync completed).
    pub applied: Option<(String, u64)>,
    /// The keyspace is no whole copy of the primary's: this node began
    /// following without one, or a full sync flushed it, and no full sync
    /// has completed since. (Not `applied == None`: a refused fetch
    /// forgets the offset of a keyspace that is still whole.)
    pub partial: bool,
    pub(super) next_generation: u64,
}

impl Replication {
    pub fn new(backlog_size: usize, sync_buffer_limit: usize) -> Self {
        Self {
            stream: primary::Stream::new(backlog_size).with_sync_buffer_limit(sync_buffer_limit),
            link: None,
            applied: None,
            partial: false,
            next_generation: 0,
        }
    }
}

/// Where the link is, as `ROLE` and INFO say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    /// Copying the primary's snapshot (a full sync).
    Sync,
    Connected,
}

impl LinkState {
    /// `ROLE`'s words for it.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// This node follows a primary.
pub struct Link {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// When a reply last came from the primary.
    pub last_io: Option<Instant>,
    /// Full syncs done on this link.
    pub full_syncs: u64,
    pub partial_syncs: u64,
    pub last_error: Option<String>,
    /// Tells this link's task from an older one's.
    pub generation: u64,
    pub task: tokio::task::JoinHandle<()>,
}
