//! Rolling changes (image, resources, configuration), as a pure function
//! of the shards, their pods' revisions and what the operator saw of each
//! node this pass.
//!
//! The StatefulSets use the `OnDelete` strategy: a changed pod template
//! restarts nothing by itself; the operator replaces pods one at a time:
//! replicas first; a shard whose only outdated pod is its primary first
//! hands the primary role to an up-to-date synced replica (a planned
//! switchover: the old primary's writes are fenced, the replica catches up
//! to the fence, then is promoted without waiting out a lease), and the old
//! primary, a replica by then, is replaced like any other. Nothing is
//! replaced while any node of the cluster is down, unsynced or not ready,
//! so at most one copy of any shard's data is ever being rebuilt.

use std::collections::BTreeMap;

use super::failover::Seen;
use super::topology::PodView;
use crate::crd::ShardStatus;

/// The next step of a rolling change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs its shard's current template.
    Done,
    /// Outdated pods remain but the cluster is not healthy enough to take
    /// one down now.
    Wait(String),
    /// Delete this (outdated) pod: its StatefulSet recreates it current.
    Replace(String),
    /// Make `to` the primary of shard `shard` (index), before its outdated
    /// primary is replaced.
    Switchover { shard: usize, to: String },
}

/// Decides the next step. `revisions` holds each shard's current template
/// revision (its StatefulSet's `updateRevision`), by shard name; a shard
/// missing there, or a pod whose revision is unknown, counts as current.
pub fn next_step(
    shards: &[ShardStatus],
    pods: &BTreeMap<String, PodView>,
    revisions: &BTreeMap<String, String>,
    seen: &BTreeMap<String, Seen>,
) -> Step {
    let outdated = |shard: &ShardStatus, pod: &str| {
        let current = revisions.get(&shard.name);
        let has = pods.get(pod).and_then(|p| p.revision.as_ref());
        matches!((current, has), (Some(c), Some(h)) if c != h)
    };
    let Some((i, shard)) = shards.iter().enumerate().find(|(_, s)| {
        s.primary
            .iter()
            .chain(&s.replicas)
            .any(|n| outdated(s, &n.pod))
    }) else {
        return Step::Done;
    };
    // Every node of every shard up, and every replica a whole copy.
    for s in shards {
        for (node, primary) in s
            .primary
            .iter()
            .map(|p| (p, true))
            .chain(s.replicas.iter().map(|r| (r, false)))
        {
            let pod = pods.get(&node.pod);
            let v = seen.get(&node.pod);
            if !pod.is_some_and(|p| p.alive && p.ready) || !v.is_some_and(Seen::answered) {
                return Step::Wait(format!("pod {} is not up", node.pod));
            }
            let synced = v
                .and_then(|v| v.replication.as_ref())
                .is_some_and(|r| r.is_synced_replica() && r.link_up);
            if !primary && !synced {
                return Step::Wait(format!("replica {} is not in sync", node.pod));
            }
        }
    }
    if let Some(r) = shard.replicas.iter().find(|r| outdated(shard, &r.pod)) {
        return Step::Replace(r.pod.clone());
    }
    let primary = shard
        .primary
        .as_ref()
        .expect("an outdated pod is in the shard");
    let best = shard
        .replicas
        .iter()
        .filter_map(|r| Some((r, seen.get(&r.pod)?.replication.as_ref()?)))
        .max_by(|(a, ra), (b, rb)| ra.offset.cmp(&rb.offset).then(b.pod.cmp(&a.pod)));
    match best {
        Some((r, _)) => Step::Switchover {
            shard: i,
            to: r.pod.clone(),
        },
        // Without replicas there is no copy to keep: the pod restarts
        // empty, as any restart of a replica-less shard does.
        None => Step::Replace(primary.pod.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::NodeStatus;

    fn shard(name: &str, primary: &str, replicas: &[&str]) -> ShardStatus {
        let node = |p: &str| NodeStatus {
            pod: p.into(),
            address: format!("{p}:6379"),
        };
        ShardStatus {
            name: name.into(),
            slots: vec![],
            primary: Some(node(primary)),
            replicas: replicas.iter().map(|r| node(r)).collect(),
        }
    }

    fn pod(revision: &str) -> PodView {
        PodView {
            ip: Some("10.0.0.1".into()),
            ready: true,
            alive: true,
            revision: Some(revision.into()),
            ..PodView::default()
        }
    }

    fn node(primary: bool, offset: u64) -> Seen {
        Seen::answering(primary, offset, 4)
    }

    struct World {
        shards: Vec<ShardStatus>,
        pods: BTreeMap<String, PodView>,
        revisions: BTreeMap<String, String>,
        seen: BTreeMap<String, Seen>,
    }

    /// Two shards of a primary and two replicas, all at revision "old";
    /// the template is now "new".
    fn world() -> World {
        let shards = vec![
            shard("c-0", "c-0-0", &["c-0-1", "c-0-2"]),
            shard("c-1", "c-1-0", &["c-1-1", "c-1-2"]),
        ];
        let mut pods = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for s in &shards {
            pods.insert(s.primary.as_ref().unwrap().pod.clone(), pod("old"));
            seen.insert(s.primary.as_ref().unwrap().pod.clone(), node(true, 50));
            for (k, r) in s.replicas.iter().enumerate() {
                pods.insert(r.pod.clone(), pod("old"));
                seen.insert(r.pod.clone(), node(false, 40 + k as u64));
            }
        }
        let revisions = shards
            .iter()
            .map(|s| (s.name.clone(), "new".to_owned()))
            .collect();
        World {
            shards,
            pods,
            revisions,
            seen,
        }
    }

    impl World {
        fn step(&self) -> Step {
            next_step(&self.shards, &self.pods, &self.revisions, &self.seen)
        }

        /// Plays a step out as the operator and Kubernetes would.
        fn play(&mut self, step: &Step) {
            match step {
                Step::Replace(p) => {
                    self.pods.get_mut(p).unwrap().revision = Some("new".into());
                }
                Step::Switchover { shard, to } => {
                    let s = &mut self.shards[*shard];
                    let old = s.primary.take().unwrap();
                    let i = s.replicas.iter().position(|r| r.pod == *to).unwrap();
                    let new = s.replicas.remove(i);
                    s.replicas.push(old.clone());
                    s.primary = Some(new.clone());
                    self.seen.insert(new.pod, node(true, 60));
                    self.seen.insert(old.pod, node(false, 60));
                }
                Step::Done | Step::Wait(_) => {}
            }
        }
    }

    #[test]
    fn replicas_go_first_then_a_switchover_then_the_old_primary() {
        let mut w = world();
        let mut steps = Vec::new();
        loop {
            let step = w.step();
            if step == Step::Done {
                break;
            }
            assert!(!matches!(step, Step::Wait(_)), "{step:?}");
            w.play(&step);
            steps.push(step);
            assert!(steps.len() < 20);
        }
        use Step::*;
        assert_eq!(
            steps,
            vec![
                Replace("c-0-1".into()),
                Replace("c-0-2".into()),
                // The most advanced replica takes over.
                Switchover {
                    shard: 0,
                    to: "c-0-2".into()
                },
                Replace("c-0-0".into()),
                Replace("c-1-1".into()),
                Replace("c-1-2".into()),
                Switchover {
                    shard: 1,
                    to: "c-1-2".into()
                },
                Replace("c-1-0".into()),
            ]
        );
    }

    #[test]
    fn nothing_is_replaced_while_the_cluster_is_degraded() {
        let mut w = world();
        w.pods.get_mut("c-1-2").unwrap().ready = false;
        assert!(matches!(w.step(), Step::Wait(_)));
        let mut w = world();
        w.seen
            .get_mut("c-1-1")
            .unwrap()
            .replication
            .as_mut()
            .unwrap()
            .syncing = true;
        assert!(matches!(w.step(), Step::Wait(_)));
        let mut w = world();
        w.seen.get_mut("c-0-0").unwrap().epoch = None;
        assert!(matches!(w.step(), Step::Wait(_)));
        let mut w = world();
        w.seen
            .get_mut("c-0-1")
            .unwrap()
            .replication
            .as_mut()
            .unwrap()
            .link_up = false;
        assert!(matches!(w.step(), Step::Wait(_)));
    }

    #[test]
    fn current_pods_and_unknown_revisions_need_nothing() {
        let mut w = world();
        for p in w.pods.values_mut() {
            p.revision = Some("new".into());
        }
        assert_eq!(w.step(), Step::Done);
        let mut w = world();
        w.revisions.clear();
        assert_eq!(w.step(), Step::Done);
        let mut w = world();
        for p in w.pods.values_mut() {
            p.revision = None;
        }
        assert_eq!(w.step(), Step::Done);
    }

    #[test]
    fn a_shard_without_replicas_restarts_its_primary() {
        let shards = vec![shard("c-0", "c-0-0", &[])];
        let pods = BTreeMap::from([("c-0-0".to_owned(), pod("old"))]);
        let revisions = BTreeMap::from([("c-0".to_owned(), "new".to_owned())]);
        let seen = BTreeMap::from([("c-0-0".to_owned(), node(true, 0))]);
        assert_eq!(
            next_step(&shards, &pods, &revisions, &seen),
            Step::Replace("c-0-0".into())
        );
    }
}
