//! Scenario 4 of the live-cluster issue: a rolling image update of a
//! 3-shard, 1-replica cluster under the checker. Every pod is replaced
//! (replicas first, each primary after a planned switchover); every
//! acknowledged write is there at the end and the client saw no error.

use std::time::{Duration, Instant};

use kube::ResourceExt as _;
use tidecache_e2e::{
    TestNamespace, checker, cluster_client, install_operator, pod_addr, timeout, wait_for,
};
use tidecache_operator::crd::CacheCluster;

fn manifest(tag: &str) -> String {
    format!(
        "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {{name: rolling}}\n\
         spec:\n  shards: 3\n  replicasPerShard: 1\n  image: tidecache/cache-node:{tag}\n  \
         node:\n    resources: {{limits: {{memory: 256Mi}}}}\n"
    )
}

#[tokio::test]
async fn a_rolling_image_update_loses_no_acknowledged_write() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("rolling").await?;
    ns.apply_cluster(&manifest("1.0.0")).await?;
    ns.wait_ready("rolling").await?;
    let password = ns.secret_value("rolling-auth", "password").await?;
    let pods = ns.pods("rolling").await?;
    assert_eq!(pods.len(), 6);
    let before: Vec<(String, String)> = pods
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect();
    let primaries_before = primaries(&ns).await?;
    let seed = pod_addr(&pods[0]).unwrap();

    let load = checker::Running::after_preload(&seed, &password, 5_000).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    ns.apply_cluster(&manifest("1.0.1")).await?;
    let progress = std::sync::Mutex::new(Vec::<String>::new());
    wait_for("every pod to be replaced", timeout() * 3, || async {
        let pods = ns.pods("rolling").await?;
        let mut replaced = Vec::new();
        for p in &pods {
            let uid = p.uid().unwrap_or_default();
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready && !before.iter().any(|(_, u)| *u == uid) {
                replaced.push(p.name_any());
            }
        }
        // Print each pod as it comes back, for the timeline.
        let mut seen = progress.lock().unwrap();
        for p in &replaced {
            if !seen.contains(p) {
                println!(
                    "{:6.1} s  {p} replaced and ready",
                    started.elapsed().as_secs_f64()
                );
                seen.push(p.clone());
            }
        }
        Ok((replaced.len() == 6 && pods.len() == 6).then_some(()))
    })
    .await?;
    let cc = ns.wait_ready("rolling").await?;
    println!(
        "rolled 6 pods in {:.1} s, epoch {}",
        started.elapsed().as_secs_f64(),
        cc.status.as_ref().map_or(0, |s| s.epoch)
    );
    let primaries_after = primaries(&ns).await?;
    println!("primaries {primaries_before:?} -> {primaries_after:?}");
    assert!(
        primaries_before
            .iter()
            .zip(&primaries_after)
            .all(|(a, b)| a != b),
        "each shard switched over before its primary was replaced"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = load.stop().await?;

    let pods = ns.pods("rolling").await?;
    let seed = pods.iter().find_map(pod_addr).unwrap();
    let mut conn = cluster_client(&seed, &password).await?;
    let mut lost = seen.lost(&mut conn).await?;
    lost.extend(checker::missing_preloaded(&mut conn, 5_000).await?);
    seen.assert_clean(&lost);
    ns.delete().await;
    Ok(())
}

/// Each shard's primary pod, in shard order.
async fn primaries(ns: &TestNamespace) -> anyhow::Result<Vec<String>> {
    let cc = ns.api::<CacheCluster>().get("rolling").await?;
    Ok(cc
        .status
        .unwrap_or_default()
        .shards
        .iter()
        .map(|s| {
            s.primary
                .as_ref()
                .map(|p| p.pod.clone())
                .unwrap_or_default()
        })
        .collect())
}
