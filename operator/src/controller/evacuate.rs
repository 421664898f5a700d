//! Planned removals: a primary hands its role over before its pod goes.
//!
//! Pods go for two planned reasons, and neither may take a primary by
//! surprise:
//!
//! - **a smaller shard** (`replicasPerShard` lowered): a StatefulSet
//!   removes its highest-numbered pods, which may hold the primary (after
//!   a failover or a switchover). The shard keeps its pods up to its
//!   primary's ([`pods_per_shard`]) until the primary is on a pod that
//!   stays, and only then shrinks;
//! - **a node being drained** (`kubectl drain`, a cluster autoscaler, an
//!   upgrade): the node is cordoned first, then its pods are evicted. The
//!   primaries' PodDisruptionBudget (`<cluster>-primaries`, no disruption
//!   allowed) refuses the eviction of a primary, as CloudNativePG's does;
//!   the operator sees the cordon and switches the primary over to a
//!   synced replica on another node, relabels the pods
//!   (`tidecache.io/role`), and the drain's next attempt evicts the old
//!   primary as the replica it now is.
//!
//! [`next`] picks the switchover; the rolling change's machinery
//! ([`super::rolling::Step::Switchover`]: fence, catch up, promote) runs
//! it. A shard without a replica that could take over keeps its primary:
//! a drain then waits on the budget (its data has no other copy).

use std::collections::BTreeMap;

use super::failover::Seen;
use super::rolling::Step;
use super::topology::PodView;
use crate::crd::ShardStatus;

/// The value of the `tidecache.io/role` label of a shard's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// The ordinal of a StatefulSet pod (`<cluster>-<shard>-<ordinal>`).
pub fn ordinal(pod: &str) -> Option<usize> {
    pod.rsplit_once('-')?.1.parse().ok()
}

/// How many pods shard `shard` runs: a primary and `replicas` replicas,
/// and never fewer than its primary's ordinal needs, so that lowering
/// `replicasPerShard` removes no primary before [`next`] has moved it.
pub fn pods_per_shard(replicas: usize, shard: Option<&ShardStatus>) -> usize {
    let primary = shard
        .and_then(|s| s.primary.as_ref())
        .and_then(|p| ordinal(&p.pod))
        .map_or(0, |o| o + 1);
    (1 + replicas).max(primary)
}

/// The switchover a planned removal calls for, if any: the first shard
/// whose primary is on a cordoned node, or on a pod beyond the
/// `1 + replicas` the shard keeps, hands over to its most advanced
/// replica that stays (its pod kept, ready, on a node not cordoned, in
/// sync). `None` when no primary has to move, or none can yet.
pub fn next(
    shards: &[ShardStatus],
    pods: &BTreeMap<String, PodView>,
    seen: &BTreeMap<String, Seen>,
    replicas: usize,
) -> Option<Step> {
    let kept = |pod: &str| ordinal(pod).is_some_and(|o| o <= replicas);
    let cordoned = |pod: &str| pods.get(pod).is_some_and(|p| p.cordoned);
    shards.iter().enumerate().find_map(|(i, shard)| {
        let primary = shard.primary.as_ref()?;
        if kept(&primary.pod) && !cordoned(&primary.pod) {
            return None;
        }
        // The old primary is fenced first: it must answer.
        if !seen.get(&primary.pod).is_some_and(Seen::answered) {
            return None;
        }
        let to = shard
            .replicas
            .iter()
            .filter(|r| kept(&r.pod) && !cordoned(&r.pod))
            .filter(|r| pods.get(&r.pod).is_some_and(|p| p.alive && p.ready))
            .filter_map(|r| {
                let replication = seen.get(&r.pod)?.replication.as_ref()?;
                (replication.is_synced_replica() && replication.link_up)
                    .then_some((r, replication.offset))
            })
            .max_by(|(a, x), (b, y)| x.cmp(y).then(b.pod.cmp(&a.pod)))?;
        Some(Step::Switchover {
            shard: i,
            to: to.0.pod.clone(),
        })
    })
}

/// The role label each recorded pod should carry, where it differs from
/// the one it has (`pods`): what the PodDisruptionBudgets select on.
pub fn relabel(shards: &[ShardStatus], pods: &BTreeMap<String, PodView>) -> Vec<(String, Role)> {
    let roles = shards.iter().flat_map(|s| {
        s.primary
            .iter()
            .map(|p| (p, Role::Primary))
            .chain(s.replicas.iter().map(|r| (r, Role::Replica)))
    });
    roles
        .filter_map(|(node, role)| {
            let pod = pods.get(&node.pod)?;
            (pod.alive && pod.role.as_deref() != Some(role.as_str()))
                .then(|| (node.pod.clone(), role))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::NodeStatus;

    fn node(pod: &str) -> NodeStatus {
        NodeStatus {
            pod: pod.into(),
            address: format!("{pod}:6379"),
        }
    }

    fn shard(primary: &str, replicas: &[&str]) -> ShardStatus {
        ShardStatus {
            name: "c-0".into(),
            slots: vec!["0-16383".into()],
            primary: Some(node(primary)),
            replicas: replicas.iter().map(|r| node(r)).collect(),
        }
    }

    fn seen(primary: bool, offset: u64) -> Seen {
        Seen::answering(primary, offset, 3)
    }

    /// c-0-0 primary; c-0-1 and c-0-2 replicas at offsets 40 and 45.
    fn world() -> (
        Vec<ShardStatus>,
        BTreeMap<String, PodView>,
        BTreeMap<String, Seen>,
    ) {
        let shards = vec![shard("c-0-0", &["c-0-1", "c-0-2"])];
        let up = PodView {
            ip: Some("10.0.0.1".into()),
            ready: true,
            alive: true,
            ..PodView::default()
        };
        let pods = ["c-0-0", "c-0-1", "c-0-2"]
            .map(|p| (p.to_owned(), up.clone()))
            .into();
        let seen = BTreeMap::from([
            ("c-0-0".to_owned(), seen(true, 50)),
            ("c-0-1".to_owned(), seen(false, 40)),
            ("c-0-2".to_owned(), seen(false, 45)),
        ]);
        (shards, pods, seen)
    }

    #[test]
    fn ordinals_and_pods_per_shard() {
        assert_eq!(ordinal("cache-12-3"), Some(3));
        assert_eq!(ordinal("nodash"), None);
        let s = shard("c-0-2", &["c-0-0"]);
        assert_eq!(pods_per_shard(2, Some(&s)), 3);
        assert_eq!(pods_per_shard(0, Some(&s)), 3, "up to the primary");
        assert_eq!(pods_per_shard(0, Some(&shard("c-0-0", &[]))), 1);
        assert_eq!(pods_per_shard(1, None), 2);
    }

    #[test]
    fn nothing_moves_when_every_primary_stays() {
        let (shards, pods, seen) = world();
        assert_eq!(next(&shards, &pods, &seen, 2), None);
    }

    #[test]
    fn a_primary_on_a_cordoned_node_hands_over_to_the_best_replica_elsewhere() {
        let (shards, mut pods, seen) = world();
        pods.get_mut("c-0-0").unwrap().cordoned = true;
        let to = |s: Option<Step>| match s {
            Some(Step::Switchover { shard: 0, to }) => to,
            other => panic!("{other:?}"),
        };
        assert_eq!(to(next(&shards, &pods, &seen, 2)), "c-0-2");
        // The best replica is on a cordoned node too: the other one.
        pods.get_mut("c-0-2").unwrap().cordoned = true;
        assert_eq!(to(next(&shards, &pods, &seen, 2)), "c-0-1");
        // Nowhere to go: the primary stays (the drain waits).
        pods.get_mut("c-0-1").unwrap().ready = false;
        assert_eq!(next(&shards, &pods, &seen, 2), None);
    }

    #[test]
    fn a_primary_beyond_a_smaller_shard_hands_over_to_a_pod_that_stays() {
        let (mut shards, pods, mut seen) = world();
        shards[0] = shard("c-0-2", &["c-0-0", "c-0-1"]);
        seen.insert("c-0-2".into(), self::seen(true, 50));
        seen.insert("c-0-0".into(), self::seen(false, 45));
        // Two replicas: c-0-2 stays, nothing to do.
        assert_eq!(next(&shards, &pods, &seen, 2), None);
        // One: c-0-2 goes, and c-0-0 (the more advanced of those that
        // stay) takes over.
        assert_eq!(
            next(&shards, &pods, &seen, 1),
            Some(Step::Switchover {
                shard: 0,
                to: "c-0-0".into()
            })
        );
    }

    #[test]
    fn an_unsynced_or_unheard_node_takes_no_part() {
        let (shards, mut pods, mut seen) = world();
        pods.get_mut("c-0-0").unwrap().cordoned = true;
        for r in ["c-0-1", "c-0-2"] {
            seen.get_mut(r)
                .unwrap()
                .replication
                .as_mut()
                .unwrap()
                .syncing = true;
        }
        assert_eq!(next(&shards, &pods, &seen, 2), None, "no synced replica");
        let (shards, mut pods, mut seen) = world();
        pods.get_mut("c-0-0").unwrap().cordoned = true;
        seen.get_mut("c-0-0").unwrap().epoch = None;
        assert_eq!(
            next(&shards, &pods, &seen, 2),
            None,
            "the old primary cannot be fenced"
        );
    }

    #[test]
    fn pods_are_relabelled_only_where_their_role_changed() {
        let (shards, mut pods, _) = world();
        let all = relabel(&shards, &pods);
        assert_eq!(
            all,
            vec![
                ("c-0-0".into(), Role::Primary),
                ("c-0-1".into(), Role::Replica),
                ("c-0-2".into(), Role::Replica)
            ]
        );
        for (pod, role) in all {
            pods.get_mut(&pod).unwrap().role = Some(role.as_str().into());
        }
        assert!(relabel(&shards, &pods).is_empty());
        // After a switchover to c-0-2.
        let swapped = vec![shard("c-0-2", &["c-0-1", "c-0-0"])];
        assert_eq!(
            relabel(&swapped, &pods),
            vec![
                ("c-0-2".into(), Role::Primary),
                ("c-0-0".into(), Role::Replica)
            ]
        );
        // A pod being deleted is left alone.
        pods.get_mut("c-0-2").unwrap().alive = false;
        assert_eq!(relabel(&swapped, &pods).len(), 1);
    }
}
