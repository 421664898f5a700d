//! `make load`: a bounded write load on a cluster through a cluster-aware
//! client (it follows `MOVED`, so it keeps going while the cluster scales):
//! `--clients` connections each `SET` values of `--value-bytes` over
//! `--keys` keys, until `--requests` are done or `--seconds` have passed,
//! printing the rate each second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use redis::AsyncCommands as _;

#[derive(Parser)]
#[command(about = "A bounded write load through a cluster-aware client")]
struct Args {
    /// A node of the cluster, `host:port`.
    #[arg(long)]
    seed: String,
    /// The `default` user's password.
    #[arg(long, env = "TIDECACHE_PASSWORD", hide_env_values = true)]
    password: String,
    #[arg(long, default_value_t = 8)]
    clients: u64,
    #[arg(long, default_value_t = 60_000)]
    keys: u64,
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    #[arg(long, default_value_t = 300_000)]
    requests: u64,
    #[arg(long, default_value_t = 120)]
    seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = redis::cluster::ClusterClientBuilder::new(vec![format!("redis://{}/", args.seed)])
        .password(args.password.clone())
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let value = Arc::new(vec![b'v'; args.value_bytes]);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let mut conn = client.get_async_connection().await?;
        let (done, errors, value) = (done.clone(), errors.clone(), value.clone());
        let (keys, requests, stride) = (args.keys, args.requests, args.clients);
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while Instant::now() < until && done.fetch_add(1, Ordering::Relaxed) < requests {
                let key = format!("load:{}", (i * 7919) % keys);
                if conn.set::<_, _, ()>(key, value.as_slice()).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                i += stride;
            }
        }));
    }
    let start = Instant::now();
    let mut last = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = done.load(Ordering::Relaxed).min(args.requests);
        println!(
            "{:>4} s  {:>7} SETs/s  {now} done  {} errors",
            start.elapsed().as_secs(),
            now - last,
            errors.load(Ordering::Relaxed)
        );
        last = now;
    }
    Ok(())
}
