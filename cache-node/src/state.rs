//! The node's state: what every connection, command and background task
//! shares — configuration, the keyspace, the topology, clients, pub/sub,
//! migrations, replication, counters — and the few rules that go with it
//! (passwords, `CLIENT PAUSE`, run-time settings).
//!
//! Commands, the connection loop and the node use it; it uses none of
//! them. Replication and migration sit below it: the cells they share with
//! it (keyspace, topology, role, lease, stream, migrations) are `Arc`s it
//! holds, and their tasks get only those
//! ([`Shared::replication_handles`], [`Shared::migration_handles`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::Notify;

use crate::background::Background;
use crate::client::{Client, Handle, OutputLimit, User};
use crate::cluster::{ClusterState, Mode};
use crate::config::Config;
use crate::db::Db;
use crate::migration::{self, Migrations};
use crate::parse::Limits;
use crate::pubsub::PubSub;
use crate::replication::{self, Lease, Replication, Role, RoleCell};

/// Calls per command, by the address of its table entry (hashing an
/// address is cheaper than hashing a name, on every command).
pub struct Calls(hashbrown::HashMap<usize, (&'static str, AtomicU64)>);

impl Calls {
    /// A zero count for each `(id, name)`.
    pub fn new(commands: impl IntoIterator<Item = (usize, &'static str)>) -> Calls {
        Calls(
            commands
                .into_iter()
                .map(|(id, name)| (id, (name, AtomicU64::new(0))))
                .collect(),
        )
    }
}

/// `CLIENT PAUSE`: until when, and whether every command or only writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pause {
    pub until: Option<tokio::time::Instant>,
    pub all: bool,
}

/// Counters kept for INFO and metrics.
#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub connected_clients: AtomicUsize,
    pub blocked_clients: AtomicUsize,
    pub protocol_errors: AtomicU64,
    /// TLS handshakes that failed or timed out (a plain-text client on the
    /// TLS port, an unknown client certificate).
    pub tls_handshake_failures: AtomicU64,
    /// Writes refused with `OOM` (at `maxmemory` with nothing to evict).
    pub oom_rejected: AtomicU64,
}

/// State shared by every connection.
pub struct Shared {
    pub config: Config,
    pub db: Arc<Mutex<Db>>,
    pub cluster: Arc<RwLock<ClusterState>>,
    pub stats: Stats,
    calls: Calls,
    pub clients: Mutex<HashMap<u64, Arc<Handle>>>,
    pub pubsub: Mutex<PubSub>,
    pub pubsub_limit: OutputLimit,
    pub slowlog: crate::slowlog::SlowLog,
    pause: Mutex<Pause>,
    /// Whether a pause may be in force: lets every command skip the lock
    /// and the clock read of [`Shared::pause`] when none was set.
    pausing: AtomicBool,
    /// Whether the node runs in cluster mode (fixed at start): standalone
    /// nodes route nothing, so commands skip the topology lock.
    pub cluster_mode: bool,
    /// Notified when a pause ends early (`CLIENT UNPAUSE`).
    pub unpaused: Notify,
    /// Notified when a migration's handoff lets frozen writes go.
    pub unfrozen: Arc<Notify>,
    /// Slot migrations this node sends or receives.
    pub migrations: Arc<Mutex<Migrations>>,
    /// The write stream to replicas, or the link to a primary. Locked
    /// after the keyspace, never before.
    pub repl: Arc<Mutex<Replication>>,
    /// Primary or replica, read by every command.
    pub role: Arc<RoleCell>,
    /// The write lease of a primary with replicas.
    pub lease: Arc<Lease>,
    /// This very value, for work a command hands to another task (an
    /// import batch applied on the bulk thread).
    this: std::sync::Weak<Shared>,
    /// Where migrations copy and apply keys, below the clients' priority.
    pub background: Arc<Background>,
    /// `SAVE`/`BGSAVE`'s file and state.
    pub saves: Arc<crate::snapshot::save::Saves>,
    /// Snapshots to and restores from the snapshot store.
    pub jobs: Arc<crate::snapshot::jobs::Jobs>,
    /// While a restore runs or after it failed, the error commands get
    /// (but admin ones); `None` serves them.
    pub gate: crate::snapshot::jobs::Gate,
    next_client_id: AtomicU64,
    pub started: Instant,
    pub run_id: String,
    pub limits: Limits,
    /// `maxmemory`, changeable at run time with CONFIG SET.
    maxmemory: AtomicU64,
    /// Redis's `timeout`: seconds without input after which a client is
    /// closed, 0 for never; changeable with CONFIG SET. Each connection
    /// reads it when it starts waiting for input.
    idle_timeout: AtomicU64,
}

impl Shared {
    /// The node's state, counting calls of the commands in `calls`
    /// (`cmd::calls()`).
    pub fn new(
        config: Config,
        db: Db,
        cluster: ClusterState,
        calls: Calls,
        jobs: crate::snapshot::jobs::Jobs,
    ) -> Arc<Self> {
        let maxmemory = AtomicU64::new(config.maxmemory);
        let idle_timeout = AtomicU64::new(config.timeout.into());
        let limits = Limits {
            max_bulk_len: usize::try_from(config.proto_max_bulk_len).unwrap_or(usize::MAX),
            ..Limits::default()
        };
        let cluster_mode = cluster.mode() != Mode::Standalone;
        let repl_backlog = usize::try_from(config.repl_backlog_size).unwrap_or(usize::MAX);
        let sync_limit = match config.repl_sync_buffer_limit {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        Arc::new_cyclic(|this| Self {
            db: Arc::new(Mutex::new(db)),
            cluster: Arc::new(RwLock::new(cluster)),
            cluster_mode,
            pausing: AtomicBool::new(false),
            stats: Stats::default(),
            calls,
            clients: Mutex::new(HashMap::new()),
            pubsub: Mutex::new(PubSub::default()),
            pubsub_limit: OutputLimit::PUBSUB,
            slowlog: crate::slowlog::SlowLog::default(),
            pause: Mutex::new(Pause::default()),
            unpaused: Notify::new(),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            run_id: crate::ident::random_hex(40),
            limits,
            maxmemory,
            idle_timeout,
            unfrozen: Default::default(),
            migrations: Default::default(),
            repl: Arc::new(Mutex::new(Replication::new(repl_backlog, sync_limit))),
            role: Default::default(),
            lease: Default::default(),
            this: this.clone(),
            background: Arc::new(Background::start().expect("start the bulk-work thread")),
            saves: Arc::new(crate::snapshot::save::Saves::new(
                config.dir.clone(),
                config.dbfilename.clone(),
                unix_secs(),
            )),
            jobs: Arc::new(jobs),
            gate: Default::default(),
            config,
        })
    }

    /// Runs closures on the keyspace from a thread of a snapshot's own.
    pub fn locker(&self) -> crate::snapshot::Locker {
        crate::snapshot::Locker {
            db: self.db.clone(),
            urgent: self.background.urgent_handle(),
        }
    }

    /// A counted reference to this value, for a task that outlives the
    /// command starting it.
    pub fn arc(&self) -> Arc<Shared> {
        self.this.upgrade().expect("the node is running")
    }

    /// Milliseconds since the node started (the write lease's clock:
    /// monotonic, unlike the keyspace's wall clock).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn set_role(&self, role: Role) {
        self.role.set(role);
    }

    /// What replication's tasks and rules use of this state.
    pub fn replication_handles(&self) -> replication::Handles {
        replication::Handles {
            db: self.db.clone(),
            cluster: self.cluster.clone(),
            repl: self.repl.clone(),
            role: self.role.clone(),
            lease: self.lease.clone(),
            cluster_mode: self.cluster_mode,
            admin_password: self.config.admin_password.clone(),
            write_lease_ms: self.config.write_lease_ms,
            started: self.started,
        }
    }

    /// What a migration's task uses of this state.
    pub fn migration_handles(&self) -> migration::Handles {
        migration::Handles {
            db: self.db.clone(),
            cluster: self.cluster.clone(),
            migrations: self.migrations.clone(),
            unfrozen: self.unfrozen.clone(),
            background: self.background.clone(),
            admin_password: self.config.admin_password.clone(),
        }
    }

    /// Counts a call of the command `id` names (`Spec::id`).
    pub fn count_call(&self, id: usize) {
        if let Some((_, c)) = self.calls.0.get(&id) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (command, calls) for every command called at least once.
    pub fn call_counts(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<_> = self
            .calls
            .0
            .values()
            .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        out.sort();
        out
    }

    /// Zeroes every command's call count (CONFIG RESETSTAT, as Redis resets
    /// its commandstats).
    pub fn reset_call_counts(&self) {
        for (_, calls) in self.calls.0.values() {
            calls.store(0, Ordering::Relaxed);
        }
    }

    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }

    pub fn set_maxmemory(&self, bytes: u64) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
    }

    /// The idle-client timeout in seconds, 0 for none.
    pub fn idle_timeout(&self) -> u64 {
        self.idle_timeout.load(Ordering::Relaxed)
    }

    /// Changes the idle-client timeout. A connection arms its timer when it
    /// starts waiting for input and moves it only when it fires, so a longer
    /// timeout takes effect by itself (the timer fires early and is moved
    /// on). A shorter one, or one turned on, would wait for each idle
    /// client's next input: those are woken to re-arm now. Blocked clients
    /// are left alone (the timeout does not apply to them, and a wake would
    /// make them retry their command); they re-arm when it ends.
    pub fn set_idle_timeout(&self, secs: u64) {
        let old = self.idle_timeout.swap(secs, Ordering::Relaxed);
        if secs == 0 || (old != 0 && secs >= old) {
            return;
        }
        for handle in self.clients.lock().expect("clients lock").values() {
            if !handle.is_blocked() {
                handle.wake.notify_one();
            }
        }
    }

    /// Which user a password logs in as, if any.
    pub fn check_password(&self, user: Option<&[u8]>, password: &[u8]) -> Option<User> {
        let matches = |expected: &Option<String>| {
            expected
                .as_deref()
                .is_some_and(|p| constant_time_eq(p.as_bytes(), password))
        };
        match user {
            None => matches(&self.config.requirepass).then_some(User::Default),
            Some(u) if u == b"default" => {
                matches(&self.config.requirepass).then_some(User::Default)
            }
            Some(u) if u == User::Admin.name().as_bytes() => {
                matches(&self.config.admin_password).then_some(User::Admin)
            }
            Some(_) => None,
        }
    }

    pub fn new_client(&self, addr: SocketAddr, laddr: SocketAddr) -> Client {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        // Without a password the default user needs no AUTH, as in Redis.
        let user = self.config.requirepass.is_none().then_some(User::Default);
        Client::new(id, addr, laddr, user)
    }

    /// The pause in force, if any.
    pub fn pause(&self) -> Option<Pause> {
        if !self.pausing.load(Ordering::Acquire) {
            return None;
        }
        let guard = self.pause.lock().expect("pause lock");
        let p = *guard;
        let active = p.until.is_some_and(|t| t > tokio::time::Instant::now());
        if !active {
            // Cleared under the lock, so a `set_pause` racing with this
            // either sees its deadline checked here or sets the flag after.
            self.pausing.store(false, Ordering::Release);
        }
        drop(guard);
        active.then_some(p)
    }

    /// `CLIENT PAUSE`: a later deadline or a wider mode extends the pause in
    /// force, as in Redis.
    pub fn set_pause(&self, until: tokio::time::Instant, all: bool) {
        let mut p = self.pause.lock().expect("pause lock");
        let current = p.until.filter(|t| *t > tokio::time::Instant::now());
        p.until = Some(current.map_or(until, |c| c.max(until)));
        p.all = all || (current.is_some() && p.all);
        self.pausing.store(true, Ordering::Release);
    }

    pub fn unpause(&self) {
        *self.pause.lock().expect("pause lock") = Pause::default();
        self.unpaused.notify_waiters();
    }
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Builds the node's initial cluster state from its configuration.
pub fn cluster_state(config: &Config) -> ClusterState {
    let id = match &config.node_name {
        Some(name) => tidecache_topology::node_id_for(name),
        None => crate::ident::random_hex(40),
    };
    let me = tidecache_topology::NodeAddr {
        id,
        host: config.announce_ip(),
        port: config.cluster_announce_port.unwrap_or(config.port),
    };
    ClusterState::new(
        if config.cluster_enabled {
            Mode::Cluster
        } else {
            Mode::Standalone
        },
        me,
    )
}

/// Unix time in whole seconds, from the system clock.
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
