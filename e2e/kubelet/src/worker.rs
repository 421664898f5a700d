//! One pod's worker: sandbox (IP, volumes, hosts file), init containers in
//! order, then the regular containers; graceful termination on deletion;
//! the final delete with grace period 0 and a UID precondition.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::backoff::Backoff;
use crate::container::{Outcome, Role, Supervisor};
use crate::node::NodeInfo;
use crate::pod::{self, CRef, KillRequest, PodCtx, PodSignal};
use crate::status::{self, PodRt, RtContainer, RtState};
use crate::volumes;

/// A running supervisor, as the worker sees it.
#[derive(Clone)]
pub struct SupHandle {
    pub role: Role,
    pub stop: CancellationToken,
    pub done: watch::Receiver<Option<Outcome>>,
}

impl SupHandle {
    async fn wait(&mut self) -> Outcome {
        match self.done.wait_for(|o| o.is_some()).await {
            Ok(o) => o.unwrap_or(Outcome::Stopped),
            Err(_) => Outcome::Stopped,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Termination {
    /// The pod has a deletionTimestamp: stop within its grace period, then
    /// delete it.
    Deleted { grace: Duration },
    /// The pod vanished from the API (force-deleted).
    Gone,
    /// The agent is shutting down.
    Shutdown,
}

/// Upper bound for stopping containers when the agent shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How often Secret/ConfigMap/downward API/projected volumes are refreshed
/// from the (watch-fed) caches; tokens are only re-requested when due.
const VOLUME_RESYNC: Duration = Duration::from_secs(5);

/// The runtime view a worker starts from. Restart counts of a pod that an
/// earlier agent ran are carried on (its processes died with that agent, so
/// they count as one more restart).
pub fn initial_rt(pod: &Pod, host_ip: &str) -> PodRt {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let has_init = spec.init_containers.as_ref().is_some_and(|v| !v.is_empty());
    let carried = |list: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>, name: &str| {
        list.iter()
            .flatten()
            .find(|s| s.name == name)
            .map(|s| {
                let ran = s.state.as_ref().is_some_and(|st| st.running.is_some());
                s.restart_count + i32::from(ran)
            })
            .unwrap_or(0)
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| RtContainer {
            restart_count: carried(&status.init_container_statuses, &c.name),
            ..RtContainer::new(c, "PodInitializing")
        })
        .collect();
    let containers = spec
        .containers
        .iter()
        .map(|c| RtContainer {
            restart_count: carried(&status.container_statuses, &c.name),
            ..RtContainer::new(
                c,
                if has_init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                },
            )
        })
        .collect();
    PodRt {
        pod_ips: Vec::new(),
        host_ip: host_ip.into(),
        start_time: Some(
            status
                .start_time
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now),
        ),
        init,
        containers,
        ..Default::default()
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Runs a pod until it is deleted (by us), gone, or the agent stops.
pub async fn run(agent: Arc<Agent>, node: Arc<NodeInfo>, pod_rx: watch::Receiver<PodSignal>) {
    let pod = pod_rx.borrow().pod.clone();
    let pc = PodCtx::new(
        agent.clone(),
        node.clone(),
        pod_rx,
        initial_rt(&pod, &node.ip.to_string()),
    );
    tracing::info!(pod = %pc.display(), node = %node.name, "pod worker started");

    if is_terminal(&pod) {
        // Nothing runs for a finished pod; only its deletion is ours to do.
        let _ = std::fs::remove_dir_all(&pc.root);
        if let Termination::Deleted { .. } = wait_termination(&pc).await {
            delete_pod(&pc).await;
        }
        node.ipam.lock().unwrap().release(&pc.uid);
        return;
    }

    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let ip = if host_network {
        Some(node.ip)
    } else {
        let preferred = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        node.ipam.lock().unwrap().allocate(&pc.uid, preferred)
    };
    let Some(ip) = ip else {
        pc.event(
            None,
            true,
            "FailedCreatePodSandBox",
            "no free pod IP on this node".into(),
        );
        if let Termination::Deleted { .. } = wait_termination(&pc).await {
            delete_pod(&pc).await;
        }
        return;
    };
    pc.update(|rt| rt.pod_ips = vec![ip.to_string()]);

    let status_stop = CancellationToken::new();
    let status_task = tokio::spawn(pc.clone().status_loop(status_stop.clone()));
    let resync_stop = CancellationToken::new();
    tokio::spawn(resync_volumes(pc.clone(), resync_stop.clone()));

    let completed = tokio::select! {
        biased;
        t = wait_termination(&pc) => Err(t),
        () = lifecycle(&pc) => Ok(()),
    };
    match completed {
        Err(t) => {
            stop_containers(&pc, t).await;
            resync_stop.cancel();
            status_stop.cancel();
            let _ = status_task.await;
            match t {
                Termination::Deleted { .. } => {
                    // The final status (terminal phase, containers
                    // terminated) goes out before the pod is deleted.
                    sync_final_status(&pc).await;
                    cleanup(&pc);
                    delete_pod(&pc).await;
                    node.ipam.lock().unwrap().release(&pc.uid);
                }
                Termination::Gone => {
                    cleanup(&pc);
                    node.ipam.lock().unwrap().release(&pc.uid);
                }
                // Like a kubelet that stops: the pod object is left as it
                // is (the node goes NotReady once its lease expires).
                Termination::Shutdown => {}
            }
            tracing::info!(pod = %pc.display(), termination = ?t, "pod worker finished");
        }
        Ok(()) => {
            // Every regular container has finished for good (restartPolicy
            // Never/OnFailure, or a failed init container of a Never pod):
            // sidecars are stopped and the pod is done.
            let grace = pod_grace(&pc.pod());
            stop_containers(&pc, Termination::Deleted { grace }).await;
            resync_stop.cancel();
            status_stop.cancel();
            let _ = status_task.await;
            sync_final_status(&pc).await;
            cleanup(&pc);
            tracing::info!(pod = %pc.display(), "pod completed");
            let t = wait_termination(&pc).await;
            if let Termination::Deleted { .. } = t {
                delete_pod(&pc).await;
            }
            if !matches!(t, Termination::Shutdown) {
                node.ipam.lock().unwrap().release(&pc.uid);
            }
            tracing::info!(pod = %pc.display(), termination = ?t, "pod worker finished");
        }
    }
}

fn pod_grace(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

async fn wait_termination(pc: &PodCtx) -> Termination {
    let mut rx = pc.pod_rx.clone();
    loop {
        if pc.agent.shutdown.is_cancelled() {
            return Termination::Shutdown;
        }
        {
            let s = rx.borrow_and_update();
            if s.gone {
                return Termination::Gone;
            }
            if s.pod.metadata.deletion_timestamp.is_some() {
                return Termination::Deleted {
                    grace: pod_grace(&s.pod),
                };
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() {
                // The manager dropped us: it is shutting down.
                return Termination::Shutdown;
            },
            _ = pc.agent.shutdown.cancelled() => return Termination::Shutdown,
        }
    }
}

fn spawn_supervisor(
    pc: &Arc<PodCtx>,
    cref: CRef,
    spec: k8s_openapi::api::core::v1::Container,
    role: Role,
) -> SupHandle {
    let stop = CancellationToken::new();
    let (tx, rx) = watch::channel(None);
    let handle = SupHandle {
        role,
        stop: stop.clone(),
        done: rx,
    };
    pc.supervisors.lock().unwrap().push(handle.clone());
    let sup = Supervisor {
        pc: pc.clone(),
        cref,
        spec,
        role,
        stop,
    };
    tokio::spawn(async move {
        let outcome = sup.run().await;
        tx.send_replace(Some(outcome));
    });
    handle
}

/// Sandbox, init containers, regular containers. Returns when every regular
/// container has finished for good (never, for restartPolicy Always), or
/// stays pending after a failed init of a Never pod.
async fn lifecycle(pc: &Arc<PodCtx>) {
    let agent = &pc.agent;
    // The kubelet retries failed mounts with a back-off of up to 2 min; a
    // Secret created just after its pod should not cost a test that long.
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
    loop {
        match volumes::sync(agent, &pc.pod(), &pc.root.join("volumes"), true).await {
            Ok(v) => {
                *pc.volumes.lock().unwrap() = v;
                break;
            }
            Err(msg) => {
                tracing::warn!(pod = %pc.display(), %msg, "volume setup failed");
                pc.event(None, true, "FailedMount", msg);
                tokio::time::sleep(retry.next_retry()).await;
            }
        }
    }
    write_host_files(pc);
    pc.update(|rt| rt.sandbox_ready = true);

    let pod = pc.pod();
    let spec = pod.spec.clone().unwrap_or_default();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let cref = CRef {
            init: true,
            index: i,
        };
        if status::is_restartable_init(c) {
            let mut h = spawn_supervisor(pc, cref, c.clone(), Role::Sidecar);
            tokio::select! {
                () = pc.wait_for(|rt| rt.init[i].started && rt.init[i].is_running()) => {}
                _ = h.wait() => return std::future::pending().await,
            }
        } else {
            let mut h = spawn_supervisor(pc, cref, c.clone(), Role::Init);
            match h.wait().await {
                Outcome::Exited(0) => {}
                // Only a Never pod gives up on a failed init container.
                Outcome::Exited(_) => {
                    pc.update(|rt| rt.terminal = true);
                    return;
                }
                Outcome::Stopped => return std::future::pending().await,
            }
        }
    }
    pc.update(|rt| {
        rt.initialized = true;
        for c in &mut rt.containers {
            if let RtState::Waiting { reason, .. } = &mut c.state
                && reason == "PodInitializing"
            {
                *reason = "ContainerCreating".into();
            }
        }
    });

    let mut mains: Vec<SupHandle> = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            spawn_supervisor(
                pc,
                CRef {
                    init: false,
                    index: i,
                },
                c.clone(),
                Role::Regular,
            )
        })
        .collect();
    for h in &mut mains {
        h.wait().await;
    }
}

/// Stops every container: regular (and running init) containers together,
/// then sidecars in reverse order, as the kubelet orders termination.
async fn stop_containers(pc: &Arc<PodCtx>, t: Termination) {
    let (grace, run_pre_stop, min_grace) = match t {
        Termination::Deleted { grace } => (grace, true, Duration::from_secs(2)),
        Termination::Gone => (Duration::ZERO, true, Duration::from_secs(2)),
        Termination::Shutdown => (SHUTDOWN_GRACE, false, Duration::ZERO),
    };
    let grace = match t {
        Termination::Shutdown => grace.min(pod_grace(&pc.pod())),
        _ => grace,
    };
    *pc.kill.lock().unwrap() = Some(KillRequest {
        deadline: Instant::now() + grace,
        run_pre_stop,
        min_grace,
    });
    tracing::info!(pod = %pc.display(), ?t, "stopping pod");
    let handles = pc.supervisors.lock().unwrap().clone();
    let mut first: Vec<SupHandle> = handles
        .iter()
        .filter(|h| h.role != Role::Sidecar)
        .cloned()
        .collect();
    for h in &first {
        h.stop.cancel();
    }
    for h in &mut first {
        h.wait().await;
    }
    for mut h in handles
        .into_iter()
        .filter(|h| h.role == Role::Sidecar)
        .rev()
    {
        h.stop.cancel();
        h.wait().await;
    }
    pc.update(|rt| {
        rt.terminal = true;
        rt.sandbox_ready = false;
    });
}

fn cleanup(pc: &PodCtx) {
    pc.agent.tokens.forget_pod(&pc.uid);
    if let Err(e) = std::fs::remove_dir_all(&pc.root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(pod = %pc.display(), error = %e, "failed to clean up pod dir");
    }
}

async fn sync_final_status(pc: &PodCtx) {
    for _ in 0..3 {
        match pc.sync_status().await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => {
                tracing::warn!(pod = %pc.display(), error = %e, "final status update failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The kubelet's final word on a terminated pod: delete it for good, only if
/// it is still the same pod (UID precondition).
async fn delete_pod(pc: &PodCtx) {
    let api: Api<Pod> = Api::namespaced(pc.agent.client.clone(), &pc.ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(pc.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    for _ in 0..10 {
        match api.delete(&pc.name, &dp).await {
            Ok(_) => {
                tracing::info!(pod = %pc.display(), "pod deleted");
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
            Err(e) => {
                tracing::warn!(pod = %pc.display(), error = %e, "pod delete failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn write_host_files(pc: &PodCtx) {
    let pod = pc.pod();
    let ip = pc.read(|rt| rt.pod_ips.first().cloned().unwrap_or_default());
    let hosts = pod::hosts_file(&pod, &ip, &pc.hostname, pc.fqdn.as_deref());
    let _ = std::fs::create_dir_all(&pc.root);
    for (file, content) in [
        ("etc-hosts", hosts),
        ("etc-hostname", format!("{}\n", pc.hostname)),
    ] {
        if let Err(e) = std::fs::write(pc.root.join(file), content) {
            tracing::warn!(pod = %pc.display(), error = %e, file, "failed to write pod file");
        }
    }
}

/// Keeps Secret, ConfigMap, downward API and projected volumes current
/// (rotated secrets, label changes, token renewal).
async fn resync_volumes(pc: Arc<PodCtx>, stop: CancellationToken) {
    pc.wait_for(|rt| rt.sandbox_ready || rt.terminal).await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(VOLUME_RESYNC) => {}
            _ = stop.cancelled() => return,
        }
        let _ = volumes::sync(&pc.agent, &pc.pod(), &pc.root.join("volumes"), false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStatus, PodSpec, PodStatus,
    };

    fn c(name: &str) -> Container {
        Container {
            name: name.into(),
            image: Some("test/sh".into()),
            ..Default::default()
        }
    }

    #[test]
    fn initial_state_carries_restart_counts() {
        let pod = Pod {
            spec: Some(PodSpec {
                init_containers: Some(vec![c("init")]),
                containers: vec![c("a"), c("b")],
                ..Default::default()
            }),
            status: Some(PodStatus {
                start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    Timestamp::from_second(1000).unwrap(),
                )),
                container_statuses: Some(vec![ContainerStatus {
                    name: "a".into(),
                    restart_count: 2,
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning::default()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rt = initial_rt(&pod, "10.244.1.1");
        assert_eq!(rt.start_time, Some(Timestamp::from_second(1000).unwrap()));
        // It was running when the previous agent stopped: one more restart.
        assert_eq!(rt.containers[0].restart_count, 3);
        assert_eq!(rt.containers[1].restart_count, 0);
        assert!(
            matches!(&rt.containers[1].state, RtState::Waiting { reason, .. } if reason == "PodInitializing")
        );
        assert!(
            matches!(&rt.init[0].state, RtState::Waiting { reason, .. } if reason == "PodInitializing")
        );
        assert!(!rt.sandbox_ready && !rt.initialized && !rt.terminal);
    }
}
