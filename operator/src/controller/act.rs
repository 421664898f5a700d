//! The act step of a reconcile: every write to the API server and every
//! order to a node. Nothing here decides; each function does what
//! [`super::decide`] or [`super::resharding`] returned and reports how it
//! went.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource as _, ResourceExt as _};
use tidecache_topology::admin::{AdminClient, AdminError, LeaseOrder};
use tidecache_topology::{SlotRange, Topology};
use tracing::{debug, info, warn};

use super::Error;
use super::context::{Context, Namespaced};
use super::decide::{self, Note, Push, Shape};
use super::desired::{self, MANAGER};
use super::evacuate;
use super::observe::{self, list_of};
use super::resharding::Endpoint;
use super::topology::PodView;
use crate::crd::{CacheCluster, CacheClusterStatus, NodeStatus};

/// Publishes an Event on the cluster (a failure to publish is only logged).
pub async fn publish(ctx: &Context, cc: &CacheCluster, note: Note) {
    let event = Event {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason.into(),
        note: Some(note.message),
        action: note.action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cc.object_ref(&())).await {
        debug!(error = %e, "could not publish event");
    }
}

/// Publishes every note, in order.
pub async fn publish_all(ctx: &Context, cc: &CacheCluster, notes: Vec<Note>) {
    for note in notes {
        publish(ctx, cc, note).await;
    }
}

/// The status as the API server holds it: each write diffs against the last
/// one, and a pass writes as often as the record must run ahead of its
/// orders (a new epoch before the push, a move's epoch before its start).
pub struct StatusWriter<'a> {
    ctx: &'a Context,
    cc: &'a CacheCluster,
    written: CacheClusterStatus,
}

impl<'a> StatusWriter<'a> {
    pub fn new(ctx: &'a Context, cc: &'a CacheCluster) -> Self {
        let written = cc.status.clone().unwrap_or_default();
        StatusWriter { ctx, cc, written }
    }

    /// Writes `status` if it differs from what was last written.
    pub async fn save(&mut self, status: &CacheClusterStatus) -> Result<(), Error> {
        if self.written == *status {
            return Ok(());
        }
        let ns = self.cc.namespace().ok_or(Error::NoNamespace)?;
        let name = self.cc.name_any();
        let api: Api<CacheCluster> = Api::namespaced(self.ctx.client.clone(), &ns);
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.ctx
            .memory
            .epochs
            .lock()
            .expect("epochs lock")
            .insert(format!("{ns}/{name}"), status.epoch);
        self.written = status.clone();
        Ok(())
    }
}

/// Server-side applies `obj`; whether it changed.
pub async fn apply<K: Namespaced + serde::Serialize>(
    ctx: &Context,
    ns: &str,
    obj: &K,
) -> Result<bool, Error> {
    let api: Api<K> = ctx.api(ns);
    let name = obj.meta().name.clone().expect("desired objects are named");
    let before = api
        .get_opt(&name)
        .await?
        .and_then(|o| o.meta().resource_version.clone());
    let after = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?;
    Ok(before != after.meta().resource_version)
}

/// The client Service, and per shard a headless Service, a
/// PodDisruptionBudget and a StatefulSet.
pub async fn apply_objects(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    shape: Shape,
    prev: &CacheClusterStatus,
) -> Result<(), Error> {
    let name = cc.name_any();
    if apply(ctx, ns, &desired::client_service(cc)).await? {
        debug!(cluster = %name, "applied client Service");
    }
    apply(ctx, ns, &desired::primaries_pdb(cc)).await?;
    for i in 0..shape.shards {
        apply(ctx, ns, &desired::shard_service(cc, i)).await?;
        apply(ctx, ns, &desired::shard_pdb(cc, i)).await?;
        let pods = evacuate::pods_per_shard(shape.replicas, prev.shards.get(i));
        let sts = desired::shard_statefulset(cc, i, pods, &ctx.defaults);
        if apply(ctx, ns, &sts).await? {
            let sts_name = desired::shard_name(&name, i);
            info!(cluster = %name, statefulset = %sts_name, "applied StatefulSet");
            publish(
                ctx,
                cc,
                Note::normal(
                    "StatefulSetApplied",
                    "Apply",
                    format!("applied StatefulSet {sts_name}"),
                ),
            )
            .await;
        }
    }
    Ok(())
}

/// Adds (`present`) or removes finalizer `finalizer` on `obj`, guarded by
/// its resource version.
pub async fn set_finalizer<K: super::context::Namespaced>(
    ctx: &Context,
    obj: &K,
    finalizer: &str,
    present: bool,
) -> Result<(), Error> {
    let mut list = obj.finalizers().to_vec();
    if list.iter().any(|f| f == finalizer) == present {
        return Ok(());
    }
    if present {
        list.push(finalizer.to_owned());
    } else {
        list.retain(|f| f != finalizer);
    }
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let patch = serde_json::json!({
        "metadata": {"finalizers": list, "resourceVersion": obj.resource_version()}
    });
    ctx.api::<K>(&ns)
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    Ok(())
}

/// A Secret's key as text.
fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// The admin password of cluster `cluster`, from its admin Secret (or,
/// for a cluster not migrated yet, its auth Secret's `admin-password`).
pub async fn admin_password(ctx: &Context, ns: &str, cluster: &str) -> Result<String, Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let name = desired::admin_secret_name(cluster);
    if let Some(s) = api.get_opt(&name).await? {
        return secret_text(&s, desired::ADMIN_KEY)
            .ok_or_else(|| Error::Secret(name, format!("has no key {:?}", desired::ADMIN_KEY)));
    }
    let auth = desired::auth_secret_name(cluster);
    api.get_opt(&auth)
        .await?
        .and_then(|s| secret_text(&s, desired::LEGACY_ADMIN_KEY))
        .ok_or_else(|| Error::Secret(name, "does not exist".into()))
}

/// Creates Secret `name` of `cc` holding `data` (owned by the cluster);
/// whether it was created (false: it existed already).
async fn create_secret(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    name: &str,
    data: BTreeMap<String, ByteString>,
) -> Result<bool, Error> {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            labels: Some(desired::cluster_labels(cc)),
            owner_references: Some(vec![cc.controller_owner_ref(&()).expect("uid")]),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    match Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .create(&params, &secret)
        .await
    {
        Ok(_) => {
            let note = format!("generated credentials in Secret {name}");
            publish(ctx, cc, Note::normal("SecretCreated", "Create", note)).await;
            Ok(true)
        }
        // Another pass created it first.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The operator's Secrets, created once and never regenerated (re-applying
/// a manifest must not rotate credentials): `<cluster>-auth` with the
/// `default` user's password, which applications read (unless the spec
/// names a Secret of the user's), and `<cluster>-admin` with the admin
/// user's, which only the operator and the node pods read: a pod allowed
/// the cache password cannot take over the admin interface. Returns the
/// admin password.
///
/// Clusters made before kept the admin password in `<cluster>-auth` as
/// `admin-password`. It moves to `<cluster>-admin` unchanged, so running
/// nodes keep accepting it; the new pod template then mounts it from
/// there, which rolls the pods one at a time; and the old key leaves
/// `<cluster>-auth` once no pod mounts it from there any more.
pub async fn ensure_auth_secret(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
) -> Result<String, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let cluster = cc.name_any();
    let auth_name = desired::auth_secret_name(&cluster);
    let admin_name = desired::admin_secret_name(&cluster);
    let user_secret = cc
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.password_secret.as_ref());
    let auth = api.get_opt(&auth_name).await?;
    let legacy = auth
        .as_ref()
        .and_then(|s| secret_text(s, desired::LEGACY_ADMIN_KEY));
    let admin = match api.get_opt(&admin_name).await? {
        Some(s) => secret_text(&s, desired::ADMIN_KEY).ok_or_else(|| {
            Error::Secret(
                admin_name.clone(),
                format!("has no key {:?}", desired::ADMIN_KEY),
            )
        })?,
        None => {
            let password = legacy.clone().unwrap_or_else(random_password);
            let data = BTreeMap::from([(
                desired::ADMIN_KEY.to_owned(),
                ByteString(password.into_bytes()),
            )]);
            create_secret(ctx, cc, ns, &admin_name, data).await?;
            // What is stored wins a race with another pass.
            return Box::pin(ensure_auth_secret(ctx, cc, ns)).await;
        }
    };
    match user_secret {
        // Fail early with a clear message rather than leave pods pending on a missing volume.
        Some(r) => {
            let s = api
                .get_opt(&r.name)
                .await?
                .ok_or_else(|| Error::Secret(r.name.clone(), "does not exist".into()))?;
            if !s.data.as_ref().is_some_and(|d| d.contains_key(&r.key)) {
                return Err(Error::Secret(
                    r.name.clone(),
                    format!("has no key {:?}", r.key),
                ));
            }
        }
        None if auth
            .as_ref()
            .and_then(|s| secret_text(s, "password"))
            .is_none() =>
        {
            let data = BTreeMap::from([(
                "password".to_owned(),
                ByteString(random_password().into_bytes()),
            )]);
            if auth.is_none() {
                create_secret(ctx, cc, ns, &auth_name, data).await?;
            }
        }
        None => {}
    }
    if legacy.is_some() && !mounts_legacy_key(ctx, ns, &cluster, &auth_name).await? {
        let patch = serde_json::json!({ "data": { desired::LEGACY_ADMIN_KEY: null } });
        api.patch(&auth_name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        info!(cluster = %cluster, secret = %auth_name, "the admin password left the auth Secret (it is in {admin_name})");
        let note = format!("moved the admin password from Secret {auth_name} to {admin_name}");
        publish(ctx, cc, Note::normal("AdminSecretMigrated", "Update", note)).await;
    }
    Ok(admin)
}

/// Whether a pod of `cluster` still mounts the admin password from the
/// auth Secret (a pod of the template before the split).
async fn mounts_legacy_key(
    ctx: &Context,
    ns: &str,
    cluster: &str,
    auth: &str,
) -> Result<bool, Error> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{}={cluster}", desired::labels::CLUSTER)))
        .await?;
    Ok(pods.items.iter().any(|p| {
        p.spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.secret.as_ref().is_some_and(|sv| {
                    sv.secret_name.as_deref() == Some(auth)
                        && sv
                            .items
                            .iter()
                            .flatten()
                            .any(|i| i.key == desired::LEGACY_ADMIN_KEY)
                })
            })
    }))
}

fn random_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// How long a switchover waits for the replica to reach the fence.
const SWITCHOVER_CATCH_UP: Duration = Duration::from_secs(3);

/// Fences the old primary's writes (it runs `epoch`) and waits, briefly,
/// for the new one to have every write before the fence. False when that
/// could not be made sure of: the switchover is called off (a document of
/// a newer epoch lifts the fence; the node lifts it by itself after a
/// while, should the operator stop before sending one).
pub async fn fence_and_catch_up(
    ctx: &Context,
    password: &str,
    old: &NodeStatus,
    new: &NodeStatus,
    epoch: u64,
) -> bool {
    let Some(mut primary) = ctx.admin(password, &old.address).await else {
        return false;
    };
    let (replid, end) = match primary.fence(epoch).await {
        Ok(fence) => fence,
        Err(e) => {
            warn!(pod = %old.pod, error = %e, "could not fence the primary for a switchover");
            return false;
        }
    };
    let Some(mut replica) = ctx.admin(password, &new.address).await else {
        return false;
    };
    let until = Instant::now() + SWITCHOVER_CATCH_UP;
    while Instant::now() < until {
        if let Ok(r) = replica.replication().await
            && decide::caught_up(&r, &replid, end)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    warn!(pod = %new.pod, "the replica did not reach the fenced primary's last write in time");
    false
}

/// `TIDECACHE LEASE WAIVE`: lets a switchover's new primary write at once.
pub async fn waive_lease(ctx: &Context, password: &str, node: &NodeStatus, epoch: u64) -> bool {
    match ctx.admin(password, &node.address).await {
        Some(mut admin) => admin.lease(LeaseOrder::Waive, epoch).await.is_ok(),
        None => false,
    }
}

/// Pushes `doc` to the nodes it names whose pod `wanted` accepts; returns
/// the pods that hold it afterwards. A node in `guarded` that answers with
/// no topology at all (restarted empty) is not handed its shard. Nodes that
/// fail are retried on the next pass.
pub async fn push_topology(
    ctx: &Context,
    cc: &CacheCluster,
    doc: &Topology,
    password: &str,
    pods: &BTreeMap<String, PodView>,
    guarded: &[String],
    wanted: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<String> {
    // Node ids derive from pod names, so the pods a document names are found by id.
    let pod_of: BTreeMap<String, &String> = pods
        .keys()
        .map(|p| (tidecache_topology::node_id_for(p), p))
        .collect();
    let targets: Vec<(String, tidecache_topology::NodeAddr)> = doc
        .shards
        .iter()
        .flat_map(|s| std::iter::once(&s.primary).chain(&s.replicas))
        .filter_map(|n| Some((pod_of.get(&n.id)?.to_string(), n.clone())))
        .filter(|(pod, _)| wanted(pod))
        .collect();
    let pushes = targets.into_iter().map(|(pod, node)| async move {
        let result = async {
            let mut admin =
                AdminClient::connect(&node.host, node.port, password, ctx.admin_timeout).await?;
            let epoch = admin.epoch().await?;
            match decide::push(epoch, doc.epoch, guarded.contains(&pod)) {
                Push::Has => Ok(Some(false)),
                Push::Withhold => Ok(None),
                Push::Install => admin.install_topology(doc).await.map(|()| Some(true)),
            }
        }
        .await;
        (pod, result)
    });
    let mut acked = Vec::new();
    for (pod, result) in futures::future::join_all(pushes).await {
        match result {
            Ok(None) => {
                warn!(cluster = %cc.name_any(), %pod, "primary restarted without its data; not handing it the shard");
            }
            Ok(Some(installed)) => {
                if installed {
                    ctx.metrics.topology_pushed();
                    info!(cluster = %cc.name_any(), %pod, epoch = doc.epoch, "pushed topology");
                }
                acked.push(pod);
            }
            Err(e) if e.is_stale() => {
                // The node knows a newer epoch than our status: never overwrite it.
                warn!(cluster = %cc.name_any(), %pod, error = %e, "node holds a newer topology than the status records");
            }
            Err(e) => {
                debug!(cluster = %cc.name_any(), %pod, error = %e, "topology push failed; will retry")
            }
        }
    }
    acked
}

/// `TIDECACHE MIGRATE START` on the move's source. A failure is judged on
/// a later pass (the target will not know the import).
pub async fn migrate_start(
    ctx: &Context,
    password: &str,
    source: &Endpoint,
    target: &Endpoint,
    id: &str,
    epoch: u64,
    ranges: &[SlotRange],
) -> Result<(), AdminError> {
    let mut admin = observe::connect(ctx, password, source).await?;
    admin
        .migrate_start(id, (&target.0, target.1), epoch, ranges)
        .await
}

/// `TIDECACHE IMPORT ABORT` on a move's target (over `admin`, its
/// connection): it drops what it received and refuses that import's commit
/// for good.
pub async fn abort_import(admin: &mut AdminClient, id: &str) -> Result<(), AdminError> {
    admin.import_abort(id).await
}

/// Deletes a pod (a rolling change's replacement; its StatefulSet makes a
/// current one).
pub async fn replace_pod(ctx: &Context, ns: &str, pod: &str) -> Result<(), Error> {
    delete_if_present::<Pod>(ctx, ns, pod).await
}

/// Sets the `tidecache.io/role` label of each pod given
/// ([`evacuate::relabel`]). A pod gone meanwhile is no error; the next pass
/// sees the rest.
pub async fn label_roles(ctx: &Context, ns: &str, roles: &[(String, evacuate::Role)]) {
    let api: Api<Pod> = ctx.api(ns);
    for (pod, role) in roles {
        let patch =
            serde_json::json!({"metadata": {"labels": {desired::labels::ROLE: role.as_str()}}});
        match api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => debug!(%pod, role = role.as_str(), "labelled"),
            Err(e) => debug!(%pod, error = %e, "could not label the pod's role"),
        }
    }
}

/// Deletes the StatefulSets (and Services) of shards numbered `keep` and
/// up: shards a scale-in drained and removed from the status.
pub async fn prune_shards(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    keep: usize,
) -> Result<(), Error> {
    let name = cc.name_any();
    for s in list_of::<StatefulSet>(ctx, ns, &name).await? {
        let shard = s.name_any();
        if decide::is_pruned(&name, &shard, keep) {
            delete_if_present::<StatefulSet>(ctx, ns, &shard).await?;
            delete_if_present::<Service>(ctx, ns, &shard).await?;
            delete_if_present::<PodDisruptionBudget>(ctx, ns, &shard).await?;
            info!(%shard, "deleted a drained shard's StatefulSet, Service and PodDisruptionBudget");
            publish(
                ctx,
                cc,
                Note::normal(
                    "ShardRemoved",
                    "Rebalance",
                    format!("deleted the drained shard {shard}"),
                ),
            )
            .await;
        }
    }
    Ok(())
}

async fn delete_if_present<K: Namespaced>(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<(), Error> {
    let api: Api<K> = ctx.api(ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
