//! CLUSTER commands, answered from the installed topology document.

use bytes::Bytes;
use tidecache_topology::{NodeAddr, SLOT_COUNT, Topology, key_slot};

use super::Ctx;
use super::util::int_arg;
use crate::frame::Reply;
use crate::state::Shared;

pub fn keyslot(_: &mut Ctx, args: &[Bytes]) -> Reply {
    Reply::Integer(key_slot(&args[2]).into())
}

pub fn myid(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let shared = cx.shared;
    Reply::text(&shared.cluster.read().expect("cluster lock").me().id)
}

pub fn info(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let shared = cx.shared;
    let cluster = shared.cluster.read().expect("cluster lock");
    let (assigned, nodes, size) = cluster.view().map_or((0, 1, 0), |t| {
        (
            t.assigned_slots(),
            t.shards.iter().map(|s| 1 + s.replicas.len()).sum(),
            t.shards.iter().filter(|s| !s.slots.is_empty()).count(),
        )
    });
    let ok = assigned == usize::from(SLOT_COUNT);
    let text = format!(
        "cluster_enabled:1\r\ncluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{nodes}\r\ncluster_size:{size}\r\n\
         cluster_current_epoch:{epoch}\r\ncluster_my_epoch:{epoch}\r\n",
        if ok { "ok" } else { "fail" },
        epoch = cluster.newest_epoch(),
    );
    Reply::Verbatim(text)
}

fn with_topology(shared: &Shared, f: impl FnOnce(&Topology, &NodeAddr) -> Reply) -> Reply {
    let cluster = shared.cluster.read().expect("cluster lock");
    match cluster.view() {
        Some(t) => f(&t, cluster.me()),
        None => Reply::Array(vec![]),
    }
}

/// `CLUSTER SLOTS`: for each slot range, the primary then the replicas.
pub fn slots(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let shared = cx.shared;
    with_topology(shared, |t, _| {
        let node = |n: &NodeAddr| {
            Reply::Array(vec![
                Reply::text(&n.host),
                Reply::Integer(n.port.into()),
                Reply::text(&n.id),
                Reply::Map(vec![]),
            ])
        };
        let mut out = Vec::new();
        for shard in &t.shards {
            for r in &shard.slots {
                let mut entry = vec![
                    Reply::Integer(r.start.into()),
                    Reply::Integer(r.end.into()),
                    node(&shard.primary),
                ];
                entry.extend(shard.replicas.iter().map(node));
                out.push(Reply::Array(entry));
            }
        }
        Reply::Array(out)
    })
}

/// `CLUSTER SHARDS`: each shard's slot ranges and nodes.
pub fn shards(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let shared = cx.shared;
    with_topology(shared, |t, _| {
        let node = |n: &NodeAddr, role: &str| {
            Reply::Map(vec![
                (Reply::text("id"), Reply::text(&n.id)),
                (Reply::text("port"), Reply::Integer(n.port.into())),
                (Reply::text("ip"), Reply::text(&n.host)),
                (Reply::text("endpoint"), Reply::text(&n.host)),
                (Reply::text("role"), Reply::text(role)),
                (Reply::text("replication-offset"), Reply::Integer(0)),
                (Reply::text("health"), Reply::text("online")),
            ])
        };
        Reply::Array(
            t.shards
                .iter()
                .map(|s| {
                    let slots = s
                        .slots
                        .iter()
                        .flat_map(|r| {
                            [Reply::Integer(r.start.into()), Reply::Integer(r.end.into())]
                        })
                        .collect();
                    let mut nodes = vec![node(&s.primary, "master")];
                    nodes.extend(s.replicas.iter().map(|r| node(r, "replica")));
                    Reply::Map(vec![
                        (Reply::text("slots"), Reply::Array(slots)),
                        (Reply::text("nodes"), Reply::Array(nodes)),
                    ])
                })
                .collect(),
        )
    })
}

/// `CLUSTER NODES`: one line per node in Redis's format.
pub fn nodes(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let shared = cx.shared;
    let cluster = shared.cluster.read().expect("cluster lock");
    let me = cluster.me();
    let epoch = cluster.newest_epoch();
    let mut text = String::new();
    let line = |text: &mut String, n: &NodeAddr, primary: Option<&NodeAddr>, slots: &str| {
        let myself = if n.id == me.id { "myself," } else { "" };
        let (role, master) = match primary {
            None => ("master", "-".to_owned()),
            Some(p) => ("slave", p.id.clone()),
        };
        text.push_str(&format!(
            "{} {}:{}@{} {myself}{role} {master} 0 0 {epoch} connected{slots}\n",
            n.id,
            n.host,
            n.port,
            u32::from(n.port) + 10000
        ));
    };
    match cluster.view() {
        Some(t) => {
            for s in &t.shards {
                let slots: String = s.slots.iter().map(|r| format!(" {r}")).collect();
                line(&mut text, &s.primary, None, &slots);
                for r in &s.replicas {
                    line(&mut text, r, Some(&s.primary), "");
                }
            }
        }
        None => line(&mut text, me, None, ""),
    }
    Reply::Verbatim(text)
}

fn slot_arg(arg: &[u8]) -> Result<u16, Reply> {
    match int_arg(arg) {
        Ok(n) if (0..i64::from(SLOT_COUNT)).contains(&n) => Ok(n as u16),
        Ok(_) => Err(Reply::error("ERR Invalid slot")),
        Err(e) => Err(e),
    }
}

pub fn countkeysinslot(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match slot_arg(&args[2]) {
        Ok(slot) => Reply::Integer(cx.db.count_in_slot(slot) as i64),
        Err(e) => e,
    }
}

pub fn getkeysinslot(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let slot = match slot_arg(&args[2]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let count = match int_arg(&args[3]) {
        Ok(n) if n >= 0 => n as usize,
        Ok(_) => return Reply::error("ERR Invalid number of keys"),
        Err(e) => return e,
    };
    let keys = cx.db.keys_in_slot(slot, count);
    Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
}
