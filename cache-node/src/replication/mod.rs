//! Replication: a primary's keyspace copied to its replicas, and kept so.
//!
//! The replica pulls, over an admin connection to the primary's client
//! port (the same link a migration uses):
//!
//! 1. `TIDECACHE REPL PSYNC <id> <host> <port> <replid> <offset>`: the
//!    history (replication id) and offset the replica's keyspace is at.
//!    If the primary's backlog still holds the stream from there, it
//!    answers `CONTINUE` (a partial resync after a short break). Otherwise
//!    `FULLRESYNC <replid> <offset> <sync>`: the primary starts a fork-less
//!    consistent capture of every slot ([`crate::db::Sink`]) at this
//!    instant, and the replica empties its keyspace and copies the capture
//!    part by part (`TIDECACHE REPL SNAPSHOT <sync>`).
//! 2. `TIDECACHE REPL FETCH <id> <replid> <offset>`, in a loop: the stream
//!    from `offset`, waiting up to [`FETCH_WAIT`] on the primary for
//!    something to send. Asking from an offset acknowledges everything
//!    before it, which is what `WAIT` counts.
//!
//! The stream carries key states, not commands (the format migration uses,
//! [`crate::db::wire`]): a follower records which keys change and
//! the primary encodes their current states when a replica fetches. So the
//! stream is deterministic by construction, a key written many times
//! between two fetches goes once, and a state read after the capture's
//! instant is never older than the capture's copy — snapshot then stream
//! is exactly the keyspace. A large collection changed often is sent whole
//! each time it changes between fetches; that is the price of this design.
//!
//! Offsets count bytes of the stream under one replication id; a primary
//! starts a new id whenever it starts recording (first replica, promotion,
//! demotion), so offsets of different histories are never compared.
//!
//! Replicas refuse writes (`READONLY`), redirect clients to the primary in
//! cluster mode unless they sent `READONLY`, and answer `LOADING` while a
//! full sync replaces their keyspace.
//!
//! Fencing: a primary whose shard has replicas holds a write lease,
//! renewed by its replicas' requests, by a new document naming it primary
//! and by the operator's `TIDECACHE LEASE RENEW <epoch>` (only while it
//! runs that epoch as primary). When none came for `--write-lease-ms`, it
//! refuses writes: the operator may have promoted a replica meanwhile. A
//! promoted replica waits as long before its first write, so the two never
//! overlap, unless the operator says the old one is fenced
//! (`TIDECACHE LEASE WAIVE`, after a planned switchover's `FENCE`).

pub mod primary;
pub mod replica;
pub mod role;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::cluster::ClusterState;
use crate::db::Db;
use crate::db::wire::Change;

pub use role::{Fenced, Lease, Replication, Role, RoleCell};

/// What replication uses of the node's state: the same cells the state
/// holds (`state::Shared::replication_handles`), and nothing else of it.
#[derive(Clone)]
pub struct Handles {
    pub db: Arc<Mutex<Db>>,
    pub cluster: Arc<RwLock<ClusterState>>,
    /// The write stream to replicas, or the link to a primary. Locked
    /// after the keyspace, never before.
    pub repl: Arc<Mutex<Replication>>,
    pub role: Arc<RoleCell>,
    pub lease: Arc<Lease>,
    /// Whether the node runs in cluster mode (fixed at start).
    pub cluster_mode: bool,
    /// `--admin-password`: how a replica reaches its primary.
    pub admin_password: Option<String>,
    /// `--write-lease-ms`.
    pub write_lease_ms: u64,
    /// When the node started: the write lease's clock.
    pub started: Instant,
}

impl Handles {
    /// Milliseconds since the node started (the write lease's clock:
    /// monotonic, unlike the keyspace's wall clock).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// How long a `FETCH` waits on the primary for something to send: the
/// replica's idle poll interval.
pub const FETCH_WAIT: Duration = Duration::from_millis(100);

/// How much longer than a lease a promoted replica waits before its first
/// write.
pub const PROMOTION_MARGIN_MS: u64 = 500;

/// Applies decoded stream changes to a replica's keyspace.
pub fn apply(db: &mut Db, changes: Vec<Change>) {
    crate::db::wire::apply(db, changes, Db::flush);
}

/// Makes this node follow `primary` (`Some((host, port))`) or stop
/// following (`None`: it is, or becomes, a primary). Following a new
/// primary keeps the keyspace and its history for a partial resync;
/// a node that stops being a primary ends its own stream.
pub fn follow(shared: &Handles, db: &mut Db, primary: Option<(String, u16)>) {
    let mut repl = shared.repl.lock().expect("replication lock");
    let same = match (&repl.link, &primary) {
        (Some(l), Some((host, port))) => l.host == *host && l.port == *port,
        (None, None) => true,
        _ => false,
    };
    if same {
        return;
    }
    let was_replica = repl.link.is_some();
    if let Some(old) = repl.link.take() {
        old.task.abort();
    }
    match primary {
        Some((host, port)) => {
            info!(primary = %format!("{host}:{port}"), "following a primary");
            if !was_replica {
                // Its replicas, if any, must not follow a node that follows.
                repl.stream.restart(db);
                // Not a copy of the new primary's history until a full
                // sync completes (what it holds is its own, or nothing).
                repl.partial = repl.applied.is_none();
            }
            repl.next_generation += 1;
            let generation = repl.next_generation;
            let task = tokio::spawn(replica::run(shared.clone(), host.clone(), port, generation));
            repl.link = Some(replica::Link {
                host,
                port,
                state: replica::LinkState::Connecting,
                last_io: None,
                full_syncs: 0,
                partial_syncs: 0,
                last_error: None,
                generation,
                task,
            });
            shared.role.set(if repl.applied.is_some() {
                Role::Replica
            } else {
                Role::Loading
            });
        }
        None if repl.partial && shared.cluster_mode => {
            // Made primary before its first full sync completed: what it
            // holds is part of the keyspace at best. Serving it would lose
            // the rest for good (its replicas would sync from it), so it
            // serves nothing (`LOADING`) and INFO says why; the operator
            // takes it for a lost primary and promotes a replica with a
            // whole copy, and a later document makes it a replica again.
            warn!(
                "told to serve as primary in the middle of a full sync: the keyspace is incomplete; serving nothing until a topology makes this node a replica"
            );
            shared.role.set(Role::Loading);
        }
        None => {
            if repl.partial {
                // `REPLICAOF NO ONE` during a first sync (standalone): an
                // empty primary rather than a partial one, as a Redis
                // replica that loads to an empty dataset ends up.
                warn!(
                    "stopped following in the middle of a full sync: the partial keyspace is dropped"
                );
                db.flush();
            }
            info!("serving as primary");
            repl.applied = None;
            repl.stream.restart(db);
            shared.role.set(Role::Primary);
            if was_replica {
                // The old primary may still take writes until its lease
                // runs out: this node's first write waits for that.
                // The margin covers a renewal still in flight to the old
                // primary when this node was promoted (a replica's fetch,
                // bounded by its link timeout, is the longest).
                let wait = shared.write_lease_ms + PROMOTION_MARGIN_MS;
                let now = shared.now_ms();
                shared
                    .lease
                    .writes_from_ms
                    .store(now + wait, Ordering::Relaxed);
            }
        }
    }
}

/// Follows what a newly installed topology says of this node: a replica
/// follows its shard's primary, a primary (or a node the document does not
/// place) follows nobody; a primary whose shard has replicas holds a write
/// lease, renewed now by the operator's install.
pub fn on_topology(shared: &Handles, db: &mut Db) {
    use tidecache_topology::document::Role as Place;
    let (primary, lease) = {
        let cluster = shared.cluster.read().expect("cluster lock");
        let me = cluster.me().id.clone();
        let shard = cluster
            .topology()
            .and_then(|t| t.locate(&me).map(|(i, role)| (&t.shards[i], role)));
        match shard {
            Some((s, Place::Replica)) => (Some((s.primary.host.clone(), s.primary.port)), 0),
            Some((s, Place::Primary)) if !s.replicas.is_empty() => (None, shared.write_lease_ms),
            _ => (None, 0),
        }
    };
    shared.lease.renew(shared.now_ms());
    shared.lease.length_ms.store(lease, Ordering::Relaxed);
    follow(shared, db, primary);
}

/// Periodic upkeep of the primary's stream (abandoned full syncs, replicas
/// long gone); ends the link to a primary when the node shuts down.
pub async fn tick_loop(shared: Handles, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    /// Ends the link when this task ends, by shutdown or by being dropped
    /// with the node: the link's task holds the node alive otherwise.
    struct EndLink(Arc<Mutex<Replication>>);
    impl Drop for EndLink {
        fn drop(&mut self) {
            if let Ok(mut repl) = self.0.lock()
                && let Some(link) = repl.link.take()
            {
                link.task.abort();
            }
        }
    }
    let _end = EndLink(shared.repl.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut db = shared.db.lock().expect("db lock");
        shared
            .repl
            .lock()
            .expect("replication lock")
            .stream
            .tick(&mut db);
    }
}

/// Seconds since `at`, for INFO.
pub fn ago(at: Option<Instant>) -> i64 {
    at.map_or(-1, |t| t.elapsed().as_secs() as i64)
}
