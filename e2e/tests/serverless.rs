//! Serverless mode, scenario 1: a cluster at its minimum (one shard of a
//! small node, one replica) gets a load that fills memory past the target
//! while a checker writes through a cluster-aware client: the decision
//! comes within one window of the crossing, the new shard (started cold)
//! serves within 60 s of it, and every acknowledged write is there at the
//! end ([`scale_out`]). Alone in its file, so that no other scenario's load
//! runs beside the timing it measures. The timeline goes to
//! `target/e2e-timelines/serverless-memory.csv`.

use std::time::Duration;

use tidecache_e2e::{TestNamespace, install_operator, scale_out};

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
    let times =
        scale_out::fill_past_the_memory_target(&ns, "auto", MANIFEST, "serverless-memory").await?;
    assert!(
        times.serving_delay() <= Duration::from_secs(60),
        "served {:?} after the decision",
        times.serving_delay()
    );
    ns.delete().await;
    Ok(())
}
