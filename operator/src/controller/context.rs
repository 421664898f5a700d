//! What every reconcile shares: the API client, the defaults, the Event
//! recorder, the metrics, and what earlier passes learnt that the status
//! does not hold.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use tidecache_topology::admin::AdminClient;

use super::autoscale::{Reading, Sample};
use super::desired::{Defaults, MANAGER};
use crate::metrics::Metrics;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub defaults: Defaults,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Timeout for each admin connection and reply.
    pub admin_timeout: Duration,
    /// What earlier passes learnt that the status does not hold.
    pub memory: Memory,
    /// The cluster's nodes, as a watch keeps them ([`super::run`]): which
    /// are cordoned.
    pub nodes: Store<Node>,
}

/// Kept between passes, in memory only (a restarted operator relearns it
/// within seconds; a Serverless cluster's window refills within its
/// length, and no decision is made before it is full).
pub struct Memory {
    /// Since when each node (`namespace/pod`) has failed to answer.
    pub(super) unreachable: Mutex<BTreeMap<String, Instant>>,
    /// The last epoch this operator wrote to each cluster's status
    /// (`namespace/name`): a cached object older than that is stale, and a
    /// pass on it could renew the lease of a primary just replaced.
    pub(super) epochs: Mutex<BTreeMap<String, u64>>,
    /// Each Serverless cluster's samples (`namespace/name`).
    pub(super) windows: Mutex<BTreeMap<String, Window>>,
    /// The origin of the samples' clock.
    started: Instant,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            unreachable: Mutex::default(),
            epochs: Mutex::default(),
            windows: Mutex::default(),
            started: Instant::now(),
        }
    }
}

/// A Serverless cluster's recent samples, oldest first, and its primaries'
/// last readings (for rates).
#[derive(Debug, Default)]
pub struct Window {
    pub samples: std::collections::VecDeque<Sample>,
    pub readings: BTreeMap<String, Reading>,
}

impl Memory {
    /// Milliseconds on the samples' clock.
    pub fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The last epoch written to cluster `key`'s status, if any.
    pub fn written_epoch(&self, key: &str) -> Option<u64> {
        self.epochs.lock().expect("epochs lock").get(key).copied()
    }
}

impl Context {
    /// Whether Kubernetes node `name` is cordoned (`spec.unschedulable`):
    /// a drain is coming. Unknown nodes are not.
    pub fn cordoned(&self, name: &str) -> bool {
        self.nodes
            .get(&ObjectRef::new(name))
            .is_some_and(|n| n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true))
    }

    /// Connects to the node at `address` (`host:port`) as the admin user.
    pub async fn admin(&self, password: &str, address: &str) -> Option<AdminClient> {
        let (host, port) = address.rsplit_once(':')?;
        AdminClient::connect(host, port.parse().ok()?, password, self.admin_timeout)
            .await
            .ok()
    }
}

/// A namespaced Kubernetes object the operator reads or deletes by kind.
pub trait Namespaced:
    kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

impl Context {
    /// The API of kind `K` in namespace `ns`.
    pub fn api<K: Namespaced>(&self, ns: &str) -> kube::Api<K> {
        kube::Api::namespaced(self.client.clone(), ns)
    }
}

/// The reporter events are published under.
pub fn reporter(instance: Option<String>) -> Reporter {
    Reporter {
        controller: MANAGER.into(),
        instance,
    }
}
