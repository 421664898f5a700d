//! What the Serverless scenarios share: the cluster's timeline as its
//! status tells it (time, shards, memory and its limit, CPU, ops/s,
//! decisions), polled until a condition holds and written under
//! `target/e2e-timelines/` as a CSV and as a PNG chart ([`crate::chart`]).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tidecache_operator::crd::{CacheCluster, ScaleDecision};

use crate::repo_root;

/// One row of the timeline.
#[derive(Debug, Clone)]
pub struct Row {
    pub at: Duration,
    pub shards: i32,
    pub memory: u64,
    pub memory_limit: u64,
    pub cpu: u64,
    pub cpu_limit: u64,
    pub ops: u64,
    pub decisions: usize,
    pub phase: String,
}

pub fn row(start: Instant, cc: &CacheCluster) -> Row {
    let s = cc.status.clone().unwrap_or_default();
    let sv = s.serverless.clone().unwrap_or_default();
    let usage = sv.usage.clone().unwrap_or_default();
    Row {
        at: start.elapsed(),
        shards: s.current_shards,
        memory: usage.memory_bytes,
        memory_limit: usage.memory_limit_bytes,
        cpu: usage.cpu_millicores,
        cpu_limit: usage.cpu_limit_millicores,
        ops: usage.ops_per_second,
        decisions: sv.decisions.len(),
        phase: s.phase.unwrap_or_default(),
    }
}

/// Polls the cluster's status until `done` says so (or the time is up),
/// recording the timeline.
pub async fn watch(
    api: &kube::Api<CacheCluster>,
    name: &str,
    start: Instant,
    rows: &mut Vec<Row>,
    limit: Duration,
    mut done: impl FnMut(&CacheCluster) -> bool,
) -> anyhow::Result<CacheCluster> {
    let until = Instant::now() + limit;
    loop {
        let cc = api.get(name).await?;
        rows.push(row(start, &cc));
        if done(&cc) {
            return Ok(cc);
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{name}: not done within {limit:?}; last {:?}, decisions {:?}",
            rows.last(),
            cc.status.and_then(|s| s.serverless).map(|s| s.decisions)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn decisions(cc: &CacheCluster) -> Vec<ScaleDecision> {
    cc.status
        .as_ref()
        .and_then(|s| s.serverless.as_ref())
        .map(|s| s.decisions.clone())
        .unwrap_or_default()
}

/// Balanced at `shards` shards, every slot served.
pub fn settled_at(cc: &CacheCluster, shards: usize) -> bool {
    let s = cc.status.clone().unwrap_or_default();
    s.phase.as_deref() == Some("Ready")
        && s.rebalance.is_none()
        && s.shards.len() == shards
        && s.shards.iter().all(|sh| !sh.slots.is_empty())
}

/// Prints a scenario's measured times and keeps them beside its timeline
/// (`target/e2e-timelines/<name>.txt`), where a CI run's log does not show
/// them.
pub fn write_summary(name: &str, summary: &str) -> anyhow::Result<()> {
    println!("{summary}");
    let dir = repo_root().join("target/e2e-timelines");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.txt")), format!("{summary}\n"))?;
    Ok(())
}

pub fn write_timeline(name: &str, rows: &[Row]) -> anyhow::Result<()> {
    let dir = repo_root().join("target/e2e-timelines");
    std::fs::create_dir_all(&dir)?;
    let mut csv = String::from(
        "seconds,shards,memory_bytes,memory_limit_bytes,cpu_millicores,cpu_limit_millicores,ops_per_second,decisions,phase\n",
    );
    for r in rows {
        writeln!(
            csv,
            "{:.1},{},{},{},{},{},{},{},{}",
            r.at.as_secs_f64(),
            r.shards,
            r.memory,
            r.memory_limit,
            r.cpu,
            r.cpu_limit,
            r.ops,
            r.decisions,
            r.phase
        )?;
    }
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, csv)?;
    let png = dir.join(format!("{name}.png"));
    crate::chart::draw(name, rows, &png)?;
    println!("timeline: {} and {}", path.display(), png.display());
    Ok(())
}
