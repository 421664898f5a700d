//! A node agent that plays the kubelet for the e2e control plane: runs pods as local processes.
//!
//! It registers `--nodes N` Nodes and runs the pods bound to them as local
//! processes: each container is its image's binary (`--image NAME=PATH`),
//! started in its own mount and UTS namespaces with the pod's volumes
//! bind-mounted at their mountPaths, with a pod IP from 10.244.{node+1}.0/24.
//! See the module docs for each part.

mod agent;
mod atomic_writer;
mod backoff;
mod container;
mod env;
mod events;
mod expand;
mod fieldpath;
mod image;
mod ipam;
mod manager;
mod node;
mod nsexec;
mod objects;
mod pod;
mod probes;
mod quantity;
mod runtime;
mod status;
mod tokens;
mod volumes;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::image::ImageMap;
use crate::node::NodeInfo;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A node agent that plays the kubelet for e2e tests: runs pods as local processes"
)]
struct Cli {
    /// Kubeconfig to reach the apiserver with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Number of nodes to register (node-0 … node-{N-1}).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Where pod volumes, working dirs and container logs live.
    #[arg(long)]
    state_dir: PathBuf,
    /// The apiserver address pods get as KUBERNETES_SERVICE_HOST.
    #[arg(long, default_value = "10.96.0.1")]
    apiserver_host: String,
    /// The apiserver port pods get as KUBERNETES_SERVICE_PORT.
    #[arg(long, default_value_t = 443)]
    apiserver_port: u16,
    /// Cluster CA, trusted for the agent's own connection when the
    /// kubeconfig carries none.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Image to binary mapping, NAME=PATH (repeatable). NAME is compared
    /// without registry host, tag and digest.
    #[arg(long = "image", value_name = "NAME=PATH")]
    images: Vec<String>,
    /// The cluster DNS domain (pod FQDNs in /etc/hosts).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
}

fn main() -> ExitCode {
    // The container shim mode: set up namespaces and exec, before anything
    // else (in particular before any thread exists).
    let mut args = std::env::args();
    match args.nth(1).as_deref() {
        Some(nsexec::SUBCOMMAND) => nsexec::main(&args.next().unwrap_or_default()),
        Some(nsexec::INIT_SUBCOMMAND) => nsexec::init_main(&args.next().unwrap_or_default()),
        _ => {}
    }

    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_runtime=warn,kube_client=warn".into()),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidecache-kubelet: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let images = ImageMap::from_flags(&cli.images)?;
    let kubeconfig = Kubeconfig::read_from(&cli.kubeconfig)
        .with_context(|| format!("read kubeconfig {}", cli.kubeconfig.display()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .context("load kubeconfig")?;
    if config.root_cert.is_none() && config.root_cert_file.is_none() {
        config.root_cert_file = cli.ca_file.clone();
    }
    let client = kube::Client::try_from(config).context("build client")?;

    std::fs::create_dir_all(cli.state_dir.join("pods"))
        .with_context(|| format!("create state dir {}", cli.state_dir.display()))?;
    let state_dir = cli.state_dir.canonicalize()?;

    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            shutdown.cancel();
        });
    }

    let agent = Arc::new(Agent {
        objects: objects::Objects::start(client.clone(), &shutdown),
        tokens: tokens::Tokens::new(client.clone()),
        runtime: Arc::new(runtime::Runtime::default()),
        client: client.clone(),
        images,
        state_dir,
        master_host: cli.apiserver_host,
        master_port: cli.apiserver_port,
        cluster_domain: cli.cluster_domain,
        shutdown: shutdown.clone(),
    });
    tracing::info!(
        nodes = cli.nodes,
        state_dir = %agent.state_dir.display(),
        images = ?agent.images.names(),
        "tidecache-kubelet starting"
    );

    let mut managers = Vec::new();
    for i in 0..cli.nodes {
        let node = Arc::new(NodeInfo::new(i, &client));
        tokio::spawn(node::run(client.clone(), node.clone(), shutdown.clone()));
        managers.push(tokio::spawn(manager::run(agent.clone(), node)));
    }

    shutdown.cancelled().await;
    let _ = tokio::time::timeout(
        manager::SHUTDOWN_BUDGET + Duration::from_secs(1),
        futures::future::join_all(managers),
    )
    .await;
    // Whatever is still alive now does not get more time.
    if agent.runtime.live_count() > 0 {
        tracing::warn!(
            count = agent.runtime.live_count(),
            "killing leftover processes"
        );
        agent.runtime.signal_all(Signal::SIGKILL);
    }
    tracing::info!("stopped");
    Ok(())
}
