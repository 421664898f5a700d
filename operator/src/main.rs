//! `tidecache-operator`: elects a leader, then runs the controller.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::Client;
use kube::runtime::events::Recorder;
use tidecache_operator::controller::{self, desired::Defaults, reporter};
use tidecache_operator::leader::Elector;
use tidecache_operator::metrics::{self, Metrics};
use tracing::info;

#[derive(Parser, Debug)]
#[command(
    name = "tidecache-operator",
    version,
    about = "Runs Tidecache CacheClusters on Kubernetes"
)]
struct Args {
    /// The cache-node image for clusters whose spec names none.
    #[arg(long, env = "TIDECACHE_NODE_IMAGE", default_value = concat!("tidecache/cache-node:", env!("CARGO_PKG_VERSION")))]
    node_image: String,
    /// Address of the metrics and health endpoints.
    #[arg(long, env = "TIDECACHE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: String,
    /// Elect a leader through a Lease (needed with more than one replica).
    #[arg(long, env = "TIDECACHE_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Identity in the leader Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "TIDECACHE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDECACHE_LOG")
        .unwrap_or_else(|_| "info,kube=warn".into());
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(&args.http_addr).await?;
    info!(addr = %args.http_addr, "serving metrics and health");
    tokio::spawn(metrics::serve(listener, metrics.clone()));

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("tidecache-operator-{}", std::process::id()));
    let elector = args.leader_elect.then(|| {
        Elector::new(
            client.clone(),
            &args.namespace,
            "tidecache-operator-leader",
            identity.clone(),
            Duration::from_secs(15),
        )
    });
    if let Some(e) = &elector {
        info!(%identity, "waiting for leadership");
        e.acquire(Duration::from_secs(2)).await;
    }
    metrics.leader.set(1);

    let (nodes, nodes_writer) = kube::runtime::reflector::store();
    let ctx = Arc::new(controller::Context {
        recorder: Recorder::new(client.clone(), reporter(Some(identity))),
        client,
        defaults: Defaults {
            node_image: args.node_image,
        },
        metrics,
        admin_timeout: Duration::from_secs(2),
        memory: Default::default(),
        nodes,
    });
    match &elector {
        Some(e) => tokio::select! {
            _ = controller::run(ctx, nodes_writer) => info!("controller stopped"),
            _ = e.hold(Duration::from_secs(5)) => anyhow::bail!("lost the leader lease; exiting so a fresh process re-joins the election"),
        },
        None => controller::run(ctx, nodes_writer).await,
    }
    Ok(())
}
