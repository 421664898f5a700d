//! Tidecache's data node: a Redis-compatible in-memory cache server.
//!
//! # Layout
//!
//! Dependencies point one way (`tests/layering.rs` keeps it so): the
//! connection loop and the node's tasks use the commands, the commands use
//! the node's state, the state owns the keyspace; replication and migration
//! keep their shared data apart from the tasks that use the state.
//!
//! - [`config`]: command-line flags (Redis's names) and environment.
//! - [`state`]: what every connection, command and task shares (`Shared`:
//!   configuration, keyspace, topology, clients, pub/sub, replication and
//!   migration state, counters) and the rules that go with it.
//! - [`server`]: the accept loop and one task per connection; each reads
//!   requests, runs them under one keyspace lock per batch and writes the
//!   replies with one syscall; commands that must wait (blocking pops,
//!   `CLIENT PAUSE`) hold the connection's later input back until they ran.
//! - [`client`]: a connection's state (transaction, watches, subscriptions,
//!   reply mode) and the handle other connections see (`CLIENT LIST`/`KILL`,
//!   pub/sub delivery with output buffer limits).
//! - [`pubsub`]: who subscribes to which channel, pattern or shard channel.
//! - [`parse`]: decodes requests (RESP arrays and inline commands) from a
//!   connection's buffer, with limits on sizes and counts.
//! - [`frame`]: replies and their RESP2/RESP3 encodings.
//! - [`cmd`]: the command table and the one dispatcher that runs the generic
//!   checks (arity, auth, slot ownership, memory) before a handler;
//!   `cmd::args` reads arguments, `cmd::config` is CONFIG's parameter table.
//! - [`glob`]: Redis glob patterns (KEYS and, later, SCAN MATCH, PSUBSCRIBE).
//! - [`db`]: the keyspace, one hash table per slot holding one allocation
//!   per key (key, short value, deadline, access data: `db::record`), with
//!   lazy and active expiry, uniform key sampling, consistent copy-on-write
//!   captures of slots for snapshots, replication and migration
//!   (`db::capture`), and one hook on every change that breaks `WATCH`es
//!   and wakes clients blocked on the key; `db::wire` is the change stream
//!   migration and replication carry, `db::room` evicts until a write fits.
//! - [`evict`]: `maxmemory` policies, per-key LRU/LFU data and the choice of
//!   victims, pure functions the keyspace applies; [`memory`]: used memory, from jemalloc's statistics when the
//!   binary runs on it, from the keyspace's accounting otherwise.
//! - [`types`]: collection values (hashes, lists, sets) with O(1) memory accounting.
//! - [`hll`]: HyperLogLog values, byte for byte Redis's, for the PF commands.
//! - [`cluster`]: the node's view of the topology the operator installs:
//!   which slots it serves, `MOVED`/`CROSSSLOT`/`CLUSTERDOWN` for the others.
//! - [`migration`]: atomic slot migration between nodes: the source's task
//!   streaming a capture and every later change, the handoff under a
//!   brief write freeze.
//! - [`replication`]: replicas following a primary; `replication::role` is
//!   the part the node's state holds (role, write lease, stream, link).
//! - [`tls`]: the `--tls-*` files loaded into a rustls acceptor at start;
//!   the TLS port's connections then run the same loop as plain ones.
//! - [`slowlog`]: the last commands slower than a threshold (`SLOWLOG`).
//! - [`http`]: liveness, readiness and Prometheus metrics over HTTP.
//! - [`clock`]: Unix time driven by tokio's clock, so tests can pause time.

pub mod background;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod db;
pub mod evict;
pub mod frame;
pub mod glob;
pub mod hll;
pub mod http;
pub mod memory;
pub mod migration;
pub mod parse;
pub mod pubsub;
pub mod replication;
pub mod server;
pub mod slowlog;
pub mod state;
pub mod tls;
pub mod types;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// The Redis version whose command semantics the node follows. Clients use it
/// to decide which commands and options they may send.
pub const REDIS_VERSION: &str = "7.2.0";

/// `n` random lowercase hex characters (run ids, node ids).
pub fn random_hex(n: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
        .collect()
}

/// A running node: its listeners bound, its tasks started.
pub struct Node {
    pub shared: Arc<state::Shared>,
    /// Where clients connect: the plain port, or the TLS port when the node
    /// serves TLS only (`--port 0` with `--tls-port`).
    pub addr: std::net::SocketAddr,
    /// The TLS port, when `--tls-port` is set.
    pub tls_addr: Option<std::net::SocketAddr>,
    pub http_addr: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Node {
    /// Binds the client port (and the TLS and HTTP ports when configured)
    /// and starts serving. Port 0 picks a free port, which tests use; with
    /// TLS on, `--port 0` means no plain port instead, as in Redis.
    pub async fn start(config: config::Config) -> anyhow::Result<Node> {
        Self::start_with_clock(config, clock::Clock::tokio()).await
    }

    /// Like [`Node::start`] with a given clock; tests pass a manual one to
    /// move time without sleeping.
    pub async fn start_with_clock(
        config: config::Config,
        clock: clock::Clock,
    ) -> anyhow::Result<Node> {
        // Files first: a bad certificate or key stops the node before it
        // listens on anything.
        let tls = tls::acceptor(&config)?;
        let tls_listener = match (tls, config.tls_port) {
            (Some(acceptor), Some(port)) => Some((listen(&config.bind, port).await?, acceptor)),
            _ => None,
        };
        let tls_addr = match &tls_listener {
            Some((l, _)) => Some(l.local_addr()?),
            None => None,
        };
        let (listener, addr) = match tls_addr {
            Some(tls_addr) if config.port == 0 => (None, tls_addr),
            _ => {
                let l = listen(&config.bind, config.port).await?;
                let addr = l.local_addr()?;
                (Some(l), addr)
            }
        };
        let mut config = config;
        if config.port == 0 && config.cluster_announce_port.is_none() {
            config.cluster_announce_port = Some(addr.port());
        }
        let cluster = state::cluster_state(&config);
        let db = db::Db::new(clock).with_eviction(config.eviction());
        let shared = state::Shared::new(config, db, cluster, cmd::calls());
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let http_addr = if shared.config.http_port != 0 {
            let bind = shared
                .config
                .http_bind
                .clone()
                .unwrap_or_else(|| shared.config.bind.clone());
            let http = TcpListener::bind((bind.as_str(), shared.config.http_port))
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot listen on {bind}:{}: {e}", shared.config.http_port)
                })?;
            let http_addr = http.local_addr()?;
            tasks.spawn(http::serve(http, shared.clone(), rx.clone()));
            Some(http_addr)
        } else {
            None
        };
        if let Some(listener) = listener {
            tasks.spawn(server::serve(listener, None, shared.clone(), rx.clone()));
        }
        if let Some((listener, acceptor)) = tls_listener {
            tasks.spawn(server::serve(
                listener,
                Some(acceptor),
                shared.clone(),
                rx.clone(),
            ));
        }
        tasks.spawn(replication::tick_loop(shared.clone(), rx.clone()));
        tasks.spawn(server::expire_loop(shared.clone(), rx));
        Ok(Node {
            shared,
            addr,
            tls_addr,
            http_addr,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, lets connections finish (bounded by the configured
    /// shutdown timeout) and returns when every task has ended.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn listen(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port}: {e}"))
}
