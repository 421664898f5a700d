//! `CacheSnapshot`s: a snapshot of every shard of a `CacheCluster` into its
//! snapshot storage.
//!
//! `Pending` waits for the cluster to be `Ready`; then each shard's primary
//! is told to snapshot its slots into the shard's object (`TIDECACHE
//! SNAPSHOT START`), and the snapshot is `Running`. Each pass polls the
//! primaries; once every object is complete, the operator writes the
//! manifest, last, and the snapshot is `Completed`. A shard whose snapshot
//! failed, or whose primary no longer knows it (restarted, or failed
//! over), fails the whole snapshot, with the reason in `status.error`.
//! Every step is recorded in the status before the next, so a restarted
//! operator carries on.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource as _, ResourceExt as _};
use tracing::{debug, info, warn};

use super::context::Context;
use super::manifest::{self, Manifest};
use super::storage::Storage;
use super::{Error, act};
use crate::crd::{CacheCluster, CacheSnapshot, CacheSnapshotStatus, SnapshotObject};

/// How often a pass looks at a running snapshot.
const POLL: Duration = Duration::from_secs(1);

/// A snapshot waits this long for its cluster to be Ready (and no other
/// snapshot or slot move to run), then fails: a deletion waiting for a
/// final snapshot must not wait forever.
const PENDING_LIMIT: Duration = Duration::from_secs(300);

/// A running snapshot fails after this long (an unreachable primary).
const RUNNING_LIMIT: Duration = Duration::from_secs(1800);

fn older_than(t: Option<&Time>, limit: Duration) -> bool {
    t.is_some_and(|t| Timestamp::now().duration_since(t.0).as_secs() > limit.as_secs() as i64)
}

/// Deleting a `CacheSnapshot` deletes its objects first.
pub const OBJECTS_FINALIZER: &str = "tidecache.io/snapshot-objects";

/// The label saying why a snapshot was taken: `scheduled` (pruned by
/// retention), `final` (on the cluster's deletion); none for on-demand.
pub const KIND_LABEL: &str = "tidecache.io/snapshot-kind";

/// Creates `CacheSnapshot` `name` of `cluster`; `owner` makes the cluster
/// its owner (scheduled snapshots go with their cluster). An existing one
/// of that name is left as it is.
pub async fn create(
    ctx: &Context,
    ns: &str,
    name: &str,
    cluster: &str,
    kind: &str,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Result<(), Error> {
    let mut snap = CacheSnapshot::new(
        name,
        crate::crd::CacheSnapshotSpec {
            cluster: cluster.to_owned(),
        },
    );
    snap.metadata.labels = Some(
        [
            (
                super::desired::labels::CLUSTER.to_owned(),
                cluster.to_owned(),
            ),
            (KIND_LABEL.to_owned(), kind.to_owned()),
        ]
        .into(),
    );
    snap.metadata.owner_references = owner.map(|o| vec![o]);
    match ctx
        .api::<CacheSnapshot>(ns)
        .create(&kube::api::PostParams::default(), &snap)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A deleted `CacheSnapshot`: its objects go, then the finalizer.
async fn delete_objects(ctx: &Context, snap: &CacheSnapshot) -> Result<Action, Error> {
    let ns = snap.namespace().ok_or(Error::NoNamespace)?;
    let status = snap.status.clone().unwrap_or_default();
    if let (Some(storage), Some(id)) = (&status.storage, &status.snapshot_id) {
        let dir = manifest::directory(&ns, &snap.spec.cluster, id);
        let deleted = match Storage::open(ctx, &ns, storage).await {
            Ok(s) => s.delete_dir(&dir).await,
            Err(e) => Err(e),
        };
        match deleted {
            Ok(n) => info!(snapshot = %snap.name_any(), objects = n, "snapshot objects deleted"),
            Err(e) => {
                // Retried: the objects would otherwise stay, unlisted.
                warn!(snapshot = %snap.name_any(), error = %e, "snapshot objects not deleted yet");
                publish(ctx, snap, true, "DeleteFailed", e).await;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        }
    }
    act::set_finalizer(ctx, snap, OBJECTS_FINALIZER, false).await?;
    Ok(Action::await_change())
}

pub async fn run(ctx: Arc<Context>) {
    Controller::new(
        Api::<CacheSnapshot>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(reconcile, error_policy, ctx)
    .for_each(|res| async move {
        if let Err(e) = res {
            debug!(error = %e, "snapshot reconcile failed");
        }
    })
    .await;
}

fn error_policy(snap: Arc<CacheSnapshot>, err: &Error, _: Arc<Context>) -> Action {
    warn!(snapshot = %snap.name_any(), error = %err, "snapshot reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

async fn publish(ctx: &Context, snap: &CacheSnapshot, warning: bool, reason: &str, note: String) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: "Snapshot".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &snap.object_ref(&())).await {
        debug!(error = %e, "could not publish event");
    }
}

async fn save(
    ctx: &Context,
    snap: &CacheSnapshot,
    status: &CacheSnapshotStatus,
) -> Result<(), Error> {
    let ns = snap.namespace().ok_or(Error::NoNamespace)?;
    ctx.api::<CacheSnapshot>(&ns)
        .patch_status(
            &snap.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await?;
    Ok(())
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Ends the snapshot as `Failed`.
async fn fail(
    ctx: &Context,
    snap: &CacheSnapshot,
    mut status: CacheSnapshotStatus,
    why: String,
) -> Result<Action, Error> {
    warn!(snapshot = %snap.name_any(), %why, "snapshot failed");
    status.phase = Some("Failed".into());
    status.error = Some(why.clone());
    status.end_time = Some(now());
    save(ctx, snap, &status).await?;
    publish(ctx, snap, true, "SnapshotFailed", why).await;
    Ok(Action::await_change())
}

async fn reconcile(snap: Arc<CacheSnapshot>, ctx: Arc<Context>) -> Result<Action, Error> {
    if snap.meta().deletion_timestamp.is_some() {
        return delete_objects(&ctx, &snap).await;
    }
    act::set_finalizer(&ctx, snap.as_ref(), OBJECTS_FINALIZER, true).await?;
    let ns = snap.namespace().ok_or(Error::NoNamespace)?;
    let name = snap.name_any();
    let mut status = snap.status.clone().unwrap_or_default();
    if matches!(status.phase.as_deref(), Some("Completed" | "Failed")) {
        return Ok(Action::await_change());
    }
    let id = status
        .snapshot_id
        .clone()
        .unwrap_or_else(|| manifest::snapshot_id(&name, &snap.uid().unwrap_or_default()));
    status.snapshot_id = Some(id.clone());
    let cluster = &snap.spec.cluster;
    let Some(cc) = ctx.api::<CacheCluster>(&ns).get_opt(cluster).await? else {
        return fail(
            &ctx,
            &snap,
            status,
            format!("CacheCluster {cluster} does not exist"),
        )
        .await;
    };
    let Some(storage) = cc.spec.snapshots.as_ref().map(|s| s.storage.clone()) else {
        let why = format!("CacheCluster {cluster} has no spec.snapshots.storage");
        return fail(&ctx, &snap, status, why).await;
    };
    let cstatus = cc.status.clone().unwrap_or_default();
    let password = act::admin_password(&ctx, &ns, cluster).await?;
    let dir = manifest::directory(&ns, cluster, &id);

    if status.phase.as_deref() != Some("Running") {
        // One snapshot of a cluster at a time (a node keeps its last
        // one), and none while slots move (a node snapshots the slots it
        // owns when it starts).
        let others_running = ctx
            .api::<CacheSnapshot>(&ns)
            .list(&Default::default())
            .await?
            .items
            .iter()
            .any(|s| {
                s.spec.cluster == *cluster
                    && s.name_any() != name
                    && s.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running")
            });
        let wait = if cstatus.phase.as_deref() != Some("Ready") {
            Some(format!(
                "the cluster is {}",
                cstatus.phase.as_deref().unwrap_or("new")
            ))
        } else if cstatus.rebalance.is_some() {
            Some("slots are moving".to_owned())
        } else if others_running {
            Some("another snapshot of the cluster runs".to_owned())
        } else {
            None
        };
        if let Some(why) = wait {
            if older_than(snap.metadata.creation_timestamp.as_ref(), PENDING_LIMIT) {
                let why = format!("not started within {} s: {why}", PENDING_LIMIT.as_secs());
                return fail(&ctx, &snap, status, why).await;
            }
            if status.phase.is_none() {
                status.phase = Some("Pending".into());
                save(&ctx, &snap, &status).await?;
            }
            debug!(snapshot = %name, "waiting: {why}");
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        let mut objects = Vec::new();
        for shard in cstatus.shards.iter().filter(|s| !s.slots.is_empty()) {
            let Some(addr) = shard.primary.as_ref().map(|p| p.address.clone()) else {
                return Ok(Action::requeue(Duration::from_secs(2)));
            };
            let object = manifest::object_path(&dir, &shard.name, storage.object_suffix());
            let Some(mut admin) = ctx.admin(&password, &addr).await else {
                return Ok(Action::requeue(Duration::from_secs(2)));
            };
            // A repeated start of the same snapshot changes nothing on a
            // node; one it refuses for good (no store, a bad id) fails
            // the snapshot; anything else is tried again.
            if let Err(e) = admin.snapshot_start(&id, &object).await {
                let text = e.to_string();
                if text.contains("no snapshot store") || text.contains("invalid") {
                    let why = format!("shard {}: {text}", shard.name);
                    return fail(&ctx, &snap, status, why).await;
                }
                debug!(snapshot = %name, shard = %shard.name, error = %e, "snapshot not started");
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            objects.push(SnapshotObject {
                shard: shard.name.clone(),
                object,
                slots: shard.slots.clone(),
                keys: 0,
                rdb_bytes: 0,
                stored_bytes: 0,
                crc64: String::new(),
            });
        }
        info!(snapshot = %name, cluster = %cluster, shards = objects.len(), "snapshot started");
        status.phase = Some("Running".into());
        status.storage = Some(storage.clone());
        status.objects = objects;
        status.epoch = cstatus.epoch;
        status.start_time = Some(now());
        save(&ctx, &snap, &status).await?;
        let note = format!("snapshot {id} of {} shards started", status.objects.len());
        publish(&ctx, &snap, false, "SnapshotStarted", note).await;
        return Ok(Action::requeue(POLL));
    }

    if older_than(status.start_time.as_ref(), RUNNING_LIMIT) {
        let why = format!("still running after {} s", RUNNING_LIMIT.as_secs());
        return fail(&ctx, &snap, status, why).await;
    }
    let mut running = false;
    for object in &mut status.objects {
        let primary = cstatus
            .shards
            .iter()
            .find(|s| s.name == object.shard)
            .and_then(|s| s.primary.as_ref());
        let Some(addr) = primary.map(|p| p.address.clone()) else {
            return Ok(Action::requeue(POLL));
        };
        let Some(mut admin) = ctx.admin(&password, &addr).await else {
            return Ok(Action::requeue(POLL));
        };
        let job = match admin.snapshot_status().await {
            Ok(job) => job,
            Err(e) => {
                debug!(snapshot = %name, error = %e, "snapshot status not read");
                return Ok(Action::requeue(POLL));
            }
        };
        match job {
            Some(j) if j.id == id && j.phase == "done" => {
                object.keys = j.keys;
                object.rdb_bytes = j.rdb_bytes;
                object.stored_bytes = j.stored_bytes;
                object.crc64 = j.crc64;
                // The slots the node actually captured.
                object.slots = j
                    .slots
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            Some(j) if j.id == id && j.phase == "failed" => {
                let why = format!("shard {}: {}", object.shard, j.error);
                return fail(&ctx, &snap, status.clone(), why).await;
            }
            Some(j) if j.id == id => running = true,
            _ => {
                let why = format!(
                    "the primary of shard {} no longer knows the snapshot (it restarted or failed over)",
                    object.shard
                );
                return fail(&ctx, &snap, status.clone(), why).await;
            }
        }
    }
    if running {
        return Ok(Action::requeue(POLL));
    }
    if let Err(e) = manifest::covers_every_slot(&status.objects) {
        let why =
            format!("the shards' objects do not hold every slot once ({e}): slots moved meanwhile");
        return fail(&ctx, &snap, status, why).await;
    }
    let keys = status.objects.iter().map(|o| o.keys).sum();
    let size = status.objects.iter().map(|o| o.stored_bytes).sum();
    let m = Manifest {
        format: manifest::FORMAT,
        snapshot_id: id.clone(),
        namespace: ns.clone(),
        cluster: cluster.clone(),
        epoch: status.epoch,
        created_at: Timestamp::now().to_string(),
        keys,
        size,
        objects: status.objects.clone(),
    };
    let path = manifest::manifest_path(&dir);
    let written = match Storage::open(&ctx, &ns, &storage).await {
        Ok(s) => s.put(&path, m.to_json()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        return fail(
            &ctx,
            &snap,
            status,
            format!("the manifest was not written: {e}"),
        )
        .await;
    }
    info!(snapshot = %name, keys, size, "snapshot completed");
    status.phase = Some("Completed".into());
    status.manifest = Some(path);
    status.keys = keys;
    status.size = size;
    status.end_time = Some(now());
    save(&ctx, &snap, &status).await?;
    let note = format!("snapshot {id} completed: {keys} keys, {size} bytes stored");
    publish(&ctx, &snap, false, "SnapshotCompleted", note).await;
    Ok(Action::await_change())
}
