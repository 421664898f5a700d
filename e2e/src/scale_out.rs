//! Serverless scenario 1 and its warm-spare variant share this: a cluster
//! at its minimum gets a load that fills memory past the target while a
//! checker writes through a cluster-aware client. It measures when memory
//! crossed the target, when the operator decided and when the new shard
//! served; it re-applies the manifest in the middle of the scale-out (as
//! Argo CD or Flux would) and checks that the choice never reverts; at the
//! end every acknowledged write must be there. The timeline goes to
//! `target/e2e-timelines/<name>.csv`, the summary to `<name>.txt`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use tidecache_operator::crd::CacheCluster;

use crate::timeline::{row, write_summary, write_timeline};
use crate::{TestNamespace, checker, cluster_client, pod_addr, timeout};

/// When things happened, from the start of the load.
#[derive(Debug, Clone, Copy)]
pub struct ScaleOut {
    /// Memory crossed the target (as the operator reports it).
    pub crossed: Duration,
    /// The operator's scale-out decision appeared in status.
    pub decided: Duration,
    /// Two shards own slots and nothing moves.
    pub served: Duration,
}

impl ScaleOut {
    /// How long after the crossing the decision came.
    pub fn decision_delay(&self) -> Duration {
        self.decided.saturating_sub(self.crossed)
    }

    /// How long after the decision the new shard served.
    pub fn serving_delay(&self) -> Duration {
        self.served.saturating_sub(self.decided)
    }
}

/// Fills cluster `cluster` (applied from `manifest`, Ready) past its memory
/// target; asserts the decision within 10 s of the crossing and no lost
/// write, and returns the times for the caller's own bounds.
pub async fn fill_past_the_memory_target(
    ns: &TestNamespace,
    cluster: &str,
    manifest: &str,
    name: &str,
) -> anyhow::Result<ScaleOut> {
    let password = ns
        .secret_value(&format!("{cluster}-auth"), "password")
        .await?;
    let pods = ns.pods(cluster).await?;
    let seed = pod_addr(&pods[0]).unwrap();
    let api = ns.api::<CacheCluster>();
    let start = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(checker::run(
        cluster_client(&seed, &password).await?,
        stop.clone(),
    ));
    // The filler: 1 KiB values until the operator decides, 23 MiB at most:
    // a record of 1 KiB takes about 1.5 KiB of the allocator's memory, so
    // about 35 MiB, past 70% of one node's 48Mi and below its maxmemory
    // with room for the checker's keys and the migration's own buffers:
    // nothing is evicted. (At 26 MiB the source reached its maxmemory
    // while the slots moved and evicted acknowledged writes: 4,040 keys in
    // one run.)
    let filled = Arc::new(AtomicU64::new(0));
    let stop_fill = Arc::new(AtomicBool::new(false));
    let filler = {
        let mut conn = cluster_client(&seed, &password).await?;
        let (filled, stop_fill) = (filled.clone(), stop_fill.clone());
        tokio::spawn(async move {
            let value = vec![b'v'; 1024];
            let mut errors = Vec::new();
            for i in 0..23 * 1024u64 {
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
        let cc = api.get(cluster).await?;
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
            let path = std::env::temp_dir().join(format!("{}-{cluster}.yaml", ns.name));
            std::fs::write(&path, manifest)?;
            let path = path.to_string_lossy().into_owned();
            crate::run(
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
        // Served: two shards own slots and nothing moves (a warm spare
        // replenished right after owns none, and does not count).
        let serving = decided.is_some()
            && s.phase.as_deref() == Some("Ready")
            && s.rebalance.is_none()
            && s.shards.iter().filter(|sh| !sh.slots.is_empty()).count() >= 2;
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
        rows.push(row(start, &api.get(cluster).await?));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    write_timeline(name, &rows)?;

    stop.store(true, Ordering::Relaxed);
    stop_fill.store(true, Ordering::Relaxed);
    let checked = load.await?;
    let fill_errors = filler.await?;
    let crossed = crossed.expect("memory crossed the target");
    let decided = decided.expect("a decision");
    write_summary(
        name,
        &format!(
            "{name}: crossing at {:.1} s, decision {:.1} s after it, new shard serving {:.1} s after the decision, {} KiB filled",
            crossed.as_secs_f64(),
            (decided.saturating_sub(crossed)).as_secs_f64(),
            (served - decided).as_secs_f64(),
            filled.load(Ordering::Relaxed)
        ),
    )?;
    assert!(
        decided.saturating_sub(crossed) <= Duration::from_secs(10),
        "decision {:?} after the crossing",
        decided - crossed
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
    Ok(ScaleOut {
        crossed,
        decided,
        served,
    })
}
