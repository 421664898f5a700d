//! Serverless mode, load-aware placement: a cluster of two shards, even in
//! bytes, whose first shard serves eight hot keys. That shard is past the
//! CPU target while the cluster as a whole is within it: the operator
//! decides to `Rebalance`, plans the moves on each slot's bytes *and*
//! recent load (`TIDECACHE SLOTSTATS LOAD`), and hot slots move to the
//! other shard, few ordinary ones with them. Under a checker whose every
//! acknowledged write is read back. Alone in its file: it measures CPU.
//! The timeline goes to `target/e2e-timelines/serverless-hot.csv`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use redis::AsyncCommands as _;
use tidecache_e2e::timeline::{decisions, watch, write_summary, write_timeline};
use tidecache_e2e::{TestNamespace, checker, cluster_client, install_operator, pod_addr, timeout};
use tidecache_operator::crd::{CacheCluster, CacheClusterStatus};
use tidecache_topology::{SlotRange, key_slot};

/// Exactly two shards (a shard of a 200m primary and a 200m replica costs
/// 400m): each primary may use 200m, the target is 140m. Two unpaced
/// readers on one shard take it past the target (a debug build's reader
/// takes 80-100m) and leave the cluster's total below twice the target.
const HOT_KEYS: usize = 8;
const MANIFEST: &str = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
metadata: {name: hot}\n\
spec:\n  mode: Serverless\n  node:\n    resources: {limits: {memory: 64Mi, cpu: 200m}}\n  \
serverless:\n    limits: {compute: {minimum: 800m, maximum: 800m}}\n";

/// The shard (index in status) that owns `key`.
fn owner(s: &CacheClusterStatus, key: &str) -> Option<usize> {
    let slot = key_slot(key.as_bytes());
    s.shards.iter().position(|sh| {
        sh.slots
            .iter()
            .filter_map(|r| r.parse::<SlotRange>().ok())
            .any(|r| r.contains(slot))
    })
}

#[tokio::test]
async fn a_shard_hot_from_a_few_keys_hands_some_over() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("serverless-hot").await?;
    ns.apply_cluster(MANIFEST).await?;
    let cc = ns.wait_ready("hot").await?;
    let status = cc.status.clone().unwrap_or_default();
    assert_eq!(status.shards.len(), 2, "starts at its minimum of two");
    // Keys of the first shard, each in a slot of its own.
    let mut hot: Vec<String> = Vec::new();
    for k in (0..).map(|i| format!("hot:{i}")) {
        let slot = key_slot(k.as_bytes());
        if owner(&status, &k) == Some(0) && hot.iter().all(|h| key_slot(h.as_bytes()) != slot) {
            hot.push(k);
        }
        if hot.len() == HOT_KEYS {
            break;
        }
    }
    let password = ns.secret_value("hot-auth", "password").await?;
    let seed = pod_addr(&ns.pods("hot").await?[0]).unwrap();
    let api = ns.api::<CacheCluster>();
    let mut conn = cluster_client(&seed, &password).await?;
    for k in &hot {
        let _: () = conn.set(k, "v").await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let checker = tokio::spawn(checker::run_every(
        cluster_client(&seed, &password).await?,
        stop.clone(),
        std::time::Duration::from_millis(50),
    ));
    let stop_load = Arc::new(AtomicBool::new(false));
    // Two readers, each going through the hot keys in turn.
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut c = cluster_client(&seed, &password).await?;
        let (stop_load, keys) = (stop_load.clone(), hot.clone());
        readers.push(tokio::spawn(async move {
            let mut errors = 0u64;
            for key in keys.iter().cycle() {
                if stop_load.load(Ordering::Relaxed) {
                    break;
                }
                if c.get::<_, Option<String>>(key).await.is_err() {
                    errors += 1;
                }
            }
            errors
        }));
    }

    let start = Instant::now();
    let mut rows = Vec::new();
    let out = watch(&api, "hot", start, &mut rows, timeout(), |cc| {
        !decisions(cc).is_empty()
    })
    .await?;
    let d = decisions(&out)[0].clone();
    println!(
        "decision {:.1} s after the load began: {} {} → {}: {}",
        start.elapsed().as_secs_f64(),
        d.action,
        d.from,
        d.to,
        d.reason
    );
    assert_eq!(d.action, "Rebalance", "{d:?}");
    let decided = start.elapsed();
    // The moves planned on the load, done: hot keys on the second shard.
    let moved = |s: &CacheClusterStatus| hot.iter().filter(|k| owner(s, k) == Some(1)).count();
    let out = watch(&api, "hot", start, &mut rows, timeout(), |cc| {
        let s = cc.status.clone().unwrap_or_default();
        s.rebalance.is_none() && s.phase.as_deref() == Some("Ready") && moved(&s) > 0
    })
    .await?;
    let s = out.status.clone().unwrap_or_default();
    write_summary(
        "serverless-hot",
        &format!(
            "serverless hot slots: {} {:.1} s after the load began ({}); {} of {HOT_KEYS} hot keys on the second shard {:.1} s after the decision",
            d.action,
            decided.as_secs_f64(),
            d.reason,
            moved(&s),
            (start.elapsed() - decided).as_secs_f64()
        ),
    )?;
    assert!(moved(&s) >= 2, "hot slots moved: {}", moved(&s));
    let slots: Vec<usize> = s
        .shards
        .iter()
        .map(|sh| {
            sh.slots
                .iter()
                .filter_map(|r| r.parse::<SlotRange>().ok())
                .map(|r| r.len())
                .sum()
        })
        .collect();
    println!("slots per shard after: {slots:?}");
    assert!(
        slots.iter().all(|&n| n > 4000),
        "a hot slot moved, not a shard's worth of ordinary ones: {slots:?}"
    );
    // A few more seconds of timeline at the new placement.
    let settle = Instant::now() + std::time::Duration::from_secs(6);
    watch(&api, "hot", start, &mut rows, timeout(), |_| {
        Instant::now() > settle
    })
    .await?;
    write_timeline("serverless-hot", &rows)?;

    stop_load.store(true, Ordering::Relaxed);
    for r in readers {
        assert_eq!(r.await?, 0, "reader errors");
    }
    stop.store(true, Ordering::Relaxed);
    let seen = checker.await?;
    let mut conn = cluster_client(&seed, &password).await?;
    let lost = seen.lost(&mut conn).await?;
    seen.assert_clean(&lost);
    ns.delete().await;
    Ok(())
}
