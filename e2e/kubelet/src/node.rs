//! Node registration, the node Lease and the Ready heartbeat.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::ipam::{self, Ipam};
use crate::quantity::Allocatable;

pub const KUBELET_VERSION: &str = "v1.34.4";
pub const ALLOCATABLE: Allocatable<'static> = Allocatable {
    cpu: "8",
    memory: "16Gi",
    ephemeral_storage: "100Gi",
};
const PODS: &str = "110";
const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_DURATION_SECONDS: i32 = 40;
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The kubelet reports status every 5 min when nothing changes; a shorter
/// period keeps the Ready heartbeat visibly fresh in tests.
const STATUS_REPORT: Duration = Duration::from_secs(60);

/// One simulated node.
pub struct NodeInfo {
    pub index: usize,
    pub name: String,
    pub ip: Ipv4Addr,
    pub recorder: std::sync::Arc<Recorder>,
    pub ipam: Mutex<Ipam>,
}

impl NodeInfo {
    pub fn new(index: usize, client: &Client) -> Self {
        let name = format!("node-{index}");
        let recorder = Recorder::new(client.clone(), name.clone());
        Self {
            index,
            ip: ipam::node_ip(index),
            name,
            recorder,
            ipam: Mutex::new(Ipam::new(index)),
        }
    }
}

fn labels(n: &NodeInfo) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".into(), n.name.clone()),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), arch().into()),
        ("beta.kubernetes.io/os".into(), "linux".into()),
        ("beta.kubernetes.io/arch".into(), arch().into()),
        (
            "topology.kubernetes.io/zone".into(),
            format!("zone-{}", n.index),
        ),
    ])
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The node's status. `since` is when this agent started serving the node
/// (the conditions' transition time).
pub fn node_status(n: &NodeInfo, since: Timestamp, now: Timestamp) -> NodeStatus {
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(ALLOCATABLE.cpu.into())),
        ("memory".to_string(), Quantity(ALLOCATABLE.memory.into())),
        (
            "ephemeral-storage".to_string(),
            Quantity(ALLOCATABLE.ephemeral_storage.into()),
        ),
        ("pods".to_string(), Quantity(PODS.into())),
    ]);
    // Stable, distinct per node (the machine is shared by all of them).
    let id = format!("{:08x}{:024x}", 0x71de_cace_u32, n.index);
    NodeStatus {
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: n.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: n.name.clone(),
            },
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            container_runtime_version: format!("tidecache://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: id.clone(),
            operating_system: "linux".into(),
            os_image: "tidecache e2e node".into(),
            system_uuid: id,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node_object(n: &NodeInfo, since: Timestamp) -> Node {
    let cidr = {
        let s = ipam::node_subnet(n.index);
        format!("{}.{}.{}.0/24", s[0], s[1], s[2])
    };
    Node {
        metadata: ObjectMeta {
            name: Some(n.name.clone()),
            labels: Some(labels(n)),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".into(),
                "0".into(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            // The pod range we hand out, so that a controller allocating
            // node CIDRs agrees with it.
            pod_cidr: Some(cidr.clone()),
            pod_cidrs: Some(vec![cidr]),
            ..Default::default()
        }),
        status: Some(node_status(n, since, since)),
    }
}

/// Creates the Node, or adopts an existing one of the same name (updating
/// its labels and status).
pub async fn register(client: &Client, n: &NodeInfo, since: Timestamp) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let node = node_object(n, since);
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %n.name, "registered node"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            api.patch(
                &n.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": labels(n) } })),
            )
            .await
            .context("adopt node")?;
            tracing::info!(node = %n.name, "adopted existing node");
        }
        Err(e) => return Err(e).context("register node"),
    }
    patch_status(client, n, since).await
}

async fn patch_status(client: &Client, n: &NodeInfo, since: Timestamp) -> anyhow::Result<()> {
    let status = node_status(n, since, Timestamp::now());
    Api::<Node>::all(client.clone())
        .patch_status(
            &n.name,
            &PatchParams::default(),
            &Patch::Strategic(json!({ "status": status })),
        )
        .await
        .context("update node status")?;
    Ok(())
}

async fn renew_lease(client: &Client, n: &NodeInfo) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(Timestamp::now());
    let patch = json!({ "spec": {
        "holderIdentity": n.name,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": now,
    }});
    match api
        .patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let node = Api::<Node>::all(client.clone()).get(&n.name).await?;
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(n.name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: n.name.clone(),
                        uid: node.metadata.uid.unwrap_or_default(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(n.name.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Registers the node (retrying until the apiserver answers), then renews
/// its Lease every 10 s and its status heartbeat every minute. A Node that
/// is deleted under us is registered again, so a test that deletes a Node
/// object gets it back like a restarted kubelet would register it.
pub async fn run(client: Client, n: std::sync::Arc<NodeInfo>, shutdown: CancellationToken) {
    let since = Timestamp::now();
    loop {
        match register(&client, &n, since).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(node = %n.name, error = %format!("{e:#}"), "node registration failed; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
    crate::events::node_event(&n, "Starting", "Starting kubelet.");
    let mut lease_tick = tokio::time::interval(LEASE_RENEW);
    let mut status_tick = tokio::time::interval(STATUS_REPORT);
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&client, &n).await {
                    tracing::warn!(node = %n.name, error = %format!("{e:#}"), "lease renewal failed");
                }
            }
            _ = status_tick.tick() => {
                match patch_status(&client, &n, since).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {
                        tracing::warn!(node = %n.name, "node object is gone; registering again");
                        if let Err(e) = register(&client, &n, since).await {
                            tracing::warn!(node = %n.name, error = %format!("{e:#}"), "re-registration failed");
                        }
                    }
                    Err(e) => tracing::warn!(node = %n.name, error = %format!("{e:#}"), "node status update failed"),
                }
            }
        }
    }
}

pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(
        |c| matches!(c.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 404),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_shape() {
        let client_free = NodeInfo {
            index: 1,
            name: "node-1".into(),
            ip: ipam::node_ip(1),
            recorder: dummy_recorder(),
            ipam: Mutex::new(Ipam::new(1)),
        };
        let t = Timestamp::from_second(1000).unwrap();
        let node = node_object(&client_free, t);
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "node-1");
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        let status = node.status.unwrap();
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(status.addresses.unwrap()[0].address, "10.244.2.1");
        let cap = status.capacity.unwrap();
        assert_eq!(cap["cpu"].0, "8");
        assert_eq!(cap["memory"].0, "16Gi");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(status.node_info.unwrap().kubelet_version, "v1.34.4");
        assert_eq!(
            node.spec.unwrap().pod_cidr.as_deref(),
            Some("10.244.2.0/24")
        );
    }

    fn dummy_recorder() -> std::sync::Arc<Recorder> {
        // A client that is never used: tests do not publish events.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { Client::try_from(config).unwrap() });
        Recorder::new(client, "node-1".into())
    }
}
