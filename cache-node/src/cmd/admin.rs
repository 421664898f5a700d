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
