//! Serverless mode, scenario 1: a cluster at its minimum (one shard of a
//! small node, one replica) gets a load that fills memory past the target
//! while a checker writes through a cluster-aware client: the decision
//! comes within one window of the crossing, the new shard serves soon
//! after, and every acknowledged write is there at the end. Alone in its
//! file, so that no other scenario's load runs beside the timing it
//! measures. The timeline goes to `target/e2e-timelines/serverless-memory.csv`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use tidecache_e2e::timeline::{row, write_timeline};
use tidecache_e2e::{
    TestNamespace, checker, cluster_client, install_operator, pod_addr, repo_root, timeout,
};
use tidecache_operator::crd::CacheCluster;

/// A node holds 48Mi of data (75% of 64Mi); the target is 70% of it. Its
/// CPU allowance is large enough that the filler's requests stay below the
/// CPU target (the e2e nodes are debug builds): memory is what scales.
const MANIFEST: &str = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
metadata: {name: auto}\n\
spec:\n  mode: Serverless\n  node:\n    resources: {limits: {memory: 64Mi, cpu: \"4\"}}\n  \
serverless:\n    limits: {dataStorage: {maximum: 192Mi}, compute: {maximum: \"32\"}}\n    \
scaleInWindowSeconds: 3600\n";

#[tokio::test]
async fn memory_past_the_target_scales_out_and_loses_no_acknowledged_write() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("serverless").await?;
    ns.apply_cluster(MANIFEST).await?;
    let cc = ns.wait_ready("auto").await?;
    let status = cc.status.clone().unwrap_or_default();
    assert_eq!(status.current_shards, 1, "starts at its minimum");
    assert_eq!(status.shards[0].replicas.len(), 1, "replicated by default");
    let password = ns.secret_value("auto-auth", "password").await?;
    let pods = ns.pods("auto").await?;
    let seed = pod_addr(&pods[0]).unwrap();
    let api = ns.api::<CacheCluster>();
    let start = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(checker::run(
        cluster_client(&seed, &password).await?,
        stop.clone(),
    ));
    // The filler: 1 KiB values until the operator decides, 26 MiB at most:
    // a record of 1 KiB takes about 1.5 KiB of the allocator's memory, so
    // about 40 MiB, past 70% of one node's 48Mi and below its maxmemory:
    // nothing is evicted.
    let filled = Arc::new(AtomicU64::new(0));
    let stop_fill = Arc::new(AtomicBool::new(false));
    let filler = {
        let mut conn = cluster_client(&seed, &password).await?;
        let (filled, stop_fill) = (filled.clone(), stop_fill.clone());
        tokio::spawn(async move {
            let value = vec![b'v'; 1024];
            let mut errors = Vec::new();
            for i in 0..26 * 1024u64 {
                if stop_fill.load(Ordering::Relaxed) {
                    break;
                }
                match conn.set::<_, _, ()>(format!("fill:{i}"), &value).await {
                    Ok(()) => filled.store(i + 1, Ordering::Relaxed),
                    Err(e) => errors.push(format!("SET fill:{i}: {e}")),
                }
            }
            errors
        })
    };

    // Watch: when memory crosses the target (as the operator reports it),
    // when the decision appears, when the new shard serves.
    let mut rows = Vec::new();
    let mut crossed = None;
    let mut decided = None;
    let served = loop {
        let cc = api.get("auto").await?;
        let r = row(start, &cc);
        let s = cc.status.clone().unwrap_or_default();
        if crossed.is_none() && r.memory_limit > 0 && r.memory * 100 > r.memory_limit * 70 {
            crossed = Some(r.at);
        }
        if decided.is_none() && r.decisions > 0 {
            decided = Some(r.at);
            stop_fill.store(true, Ordering::Relaxed);
            let d = &s.serverless.as_ref().unwrap().decisions[0];
            println!(
                "decision at {:?}: {} {} → {}: {}",
                r.at, d.action, d.from, d.to, d.reason
            );
            assert_eq!(d.action, "ScaleOut");
            // GitOps: the original manifest re-applied in the middle of the
            // scale-out, as Argo CD or Flux would. The choice lives in
            // status, so nothing reverts (checked on every poll below).
            let path = std::env::temp_dir().join(format!("{}-auto.yaml", ns.name));
            std::fs::write(&path, MANIFEST)?;
            let path = path.to_string_lossy().into_owned();
            tidecache_e2e::run(
                "kubectl",
                &[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    "gitops",
                    "-n",
                    &ns.name,
                    "-f",
                    &path,
                ],
            )?;
        }
        if decided.is_some() {
            let chosen = s.serverless.as_ref().map_or(0, |v| v.shards);
            assert!(
                chosen >= 2,
                "the scale-out reverted: {chosen} shards chosen"
            );
        }
        let serving = decided.is_some()
            && s.phase.as_deref() == Some("Ready")
            && s.rebalance.is_none()
            && s.shards.len() >= 2
            && s.shards.iter().all(|sh| !sh.slots.is_empty());
        rows.push(r.clone());
        if serving {
            break r.at;
        }
        anyhow::ensure!(
            start.elapsed() < timeout() * 2,
            "no scale-out served within {:?}: crossed {crossed:?}, decided {decided:?}, last {r:?}",
            timeout() * 2
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // A few more seconds of timeline at the new shape.
    for _ in 0..8 {
        rows.push(row(start, &api.get("auto").await?));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    write_timeline("serverless-memory", &rows)?;

    stop.store(true, Ordering::Relaxed);
    stop_fill.store(true, Ordering::Relaxed);
    let checked = load.await?;
    let fill_errors = filler.await?;
    let crossed = crossed.expect("memory crossed the target");
    let decided = decided.expect("a decision");
    let summary = format!(
        "serverless scenario 1: crossing at {:.1} s, decision {:.1} s after it, new shard serving {:.1} s after the decision, {} KiB filled\n",
        crossed.as_secs_f64(),
        (decided.saturating_sub(crossed)).as_secs_f64(),
        (served - decided).as_secs_f64(),
        filled.load(Ordering::Relaxed)
    );
    print!("{summary}");
    std::fs::write(
        repo_root().join("target/e2e-timelines/serverless-memory.txt"),
        &summary,
    )?;
    assert!(
        decided.saturating_sub(crossed) <= Duration::from_secs(10),
        "decision {:?} after the crossing",
        decided - crossed
    );
    assert!(
        served - decided <= Duration::from_secs(60),
        "served {:?} after the decision",
        served - decided
    );
    assert!(
        fill_errors.is_empty(),
        "filler errors: {:?}",
        &fill_errors[..fill_errors.len().min(5)]
    );

    let mut conn = cluster_client(&seed, &password).await?;
    let lost = checked.lost(&mut conn).await?;
    checked.assert_clean(&lost);
    let mut missing = 0;
    for i in 0..filled.load(Ordering::Relaxed) {
        let v: Option<Vec<u8>> = conn.get(format!("fill:{i}")).await?;
        if v.as_deref().map(<[u8]>::len) != Some(1024) {
            missing += 1;
        }
    }
    assert_eq!(missing, 0, "acknowledged fill writes lost");
    ns.delete().await;
    Ok(())
}
