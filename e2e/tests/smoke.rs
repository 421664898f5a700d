//! Smoke suite: a CacheCluster from creation to deletion on a real control
//! plane. Run through `make e2e` (or against any cluster via KUBECONFIG).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::ResourceExt as _;
use kube::api::{DeleteParams, ListParams, PostParams};
use redis::AsyncCommands as _;
use tidecache_e2e::{TestNamespace, cluster_client, install_operator, pod_addr, timeout, wait_for};
use tidecache_operator::crd::CacheCluster;
use tidecache_topology::admin::AdminClient;
use tidecache_topology::key_slot;

const THREE_SHARDS: &str = r#"
apiVersion: tidecache.io/v1alpha1
kind: CacheCluster
metadata: {name: sessions}
spec:
  shards: 3
  node:
    resources: {limits: {memory: 256Mi}}
"#;

/// Each StatefulSet's `metadata.generation`, which moves only when its spec changes.
async fn statefulset_generations(
    ns: &TestNamespace,
) -> anyhow::Result<BTreeMap<String, Option<i64>>> {
    let list = ns.api::<StatefulSet>().list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .map(|s| (s.name_any(), s.metadata.generation))
        .collect())
}

/// Sends one command on a plain connection and returns the error text, if any.
async fn raw_error(
    addr: &(String, u16),
    password: &str,
    cmd: &[&str],
) -> anyhow::Result<Option<String>> {
    let client = redis::Client::open(format!("redis://:{password}@{}:{}/", addr.0, addr.1))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut c = redis::cmd(cmd[0]);
    for a in &cmd[1..] {
        c.arg(*a);
    }
    match c.query_async::<redis::Value>(&mut conn).await {
        Ok(_) => Ok(None),
        Err(e) => Ok(Some(format!(
            "{} {}",
            e.code().unwrap_or(""),
            e.detail().unwrap_or("")
        ))),
    }
}

#[tokio::test]
async fn a_three_shard_cluster_serves_all_slots_survives_a_crash_and_ignores_reapplies()
-> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("smoke").await?;

    // Apply a 3-shard CacheCluster: every pod and the cluster become Ready.
    ns.apply_cluster(THREE_SHARDS).await?;
    let cc = ns.wait_ready("sessions").await?;
    let status = cc.status.clone().unwrap();
    assert_eq!(status.shards.len(), 3);
    let slots: usize = status
        .shards
        .iter()
        .flat_map(|s| &s.slots)
        .map(|r| r.parse::<tidecache_topology::SlotRange>().unwrap().len())
        .sum();
    assert_eq!(slots, 16384, "every slot is assigned exactly once");
    let pods = ns.pods("sessions").await?;
    assert_eq!(pods.len(), 3);

    // A cluster-aware client writes and reads back 10,000 keys over all slots.
    let password = ns.secret_value("sessions-auth", "password").await?;
    let first = pod_addr(&pods[0]).unwrap();
    let mut conn = cluster_client(&first, &password).await?;
    for i in 0..10_000 {
        let _: () = conn.set(format!("key:{i}"), i).await?;
    }
    for i in 0..10_000 {
        let v: i64 = conn.get(format!("key:{i}")).await?;
        assert_eq!(v, i);
    }
    let mut slots_hit = std::collections::HashSet::new();
    for i in 0..10_000 {
        slots_hit.insert(key_slot(format!("key:{i}").as_bytes()));
    }
    assert!(
        slots_hit.len() > 7_000,
        "keys spread over most slots: {}",
        slots_hit.len()
    );

    // A node asked for a key it does not own answers MOVED to the owner.
    let shard0 = &status.shards[0];
    let shard0_addr = shard0.primary.as_ref().unwrap().address.clone();
    let (host, port) = shard0_addr.rsplit_once(':').unwrap();
    let foreign = (0..)
        .map(|i| format!("probe:{i}"))
        .find(|k| key_slot(k.as_bytes()) > 6000)
        .unwrap();
    let err = raw_error(
        &(host.to_owned(), port.parse()?),
        &password,
        &["GET", &foreign],
    )
    .await?
    .expect("a redirect");
    assert!(err.starts_with("MOVED"), "{err}");

    // Re-applying the same manifest changes nothing and restarts nothing.
    let sts_before = statefulset_generations(&ns).await?;
    let uids_before: Vec<_> = ns.pods("sessions").await?.iter().map(|p| p.uid()).collect();
    ns.apply_cluster(THREE_SHARDS).await?;
    // Give the operator several passes (it requeues every few seconds and on every change).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let cc_after = ns.api::<CacheCluster>().get("sessions").await?;
    assert_eq!(cc_after.metadata.generation, cc.metadata.generation);
    assert_eq!(
        cc_after.status.as_ref().unwrap().epoch,
        status.epoch,
        "no new topology epoch"
    );
    let sts_after = statefulset_generations(&ns).await?;
    assert_eq!(sts_after, sts_before, "no StatefulSet changed its spec");
    let pods_after = ns.pods("sessions").await?;
    assert_eq!(
        pods_after.iter().map(|p| p.uid()).collect::<Vec<_>>(),
        uids_before,
        "no pod replaced"
    );
    for p in &pods_after {
        let restarts = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| cs[0].restart_count);
        assert_eq!(restarts, 0, "pod {} not restarted", p.name_any());
    }

    // Kill a cache-node process: the pod restarts, the operator re-pushes the
    // topology, and the cluster serves again.
    let victim = pods_after
        .iter()
        .find(|p| p.name_any() == "sessions-1-0")
        .expect("shard 1's primary")
        .clone();
    kill_container(&victim)?;
    let api = ns.api::<Pod>();
    wait_for("the killed container to restart", timeout(), || async {
        let p = api.get("sessions-1-0").await?;
        let restarts = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| cs[0].restart_count);
        Ok((restarts >= 1).then_some(()))
    })
    .await?;
    let cc = ns.wait_ready("sessions").await?;
    let epoch = cc.status.as_ref().unwrap().epoch;
    // The admin password has a Secret of its own: applications read
    // `sessions-auth` for the cache password and find no admin password.
    let admin_pw = ns.secret_value("sessions-admin", "password").await?;
    assert!(
        ns.secret_value("sessions-auth", "admin-password")
            .await
            .is_err(),
        "no admin password beside the cache password"
    );
    let addr = pod_addr(&api.get("sessions-1-0").await?).unwrap();
    let node_epoch = wait_for(
        "the restarted node to hold the topology",
        timeout(),
        || async {
            let mut admin =
                AdminClient::connect(&addr.0, addr.1, &admin_pw, Duration::from_secs(2)).await?;
            let e = admin.epoch().await?;
            Ok((e == epoch).then_some(e))
        },
    )
    .await?;
    assert_eq!(node_epoch, epoch);
    let mut conn = cluster_client(&first, &password).await?;
    for i in 0..2_000 {
        let _: () = conn.set(format!("after:{i}"), i).await?;
        let v: i64 = conn.get(format!("after:{i}")).await?;
        assert_eq!(v, i);
    }

    // A cluster of an operator before the split (the admin password in
    // `sessions-auth` only) migrates: the admin Secret is made from it,
    // unchanged, and the old key leaves once no pod mounts it.
    let secrets = ns.api::<Secret>();
    secrets
        .delete("sessions-admin", &DeleteParams::default())
        .await?;
    let legacy = serde_json::json!({ "stringData": { "admin-password": admin_pw } });
    secrets
        .patch(
            "sessions-auth",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(legacy),
        )
        .await?;
    wait_for("the admin password migrated", timeout(), || async {
        let moved = ns.secret_value("sessions-admin", "password").await.ok();
        let left = ns
            .secret_value("sessions-auth", "admin-password")
            .await
            .is_ok();
        Ok((moved.as_deref() == Some(admin_pw.as_str()) && !left).then_some(()))
    })
    .await?;
    let mut admin =
        AdminClient::connect(&addr.0, addr.1, &admin_pw, Duration::from_secs(2)).await?;
    assert_eq!(
        admin.epoch().await?,
        epoch,
        "the nodes keep the admin password"
    );

    ns.delete().await;
    Ok(())
}

/// Kills the container's main process with SIGKILL. The embedded harness
/// reports containers as `tidecache://<pid>`; on other clusters the test asks
/// kubectl to kill PID 1 of the container.
fn kill_container(pod: &Pod) -> anyhow::Result<()> {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs[0].container_id.clone())
        .unwrap_or_default();
    if let Some(pid) = id.strip_prefix("tidecache://") {
        let pid: i32 = pid.parse()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    } else {
        tidecache_e2e::run(
            "kubectl",
            &[
                "-n",
                &pod.namespace().unwrap(),
                "exec",
                &pod.name_any(),
                "--",
                "kill",
                "-9",
                "1",
            ],
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn invalid_specs_are_refused_with_a_clear_message() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("invalid").await?;
    let api = ns.api::<CacheCluster>();
    let cases = [
        (
            "shards: 0",
            "spec.shards: Invalid value: 0: spec.shards in body should be greater than or equal to 1",
        ),
        (
            "replicasPerShard: 6",
            "spec.replicasPerShard: Invalid value: 6: spec.replicasPerShard in body should be less than or equal to 5",
        ),
        (
            "mode: Serverless, serverless: {limits: {dataStorage: {minimum: 2Gi, maximum: 1Gi}}}",
            "spec.serverless.limits.dataStorage: Invalid value: \"object\": minimum must not exceed maximum",
        ),
        (
            "mode: Serverless, serverless: {limits: {dataStorage: {maximum: 100Mi}}}",
            "serverless.limits.dataStorage.maximum is below one node's data",
        ),
        (
            "mode: Serverless, serverless: {limits: {compute: {maximum: \"1\"}}}",
            "serverless.limits.compute.maximum is below one shard's CPU",
        ),
        (
            "mode: Serverless, serverless: {targetMemoryPercent: 99}",
            "spec.serverless.targetMemoryPercent: Invalid value: 99",
        ),
        ("mode: Bogus", "spec.mode: Unsupported value: \"Bogus\""),
    ];
    // Sent as raw JSON, as kubectl would, so that values our own types could
    // not even represent (an unknown mode) reach the API server too.
    let raw_api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &kube::api::ApiResource::erase::<CacheCluster>(&()),
    );
    for (spec, message) in cases {
        let yaml = format!(
            "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {{name: bad}}\nspec: {{{spec}}}\n"
        );
        let obj: kube::api::DynamicObject = serde_yaml::from_str(&yaml)?;
        let err = raw_api
            .create(&PostParams::default(), &obj)
            .await
            .expect_err("the API server refuses it");
        let text = err.to_string();
        assert!(text.contains(message), "for {spec:?}: {text}");
    }
    assert!(api.list(&ListParams::default()).await?.items.is_empty());
    ns.delete().await;
    Ok(())
}

#[tokio::test]
async fn deleting_a_cluster_garbage_collects_everything_it_owned() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("gc").await?;
    ns.apply_cluster("apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {name: tmp}\nspec: {shards: 1}\n").await?;
    ns.wait_ready("tmp").await?;
    ns.api::<CacheCluster>()
        .delete("tmp", &DeleteParams::foreground())
        .await?;
    wait_for("every owned object to be gone", timeout(), || async {
        let sts = ns
            .api::<StatefulSet>()
            .list(&ListParams::default())
            .await?
            .items
            .len();
        let svc = ns
            .api::<Service>()
            .list(&ListParams::default())
            .await?
            .items
            .len();
        let secrets = ns
            .api::<Secret>()
            .list(&ListParams::default().labels("tidecache.io/cluster=tmp"))
            .await?
            .items
            .len();
        let pods = ns.pods("tmp").await?.len();
        Ok((sts + svc + secrets + pods == 0).then_some(()))
    })
    .await?;
    ns.delete().await;
    Ok(())
}
