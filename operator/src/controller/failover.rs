//! Failover decisions, as pure functions of what the operator saw of a
//! shard's nodes this pass.
//!
//! A primary is lost when its pod is gone, when it has been unreachable
//! for longer than the threshold, or when it answers without any topology
//! while a replica holds the shard's data: a node process that restarted
//! lost its keyspace, and pushing it the document would make an empty
//! primary of it. Then the replica with the highest replication offset in
//! the primary's history is promoted under a new epoch; the old primary,
//! when it answers again, is told it is a replica and syncs from the new
//! one. Nothing is ever flushed by the operator: the data a lost primary
//! alone had (writes not yet replicated) is what an asynchronous replica
//! cannot have; `WAIT` is how a client makes sure of its writes.
//!
//! The promoted node waits out the old primary's write lease before its
//! first write (see the node's `replication` module), so two primaries
//! never take writes together even when the old one is only partitioned.

use std::time::Duration;

use tidecache_topology::admin::{Replication, Usage};

/// What the operator saw of one node this pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// The pod exists and is not being deleted.
    pub pod_alive: bool,
    /// The epoch the node runs (`Some(0)`: none yet), when it answered.
    pub epoch: Option<u64>,
    /// How long the node has failed to answer (zero when it answered).
    pub unreachable_for: Duration,
    /// Its replication state, when it answered.
    pub replication: Option<Replication>,
    /// What it uses (memory, CPU, commands), when it answered.
    pub usage: Option<Usage>,
}

impl Seen {
    /// A node that answered under `epoch`: a primary, or a replica of
    /// history `h` with its link up, at `offset` (the rules' tests).
    #[cfg(test)]
    pub fn answering(primary: bool, offset: u64, epoch: u64) -> Seen {
        Seen {
            pod_alive: true,
            epoch: Some(epoch),
            unreachable_for: Duration::ZERO,
            replication: Some(Replication {
                primary,
                replid: "h".into(),
                offset,
                link_up: !primary,
                syncing: false,
                lease_clock_ms: None,
            }),
            usage: None,
        }
    }

    pub fn answered(&self) -> bool {
        self.epoch.is_some()
    }

    /// Gone as a primary is judged lost: its pod is gone, or it has not
    /// answered for `threshold`.
    pub fn gone(&self, threshold: Duration) -> bool {
        !self.pod_alive || (!self.answered() && self.unreachable_for >= threshold)
    }
}

/// What to do about one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The primary serves.
    Healthy,
    /// The primary is lost but no replica can take over (yet).
    Stuck(String),
    /// Promote this replica (its pod name), for this reason.
    Promote { replica: String, reason: String },
}

/// Judges a shard whose document (of epoch `epoch`) names `primary` and
/// `replicas` (pod names, each with what was seen of it).
pub fn judge(
    epoch: u64,
    primary: (&str, &Seen),
    replicas: &[(&str, &Seen)],
    threshold: Duration,
) -> Verdict {
    let (name, p) = primary;
    let lost = if p.gone(threshold) {
        Some(if p.pod_alive {
            format!(
                "primary {name} has not answered for {} s",
                p.unreachable_for.as_secs()
            )
        } else {
            format!("primary {name}'s pod is gone")
        })
    } else if epoch > 0 && p.epoch == Some(0) {
        Some(format!(
            "primary {name} restarted without its data (it holds no topology)"
        ))
    } else if p
        .replication
        .as_ref()
        .is_some_and(|r| r.primary && r.syncing)
    {
        // Promoted while a full sync was replacing its keyspace: it holds
        // part of the data and serves none of it (see the node's
        // `replication::follow`).
        Some(format!(
            "primary {name} was promoted in the middle of a full sync and holds only part of the data"
        ))
    } else {
        None
    };
    let Some(reason) = lost else {
        return Verdict::Healthy;
    };
    // Offsets compare only within one history: the one most replicas
    // follow is the lost primary's.
    let synced: Vec<(&str, &Replication)> = replicas
        .iter()
        .filter(|(_, s)| s.pod_alive && s.epoch == Some(epoch))
        .filter_map(|(n, s)| Some((*n, s.replication.as_ref()?)))
        .filter(|(_, r)| r.is_synced_replica())
        .collect();
    let history = majority_history(&synced);
    let best = synced
        .iter()
        .filter(|(_, r)| Some(r.replid.as_str()) == history)
        // Highest offset; among equals, the first by name (stable).
        .max_by(|(a, ra), (b, rb)| ra.offset.cmp(&rb.offset).then(b.cmp(a)));
    // A replica the operator cannot reach may still be connected to the
    // old primary, keeping its write lease alive: promoting another then
    // would make two primaries. Wait until it answers (and learns the new
    // document) or its pod is gone.
    if let Some((silent, _)) = replicas
        .iter()
        .find(|(n, s)| s.pod_alive && !s.answered() && best.is_none_or(|(b, _)| b != n))
    {
        return Verdict::Stuck(format!(
            "{reason}, but replica {silent} does not answer and may still be renewing its lease"
        ));
    }
    match best {
        Some((replica, r)) => Verdict::Promote {
            replica: (*replica).to_owned(),
            reason: format!("{reason}; promoting {replica} at offset {}", r.offset),
        },
        None => Verdict::Stuck(format!(
            "{reason}, and no replica holds a whole copy of its data"
        )),
    }
}

/// The primaries of `shards` (pod names: primary, replicas) that must not
/// be handed the new document yet: a node that is still a replica (it was
/// just promoted) while another replica of its shard that may still renew
/// the old primary's write lease does not hold the document. Such a
/// replica still follows the old primary, and its fetches keep that lease
/// alive; the promoted node's wait for the lease starts when it gets the
/// document, so it gets it only once those replicas stopped renewing.
/// `replica_now`: the node acts as a replica; `may_renew`: it answered this
/// pass as a replica (a silent one holds the promotion back before this,
/// see [`judge`]; the old primary, restarted or cut off, renews nothing);
/// `has_doc`: it holds the document (it had it or acknowledged it).
pub fn held_promotions<'a>(
    shards: &[(&'a str, Vec<&'a str>)],
    replica_now: impl Fn(&str) -> bool,
    may_renew: impl Fn(&str) -> bool,
    has_doc: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    shards
        .iter()
        .filter(|(primary, replicas)| {
            replica_now(primary)
                && !has_doc(primary)
                && replicas.iter().any(|r| may_renew(r) && !has_doc(r))
        })
        .map(|(primary, _)| *primary)
        .collect()
}

fn majority_history<'a>(synced: &[(&str, &'a Replication)]) -> Option<&'a str> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, r) in synced {
        match counts.iter_mut().find(|(id, _)| *id == r.replid) {
            Some((_, n)) => *n += 1,
            None => counts.push((&r.replid, 1)),
        }
    }
    counts
        .into_iter()
        .max_by(|(a, na), (b, nb)| na.cmp(nb).then(b.cmp(a)))
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(2);

    fn up(epoch: u64) -> Seen {
        Seen {
            pod_alive: true,
            epoch: Some(epoch),
            unreachable_for: Duration::ZERO,
            replication: Some(Replication {
                primary: true,
                replid: "p".into(),
                offset: 100,
                link_up: false,
                syncing: false,
                lease_clock_ms: None,
            }),
            usage: None,
        }
    }

    fn replica(epoch: u64, replid: &str, offset: u64) -> Seen {
        Seen {
            replication: Some(Replication {
                primary: false,
                replid: replid.into(),
                offset,
                link_up: true,
                syncing: false,
                lease_clock_ms: None,
            }),
            ..up(epoch)
        }
    }

    fn silent(for_: Duration) -> Seen {
        Seen {
            pod_alive: true,
            epoch: None,
            unreachable_for: for_,
            replication: None,
            usage: None,
        }
    }

    fn promoted(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Promote { replica, .. } => Some(replica),
            _ => None,
        }
    }

    #[test]
    fn a_healthy_primary_stays() {
        let r = replica(3, "p", 90);
        assert_eq!(judge(3, ("p0", &up(3)), &[("p1", &r)], T), Verdict::Healthy);
        // A primary behind on the document is pushed it, not replaced.
        assert_eq!(judge(3, ("p0", &up(2)), &[("p1", &r)], T), Verdict::Healthy);
        // Unreachable for less than the threshold: not yet.
        assert_eq!(
            judge(3, ("p0", &silent(T / 2)), &[("p1", &r)], T),
            Verdict::Healthy
        );
    }

    #[test]
    fn a_lost_primary_is_replaced_by_the_most_advanced_replica() {
        let (a, b, c) = (
            replica(3, "p", 90),
            replica(3, "p", 120),
            replica(3, "p", 120),
        );
        let replicas = [("p1", &a), ("p3", &b), ("p2", &c)];
        for lost in [
            silent(T),
            Seen {
                pod_alive: false,
                ..silent(Duration::ZERO)
            },
            up(0),
            // Promoted in the middle of its full sync: it serves nothing.
            Seen {
                replication: Some(Replication {
                    syncing: true,
                    ..up(3).replication.unwrap()
                }),
                ..up(3)
            },
        ] {
            let v = judge(3, ("p0", &lost), &replicas, T);
            assert_eq!(promoted(&v), Some("p2"), "{lost:?}: {v:?}");
        }
    }

    #[test]
    fn only_whole_copies_of_the_primary_history_count() {
        let syncing = Seen {
            replication: Some(Replication {
                syncing: true,
                ..replica(3, "p", 500).replication.unwrap()
            }),
            ..replica(3, "p", 500)
        };
        let never_synced = replica(3, &"0".repeat(40), 0);
        let other_history = replica(3, "q", 900);
        let behind_on_epoch = replica(2, "p", 800);
        let unreachable = Seen {
            pod_alive: false,
            ..silent(T)
        };
        let gone = Seen {
            pod_alive: false,
            ..replica(3, "p", 999)
        };
        let fine = replica(3, "p", 10);
        let fine2 = replica(3, "p", 5);
        let lost = silent(T * 2);
        let all = [
            ("a", &syncing),
            ("b", &never_synced),
            ("c", &other_history),
            ("d", &behind_on_epoch),
            ("e", &unreachable),
            ("f", &gone),
            ("g", &fine),
            ("h", &fine2),
        ];
        assert_eq!(promoted(&judge(3, ("p0", &lost), &all, T)), Some("g"));
        // Alone, the replica of another history is still a whole copy of
        // something newer than nothing; without it, nobody qualifies.
        assert_eq!(promoted(&judge(3, ("p0", &lost), &all[..6], T)), Some("c"));
        let none = [all[0], all[1], all[3], all[4], all[5]];
        assert!(matches!(
            judge(3, ("p0", &lost), &none, T),
            Verdict::Stuck(_)
        ));
        assert!(matches!(judge(3, ("p0", &lost), &[], T), Verdict::Stuck(_)));
    }

    #[test]
    fn a_promoted_replica_gets_its_document_after_the_other_replicas() {
        let shards = vec![("p", vec!["r1", "r2", "old"]), ("q", vec!["s1"])];
        let held = |replica_now: &[&str], renewing: &[&str], has_doc: &[&str]| {
            held_promotions(
                &shards,
                |n| replica_now.contains(&n),
                |n| renewing.contains(&n),
                |n| has_doc.contains(&n),
            )
        };
        // p was just promoted; r1 still follows the old primary.
        assert_eq!(held(&["p", "r1", "r2"], &["r1", "r2"], &["r2"]), vec!["p"]);
        // Every replica that may renew holds the document; the old
        // primary (restarted, or cut off) renews nothing and never holds
        // the promotion back, nor does a replica that did not answer.
        assert!(held(&["p", "r1", "r2"], &["r2"], &["r2"]).is_empty());
        assert!(held(&["p", "r1", "r2"], &["r1", "r2"], &["r1", "r2"]).is_empty());
        // A primary already acting as one, or already holding the
        // document, is never held back.
        assert!(held(&["r1", "r2"], &["r1", "r2"], &[]).is_empty());
        assert!(held(&["p", "r1", "r2"], &["r1", "r2"], &["p"]).is_empty());
        // A promoted primary alone in its shard (one replica, promoted).
        let single = vec![("q", vec![])];
        assert!(held_promotions(&single, |_| true, |_| true, |_| false).is_empty());
    }

    #[test]
    fn a_fresh_cluster_is_not_a_lost_primary() {
        // Epoch 0: nothing was ever pushed; every node is fresh.
        let fresh = up(0);
        assert_eq!(
            judge(0, ("p0", &fresh), &[("p1", &replica(0, "0", 0))], T),
            Verdict::Healthy
        );
    }

    #[test]
    fn a_silent_replica_holds_a_promotion_back() {
        let lost = silent(T);
        let (good, quiet) = (replica(3, "p", 10), silent(T));
        let v = judge(3, ("p0", &lost), &[("r1", &good), ("r2", &quiet)], T);
        assert!(
            matches!(v, Verdict::Stuck(ref why) if why.contains("r2")),
            "{v:?}"
        );
        let gone = Seen {
            pod_alive: false,
            ..silent(T)
        };
        let v = judge(3, ("p0", &lost), &[("r1", &good), ("r2", &gone)], T);
        assert_eq!(promoted(&v), Some("r1"));
    }

    /// Exhaustively over small shards: a promotion always names a live,
    /// synced replica on the document's epoch with the highest offset of
    /// the majority history, and happens only when the primary is lost.
    #[test]
    fn promotions_are_always_of_a_best_candidate() {
        let offsets = [0u64, 5, 9];
        let states: Vec<Seen> = {
            let mut v = vec![silent(T), up(3), up(0)];
            for o in offsets {
                v.push(replica(3, "p", o));
                v.push(replica(3, "q", o));
                v.push(replica(2, "p", o));
            }
            v
        };
        let primaries = [up(3), silent(T), silent(T / 2), up(0)];
        for p in &primaries {
            for i in 0..states.len() {
                for j in 0..states.len() {
                    let rs = [("r1", &states[i]), ("r2", &states[j])];
                    let v = judge(3, ("p0", p), &rs, T);
                    let lost = !p.answered() && p.unreachable_for >= T || p.epoch == Some(0);
                    match &v {
                        Verdict::Healthy => assert!(!lost),
                        Verdict::Stuck(_) => assert!(lost),
                        Verdict::Promote { replica, .. } => {
                            assert!(lost);
                            // Every other replica answered or is gone.
                            assert!(
                                rs.iter()
                                    .all(|(n, s)| n == replica || s.answered() || !s.pod_alive)
                            );
                            let (_, s) = rs.iter().find(|(n, _)| n == replica).unwrap();
                            let r = s.replication.as_ref().unwrap();
                            assert!(s.pod_alive && s.epoch == Some(3) && r.is_synced_replica());
                            for (_, other) in &rs {
                                if let Some(o) = &other.replication
                                    && other.epoch == Some(3)
                                    && o.is_synced_replica()
                                    && o.replid == r.replid
                                {
                                    assert!(o.offset <= r.offset);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
