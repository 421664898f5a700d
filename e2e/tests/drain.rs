//! Planned capacity changes under the checker: `kubectl drain` of a node
//! hosting a primary, then `replicasPerShard` lowered while a primary sits
//! on the pod the smaller shard drops. Both must be planned: each primary
//! is switched over before its pod goes (a `Switchover`, never a
//! `Failover`), no acknowledged write is lost and the client sees no error
//! beyond the redirects and retries it handles. Alone in its file: a drain
//! evicts every pod of the node, whatever test it belongs to.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt as _;
use kube::api::ListParams;
use tidecache_e2e::{
    OPERATOR_NAMESPACE, TestNamespace, checker, cluster_client, install_operator, pod_addr, run,
    timeout, wait_for,
};
use tidecache_operator::crd::{CacheCluster, CacheClusterStatus};

fn manifest(replicas: u32) -> String {
    format!(
        "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {{name: drain}}\n\
         spec:\n  shards: 2\n  replicasPerShard: {replicas}\n  \
         node:\n    resources: {{limits: {{memory: 256Mi}}}}\n"
    )
}

/// Uncordons the node when the test ends, however it ends: a node left
/// cordoned would starve the test files after this one.
struct Uncordon(String);

impl Drop for Uncordon {
    fn drop(&mut self) {
        if let Err(e) = run("kubectl", &["uncordon", &self.0]) {
            eprintln!("could not uncordon {}: {e}", self.0);
        }
    }
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn primaries(s: &CacheClusterStatus) -> Vec<String> {
    s.shards
        .iter()
        .filter_map(|sh| Some(sh.primary.as_ref()?.pod.clone()))
        .collect()
}

/// Events of `reason` in the namespace, each as many times as it
/// happened (the recorder folds repeats into one Event's series, keeping
/// the first note).
async fn events(ns: &TestNamespace, reason: &str) -> anyhow::Result<Vec<String>> {
    Ok(ns
        .api::<Event>()
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .flat_map(|e| {
            let times = e.series.as_ref().map_or(1, |s| s.count.max(1));
            vec![e.note.unwrap_or_default(); times as usize]
        })
        .collect())
}

#[tokio::test]
async fn a_drain_and_a_smaller_shard_switch_primaries_over_first() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("drain").await?;
    ns.apply_cluster(&manifest(1)).await?;
    ns.wait_ready("drain").await?;
    let api = ns.api::<CacheCluster>();
    let status = api.get("drain").await?.status.unwrap_or_default();
    let password = ns.secret_value("drain-auth", "password").await?;
    let pods = ns.pods("drain").await?;
    let seed = pod_addr(&pods[0]).unwrap();

    let load = checker::Running::after_preload(&seed, &password, 5_000).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The node to drain: one hosting a primary, preferring one without an
    // operator replica (draining the leader works too, only slower).
    let operators: Vec<String> = tidecache_e2e::list_pods(OPERATOR_NAMESPACE)
        .await?
        .iter()
        .filter_map(node_of)
        .collect();
    let primaries_before = primaries(&status);
    let mut candidates: Vec<(usize, String, String)> = pods
        .iter()
        .filter(|p| primaries_before.contains(&p.name_any()))
        .filter_map(|p| {
            let node = node_of(p)?;
            let operators_there = operators.iter().filter(|o| **o == node).count();
            Some((operators_there, node, p.name_any()))
        })
        .collect();
    candidates.sort();
    let (_, node, primary) = candidates.first().cloned().expect("a primary's node");
    println!("draining {node}, which hosts primary {primary}");

    let started = Instant::now();
    let _uncordon = Uncordon(node.clone());
    let drained = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || {
            run(
                "kubectl",
                &[
                    "drain",
                    &node,
                    "--ignore-daemonsets",
                    "--delete-emptydir-data",
                    "--timeout=300s",
                ],
            )
        })
        .await?
    };
    let drain_took = started.elapsed();
    drained?;
    println!("drain: {:.1} s", drain_took.as_secs_f64());

    // Every pod of the cluster serves again, none on the drained node.
    wait_for(
        "the cluster back on the other nodes",
        timeout() * 2,
        || async {
            let cc = api.get("drain").await?;
            let s = cc.status.unwrap_or_default();
            let pods = ns.pods("drain").await?;
            let back = pods.len() == 4
                && pods
                    .iter()
                    .all(|p| ready(p) && node_of(p).is_some_and(|n| n != node));
            Ok((back && s.phase.as_deref() == Some("Ready")).then_some(()))
        },
    )
    .await?;
    let after_drain = api.get("drain").await?.status.unwrap_or_default();
    assert!(
        !primaries(&after_drain).contains(&primary),
        "{primary} handed its role over: {:?}",
        primaries(&after_drain)
    );
    let switchovers = events(&ns, "Switchover").await?;
    assert!(!switchovers.is_empty(), "the drain was met by a switchover");

    // replicasPerShard 1 → 0: the shard whose primary is now pod 1 (the
    // replica that took over) switches back to pod 0 before it shrinks.
    let moved_to_one = primaries(&after_drain).iter().any(|p| p.ends_with("-1"));
    assert!(
        moved_to_one,
        "a primary on pod 1: {:?}",
        primaries(&after_drain)
    );
    let shrink_started = Instant::now();
    ns.apply_cluster(&manifest(0)).await?;
    wait_for("one pod per shard", timeout() * 2, || async {
        let s = api.get("drain").await?.status.unwrap_or_default();
        let pods = ns.pods("drain").await?;
        let done = pods.len() == 2
            && pods.iter().all(ready)
            && s.phase.as_deref() == Some("Ready")
            && s.shards.iter().all(|sh| sh.replicas.is_empty());
        Ok(done.then_some(()))
    })
    .await?;
    let shrink_took = shrink_started.elapsed();
    let last = api.get("drain").await?.status.unwrap_or_default();
    assert!(
        primaries(&last).iter().all(|p| p.ends_with("-0")),
        "{:?}",
        primaries(&last)
    );
    // The shrink's own switchover (its Event may trail the status).
    let switchovers = wait_for("the shrink's switchover event", timeout(), || async {
        let all = events(&ns, "Switchover").await?;
        Ok((all.len() >= 2).then_some(all))
    })
    .await?;
    println!(
        "drain: {:.1} s; replicasPerShard 1 → 0: {:.1} s; switchovers: {switchovers:?}",
        drain_took.as_secs_f64(),
        shrink_took.as_secs_f64(),
    );

    let checked = load.stop().await?;
    let mut conn =
        cluster_client(&pod_addr(&ns.pods("drain").await?[0]).unwrap(), &password).await?;
    let lost = checked.lost(&mut conn).await?;
    checked.assert_clean(&lost);
    let missing = checker::missing_preloaded(&mut conn, 5_000).await?;
    assert!(missing.is_empty(), "preloaded keys lost: {missing:?}");
    let failovers = events(&ns, "Failover").await?;
    assert!(
        failovers.is_empty(),
        "only planned switchovers: {failovers:?}"
    );
    // The pods the drain and the shrink started came up without a failed
    // probe (the startup probe covers their start).
    let unhealthy = events(&ns, "Unhealthy").await?;
    assert!(unhealthy.is_empty(), "probe failures: {unhealthy:?}");
    ns.delete().await;
    Ok(())
}
