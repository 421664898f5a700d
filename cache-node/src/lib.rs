//! Tidecache's data node: a Redis-compatible in-memory cache server.
//!
//! # Layout
//!
//! - [`config`]: command-line flags (Redis's names) and environment.
//! - [`server`]: the accept loop and one task per connection; each reads
//!   requests, runs them and writes replies in batches.
//! - [`parse`]: decodes requests (RESP arrays and inline commands) from a
//!   connection's buffer, with limits on sizes and counts.
//! - [`frame`]: replies and their RESP2/RESP3 encodings.
//! - [`cmd`]: the command table and the one dispatcher that runs the generic
//!   checks (arity, auth, slot ownership, memory) before a handler.
//! - [`glob`]: Redis glob patterns (KEYS and, later, SCAN MATCH, PSUBSCRIBE).
//! - [`db`]: the keyspace, one hash map per slot, with lazy and active expiry.
//! - [`types`]: collection values (hashes, lists, sets) with O(1) memory accounting.
//! - [`cluster`]: the node's view of the topology the operator installs:
//!   which slots it serves, `MOVED`/`CROSSSLOT`/`CLUSTERDOWN` for the others.
//! - [`http`]: liveness, readiness and Prometheus metrics over HTTP.
//! - [`clock`]: Unix time driven by tokio's clock, so tests can pause time.

pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod db;
pub mod frame;
pub mod glob;
pub mod http;
pub mod parse;
pub mod server;
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
    pub shared: Arc<server::Shared>,
    pub addr: std::net::SocketAddr,
    pub http_addr: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Node {
    /// Binds the client port (and the HTTP port when configured) and starts
    /// serving. Port 0 picks a free port, which tests use.
    pub async fn start(config: config::Config) -> anyhow::Result<Node> {
        Self::start_with_clock(config, clock::Clock::tokio()).await
    }

    /// Like [`Node::start`] with a given clock; tests pass a manual one to
    /// move time without sleeping.
    pub async fn start_with_clock(
        config: config::Config,
        clock: clock::Clock,
    ) -> anyhow::Result<Node> {
        let listener = TcpListener::bind((config.bind.as_str(), config.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on {}:{}: {e}", config.bind, config.port)
            })?;
        let addr = listener.local_addr()?;
        let mut config = config;
        if config.port == 0 && config.cluster_announce_port.is_none() {
            config.cluster_announce_port = Some(addr.port());
        }
        let cluster = server::cluster_state(&config);
        let db = db::Db::new(clock);
        let shared = Arc::new(server::Shared::new(config, db, cluster));
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
        tasks.spawn(server::serve(listener, shared.clone(), rx.clone()));
        tasks.spawn(server::expire_loop(shared.clone(), rx));
        Ok(Node {
            shared,
            addr,
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
