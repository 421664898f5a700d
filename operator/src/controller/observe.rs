//! The observe step of a reconcile: what the API server and the nodes say,
//! read without changing anything (except that the survey renews each
//! current primary's write lease as it goes, which must ride on the answer
//! it read: see [`survey`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt as _};
use tidecache_topology::admin::{AdminClient, AdminError};
use tidecache_topology::protocol::{ImportState, MigrationStatus};
use tracing::debug;

use super::Error;
use super::context::{Context, Namespaced};
use super::decide::Observation;
use super::desired::labels;
use super::failover::Seen;
use super::rebalance::SlotLoad;
use super::resharding::{self, Endpoint};
use super::topology::PodView;
use crate::crd::{CacheClusterStatus, NodeStatus};

/// Pods, template revisions and every recorded node's answers; with
/// `usage` (a Serverless cluster, whose autoscaler reads them) each node's
/// memory, CPU and command counts too.
pub async fn observe(
    ctx: &Context,
    ns: &str,
    cluster: &str,
    password: &str,
    status: &CacheClusterStatus,
    usage: bool,
) -> Result<Observation, Error> {
    let pods = pods(ctx, ns, cluster).await?;
    // Only a rolling change reads them; a failed list must not hold up a
    // failover or a move (without them every pod counts as current).
    let revisions = shard_revisions(ctx, ns, cluster)
        .await
        .inspect_err(|e| debug!(%cluster, error = %e, "could not list the StatefulSets' revisions"))
        .unwrap_or_default();
    let seen = survey(ctx, ns, password, status, &pods, usage).await;
    Ok(Observation {
        pods,
        seen,
        revisions,
    })
}

async fn pods(ctx: &Context, ns: &str, cluster: &str) -> Result<BTreeMap<String, PodView>, Error> {
    Ok(list_of::<Pod>(ctx, ns, cluster)
        .await?
        .into_iter()
        .map(|p| {
            let status = p.status.as_ref();
            let view = PodView {
                ip: status
                    .and_then(|s| s.pod_ip.clone())
                    .filter(|ip| !ip.is_empty()),
                ready: status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
                alive: p.metadata.deletion_timestamp.is_none(),
                revision: p.labels().get("controller-revision-hash").cloned(),
                cordoned: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| ctx.cordoned(n)),
                role: p.labels().get(labels::ROLE).cloned(),
            };
            (p.name_any(), view)
        })
        .collect())
}

/// The objects of kind `K` labelled as `cluster`'s.
pub async fn list_of<K: Namespaced>(
    ctx: &Context,
    ns: &str,
    cluster: &str,
) -> Result<Vec<K>, Error> {
    let api: Api<K> = ctx.api(ns);
    let selector = format!("{}={cluster}", labels::CLUSTER);
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// Each shard's current template revision (its StatefulSet's
/// `updateRevision`), by shard name.
async fn shard_revisions(
    ctx: &Context,
    ns: &str,
    cluster: &str,
) -> Result<BTreeMap<String, String>, Error> {
    Ok(list_of::<StatefulSet>(ctx, ns, cluster)
        .await?
        .into_iter()
        .filter_map(|s| {
            let revision = s.status.as_ref()?.update_revision.clone()?;
            Some((s.name_any(), revision))
        })
        .collect())
}

/// Asks every node of the recorded shards which epoch it runs and how far
/// it replicated, renewing the write lease of each primary that runs the
/// recorded epoch; tracks since when each node fails to answer. The
/// renewal carries the lease clock the same answer reported, so that one
/// held up in the network renews nothing past what was read.
async fn survey(
    ctx: &Context,
    ns: &str,
    password: &str,
    status: &CacheClusterStatus,
    pods: &BTreeMap<String, PodView>,
    with_usage: bool,
) -> BTreeMap<String, Seen> {
    let nodes: Vec<(&NodeStatus, bool)> = status
        .shards
        .iter()
        .flat_map(|s| {
            s.primary
                .iter()
                .map(|p| (p, true))
                .chain(s.replicas.iter().map(|r| (r, false)))
        })
        .collect();
    let asks = nodes.into_iter().map(|(node, primary)| async move {
        let alive = pods.get(&node.pod).is_some_and(|p| p.alive);
        let answer = async {
            let mut admin = ctx.admin(password, &node.address).await.ok_or(None)?;
            let epoch = admin.epoch().await.map_err(Some)?;
            let (replication, usage) = if with_usage {
                let (r, u) = admin.replication_and_usage().await.map_err(Some)?;
                (r, Some(u))
            } else {
                (admin.replication().await.map_err(Some)?, None)
            };
            if primary
                && epoch == status.epoch
                && epoch > 0
                && let Err(e) = admin.renew_lease(epoch, replication.lease_clock_ms).await
            {
                debug!(pod = %node.pod, error = %e, "lease not renewed");
            }
            Ok::<_, Option<AdminError>>((epoch, replication, usage))
        }
        .await;
        (node.pod.clone(), alive, answer)
    });
    // A node that fails to answer is counted silent from when it was
    // asked, not from when the timeout ended.
    let asked = Instant::now();
    let answers = futures::future::join_all(asks).await;
    let now = Instant::now();
    let mut unreachable = ctx.memory.unreachable.lock().expect("unreachable lock");
    let mut seen = BTreeMap::new();
    for (pod, alive, answer) in answers {
        let key = format!("{ns}/{pod}");
        let view = match answer {
            Ok((epoch, replication, usage)) => {
                unreachable.remove(&key);
                Seen {
                    pod_alive: alive,
                    epoch: Some(epoch),
                    unreachable_for: Duration::ZERO,
                    replication: Some(replication),
                    usage,
                }
            }
            Err(_) => {
                let since = *unreachable.entry(key).or_insert(asked);
                Seen {
                    pod_alive: alive,
                    epoch: None,
                    unreachable_for: now.duration_since(since),
                    replication: None,
                    usage: None,
                }
            }
        };
        seen.insert(pod, view);
    }
    seen
}

/// Keys, bytes and recent load per slot, from each shard's primary, counting only the
/// slots the status gives that shard (a source's copy of a moved slot may
/// linger a moment). `None` if some primary could not be asked.
pub async fn slot_loads(
    ctx: &Context,
    status: &CacheClusterStatus,
    password: &str,
) -> Option<Vec<SlotLoad>> {
    let owners = resharding::ownership(&status.shards).ok()?;
    let mut loads = vec![SlotLoad::default(); usize::from(tidecache_topology::SLOT_COUNT)];
    for (i, shard) in status.shards.iter().enumerate() {
        let mut admin = ctx
            .admin(password, &shard.primary.as_ref()?.address)
            .await?;
        for s in admin.slot_stats().await.ok()? {
            if s.slot < tidecache_topology::SLOT_COUNT && usize::from(owners.owner(s.slot)) == i {
                loads[usize::from(s.slot)] = SlotLoad {
                    keys: s.keys,
                    bytes: s.bytes,
                    calls: s.calls,
                    cpu_usec: s.cpu_usec,
                };
            }
        }
    }
    Some(loads)
}

/// Migration `id` as its source reports it: `Err` when the source cannot
/// be asked, `Ok(None)` when it does not know the migration.
pub async fn migration_on_source(
    ctx: &Context,
    password: &str,
    source: &Endpoint,
    id: &str,
) -> Result<Option<MigrationStatus>, AdminError> {
    let mut admin = connect(ctx, password, source).await?;
    admin.migrate_status(id).await
}

/// Import `id` as its target reports it over `admin` (its connection, if
/// one could be made); `None` when it cannot be asked.
pub async fn import_on_target(admin: Option<&mut AdminClient>, id: &str) -> Option<ImportState> {
    admin?.import_status(id).await.ok()
}

/// An admin connection to a migration's source or target.
pub async fn connect(
    ctx: &Context,
    password: &str,
    (host, port): &Endpoint,
) -> Result<AdminClient, AdminError> {
    AdminClient::connect(host, *port, password, ctx.admin_timeout).await
}
