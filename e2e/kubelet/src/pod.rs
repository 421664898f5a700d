//! State shared by one pod's worker, its container supervisors and probes,
//! and the status reporting built on it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::events::{self, Kind};
use crate::node::NodeInfo;
use crate::status::{self, PodRt, RtContainer};
use crate::volumes::VolumeInfo;

/// The latest pod object from the watch, or word that it is gone from the
/// API (force-deleted, or deleted after we finished with it).
#[derive(Clone)]
pub struct PodSignal {
    pub pod: Arc<Pod>,
    pub gone: bool,
}

/// A container of the pod: an init container or a regular one, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CRef {
    pub init: bool,
    pub index: usize,
}

impl CRef {
    pub fn kind(self) -> Kind {
        if self.init { Kind::Init } else { Kind::Regular }
    }
}

/// How containers are to be stopped, set before their stop tokens are
/// cancelled.
#[derive(Debug, Clone, Copy)]
pub struct KillRequest {
    pub deadline: Instant,
    pub run_pre_stop: bool,
    /// The least time between SIGTERM and SIGKILL (the kubelet's
    /// `minimumGracePeriodInSeconds` is 2).
    pub min_grace: Duration,
}

pub struct PodCtx {
    pub agent: Arc<Agent>,
    pub node: Arc<NodeInfo>,
    pub uid: String,
    pub ns: String,
    pub name: String,
    pub pod_rx: watch::Receiver<PodSignal>,
    rt: Mutex<PodRt>,
    /// Bumped on every runtime state change.
    version: watch::Sender<u64>,
    pub volumes: Mutex<HashMap<String, VolumeInfo>>,
    /// `STATE/pods/<uid>`: volumes, hosts file, working dirs.
    pub root: PathBuf,
    /// `STATE/pods/<ns>_<name>_<uid>`: container logs (kept after the pod).
    pub log_dir: PathBuf,
    pub hostname: String,
    pub fqdn: Option<String>,
    pub kill: Mutex<Option<KillRequest>>,
    pub supervisors: Mutex<Vec<crate::worker::SupHandle>>,
    last_sent: tokio::sync::Mutex<Option<Value>>,
}

impl PodCtx {
    pub fn new(
        agent: Arc<Agent>,
        node: Arc<NodeInfo>,
        pod_rx: watch::Receiver<PodSignal>,
        rt: PodRt,
    ) -> Arc<Self> {
        let pod = pod_rx.borrow().pod.clone();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let (hostname, fqdn) = hostname_and_fqdn(&pod, &agent.cluster_domain);
        Arc::new(Self {
            root: agent.pods_dir().join(&uid),
            log_dir: agent.pods_dir().join(format!("{ns}_{name}_{uid}")),
            agent,
            node,
            uid,
            ns,
            name,
            pod_rx,
            rt: Mutex::new(rt),
            version: watch::channel(0).0,
            volumes: Mutex::new(HashMap::new()),
            hostname,
            fqdn,
            kill: Mutex::new(None),
            supervisors: Mutex::new(Vec::new()),
            last_sent: tokio::sync::Mutex::new(None),
        })
    }

    pub fn pod(&self) -> Arc<Pod> {
        self.pod_rx.borrow().pod.clone()
    }

    pub fn snapshot(&self) -> PodRt {
        self.rt.lock().unwrap().clone()
    }

    pub fn read<T>(&self, f: impl FnOnce(&PodRt) -> T) -> T {
        f(&self.rt.lock().unwrap())
    }

    /// Changes the runtime state and wakes everyone waiting on it.
    pub fn update<T>(&self, f: impl FnOnce(&mut PodRt) -> T) -> T {
        let out = f(&mut self.rt.lock().unwrap());
        self.version.send_modify(|v| *v += 1);
        out
    }

    pub fn update_container(&self, c: CRef, f: impl FnOnce(&mut RtContainer)) {
        self.update(|rt| {
            let list = if c.init {
                &mut rt.init
            } else {
                &mut rt.containers
            };
            if let Some(x) = list.get_mut(c.index) {
                f(x);
            }
        })
    }

    pub fn container<T>(&self, c: CRef, f: impl FnOnce(&RtContainer) -> T) -> Option<T> {
        self.read(|rt| {
            let list = if c.init { &rt.init } else { &rt.containers };
            list.get(c.index).map(f)
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Waits until `pred` holds for the runtime state.
    pub async fn wait_for(&self, mut pred: impl FnMut(&PodRt) -> bool) {
        let mut rx = self.subscribe();
        loop {
            if self.read(&mut pred) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn event(
        &self,
        container: Option<(Kind, &str)>,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        events::pod_event(&self.node, &self.pod(), container, warning, reason, note);
    }

    /// `name_namespace(uid)`, as the kubelet names pods in messages.
    pub fn display(&self) -> String {
        format!("{}_{}({})", self.name, self.ns, self.uid)
    }

    /// Sends the pod's status if it differs from what was last sent.
    /// Returns whether a patch was sent.
    pub async fn sync_status(&self) -> Result<bool, kube::Error> {
        let mut last = self.last_sent.lock().await;
        let pod = self.pod();
        let rt = self.snapshot();
        let prev: Vec<PodCondition> = match last.as_ref() {
            Some(v) => {
                serde_json::from_value(v["status"]["conditions"].clone()).unwrap_or_default()
            }
            None => pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default(),
        };
        let st = status::build_status(&pod, &rt, &prev, Timestamp::now());
        let patch = status::status_patch(&st);
        if last.as_ref() == Some(&patch) {
            return Ok(false);
        }
        Api::<Pod>::namespaced(self.agent.client.clone(), &self.ns)
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await?;
        tracing::debug!(pod = %self.display(), phase = ?st.phase, "status updated");
        *last = Some(patch);
        Ok(true)
    }

    /// Keeps the API's view of the pod in step with the runtime state: on
    /// every change (debounced), on pod updates (readiness gates), and every
    /// 30 s as a safety net. Only actual differences are sent.
    pub async fn status_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut version = self.subscribe();
        let mut pod_rx = self.pod_rx.clone();
        let mut retry =
            crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            match self.sync_status().await {
                Ok(_) => retry.reset(),
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => {
                    tracing::warn!(pod = %self.display(), error = %e, "status update failed");
                    tokio::select! {
                        _ = tokio::time::sleep(retry.next_retry()) => continue,
                        _ = stop.cancelled() => return,
                    }
                }
            }
            tokio::select! {
                _ = version.changed() => {}
                r = pod_rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = stop.cancelled() => return,
            }
            // Let a burst of changes (a container starting, its probes
            // reporting) settle into one patch.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// The pod's hostname and, with a subdomain, its FQDN (the kubelet's
/// `GeneratePodHostNameAndDomain`).
pub fn hostname_and_fqdn(pod: &Pod, cluster_domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let mut hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut h: String = name.chars().take(63).collect();
            while h.ends_with(['-', '.']) {
                h.pop();
            }
            h
        });
    let fqdn = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
        .map(|sub| {
            format!(
                "{hostname}.{sub}.{}.svc.{cluster_domain}",
                pod.metadata.namespace.as_deref().unwrap_or("default")
            )
        });
    if spec.and_then(|s| s.set_hostname_as_fqdn) == Some(true)
        && let Some(f) = &fqdn
    {
        hostname = f.clone();
    }
    (hostname, fqdn)
}

/// The kubelet-managed `/etc/hosts` of a pod.
pub fn hosts_file(pod: &Pod, pod_ip: &str, hostname: &str, fqdn: Option<&str>) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let short = hostname.split('.').next().unwrap_or(hostname);
    match fqdn {
        Some(f) => s.push_str(&format!("{pod_ip}\t{f}\t{short}\n")),
        None => s.push_str(&format!("{pod_ip}\t{short}\n")),
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|sp| sp.host_aliases.as_deref())
        .unwrap_or_default();
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.as_deref().unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostAlias, PodSpec};
    use kube::api::ObjectMeta;

    fn pod(name: &str, spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    #[test]
    fn hostnames() {
        let p = pod("web-0", PodSpec::default());
        assert_eq!(
            hostname_and_fqdn(&p, "cluster.local"),
            ("web-0".into(), None)
        );
        let p = pod(
            "web-0",
            PodSpec {
                subdomain: Some("web".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            hostname_and_fqdn(&p, "cluster.local"),
            (
                "web-0".into(),
                Some("web-0.web.ns.svc.cluster.local".into())
            )
        );
        let long = format!("{}-x", "a".repeat(62));
        let (h, _) = hostname_and_fqdn(&pod(&long, PodSpec::default()), "cluster.local");
        assert_eq!(h, "a".repeat(62));
    }

    #[test]
    fn hosts() {
        let p = pod(
            "web-0",
            PodSpec {
                host_aliases: Some(vec![HostAlias {
                    ip: "10.244.9.9".into(),
                    hostnames: Some(vec!["foo".into(), "bar".into()]),
                }]),
                ..Default::default()
            },
        );
        let s = hosts_file(
            &p,
            "10.244.1.2",
            "web-0",
            Some("web-0.web.ns.svc.cluster.local"),
        );
        assert!(s.contains("\n10.244.1.2\tweb-0.web.ns.svc.cluster.local\tweb-0\n"));
        assert!(s.ends_with("# Entries added by HostAliases.\n10.244.9.9\tfoo\tbar\n"));
    }
}
