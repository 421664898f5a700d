//! `cache-node`: runs one Tidecache data node until SIGTERM or SIGINT.

use clap::Parser as _;
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

/// jemalloc: its statistics measure `used_memory` exactly, and it keeps
/// fragmentation low under the churn of a cache.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let config = cache_node::config::Config::parse().resolve()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.io_threads > 0 {
        runtime.worker_threads(usize::from(config.io_threads));
    }
    runtime.enable_all().build()?.block_on(run(config))
}

async fn run(config: cache_node::config::Config) -> anyhow::Result<()> {
    cache_node::memory::use_jemalloc();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDECACHE_LOG")
        .unwrap_or_else(|_| "info".into());
    if config.log_format == "json" {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let node = cache_node::Node::start(config).await?;
    let cluster = node.shared.cluster.read().expect("cluster lock").mode();
    info!(addr = %node.addr, http = ?node.http_addr, mode = ?cluster, version = env!("CARGO_PKG_VERSION"), "cache-node ready to accept connections");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, shutting down"),
        _ = int.recv() => info!("SIGINT received, shutting down"),
    }
    node.shutdown().await;
    info!("bye");
    Ok(())
}
