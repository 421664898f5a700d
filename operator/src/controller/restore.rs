//! Seeding a new cluster from `spec.restoreFrom`.
//!
//! Once every shard's primary serves the first topology, each is told to
//! load the snapshot's objects (`TIDECACHE RESTORE START`): every object,
//! whatever shard count the snapshot was taken at, keeping the keys of its
//! own slots. Until all are done the cluster is `Restoring` and its nodes
//! answer `LOADING`; a primary that no longer knows the restore (restarted,
//! or failed over to a replica) is told again, as a restore starts by
//! emptying the node. A failed shard fails the restore: the cluster is
//! `Failed`, the `Restored` condition says why, and the nodes serve no
//! data. The restore is recorded in `status.restore` and runs once.

use std::time::Duration;

use kube::ResourceExt as _;
use tracing::{debug, info, warn};

use super::context::Context;
use super::decide::Note;
use super::manifest::{self, Manifest};
use super::status::set_condition;
use super::storage::Storage;
use crate::crd::{CacheCluster, CacheClusterStatus, CacheSnapshot, RestoreFrom, RestoreStatus};

/// How often a pass looks at a running restore.
pub const POLL: Duration = Duration::from_secs(1);

const RESTORING: &str = "Restoring";
const COMPLETED: &str = "Completed";
const FAILED: &str = "Failed";

/// The objects to load and the snapshot id they must name (none for plain
/// RDB files).
async fn resolve(
    ctx: &Context,
    ns: &str,
    cc: &CacheCluster,
    from: &RestoreFrom,
) -> Result<(Vec<String>, Option<String>), String> {
    if let Some(name) = &from.snapshot {
        let snap = ctx
            .api::<CacheSnapshot>(ns)
            .get_opt(name)
            .await
            .map_err(|e| format!("CacheSnapshot {name}: {e}"))?
            .ok_or_else(|| format!("CacheSnapshot {name} does not exist"))?;
        let status = snap.status.unwrap_or_default();
        if status.phase.as_deref() != Some("Completed") {
            return Err(format!(
                "CacheSnapshot {name} is not Completed ({})",
                status.phase.as_deref().unwrap_or("no phase")
            ));
        }
        manifest::covers_every_slot(&status.objects)?;
        let objects = status.objects.into_iter().map(|o| o.object).collect();
        return Ok((objects, status.snapshot_id));
    }
    if let Some(path) = &from.manifest {
        let storage = &cc
            .spec
            .snapshots
            .as_ref()
            .ok_or("restoreFrom.manifest needs spec.snapshots.storage")?
            .storage;
        let bytes = Storage::open(ctx, ns, storage).await?.get(path).await?;
        let m = Manifest::parse(&bytes)?;
        return Ok((
            m.objects.into_iter().map(|o| o.object).collect(),
            Some(m.snapshot_id),
        ));
    }
    Ok((from.objects.clone(), None))
}

/// What to restore: the hibernation's snapshot when resuming, else
/// `spec.restoreFrom`.
pub fn source(cc: &CacheCluster, status: &CacheClusterStatus) -> Option<RestoreFrom> {
    match &status.hibernation {
        Some(h) if h.phase == super::hibernate::RESUMING => Some(RestoreFrom {
            snapshot: Some(h.snapshot.clone()),
            manifest: None,
            objects: Vec::new(),
        }),
        _ => cc.spec.restore_from.clone(),
    }
}

/// The id every node knows a restore of this cluster by: one per
/// restore (the seeding, then each resume).
fn restore_id(cc: &CacheCluster, status: &CacheClusterStatus) -> String {
    let round = match &status.hibernation {
        Some(h) => format!("-{}", h.snapshot.rsplit('-').next().unwrap_or_default()),
        None => String::new(),
    };
    format!("{}{round}", cluster_restore_id(cc))
}

fn cluster_restore_id(cc: &CacheCluster) -> String {
    format!(
        "restore-{}",
        manifest::short_uid(&cc.uid().unwrap_or_default())
    )
}

/// One pass of the restore, when `spec.restoreFrom` asks for one and it
/// has not ended: the restore's status to record and what to announce.
/// `serving`: every shard's primary serves the current topology (the
/// restore starts only then).
pub async fn step(
    ctx: &Context,
    cc: &CacheCluster,
    password: &str,
    status: &CacheClusterStatus,
    serving: bool,
) -> Option<(RestoreStatus, Vec<Note>)> {
    let from = source(cc, status)?;
    let ns = cc.namespace()?;
    let current = status.restore.clone();
    if current.as_ref().is_some_and(|r| r.phase != RESTORING) {
        return None;
    }
    let rid = current
        .as_ref()
        .and_then(|r| r.id.clone())
        .unwrap_or_else(|| restore_id(cc, status));
    let primaries: Vec<(String, String)> = status
        .shards
        .iter()
        .filter(|s| !s.slots.is_empty())
        .filter_map(|s| Some((s.name.clone(), s.primary.as_ref()?.address.clone())))
        .collect();
    let Some(mut restore) = current else {
        if !serving {
            return None;
        }
        let (objects, snapshot_id) = match resolve(ctx, &ns, cc, &from).await {
            Ok(r) => r,
            Err(e) => return Some(failed(RestoreStatus::default(), e)),
        };
        let restore = RestoreStatus {
            phase: RESTORING.into(),
            id: Some(rid.clone()),
            objects,
            snapshot_id,
            keys: 0,
            error: None,
        };
        info!(cluster = %cc.name_any(), objects = restore.objects.len(), "restore starting");
        let note = Note::normal(
            "RestoreStarted",
            "Restore",
            format!(
                "loading {} objects into {} shards",
                restore.objects.len(),
                primaries.len()
            ),
        );
        for (shard, addr) in &primaries {
            start(ctx, password, addr, shard, &rid, &restore).await;
        }
        return Some((restore, vec![note]));
    };
    let mut keys = 0;
    let mut running = false;
    for (shard, addr) in &primaries {
        let Some(mut admin) = ctx.admin(password, addr).await else {
            running = true;
            continue;
        };
        match admin.restore_status().await {
            Ok(Some(j)) if j.id == rid && j.phase == "done" => keys += j.keys,
            Ok(Some(j)) if j.id == rid && j.phase == "failed" => {
                return Some(failed(restore, format!("shard {shard}: {}", j.error)));
            }
            Ok(Some(j)) if j.id == rid => running = true,
            Ok(_) => {
                // A primary that restarted or was replaced: it starts over.
                warn!(cluster = %cc.name_any(), %shard, "the primary does not know the restore; telling it again");
                start(ctx, password, addr, shard, &rid, &restore).await;
                running = true;
            }
            Err(e) => {
                debug!(%shard, error = %e, "restore status not read");
                running = true;
            }
        }
    }
    if running {
        return Some((restore, Vec::new()));
    }
    restore.phase = COMPLETED.into();
    restore.keys = keys;
    info!(cluster = %cc.name_any(), keys, "restore completed");
    let note = Note::normal(
        "RestoreCompleted",
        "Restore",
        format!("{keys} keys restored into {} shards", primaries.len()),
    );
    Some((restore, vec![note]))
}

async fn start(
    ctx: &Context,
    password: &str,
    addr: &str,
    shard: &str,
    rid: &str,
    r: &RestoreStatus,
) {
    let Some(mut admin) = ctx.admin(password, addr).await else {
        return;
    };
    if let Err(e) = admin
        .restore_start(rid, r.snapshot_id.as_deref(), &r.objects)
        .await
    {
        debug!(%shard, error = %e, "restore not started");
    }
}

fn failed(mut restore: RestoreStatus, why: String) -> (RestoreStatus, Vec<Note>) {
    warn!(%why, "restore failed");
    restore.phase = FAILED.into();
    restore.error = Some(why.clone());
    (
        restore,
        vec![Note::warning("RestoreFailed", "Restore", why)],
    )
}

/// What the restore makes of the phase and conditions: `Restoring` while
/// it runs, `Failed` if it failed (no data is served), and the `Restored`
/// condition. Pure.
pub fn apply(status: &mut CacheClusterStatus, generation: Option<i64>) {
    let Some(restore) = status.restore.clone() else {
        return;
    };
    let (ok, reason, message) = match restore.phase.as_str() {
        RESTORING => (
            false,
            "Restoring",
            format!("loading {} objects", restore.objects.len()),
        ),
        FAILED => (
            false,
            "RestoreFailed",
            restore.error.clone().unwrap_or_default(),
        ),
        _ => (true, "Restored", format!("{} keys restored", restore.keys)),
    };
    set_condition(
        &mut status.conditions,
        "Restored",
        ok,
        reason,
        message.clone(),
        generation,
    );
    if !ok {
        status.phase = Some(
            if restore.phase == FAILED {
                "Failed"
            } else {
                RESTORING
            }
            .into(),
        );
        set_condition(
            &mut status.conditions,
            "Ready",
            false,
            reason,
            message,
            generation,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(phase: &str) -> CacheClusterStatus {
        CacheClusterStatus {
            phase: Some("Ready".into()),
            restore: Some(RestoreStatus {
                phase: phase.into(),
                objects: vec!["a".into()],
                error: (phase == FAILED).then(|| "shard x: corrupt".into()),
                keys: 7,
                ..RestoreStatus::default()
            }),
            ..CacheClusterStatus::default()
        }
    }

    fn condition<'a>(s: &'a CacheClusterStatus, t: &str) -> &'a str {
        &s.conditions.iter().find(|c| c.type_ == t).unwrap().status
    }

    #[test]
    fn the_restore_decides_the_phase_until_it_completes() {
        let mut s = with(RESTORING);
        apply(&mut s, Some(1));
        assert_eq!(s.phase.as_deref(), Some("Restoring"));
        assert_eq!(
            (condition(&s, "Ready"), condition(&s, "Restored")),
            ("False", "False")
        );

        let mut s = with(FAILED);
        apply(&mut s, Some(1));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let restored = s.conditions.iter().find(|c| c.type_ == "Restored").unwrap();
        assert_eq!(restored.message, "shard x: corrupt");

        let mut s = with(COMPLETED);
        apply(&mut s, Some(1));
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        assert_eq!(condition(&s, "Restored"), "True");

        let mut s = CacheClusterStatus::default();
        apply(&mut s, Some(1));
        assert!(s.conditions.is_empty());
    }
}
