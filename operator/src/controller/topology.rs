//! Slot assignment and the topology document, as pure functions of the spec,
//! the previous status and the pods observed.
//!
//! The status is the durable record: the slots each shard owns and which pod
//! is its primary are read back from it on every reconcile, so an operator
//! restart continues from exactly where the last one stopped. The epoch grows
//! whenever the document would change, and only then.

use std::collections::BTreeMap;

use tidecache_topology::slot::even_split;
use tidecache_topology::{NodeAddr, Shard, SlotRange, Topology, node_id_for};

use super::desired::{CLIENT_PORT, pod_name, shard_name};
use super::evacuate::pods_per_shard;
use crate::crd::{NodeStatus, ShardStatus};

/// What the operator sees of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    pub ip: Option<String>,
    /// The pod's Ready condition.
    pub ready: bool,
    /// Not being deleted.
    pub alive: bool,
    /// The StatefulSet revision the pod was made from
    /// (`controller-revision-hash`).
    pub revision: Option<String>,
    /// Its node is cordoned (a drain is coming): a primary here hands over
    /// ([`super::evacuate`]).
    pub cordoned: bool,
    /// Its `tidecache.io/role` label, which the PodDisruptionBudgets select.
    pub role: Option<String>,
}

/// The shards as they should be recorded, and the epoch they go with.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub shards: Vec<ShardStatus>,
    pub epoch: u64,
}

impl Plan {
    /// The document to push, once every primary has an address (a document
    /// without a reachable primary for some slots would only cause redirects
    /// to nowhere).
    pub fn document(&self) -> Option<Topology> {
        document(self.epoch, &self.shards)
    }
}

/// Plans the shards of cluster `name` with `shards` shards of `1 + replicas`
/// pods each, keeping what `prev` recorded. Once the recorded shards own
/// every slot, slots only ever change hands through migrations
/// ([`super::resharding`]): a shard added here starts with none. A changed
/// document takes `next_epoch` ([`super::epoch::next`]); an unchanged one
/// keeps `prev_epoch`.
pub fn plan(
    name: &str,
    shards: usize,
    replicas: usize,
    prev_epoch: u64,
    next_epoch: u64,
    prev: &[ShardStatus],
    pods: &BTreeMap<String, PodView>,
) -> Plan {
    let recorded: usize = prev
        .iter()
        .flat_map(|s| &s.slots)
        .filter_map(|r| r.parse::<SlotRange>().ok())
        .map(|r| r.len())
        .sum();
    let keep_slots = !prev.is_empty() && recorded == usize::from(tidecache_topology::SLOT_COUNT);
    let fresh = even_split(shards as u16);
    let address = |pod: &str| {
        pods.get(pod)
            .filter(|p| p.alive)
            .and_then(|p| p.ip.as_ref())
            .map(|ip| format!("{ip}:{CLIENT_PORT}"))
            .unwrap_or_default()
    };
    let planned: Vec<ShardStatus> = (0..shards)
        .map(|i| {
            let previous = prev.get(i).filter(|p| p.name == shard_name(name, i));
            let slots = match previous {
                Some(p) if keep_slots => p.slots.clone(),
                None if keep_slots => Vec::new(),
                _ => vec![fresh[i].to_string()],
            };
            let primary_pod = previous
                .and_then(|p| p.primary.as_ref())
                .map(|p| p.pod.clone())
                .unwrap_or_else(|| pod_name(name, i, 0));
            // A shard made smaller keeps its pods up to its primary's
            // until the primary has moved.
            let pods = pods_per_shard(replicas, previous);
            let replicas = (0..pods)
                .map(|ord| pod_name(name, i, ord))
                .filter(|pod| *pod != primary_pod)
                .take(pods - 1)
                .map(|pod| NodeStatus {
                    address: address(&pod),
                    pod,
                })
                .collect();
            ShardStatus {
                name: shard_name(name, i),
                slots,
                primary: Some(NodeStatus {
                    address: address(&primary_pod),
                    pod: primary_pod,
                }),
                replicas,
            }
        })
        .collect();
    let epoch = if planned == prev {
        prev_epoch
    } else {
        next_epoch
    };
    Plan {
        shards: planned,
        epoch,
    }
}

fn node(status: &NodeStatus) -> Option<NodeAddr> {
    let (host, port) = status.address.rsplit_once(':')?;
    Some(NodeAddr {
        id: node_id_for(&status.pod),
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

/// The topology document a status describes, if every primary is reachable.
pub fn document(epoch: u64, shards: &[ShardStatus]) -> Option<Topology> {
    let shards = shards
        .iter()
        .map(|s| {
            Some(Shard {
                name: s.name.clone(),
                slots: s
                    .slots
                    .iter()
                    .map(|r| r.parse::<SlotRange>().ok())
                    .collect::<Option<Vec<_>>>()?,
                primary: node(s.primary.as_ref()?)?,
                replicas: s.replicas.iter().filter_map(node).collect(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Topology { epoch, shards })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(n_shards: usize, per_shard: usize, with_ip: bool) -> BTreeMap<String, PodView> {
        let mut m = BTreeMap::new();
        for s in 0..n_shards {
            for o in 0..per_shard {
                m.insert(
                    pod_name("c", s, o),
                    PodView {
                        ip: with_ip.then(|| format!("10.244.{s}.{}", o + 2)),
                        ready: true,
                        alive: true,
                        revision: None,
                        ..PodView::default()
                    },
                );
            }
        }
        m
    }

    #[test]
    fn first_plan_splits_slots_evenly_and_waits_for_addresses() {
        let p = plan("c", 3, 1, 0, 1, &[], &pods(3, 2, false));
        assert_eq!(p.epoch, 1);
        assert_eq!(
            p.shards
                .iter()
                .map(|s| s.slots[0].as_str())
                .collect::<Vec<_>>(),
            ["0-5461", "5462-10922", "10923-16383"]
        );
        assert_eq!(p.shards[1].primary.as_ref().unwrap().pod, "c-1-0");
        assert_eq!(p.shards[1].replicas[0].pod, "c-1-1");
        assert!(p.document().is_none(), "no addresses yet");
    }

    #[test]
    fn the_epoch_grows_only_when_something_changes() {
        let seen = pods(3, 2, true);
        let p1 = plan("c", 3, 1, 0, 1, &[], &seen);
        let doc = p1.document().unwrap();
        assert_eq!(doc.assigned_slots(), 16384);
        assert_eq!(doc.shards[0].primary.host, "10.244.0.2");
        let p2 = plan("c", 3, 1, p1.epoch, p1.epoch + 1, &p1.shards, &seen);
        assert_eq!(p2, p1, "same inputs, same plan, same epoch");
        // A pod comes back with a new address: a new epoch.
        let mut moved = seen.clone();
        moved.get_mut("c-2-0").unwrap().ip = Some("10.244.9.9".into());
        let p3 = plan("c", 3, 1, p2.epoch, p2.epoch + 1, &p2.shards, &moved);
        assert_eq!(p3.epoch, p2.epoch + 1);
        assert_eq!(p3.document().unwrap().shards[2].primary.host, "10.244.9.9");
    }

    #[test]
    fn recorded_slots_and_primaries_are_kept() {
        let seen = pods(2, 2, true);
        let mut prev = plan("c", 2, 1, 0, 1, &[], &seen).shards;
        prev[0].slots = vec!["0-99".into(), "200-8191".into()];
        prev[1].slots = vec!["100-199".into(), "8192-16383".into()];
        prev[1].primary = Some(NodeStatus {
            pod: "c-1-1".into(),
            address: String::new(),
        });
        let p = plan("c", 2, 1, 7, 8, &prev, &seen);
        assert_eq!(p.shards[0].slots, ["0-99", "200-8191"]);
        assert_eq!(p.shards[1].primary.as_ref().unwrap().pod, "c-1-1");
        assert_eq!(p.shards[1].replicas[0].pod, "c-1-0");
        assert_eq!(p.document().unwrap().assigned_slots(), 16384);
    }

    #[test]
    fn a_smaller_shard_keeps_its_replicas_until_the_primary_moves() {
        let seen = pods(1, 2, true);
        let mut prev = plan("c", 1, 1, 0, 1, &[], &seen).shards;
        // After a failover the primary is c-0-1; replicasPerShard drops to 0.
        prev[0].primary = Some(prev[0].replicas.remove(0));
        let p = plan("c", 1, 0, 1, 2, &prev, &seen);
        assert_eq!(p.shards[0].primary.as_ref().unwrap().pod, "c-0-1");
        let replicas: Vec<&str> = p.shards[0]
            .replicas
            .iter()
            .map(|r| r.pod.as_str())
            .collect();
        assert_eq!(replicas, ["c-0-0"], "kept until the switchover");
        // Once c-0-0 is primary again the shard is one pod.
        let mut after = p.shards.clone();
        after[0].primary = Some(after[0].replicas.remove(0));
        let p = plan("c", 1, 0, 2, 3, &after, &seen);
        assert_eq!(p.shards[0].primary.as_ref().unwrap().pod, "c-0-0");
        assert!(p.shards[0].replicas.is_empty());
    }

    #[test]
    fn a_deleting_pod_has_no_address() {
        let mut seen = pods(1, 1, true);
        seen.get_mut("c-0-0").unwrap().alive = false;
        let p = plan("c", 1, 0, 0, 1, &[], &seen);
        assert!(p.document().is_none());
    }

    #[test]
    fn plans_are_valid_for_every_shape() {
        for shards in 1..=12 {
            for replicas in 0..=5 {
                let p = plan(
                    "c",
                    shards,
                    replicas,
                    0,
                    1,
                    &[],
                    &pods(shards, replicas + 1, true),
                );
                let doc = p.document().unwrap();
                assert_eq!(
                    doc.slot_owners()
                        .unwrap()
                        .iter()
                        .filter(|o| o.is_some())
                        .count(),
                    16384
                );
                assert!(doc.shards.iter().all(|s| s.replicas.len() == replicas));
            }
        }
    }

    #[test]
    fn added_shards_start_without_slots_and_epochs_clear_reservations() {
        let seen = pods(5, 1, true);
        let three = plan("c", 3, 0, 4, 5, &[], &seen);
        let five = plan(
            "c",
            5,
            0,
            three.epoch,
            three.epoch.max(9) + 1,
            &three.shards,
            &seen,
        );
        assert_eq!(
            &five.shards[..3]
                .iter()
                .map(|s| &s.slots)
                .collect::<Vec<_>>(),
            &three.shards.iter().map(|s| &s.slots).collect::<Vec<_>>()
        );
        assert!(five.shards[3].slots.is_empty() && five.shards[4].slots.is_empty());
        assert_eq!(five.epoch, 10, "above the epoch a migration reserved");
        let same = plan(
            "c",
            5,
            0,
            five.epoch,
            five.epoch.max(12) + 1,
            &five.shards,
            &seen,
        );
        assert_eq!(same.epoch, five.epoch, "nothing changed: no new epoch");
        assert_eq!(five.document().unwrap().assigned_slots(), 16384);
    }
}
