//! A running node: its listeners bound, the connection loop, the HTTP
//! server and the node's tasks started on one shared state.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{clock, cmd, config, db, http, replication, server, state, tls};

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
        let mut db = db::Db::new(clock).with_eviction(config.eviction());
        if !config.cluster_enabled {
            load_rdb_file(&config, &mut db)?;
        }
        // Under the operator a node has a store only when told which: a
        // snapshot must never land on a pod's own disk and pass for one.
        let store = if config.cluster_enabled && config.snapshot_store.is_none() {
            None
        } else {
            Some(snapshot_store(&config)?)
        };
        let jobs = crate::snapshot::jobs::Jobs::new(store, snapshot_key(&config)?);
        let shared = state::Shared::new(config, db, cluster, cmd::calls(), jobs);
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
        tasks.spawn(replication::tick_loop(
            shared.replication_handles(),
            rx.clone(),
        ));
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

/// Loads the standalone node's RDB file (`--dir`/`--dbfilename`), if there
/// is one, as redis-server does at start-up; a damaged file stops the
/// start, as in redis-server, rather than serving part of it.
fn load_rdb_file(config: &crate::config::Config, db: &mut db::Db) -> anyhow::Result<()> {
    let path = config.dir.join(&config.dbfilename);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => anyhow::bail!("cannot open {}: {e}", path.display()),
    };
    let started = std::time::Instant::now();
    let now = db.now_ms();
    let loaded = crate::snapshot::load::read_batches(
        file,
        |_| true,
        now,
        |_| Ok(()),
        |batch| crate::snapshot::load::store(db, batch),
    )
    .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
    tracing::info!(
        path = %path.display(),
        keys = loaded.keys,
        expired = loaded.expired,
        bytes = loaded.bytes,
        seconds = started.elapsed().as_secs_f64(),
        "DB loaded from disk"
    );
    if loaded.functions_skipped > 0 {
        tracing::warn!(
            libraries = loaded.functions_skipped,
            "the RDB file's function libraries were skipped: this node runs no scripts"
        );
    }
    Ok(())
}

/// The snapshot store and codec the `--snapshot-*` flags describe.
fn snapshot_store(config: &crate::config::Config) -> anyhow::Result<crate::snapshot::store::Store> {
    use crate::snapshot::codec::Codec;
    use crate::snapshot::store::{Store, StoreConfig};
    let url = config
        .snapshot_store
        .clone()
        .unwrap_or_else(|| config.dir.join("snapshots").display().to_string());
    let cfg = StoreConfig {
        url,
        endpoint: config.snapshot_endpoint.clone(),
        region: config.snapshot_region.clone(),
        path_style: config.snapshot_path_style,
        access_key_id: config.snapshot_access_key_id.clone(),
        secret_access_key: config.snapshot_secret_access_key.clone(),
    };
    let codec = Codec {
        zstd_level: (config.snapshot_zstd_level > 0).then_some(config.snapshot_zstd_level),
        key: snapshot_key(config)?,
    };
    Store::open(&cfg, codec)
}

/// The snapshot encryption key, read from its file.
fn snapshot_key(
    config: &crate::config::Config,
) -> anyhow::Result<Option<crate::snapshot::codec::EncryptionKey>> {
    let Some(path) = &config.snapshot_encryption_key_file else {
        return Ok(None);
    };
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    crate::snapshot::codec::EncryptionKey::parse(&bytes)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
