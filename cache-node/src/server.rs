//! The TCP server: the accept loop, one task per connection, shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::cluster::{ClusterState, Mode};
use crate::cmd::{self, Spec};
use crate::config::Config;
use crate::db::Db;
use crate::frame::{Protocol, Reply};
use crate::parse::{self, Decoded, Limits};

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

/// One client connection's state.
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
}

/// Counters kept for INFO and metrics.
#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub connected_clients: AtomicUsize,
    pub protocol_errors: AtomicU64,
}

/// State shared by every connection.
pub struct Shared {
    pub config: Config,
    pub db: Mutex<Db>,
    pub cluster: RwLock<ClusterState>,
    pub stats: Stats,
    /// Calls per command, indexed like [`Shared::call_index`].
    calls: HashMap<&'static str, AtomicU64>,
    pub clients: Mutex<HashMap<u64, SocketAddr>>,
    next_client_id: AtomicU64,
    pub started: Instant,
    pub run_id: String,
    pub limits: Limits,
    /// `maxmemory`, changeable at run time with CONFIG SET.
    maxmemory: AtomicU64,
}

impl Shared {
    pub fn new(config: Config, db: Db, cluster: ClusterState) -> Self {
        let maxmemory = AtomicU64::new(config.maxmemory);
        let calls = cmd::COMMANDS
            .iter()
            .flat_map(|s| std::iter::once(s).chain(s.subcommands))
            .map(|s| (s.name, AtomicU64::new(0)))
            .collect();
        let limits = Limits {
            max_bulk_len: usize::try_from(config.proto_max_bulk_len).unwrap_or(usize::MAX),
            ..Limits::default()
        };
        Self {
            config,
            db: Mutex::new(db),
            cluster: RwLock::new(cluster),
            stats: Stats::default(),
            calls,
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            run_id: crate::random_hex(40),
            limits,
            maxmemory,
        }
    }

    pub fn count_call(&self, spec: &Spec) {
        if let Some(c) = self.calls.get(spec.name) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (command, calls) for every command called at least once.
    pub fn call_counts(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<_> = self
            .calls
            .iter()
            .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        out.sort();
        out
    }

    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }

    pub fn set_maxmemory(&self, bytes: u64) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
    }

    pub fn over_maxmemory(&self) -> bool {
        let max = self.maxmemory();
        max > 0 && self.db.lock().expect("db lock").used_bytes() as u64 > max
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

    fn new_client(&self, addr: SocketAddr) -> Client {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        // Without a password the default user needs no AUTH, as in Redis.
        let user = self.config.requirepass.is_none().then_some(User::Default);
        Client {
            id,
            addr,
            user,
            proto: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            closing: false,
        }
    }
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts clients until `shutdown` turns true, then waits (bounded) for
/// connections to finish their current batch.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move { handle(stream, addr, shared, shutdown).await });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let grace = Duration::from_secs(shared.config.shutdown_timeout);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            remaining = tasks.len(),
            "closing connections that did not finish in time"
        );
        tasks.abort_all();
    }
}

async fn handle(
    mut stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    if let Some(reason) = refuse(&shared, &addr) {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(format!("-{reason}\r\n").as_bytes()).await;
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut client = shared.new_client(addr);
    shared
        .clients
        .lock()
        .expect("clients lock")
        .insert(client.id, addr);
    shared
        .stats
        .connected_clients
        .fetch_add(1, Ordering::Relaxed);
    debug!(id = client.id, %addr, "client connected");

    let result = run_client(&mut stream, &mut client, &shared, &mut shutdown).await;
    if let Err(e) = result {
        debug!(id = client.id, error = %e, "client connection ended with an error");
    }

    shared
        .clients
        .lock()
        .expect("clients lock")
        .remove(&client.id);
    shared
        .stats
        .connected_clients
        .fetch_sub(1, Ordering::Relaxed);
}

/// Why a new connection is turned away, if it is.
fn refuse(shared: &Shared, addr: &SocketAddr) -> Option<&'static str> {
    if shared.stats.connected_clients.load(Ordering::Relaxed) >= shared.config.maxclients {
        return Some("ERR max number of clients reached");
    }
    if shared.config.protected_mode
        && shared.config.requirepass.is_none()
        && !addr.ip().is_loopback()
    {
        return Some(
            "DENIED Running in protected mode because protected mode is enabled and no password is set for the default user. \
             In this mode connections are only accepted from the loopback interface. Set a password with --requirepass, \
             or, if you are sure, disable protected mode with --protected-mode no.",
        );
    }
    None
}

/// The read–execute–write loop: decode every complete request in the
/// buffer, run them in order, write all replies with one syscall.
async fn run_client(
    stream: &mut TcpStream,
    client: &mut Client,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(16 * 1024);
    let query_limit =
        usize::try_from(shared.config.client_query_buffer_limit).unwrap_or(usize::MAX);
    loop {
        let read = tokio::select! {
            read = stream.read_buf(&mut input) => read?,
            _ = shutdown.changed() => return Ok(()),
        };
        if read == 0 {
            return Ok(());
        }
        loop {
            match parse::decode(&mut input, &shared.limits) {
                Ok(Decoded::Request(args)) => {
                    if args.is_empty() {
                        continue;
                    }
                    shared
                        .stats
                        .commands_processed
                        .fetch_add(1, Ordering::Relaxed);
                    let reply = cmd::dispatch(shared, client, &args);
                    reply.encode(client.proto, &mut output);
                    if client.closing {
                        stream.write_all(&output).await?;
                        return Ok(());
                    }
                }
                Ok(Decoded::Incomplete) => break,
                Err(e) => {
                    shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    Reply::error(e.to_string()).encode(client.proto, &mut output);
                    stream.write_all(&output).await?;
                    info!(id = client.id, addr = %client.addr, error = %e, "closing client after a protocol error");
                    return Ok(());
                }
            }
        }
        if input.len() > query_limit {
            warn!(id = client.id, addr = %client.addr, bytes = input.len(), "closing client: query buffer limit exceeded");
            return Ok(());
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
            if output.capacity() > 1 << 20 {
                // Do not keep a huge reply buffer around after one big reply.
                output = Vec::with_capacity(16 * 1024);
            }
        }
    }
}

/// Runs active expiry: reclaims keys whose deadline passed, a bounded batch
/// at a time so that clients never wait long for the keyspace lock.
pub async fn expire_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        loop {
            let n = shared.db.lock().expect("db lock").expire_due(200);
            if n < 200 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Builds the node's initial cluster state from its configuration.
pub fn cluster_state(config: &Config) -> ClusterState {
    let id = match &config.node_name {
        Some(name) => tidecache_topology::node_id_for(name),
        None => crate::random_hex(40),
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
