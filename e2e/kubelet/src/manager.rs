//! Watches the pods bound to one node and keeps one worker per pod UID.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::agent::Agent;
use crate::node::NodeInfo;
use crate::pod::PodSignal;
use crate::worker;

struct Worker {
    tx: watch::Sender<PodSignal>,
    join: JoinHandle<()>,
}

/// How long shutdown waits for workers to stop their containers.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(10);

pub async fn run(agent: Arc<Agent>, node: Arc<NodeInfo>) {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node.name));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    // Pods whose worker has finished (deleted by us): later events about
    // them (the deletion itself, a lagging update) must not start a new
    // worker.
    let mut finished: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    // The pods of a (re)list, started together once the list is complete.
    let mut relist: Option<Vec<Pod>> = None;

    let apply = |pod: Pod, workers: &mut HashMap<String, Worker>, finished: &HashSet<String>| {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if finished.contains(&uid) {
            return;
        }
        let signal = PodSignal {
            pod: Arc::new(pod),
            gone: false,
        };
        match workers.get(&uid) {
            Some(w) => {
                w.tx.send_replace(signal);
            }
            None => {
                let (tx, rx) = watch::channel(signal);
                let (agent, node, done) = (agent.clone(), node.clone(), done_tx.clone());
                let u = uid.clone();
                let join = tokio::spawn(async move {
                    worker::run(agent, node, rx).await;
                    let _ = done.send(u);
                });
                workers.insert(uid, Worker { tx, join });
            }
        }
    };
    let gone = |uid: &str, workers: &HashMap<String, Worker>| {
        if let Some(w) = workers.get(uid) {
            w.tx.send_modify(|s| s.gone = true);
        }
    };

    loop {
        tokio::select! {
            _ = agent.shutdown.cancelled() => break,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                finished.insert(uid);
            }
            ev = stream.next() => match ev {
                None => break,
                Some(Err(e)) => tracing::warn!(node = %node.name, error = %e, "pod watch error"),
                Some(Ok(ev)) => match ev {
                    watcher::Event::Init => relist = Some(Vec::new()),
                    watcher::Event::InitApply(pod) => match relist.as_mut() {
                        Some(list) => list.push(pod),
                        None => apply(pod, &mut workers, &finished),
                    },
                    watcher::Event::InitDone => {
                        let pods = relist.take().unwrap_or_default();
                        let seen: HashSet<String> =
                            pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
                        // Pods missing from a relist were deleted while the
                        // watch was down.
                        for uid in workers.keys().filter(|u| !seen.contains(*u)) {
                            gone(uid, &workers);
                        }
                        finished.retain(|u| seen.contains(u));
                        // Pods that already have an IP keep it: claim them
                        // all before any new pod is given one.
                        {
                            let mut ipam = node.ipam.lock().unwrap();
                            for p in &pods {
                                let ip = p.status.as_ref().and_then(|s| s.pod_ip.as_deref());
                                if let (Some(uid), Some(Ok(ip))) = (&p.metadata.uid, ip.map(str::parse))
                                    && !finished.contains(uid)
                                {
                                    ipam.reserve(uid, ip);
                                }
                            }
                        }
                        for p in pods {
                            apply(p, &mut workers, &finished);
                        }
                    }
                    watcher::Event::Apply(pod) => apply(pod, &mut workers, &finished),
                    watcher::Event::Delete(pod) => {
                        if let Some(uid) = pod.metadata.uid.as_deref() {
                            gone(uid, &workers);
                            finished.remove(uid);
                        }
                    }
                },
            },
        }
    }

    // Shutdown: every worker sees the cancelled token and stops its
    // containers; wait for them within the budget.
    let joins: Vec<JoinHandle<()>> = workers.into_values().map(|w| w.join).collect();
    if tokio::time::timeout(SHUTDOWN_BUDGET, futures::future::join_all(joins))
        .await
        .is_err()
    {
        tracing::warn!(node = %node.name, "pod workers did not stop in time");
    }
}
