//! Serverless mode with a warm spare: scenario 1's load (memory past the
//! target, a checker whose every acknowledged write must survive) on a
//! cluster that keeps one spare shard running without slots. The scale-out
//! is then only a slot move onto the spare: the new shard serves within
//! 10 s of the decision, and a new spare is started afterwards. Alone in
//! its file, so that no other scenario's load runs beside the timing it
//! measures. The timeline goes to `target/e2e-timelines/serverless-spare.csv`.

use std::time::Duration;

use kube::api::ListParams;
use tidecache_e2e::{TestNamespace, install_operator, scale_out, timeout, wait_for};
use tidecache_operator::crd::{CacheCluster, CacheClusterStatus};

/// Scenario 1's cluster (48Mi of data per node, memory is what scales)
/// with `spareShards: 1`, on nodes of 2 CPUs rather than 4 so that three
/// shards of two pods fit the harness's three nodes of 8 CPUs (the
/// filler's CPU stays below the target all the same).
const MANIFEST: &str = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
metadata: {name: warm}\n\
spec:\n  mode: Serverless\n  node:\n    resources: {limits: {memory: 64Mi, cpu: \"2\"}}\n  \
serverless:\n    limits: {dataStorage: {maximum: 192Mi}, compute: {maximum: \"32\"}}\n    \
scaleInWindowSeconds: 3600\n    spareShards: 1\n";

/// Whether `owning` shards own slots and, beside them, one spare owns none
/// and its primary is listed with an address.
fn with_spare(s: &CacheClusterStatus, owning: usize) -> bool {
    s.shards.len() == owning + 1
        && s.shards[..owning].iter().all(|sh| !sh.slots.is_empty())
        && s.shards[owning].slots.is_empty()
        && s.shards[owning]
            .primary
            .as_ref()
            .is_some_and(|p| !p.address.is_empty())
        && s.serverless.as_ref().is_some_and(|v| v.spare_shards == 1)
}

/// Waits until `owning` shards and a spare run, with every pod Ready.
async fn spare_running(ns: &TestNamespace, owning: usize) -> anyhow::Result<CacheClusterStatus> {
    let api = ns.api::<CacheCluster>();
    let pods = ns.api::<k8s_openapi::api::core::v1::Pod>();
    wait_for(
        &format!("{owning} shards and a warm spare"),
        timeout(),
        || async {
            let s = api.get("warm").await?.status.unwrap_or_default();
            let listed = pods
                .list(&ListParams::default().labels("tidecache.io/cluster=warm"))
                .await?
                .items;
            let ready = listed.len() == 2 * (owning + 1)
                && listed.iter().all(|p| {
                    p.status
                        .as_ref()
                        .and_then(|st| st.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                });
            Ok((ready && with_spare(&s, owning)).then_some(s))
        },
    )
    .await
}

#[tokio::test]
async fn a_warm_spare_serves_a_scale_out_within_ten_seconds_and_is_replenished()
-> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("serverless-spare").await?;
    ns.apply_cluster(MANIFEST).await?;
    ns.wait_ready("warm").await?;
    let before = spare_running(&ns, 1).await?;
    assert_eq!(before.current_shards, 1, "the spare serves no data");

    let times =
        scale_out::fill_past_the_memory_target(&ns, "warm", MANIFEST, "serverless-spare").await?;
    assert!(
        times.serving_delay() <= Duration::from_secs(10),
        "served {:?} after the decision, with a warm spare",
        times.serving_delay()
    );
    // The spare took the slots; a new one replaces it.
    let after = spare_running(&ns, 2).await?;
    assert_eq!(
        after.shards[1].name, before.shards[1].name,
        "the old spare serves"
    );
    assert_eq!(after.current_shards, 2);
    ns.delete().await;
    Ok(())
}
