//! `TIDECACHE` admin commands: the operator's channel to the node.

use bytes::Bytes;
use tidecache_topology::Topology;
use tracing::info;

use super::Ctx;
use super::util::eq;
use crate::frame::Reply;

/// `TIDECACHE TOPOLOGY SET <json> | GET | EPOCH`
pub fn topology(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let shared = cx.shared;
    let action = &args[2];
    if eq(action, "SET") && args.len() == 4 {
        let doc = match Topology::from_json(&args[3]) {
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
                    crate::replication::on_topology(shared, cx.db);
                }
                Reply::OK
            }
            Err(e) => Reply::error(e.to_string()),
        }
    } else if eq(action, "GET") && args.len() == 3 {
        let cluster = shared.cluster.read().expect("cluster lock");
        cluster
            .topology()
            .map_or(Reply::Null, |t| Reply::bulk(t.to_json()))
    } else if eq(action, "EPOCH") && args.len() == 3 {
        Reply::Integer(shared.cluster.read().expect("cluster lock").epoch() as i64)
    } else {
        Reply::error("ERR syntax error: expected TIDECACHE TOPOLOGY SET <json> | GET | EPOCH")
    }
}
