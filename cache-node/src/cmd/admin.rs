//! `TIDECACHE` admin commands: the operator's channel to the node. The
//! table routes each action to its handler (`tidecache|import|begin`);
//! the handlers read their arguments through [`tidecache_topology::protocol`],
//! the protocol's one definition.

use bytes::Bytes;
use tidecache_topology::Topology;
use tidecache_topology::protocol::Request;
use tracing::info;

use super::{Ctx, admin_request, misrouted};
use crate::frame::Reply;

/// A nested container's own handler (`TOPOLOGY`, `MIGRATE`, `IMPORT`):
/// the word after it names none of its actions, so the request's syntax
/// error. (`REPL` and `LEASE` make their checks first: see
/// [`super::repl::syntax`].)
pub fn syntax(_: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Err(e) => e,
        Ok(request) => misrouted(&request),
    }
}

/// `TIDECACHE TOPOLOGY SET <json>`
pub fn topology_set(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let document = match admin_request(args) {
        Ok(Request::TopologySet { document }) => document,
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    };
    let shared = cx.shared;
    let doc = match Topology::from_json(document) {
        Ok(doc) => doc,
        Err(e) => return Reply::error(format!("ERR {e}")),
    };
    let epoch = doc.epoch;
    let mut cluster = shared.cluster.write().expect("cluster lock");
    match cluster.install(doc) {
        Ok(changed) => {
            // A document may settle a handoff whose writes were frozen,
            // and move slots that blocked clients wait on.
            shared.unfrozen.notify_waiters();
            if changed {
                cx.db.wake_blocked();
                info!(epoch, slots = ?cluster.owned_slots(), role = ?cluster.role(), "installed topology");
            }
            drop(cluster);
            if changed {
                crate::replication::on_topology(&shared.replication_handles(), cx.db);
            }
            Reply::OK
        }
        Err(e) => Reply::error(e.to_string()),
    }
}

/// `TIDECACHE TOPOLOGY GET`
pub fn topology_get(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::TopologyGet) => {}
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    }
    let cluster = cx.shared.cluster.read().expect("cluster lock");
    cluster
        .topology()
        .map_or(Reply::Null, |t| Reply::bulk(t.to_json()))
}

/// `TIDECACHE TOPOLOGY EPOCH`
pub fn topology_epoch(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::TopologyEpoch) => {}
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    }
    Reply::Integer(cx.shared.cluster.read().expect("cluster lock").epoch() as i64)
}

/// The slots a snapshot covers or a restore keeps: a standalone node's
/// every slot, a cluster node's own (none before a topology is installed).
fn own_slots(cx: &Ctx) -> tidecache_topology::SlotSet {
    if !cx.shared.cluster_mode {
        return tidecache_topology::SlotSet::from_ranges(&[tidecache_topology::SlotRange {
            start: 0,
            end: tidecache_topology::SLOT_COUNT - 1,
        }]);
    }
    let cluster = cx.shared.cluster.read().expect("cluster lock");
    tidecache_topology::SlotSet::from_ranges(&cluster.owned_slots())
}

fn job_reply(job: Option<crate::snapshot::jobs::Job>) -> Reply {
    job.map_or(Reply::Null, |j| {
        Reply::Map(
            j.fields()
                .into_iter()
                .map(|(k, v)| (Reply::text(k), Reply::bulk(v)))
                .collect(),
        )
    })
}

/// `TIDECACHE SNAPSHOT START <id> <object>`: a snapshot of the node's
/// slots, written to its store from a thread of its own.
pub fn snapshot_start(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (id, object) = match admin_request(args) {
        Ok(Request::SnapshotStart { id, object }) => (id, object),
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    };
    let slots = own_slots(cx);
    let shared = cx.shared;
    let Some(handle) = shared.background.urgent_handle() else {
        return Reply::error("ERR snapshots need the node's runtime");
    };
    match shared
        .jobs
        .start_snapshot(shared.locker(), handle, id, object, &slots)
    {
        Ok(()) => {
            info!(snapshot = id, object, "snapshot started");
            Reply::OK
        }
        Err(e) => Reply::error(e.to_string()),
    }
}

/// `TIDECACHE SNAPSHOT STATUS`: the last snapshot, or nil.
pub fn snapshot_status(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::SnapshotStatus) => {}
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    }
    job_reply(cx.shared.jobs.snapshot.lock().expect("job lock").clone())
}

/// `TIDECACHE RESTORE START <id> <snapshot id|-> <object>...`: empties the
/// node and loads the objects, keeping its slots' keys; commands wait with
/// `LOADING` until it is done.
pub fn restore_start(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (id, snapshot, objects) = match admin_request(args) {
        Ok(Request::RestoreStart {
            id,
            snapshot,
            objects,
        }) => (id, snapshot, objects),
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    };
    let slots = own_slots(cx);
    let shared = cx.shared;
    let Some(handle) = shared.background.urgent_handle() else {
        return Reply::error("ERR restores need the node's runtime");
    };
    let objects: Vec<String> = objects.into_iter().map(str::to_owned).collect();
    match shared.jobs.start_restore(
        shared.locker(),
        handle,
        shared.gate.clone(),
        id,
        snapshot,
        objects,
        slots,
    ) {
        Ok(()) => {
            info!(restore = id, "restore started");
            Reply::OK
        }
        Err(e) => Reply::error(e.to_string()),
    }
}

/// `TIDECACHE RESTORE STATUS`: the last restore, or nil.
pub fn restore_status(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::RestoreStatus) => {}
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    }
    job_reply(cx.shared.jobs.restore.lock().expect("job lock").clone())
}
