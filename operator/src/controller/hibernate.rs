//! Hibernation (`spec.paused`), which the ElastiCache-style operators lack:
//! pausing takes a snapshot, then removes the pods and keeps the resource;
//! unpausing brings the pods back and restores the snapshot into them.
//!
//! ```text
//! running --paused--> Snapshotting --snapshot Completed--> Paused (no pods)
//!    ^                     | snapshot Failed: Failed, still serving
//!    |                     v
//!    +--restore done-- Resuming <--unpaused-- Paused
//! ```
//!
//! While `Snapshotting` the cluster keeps serving and the pass goes on; a
//! `Paused` cluster's pass only keeps its StatefulSets at zero pods. The
//! restore of a resume is [`super::restore`]'s, from the hibernation's
//! snapshot.

use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource as _, ResourceExt as _};
use tracing::{info, warn};

use super::act::{self, StatusWriter};
use super::context::Context;
use super::decide::{Note, Shape};
use super::snapshot;
use super::status::set_condition;
use super::{Error, desired};
use crate::crd::{CacheCluster, CacheClusterStatus, CacheSnapshot, HibernationStatus};

pub const SNAPSHOTTING: &str = "Snapshotting";
pub const PAUSED: &str = "Paused";
pub const RESUMING: &str = "Resuming";
pub const FAILED: &str = "Failed";

/// How often a pass looks while a hibernation snapshot or resume runs.
pub const POLL: Duration = Duration::from_secs(1);

/// What hibernation does before the pass: `Some` ends the pass there (a
/// paused cluster). `prev` is updated with what was recorded.
pub async fn step(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    shape: Shape,
    prev: &mut CacheClusterStatus,
    writer: &mut StatusWriter<'_>,
) -> Result<Option<Action>, Error> {
    let name = cc.name_any();
    let phase = prev.hibernation.as_ref().map(|h| h.phase.clone());
    match (cc.spec.paused, phase.as_deref()) {
        (false, None) | (false, Some(RESUMING)) | (true, Some(RESUMING)) | (true, Some(FAILED)) => {
            Ok(None)
        }
        (true, None) => {
            if cc.spec.snapshots.is_none() {
                return Err(Error::InvalidSpec(
                    "paused needs spec.snapshots.storage: the data goes to a snapshot".into(),
                ));
            }
            if prev.phase.as_deref() != Some("Ready") {
                // A snapshot needs every shard serving.
                return Ok(None);
            }
            let snap = format!("{name}-pause-{}", cc.metadata.generation.unwrap_or(0));
            snapshot::create(ctx, ns, &snap, &name, "pause", cc.controller_owner_ref(&())).await?;
            info!(cluster = %name, snapshot = %snap, "pausing: snapshot first");
            prev.hibernation = Some(HibernationStatus {
                phase: SNAPSHOTTING.into(),
                snapshot: snap.clone(),
                message: None,
            });
            writer.save(prev).await?;
            act::publish(
                ctx,
                cc,
                Note::normal(
                    "Pausing",
                    "Pause",
                    format!("taking snapshot {snap} before removing the pods"),
                ),
            )
            .await;
            Ok(None)
        }
        (true, Some(SNAPSHOTTING)) => {
            let h = prev.hibernation.clone().expect("matched");
            let snap = ctx.api::<CacheSnapshot>(ns).get_opt(&h.snapshot).await?;
            let snap_status = snap.and_then(|s| s.status).unwrap_or_default();
            match snap_status.phase.as_deref() {
                Some("Completed") => {
                    scale_to_zero(ctx, cc, ns, shape).await?;
                    info!(cluster = %name, snapshot = %h.snapshot, "paused");
                    prev.hibernation = Some(HibernationStatus {
                        phase: PAUSED.into(),
                        ..h.clone()
                    });
                    paused_status(prev, cc.metadata.generation, &h.snapshot);
                    writer.save(prev).await?;
                    act::publish(
                        ctx,
                        cc,
                        Note::normal(
                            "Paused",
                            "Pause",
                            format!(
                                "{} keys in snapshot {}; pods removed",
                                snap_status.keys, h.snapshot
                            ),
                        ),
                    )
                    .await;
                    Ok(Some(Action::requeue(Duration::from_secs(60))))
                }
                Some("Failed") => {
                    let why = format!(
                        "the pause snapshot failed, the cluster keeps running: {}",
                        snap_status.error.unwrap_or_default()
                    );
                    warn!(cluster = %name, "{why}");
                    prev.hibernation = Some(HibernationStatus {
                        phase: FAILED.into(),
                        message: Some(why.clone()),
                        ..h
                    });
                    writer.save(prev).await?;
                    act::publish(ctx, cc, Note::warning("PauseFailed", "Pause", why)).await;
                    Ok(None)
                }
                _ => Ok(None),
            }
        }
        (true, Some(_paused)) => {
            scale_to_zero(ctx, cc, ns, shape).await?;
            let snapshot = prev.hibernation.as_ref().expect("matched").snapshot.clone();
            paused_status(prev, cc.metadata.generation, &snapshot);
            writer.save(prev).await?;
            Ok(Some(Action::requeue(Duration::from_secs(60))))
        }
        (false, Some(PAUSED)) => {
            let h = prev.hibernation.clone().expect("matched");
            info!(cluster = %name, snapshot = %h.snapshot, "resuming");
            prev.hibernation = Some(HibernationStatus {
                phase: RESUMING.into(),
                ..h.clone()
            });
            prev.restore = None;
            set_condition(
                &mut prev.conditions,
                "Paused",
                false,
                "Resuming",
                format!("restoring snapshot {}", h.snapshot),
                cc.metadata.generation,
            );
            writer.save(prev).await?;
            act::publish(
                ctx,
                cc,
                Note::normal(
                    "Resuming",
                    "Pause",
                    format!("pods back; restoring snapshot {}", h.snapshot),
                ),
            )
            .await;
            Ok(None)
        }
        (false, Some(_)) => {
            // Unpaused before the pods went: nothing to undo.
            prev.hibernation = None;
            writer.save(prev).await?;
            Ok(None)
        }
    }
}

/// A resume's restore is done: the cluster runs again.
pub fn resumed(status: &mut CacheClusterStatus, generation: Option<i64>) -> Option<Note> {
    let h = status.hibernation.as_ref()?;
    let restore = status.restore.as_ref()?;
    if h.phase != RESUMING || restore.phase != "Completed" {
        return None;
    }
    let note = Note::normal(
        "Resumed",
        "Pause",
        format!(
            "{} keys restored from snapshot {}",
            restore.keys, h.snapshot
        ),
    );
    status.hibernation = None;
    set_condition(
        &mut status.conditions,
        "Paused",
        false,
        "Running",
        "running".into(),
        generation,
    );
    Some(note)
}

fn paused_status(status: &mut CacheClusterStatus, generation: Option<i64>, snapshot: &str) {
    status.phase = Some(PAUSED.into());
    let message = format!("no pods; the data is in snapshot {snapshot}");
    set_condition(
        &mut status.conditions,
        "Paused",
        true,
        "Paused",
        message.clone(),
        generation,
    );
    set_condition(
        &mut status.conditions,
        "Ready",
        false,
        "Paused",
        message,
        generation,
    );
    status.observed_generation = generation;
}

/// Applies every shard's StatefulSet with no pods.
async fn scale_to_zero(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    shape: Shape,
) -> Result<(), Error> {
    for i in 0..shape.shards {
        act::apply(
            ctx,
            ns,
            &desired::shard_statefulset(cc, i, 0, &ctx.defaults),
        )
        .await?;
    }
    Ok(())
}
