//! Serverless mode, the other scenarios, each under a checker whose every
//! acknowledged write is read back at the end:
//!
//! 2. a request load pushes CPU past the target without growing memory: it
//!    scales out on CPU; 3. the load stops: it scales in after the window,
//!    one step at a time, and no unexpired key is lost;
//! 4. a load beyond the data storage maximum: it stays at the maximum,
//!    evicts keys with a TTL first, and the status says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use tidecache_e2e::timeline::{decisions, settled_at, watch, write_summary, write_timeline};
use tidecache_e2e::{TestNamespace, checker, cluster_client, install_operator, pod_addr, timeout};
use tidecache_operator::crd::CacheCluster;

/// Small nodes with a small CPU allowance, so that a few clients' requests
/// pass the CPU target (four unpaced readers take 300-400m of a debug
/// build), while the idle cluster (the checker, replication, the
/// operator's survey: about 60m over two primaries) stays well under the
/// scale-in threshold (80% of the target with one shard fewer: 112m); a
/// short scale-in window.
const CPU_MANIFEST: &str = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
metadata: {name: busy}\n\
spec:\n  mode: Serverless\n  node:\n    resources: {limits: {memory: 64Mi, cpu: 200m}}\n  \
serverless:\n    limits: {compute: {maximum: 800m}}\n    scaleInWindowSeconds: 10\n";

#[tokio::test]
async fn cpu_past_the_target_scales_out_then_in_after_the_window() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("serverless-cpu").await?;
    ns.apply_cluster(CPU_MANIFEST).await?;
    ns.wait_ready("busy").await?;
    let password = ns.secret_value("busy-auth", "password").await?;
    let seed = pod_addr(&ns.pods("busy").await?[0]).unwrap();
    let api = ns.api::<CacheCluster>();
    let start = Instant::now();
    let mut rows = Vec::new();

    // Keys that must outlive everything: a TTL of an hour.
    let mut conn = cluster_client(&seed, &password).await?;
    for i in 0..2000u32 {
        let _: () = conn.set_ex(format!("ttl:{i}"), i, 3600).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    // A writer that adds little CPU of its own (about 40 writes a second),
    // so that the cluster can be quiet enough to scale in.
    let checker = tokio::spawn(checker::run_every(
        cluster_client(&seed, &password).await?,
        stop.clone(),
        Duration::from_millis(50),
    ));
    // Requests, not data: four clients reading one small key.
    let stop_load = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut c = cluster_client(&seed, &password).await?;
        let stop_load = stop_load.clone();
        readers.push(tokio::spawn(async move {
            let mut errors = 0u64;
            while !stop_load.load(Ordering::Relaxed) {
                if c.get::<_, Option<u32>>("ttl:1").await.is_err() {
                    errors += 1;
                }
            }
            errors
        }));
    }
    let out = watch(&api, "busy", start, &mut rows, timeout(), |cc| {
        !decisions(cc).is_empty()
    })
    .await?;
    let d = decisions(&out)[0].clone();
    println!(
        "decision at {:?}: {} {} → {}: {}",
        start.elapsed(),
        d.action,
        d.from,
        d.to,
        d.reason
    );
    assert_eq!(d.action, "ScaleOut", "{d:?}");

    let usage = out
        .status
        .as_ref()
        .unwrap()
        .serverless
        .as_ref()
        .unwrap()
        .usage
        .clone()
        .unwrap();
    assert!(
        usage.memory_bytes * 100 < usage.memory_limit_bytes * 70,
        "memory stayed low: {usage:?}"
    );
    assert!(
        usage.cpu_millicores * 100 > usage.cpu_limit_millicores * 70,
        "CPU past the target: {usage:?}"
    );
    let scaled_out = start.elapsed();
    watch(&api, "busy", start, &mut rows, timeout(), |cc| {
        settled_at(cc, 2)
    })
    .await?;
    let serving = start.elapsed() - scaled_out;

    // 3. The load stops: one shard fewer after the window, and nothing lost.
    stop_load.store(true, Ordering::Relaxed);
    for r in readers {
        assert_eq!(r.await?, 0, "reader errors");
    }
    let quiet = start.elapsed();
    let out = watch(&api, "busy", start, &mut rows, timeout(), |cc| {
        decisions(cc).iter().any(|d| d.action == "ScaleIn") && settled_at(cc, 1)
    })
    .await?;
    let ins: Vec<_> = decisions(&out)
        .into_iter()
        .filter(|d| d.action == "ScaleIn")
        .collect();
    write_summary(
        "serverless-cpu",
        &format!(
            "serverless scenarios 2 and 3: {} {} → {} decided {:.1} s after the load began ({}), 2 shards serving {:.1} s after the decision; {} {:.1} s after the load stopped ({:?})",
            d.action,
            d.from,
            d.to,
            scaled_out.as_secs_f64(),
            d.reason,
            serving.as_secs_f64(),
            ins.iter()
                .map(|d| format!("{} {} → {}", d.action, d.from, d.to))
                .collect::<Vec<_>>()
                .join(", "),
            (start.elapsed() - quiet).as_secs_f64(),
            ins.iter().map(|d| &d.reason).collect::<Vec<_>>()
        ),
    )?;
    assert!(
        ins.iter().all(|d| d.to == d.from - 1),
        "one step at a time: {ins:?}"
    );
    write_timeline("serverless-cpu", &rows)?;

    stop.store(true, Ordering::Relaxed);
    let checked = checker.await?;
    let mut conn = cluster_client(&seed, &password).await?;
    let lost = checked.lost(&mut conn).await?;
    checked.assert_clean(&lost);
    for i in 0..2000u32 {
        let v: Option<u32> = conn.get(format!("ttl:{i}")).await?;
        assert_eq!(v, Some(i), "ttl:{i} lost");
        let ttl: i64 = conn.ttl(format!("ttl:{i}")).await?;
        assert!(ttl > 3000, "ttl:{i} kept its deadline: {ttl}");
    }
    ns.delete().await;
    Ok(())
}

/// One shard is the most the limits allow (24Mi of data, a node's).
const FULL_MANIFEST: &str = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
metadata: {name: full}\n\
spec:\n  mode: Serverless\n  replicasPerShard: 0\n  node:\n    resources: {limits: {memory: 32Mi, cpu: 250m}}\n  \
serverless:\n    limits: {dataStorage: {maximum: 24Mi}}\n";

#[tokio::test]
async fn beyond_the_storage_maximum_it_evicts_ttl_keys_first_and_says_so() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("serverless-full").await?;
    ns.apply_cluster(FULL_MANIFEST).await?;
    ns.wait_ready("full").await?;
    let password = ns.secret_value("full-auth", "password").await?;
    let seed = pod_addr(&ns.pods("full").await?[0]).unwrap();
    let api = ns.api::<CacheCluster>();
    let start = Instant::now();
    let mut rows = Vec::new();

    let mut conn = cluster_client(&seed, &password).await?;
    let value = vec![b'v'; 1024];
    // 4 MiB that must stay, then 40 MiB of keys with a TTL: past 24Mi.
    for i in 0..4 * 1024u32 {
        let _: () = conn.set(format!("keep:{i}"), &value).await?;
    }
    for i in 0..40 * 1024u32 {
        let _: () = conn.set_ex(format!("ttl:{i}"), &value, 3600).await?;
    }
    let out = watch(&api, "full", start, &mut rows, timeout(), |cc| {
        cc.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "AtStorageLimit" && c.status == "True")
        })
    })
    .await?;
    write_timeline("serverless-full", &rows)?;
    let s = out.status.unwrap();
    assert_eq!(s.current_shards, 1, "stays at the maximum");
    assert!(
        decisions_of(&s).iter().all(|d| d.action != "ScaleOut"),
        "{:?}",
        decisions_of(&s)
    );
    for i in 0..4 * 1024u32 {
        let v: Option<Vec<u8>> = conn.get(format!("keep:{i}")).await?;
        assert!(v.is_some(), "keep:{i} evicted before keys with a TTL");
    }
    let mut ttl_left = 0;
    for i in 0..40 * 1024u32 {
        if conn.exists::<_, bool>(format!("ttl:{i}")).await? {
            ttl_left += 1;
        }
    }
    println!("{ttl_left} of {} keys with a TTL left", 40 * 1024);
    assert!(ttl_left < 40 * 1024, "keys with a TTL were evicted");
    ns.delete().await;
    Ok(())
}

fn decisions_of(
    s: &tidecache_operator::crd::CacheClusterStatus,
) -> Vec<tidecache_operator::crd::ScaleDecision> {
    s.serverless
        .as_ref()
        .map(|v| v.decisions.clone())
        .unwrap_or_default()
}
