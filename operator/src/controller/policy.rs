//! A cluster's snapshot policy: scheduled snapshots, their retention, and
//! the final snapshot its deletion waits for. The rules are pure, in
//! [`super::schedule`]; this carries them out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource as _, ResourceExt as _};
use tracing::{info, warn};

use super::context::Context;
use super::decide::Note;
use super::schedule::{Keep, Schedule, State, Taken, prune};
use super::snapshot::{self, KIND_LABEL};
use super::{Error, act, desired, manifest};
use crate::crd::{CacheCluster, CacheClusterStatus, CacheSnapshot, SnapshotsStatus};

/// A cluster's deletion waits for its final snapshot.
pub const FINAL_FINALIZER: &str = "tidecache.io/final-snapshot";

/// Whether the cluster's deletion should wait for a final snapshot.
fn wants_final(cc: &CacheCluster) -> bool {
    cc.spec
        .snapshots
        .as_ref()
        .is_some_and(|s| s.takes_final_snapshot())
}

/// Keeps the final-snapshot finalizer in line with the spec.
pub async fn ensure_finalizer(ctx: &Context, cc: &CacheCluster) -> Result<(), Error> {
    act::set_finalizer(ctx, cc, FINAL_FINALIZER, wants_final(cc)).await
}

/// A deleted cluster: takes the final snapshot (if it ever served data and
/// the spec asks for one), waits for it, then lets the deletion go on.
pub async fn on_delete(ctx: &Context, cc: &CacheCluster) -> Result<Action, Error> {
    if !cc.finalizers().iter().any(|f| f == FINAL_FINALIZER) {
        // Owner references let the garbage collector remove everything.
        return Ok(Action::await_change());
    }
    let ns = cc.namespace().ok_or(Error::NoNamespace)?;
    let name = cc.name_any();
    // A hibernating cluster's data is in its pause snapshot: it is kept
    // (no longer owned by the cluster) as the final one.
    if let Some(h) = cc.status.as_ref().and_then(|s| s.hibernation.as_ref()) {
        let patch = serde_json::json!({ "metadata": { "ownerReferences": null } });
        match ctx
            .api::<CacheSnapshot>(&ns)
            .patch(
                &h.snapshot,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        let note = format!(
            "kept the pause snapshot {} as the final snapshot",
            h.snapshot
        );
        act::publish(ctx, cc, Note::normal("FinalSnapshot", "Delete", note)).await;
        return act::set_finalizer(ctx, cc, FINAL_FINALIZER, false)
            .await
            .map(|()| Action::await_change());
    }
    let phase = cc.status.as_ref().and_then(|s| s.phase.clone());
    let snap_name = format!(
        "{name}-final-{}",
        manifest::short_uid(&cc.uid().unwrap_or_default())
    );
    let existing = ctx.api::<CacheSnapshot>(&ns).get_opt(&snap_name).await?;
    // A snapshot needs every shard serving: a cluster deleted while not
    // Ready (never was, or lost shards) goes without one, and says so.
    if !wants_final(cc) || (existing.is_none() && phase.as_deref() != Some("Ready")) {
        if wants_final(cc) {
            let why = format!(
                "no final snapshot: the cluster is {} at its deletion, not Ready",
                phase.as_deref().unwrap_or("new")
            );
            warn!(cluster = %name, "{why}");
            act::publish(
                ctx,
                cc,
                Note::warning("FinalSnapshotSkipped", "Delete", why),
            )
            .await;
        }
        return act::set_finalizer(ctx, cc, FINAL_FINALIZER, false)
            .await
            .map(|()| Action::await_change());
    }
    let Some(snap) = existing else {
        info!(cluster = %name, snapshot = %snap_name, "taking the final snapshot before the deletion");
        snapshot::create(ctx, &ns, &snap_name, &name, "final", None).await?;
        act::publish(
            ctx,
            cc,
            Note::normal(
                "FinalSnapshot",
                "Delete",
                format!("taking final snapshot {snap_name} before the deletion"),
            ),
        )
        .await;
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let phase = snap.status.and_then(|s| s.phase);
    match phase.as_deref() {
        Some("Completed") | Some("Failed") => {
            if phase.as_deref() == Some("Failed") {
                warn!(cluster = %name, snapshot = %snap_name, "the final snapshot failed; deleting anyway");
            }
            act::set_finalizer(ctx, cc, FINAL_FINALIZER, false).await?;
            Ok(Action::await_change())
        }
        _ => Ok(Action::requeue(Duration::from_secs(2))),
    }
}

fn time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), 0).unwrap_or_default()
}

/// Takes the snapshot the schedule says is due (the cluster must be
/// Ready), prunes scheduled snapshots past their retention, and returns
/// when to look again.
pub async fn schedule(
    ctx: &Context,
    cc: &CacheCluster,
    status: &mut CacheClusterStatus,
    prev: &CacheClusterStatus,
) -> Result<Option<Duration>, Error> {
    let Some(spec) = cc.spec.snapshots.as_ref() else {
        return Ok(None);
    };
    let Some(expr) = spec.schedule.as_deref() else {
        return Ok(None);
    };
    let schedule = Schedule::parse(expr).map_err(Error::InvalidSpec)?;
    let ns = cc.namespace().ok_or(Error::NoNamespace)?;
    let name = cc.name_any();
    let now = Utc::now();
    let recorded = status.snapshots.clone().or_else(|| prev.snapshots.clone());
    let after = recorded
        .as_ref()
        .and_then(|s| s.last_scheduled.as_ref())
        .or(cc.metadata.creation_timestamp.as_ref())
        .map(time)
        .unwrap_or(now);
    status.snapshots = recorded;
    if status.phase.as_deref() == Some("Ready")
        && let Some(due) = schedule.due(after, now)
    {
        let snap_name = format!("{name}-{}", due.format("%Y%m%d-%H%M%S"));
        info!(cluster = %name, snapshot = %snap_name, "scheduled snapshot");
        let owner = cc.controller_owner_ref(&());
        snapshot::create(ctx, &ns, &snap_name, &name, "scheduled", owner).await?;
        status.snapshots = Some(SnapshotsStatus {
            last_scheduled: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(due.timestamp()).unwrap_or_default(),
            )),
            last_snapshot: Some(snap_name),
        });
    }
    if let Some(retention) = &spec.retention {
        let keep = Keep {
            days: retention.days,
            count: retention.count,
        };
        let selector = format!("{}={name},{KIND_LABEL}=scheduled", desired::labels::CLUSTER);
        let api = ctx.api::<CacheSnapshot>(&ns);
        let taken: Vec<Taken> = api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .iter()
            .filter(|s| s.meta().deletion_timestamp.is_none())
            .map(|s| Taken {
                name: s.name_any(),
                created: s
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(time)
                    .unwrap_or(now),
                state: match s.status.as_ref().and_then(|st| st.phase.as_deref()) {
                    Some("Completed") => State::Completed,
                    Some("Failed") => State::Failed,
                    _ => State::Running,
                },
            })
            .collect();
        for gone in prune(&taken, keep, now) {
            info!(cluster = %name, snapshot = %gone, "retention prunes a snapshot");
            api.delete(&gone, &DeleteParams::default()).await?;
            act::publish(
                ctx,
                cc,
                Note::normal(
                    "SnapshotPruned",
                    "Retention",
                    format!("deleted scheduled snapshot {gone} (retention)"),
                ),
            )
            .await;
        }
    }
    let next = schedule
        .next(now)
        .map(|t| (t - now).to_std().unwrap_or_default());
    Ok(next.map(|d| d.max(Duration::from_secs(1))))
}
