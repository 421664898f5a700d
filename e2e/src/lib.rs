//! End-to-end tests against a real Kubernetes control plane.
//!
//! The tests in `tests/` read like the scenarios they prove. This library
//! holds what they share: a namespace per test, waiting with timeouts from
//! the environment, installing the operator the way users do (`kubectl apply
//! --server-side` for the CRDs, `helm install` for the operator), and client
//! connections to the cache.
//!
//! They run against whatever `KUBECONFIG` points at: the embedded control
//! plane that `make e2e` starts (see `e2e/HARNESS.md`), or a real cluster.

pub mod chart;
pub mod checker;
pub mod scale_out;
pub mod timeline;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt as _};
use tidecache_operator::crd::CacheCluster;
use tokio::sync::OnceCell;

/// How long to wait for things that need pods to start (`TIDECACHE_E2E_TIMEOUT`, seconds).
pub fn timeout() -> Duration {
    let secs = std::env::var("TIDECACHE_E2E_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    Duration::from_secs(secs)
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the repo")
        .to_owned()
}

/// Runs a command (kubectl, helm) and fails with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(repo_root())
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}\n{}",
            args.join(" "),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Polls `check` every 500 ms until it returns `Some`, or fails after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

static OPERATOR: OnceCell<()> = OnceCell::const_new();

/// The namespace the operator is installed into.
pub const OPERATOR_NAMESPACE: &str = "tidecache-system";

/// Installs the CRDs and the operator once per test run, as a user would.
pub async fn install_operator() -> anyhow::Result<()> {
    OPERATOR
        .get_or_try_init(|| async {
            run(
                "kubectl",
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=e2e",
                    "-f",
                    "crds/",
                ],
            )?;
            run(
                "kubectl",
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "crd/cacheclusters.tidecache.io",
                ],
            )?;
            run(
                "helm",
                &[
                    "upgrade",
                    "--install",
                    "tidecache",
                    "charts/tidecache",
                    "--namespace",
                    OPERATOR_NAMESPACE,
                    "--create-namespace",
                    // Two replicas: leader election decides which one works.
                    "--set",
                    "replicaCount=2",
                    "--wait",
                    "--timeout",
                    "180s",
                ],
            )?;
            Ok::<(), anyhow::Error>(())
        })
        .await?;
    Ok(())
}

/// The pod the status names as shard `shard`'s primary.
pub fn primary_pod(cc: &CacheCluster, shard: &str) -> Option<String> {
    cc.status
        .as_ref()?
        .shards
        .iter()
        .find(|s| s.name == shard)?
        .primary
        .as_ref()
        .map(|p| p.pod.clone())
}

/// Every pod of namespace `ns`.
pub async fn list_pods(ns: &str) -> anyhow::Result<Vec<Pod>> {
    let client = Client::try_default().await?;
    Ok(Api::<Pod>::namespaced(client, ns)
        .list(&ListParams::default())
        .await?
        .items)
}

/// Garage, the harness's S3-compatible server (`e2e/scripts/cluster.sh`
/// starts it in the network namespace with this bucket and key).
pub mod garage {
    pub const ENDPOINT: &str = "http://10.200.0.3:3900";
    pub const REGION: &str = "garage";
    pub const BUCKET: &str = "tidecache-e2e";
    pub const ACCESS_KEY: &str = "GK00000000000000000000e2e0";
    pub const SECRET_KEY: &str = "e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0";
}

/// A namespace of its own for one test, deleted when the test ends.
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> anyhow::Result<Self> {
        let client = Client::try_default().await?;
        let suffix: u32 = rand::random::<u32>() % 100_000;
        let name = format!("{prefix}-{suffix}");
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(Self { client, name })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Applies a CacheCluster manifest (YAML) with server-side apply.
    pub async fn apply_cluster(&self, yaml: &str) -> anyhow::Result<CacheCluster> {
        let cc: CacheCluster = serde_yaml::from_str(yaml)?;
        let name = cc.name_any();
        Ok(self
            .api::<CacheCluster>()
            .patch(
                &name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&cc),
            )
            .await?)
    }

    /// Waits until the cluster reports phase Ready for its current generation.
    pub async fn wait_ready(&self, name: &str) -> anyhow::Result<CacheCluster> {
        let api = self.api::<CacheCluster>();
        wait_for(&format!("CacheCluster {name} Ready"), timeout(), || async {
            let cc = api.get(name).await?;
            let status = cc.status.clone().unwrap_or_default();
            let current = status.observed_generation == cc.metadata.generation;
            Ok((current && status.phase.as_deref() == Some("Ready")).then_some(cc))
        })
        .await
    }

    pub async fn pods(&self, cluster: &str) -> anyhow::Result<Vec<Pod>> {
        Ok(self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("tidecache.io/cluster={cluster}")))
            .await?
            .items)
    }

    /// A key of the generated auth Secret.
    pub async fn secret_value(&self, secret: &str, key: &str) -> anyhow::Result<String> {
        let s = self.api::<Secret>().get(secret).await?;
        let v = s
            .data
            .and_then(|d| d.get(key).cloned())
            .with_context(|| format!("secret {secret} has no {key}"))?;
        Ok(String::from_utf8(v.0)?)
    }

    /// Creates an Opaque Secret `name` holding `data`.
    pub async fn create_secret(&self, name: &str, data: &[(&str, &str)]) -> anyhow::Result<()> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            string_data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Secret::default()
        };
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// The `ip:port` of a cluster's node pod.
pub fn pod_addr(pod: &Pod) -> Option<(String, u16)> {
    Some((pod.status.as_ref()?.pod_ip.clone()?, 6379))
}

/// A cluster-aware client (it follows `MOVED` and refreshes its slot map)
/// seeded with one node's address.
pub async fn cluster_client(
    addr: &(String, u16),
    password: &str,
) -> anyhow::Result<redis::cluster_async::ClusterConnection> {
    let url = format!("redis://{}:{}/", addr.0, addr.1);
    let client = redis::cluster::ClusterClientBuilder::new(vec![url])
        .password(password)
        .build()?;
    Ok(client.get_async_connection().await?)
}

/// The pid of the node process of the pod at `pod_ip`, found by its
/// environment (the pods' processes run on this machine). By IP, not by
/// name: clusters in different namespaces have pods of the same name. The
/// first found: the node agent's shim that started it, or the node itself.
pub fn node_pid(pod_ip: &str) -> Option<u32> {
    node_pids(pod_ip).into_iter().next().map(|(pid, _)| pid)
}

/// Every process of the pod at `pod_ip` that runs (or started) the node,
/// in pid order, each with whether it is the agent's shim
/// (`__tidecache-exec`, `__tidecache-init`) rather than the node itself.
fn node_pids(pod_ip: &str) -> Vec<(u32, bool)> {
    let wanted = format!("POD_IP={pod_ip}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, bool)> = dir
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let cmd = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?)
                .into_owned();
            let has = env.split(|b| *b == 0).any(|v| v == wanted.as_bytes());
            (cmd.contains("cache-node") && has).then(|| (pid, cmd.contains("__tidecache-")))
        })
        .collect();
    found.sort();
    found
}

/// Kills the node process of the pod at `pod_ip` with SIGKILL (its
/// container restarts, empty); its pid.
pub fn kill_node(pod_ip: &str) -> anyhow::Result<u32> {
    let pid = node_pid(pod_ip).with_context(|| format!("no node process for {pod_ip}"))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    Ok(pid)
}

/// Sends `signal` to the node process itself of the pod at `pod_ip`, not
/// to the shim that started it (SIGSTOP freezes it as a hung machine
/// would, SIGCONT thaws it); its pid.
pub fn signal_node(pod_ip: &str, signal: nix::sys::signal::Signal) -> anyhow::Result<u32> {
    let pid = node_pids(pod_ip)
        .into_iter()
        .find_map(|(pid, shim)| (!shim).then_some(pid))
        .with_context(|| format!("no node process for {pod_ip}"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)?;
    Ok(pid)
}
