//! Serverless mode, scenario 5: a step to 4× the starting load is absorbed
//! within 3 minutes with no client errors beyond redirects (which the
//! cluster-aware clients follow). The load is requests over 2,000 keys
//! spread across the slots: one reader at first, four after the step; the
//! step is absorbed when the cluster has settled at a shape where the
//! primaries' CPU is back under the target. Alone in its file: no other
//! scenario's load runs beside the CPU it measures. Its timeline goes to
//! `target/e2e-timelines/serverless-step.csv`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use tidecache_e2e::timeline::{decisions, watch, write_summary, write_timeline};
use tidecache_e2e::{TestNamespace, checker, cluster_client, install_operator, pod_addr};
use tidecache_operator::crd::CacheCluster;

/// Nodes of 200m: one paced reader sits well under the 70% target, four do
/// not.
const MANIFEST: &str = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
metadata: {name: step}\n\
spec:\n  mode: Serverless\n  node:\n    resources: {limits: {memory: 64Mi, cpu: 200m}}\n  \
serverless:\n    limits: {compute: {maximum: \"2\"}}\n    scaleInWindowSeconds: 3600\n";

const KEYS: u32 = 2000;

/// A reader of random keys among [`KEYS`] at about 500 requests a second
/// (the e2e nodes are debug builds: an unpaced reader alone would take more
/// than a node's CPU), until `stop`; its errors.
fn reader(
    mut conn: redis::cluster_async::ClusterConnection,
    stop: Arc<AtomicBool>,
    seed: u32,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut errors = Vec::new();
        let mut i = seed;
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let key = format!("k:{}", (i >> 8) % KEYS);
            if let Err(e) = conn.get::<_, Option<u32>>(&key).await {
                errors.push(format!("GET {key}: {e}"));
            }
        }
        errors
    })
}

/// The primaries' CPU against what they may use, in percent.
fn cpu_percent(cc: &CacheCluster) -> u64 {
    let usage = cc
        .status
        .as_ref()
        .and_then(|s| s.serverless.as_ref())
        .and_then(|s| s.usage.clone())
        .unwrap_or_default();
    (usage.cpu_millicores * 100)
        .checked_div(usage.cpu_limit_millicores)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_step_to_four_times_the_load_is_absorbed_within_three_minutes() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("serverless-step").await?;
    ns.apply_cluster(MANIFEST).await?;
    ns.wait_ready("step").await?;
    let password = ns.secret_value("step-auth", "password").await?;
    let seed = pod_addr(&ns.pods("step").await?[0]).unwrap();
    let api = ns.api::<CacheCluster>();
    let mut conn = cluster_client(&seed, &password).await?;
    for i in 0..KEYS {
        let _: () = conn.set(format!("k:{i}"), i).await?;
    }
    let start = Instant::now();
    let mut rows = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let checker = tokio::spawn(checker::run_every(
        cluster_client(&seed, &password).await?,
        stop.clone(),
        Duration::from_millis(50),
    ));
    let mut readers = vec![reader(
        cluster_client(&seed, &password).await?,
        stop.clone(),
        1,
    )];
    // The starting load, for a while: nothing to do.
    watch(
        &api,
        "step",
        start,
        &mut rows,
        Duration::from_secs(30),
        |_| start.elapsed() > Duration::from_secs(15),
    )
    .await?;
    let before = api.get("step").await?;
    let base = cpu_percent(&before);
    anyhow::ensure!(
        decisions(&before).is_empty(),
        "the starting load made a decision: {:?}",
        decisions(&before)
    );

    // The step: four readers.
    for s in 2..=4 {
        readers.push(reader(
            cluster_client(&seed, &password).await?,
            stop.clone(),
            s,
        ));
    }
    let step = Instant::now();
    let limit = Duration::from_secs(180);
    let absorbed = watch(&api, "step", start, &mut rows, limit, |cc| {
        let s = cc.status.clone().unwrap_or_default();
        let chosen = s.serverless.as_ref().map_or(0, |v| v.shards as usize);
        // At the shape the autoscaler chose, every shard serving its slots.
        let settled = s.phase.as_deref() == Some("Ready")
            && s.rebalance.is_none()
            && s.shards.len() == chosen
            && s.shards.iter().all(|sh| !sh.slots.is_empty());
        !decisions(cc).is_empty() && settled && cpu_percent(cc) < 70
    })
    .await?;
    let took = step.elapsed();
    write_timeline("serverless-step", &rows)?;
    let s = absorbed.status.clone().unwrap_or_default();
    let summary = format!(
        "serverless scenario 5: CPU {base}% of 1 shard before the step; absorbed {:.1} s after it at {} shards, CPU {}%; decisions {:?}",
        took.as_secs_f64(),
        s.current_shards,
        cpu_percent(&absorbed),
        decisions(&absorbed)
            .iter()
            .map(|d| format!("{} {} → {}", d.action, d.from, d.to))
            .collect::<Vec<_>>()
    );
    write_summary("serverless-step", &summary)?;
    assert!(took <= limit, "absorbed after {took:?}");

    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for r in readers {
        errors.extend(r.await?);
    }
    assert!(
        errors.is_empty(),
        "client errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    let checked = checker.await?;
    let lost = checked.lost(&mut conn).await?;
    checked.assert_clean(&lost);
    ns.delete().await;
    Ok(())
}
