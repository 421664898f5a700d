//! The pass's rules, each from a fixture: a cluster `c` of two shards with
//! one replica each, every node up at epoch 5 unless a test says otherwise.

use std::time::Duration;

use tidecache_topology::admin::Replication;

use super::*;
use crate::crd::{MoveStatus, RebalanceStatus};

const EPOCH: u64 = 5;

fn cluster(shards: i32, replicas: i32) -> CacheCluster {
    let yaml = format!(
        "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
         metadata: {{name: c, namespace: ns, generation: 3}}\n\
         spec: {{shards: {shards}, replicasPerShard: {replicas}}}\n"
    );
    serde_yaml::from_str(&yaml).unwrap()
}

fn ip(pod: &str) -> String {
    // c-<shard>-<ordinal> → 10.0.<shard>.<ordinal + 2>
    let mut parts = pod.rsplit('-');
    let ordinal: u8 = parts.next().unwrap().parse().unwrap();
    let shard: u8 = parts.next().unwrap().parse().unwrap();
    format!("10.0.{shard}.{}", ordinal + 2)
}

fn node(pod: &str) -> NodeStatus {
    NodeStatus {
        pod: pod.into(),
        address: format!("{}:{CLIENT_PORT}", ip(pod)),
    }
}

/// The status a settled cluster of two shards × one replica records.
fn settled() -> CacheClusterStatus {
    let split = tidecache_topology::slot::even_split(2);
    CacheClusterStatus {
        epoch: EPOCH,
        phase: Some("Ready".into()),
        shards: (0..2)
            .map(|s| ShardStatus {
                name: format!("c-{s}"),
                slots: vec![split[s].to_string()],
                primary: Some(node(&format!("c-{s}-0"))),
                replicas: vec![node(&format!("c-{s}-1"))],
            })
            .collect(),
        ..CacheClusterStatus::default()
    }
}

fn primary_seen(offset: u64) -> Seen {
    Seen {
        pod_alive: true,
        epoch: Some(EPOCH),
        unreachable_for: Duration::ZERO,
        replication: Some(Replication {
            primary: true,
            replid: "r".into(),
            offset,
            ..Replication::default()
        }),
        usage: None,
    }
}

fn replica_seen(offset: u64) -> Seen {
    Seen {
        replication: Some(Replication {
            primary: false,
            replid: "r".into(),
            offset,
            link_up: true,
            ..Replication::default()
        }),
        ..primary_seen(offset)
    }
}

fn lost() -> Seen {
    Seen {
        pod_alive: true,
        epoch: None,
        unreachable_for: FAILOVER_AFTER * 2,
        replication: None,
        usage: None,
    }
}

/// Every pod up and Ready at revision `rev`; every node as in `settled`.
fn healthy() -> Observation {
    let mut obs = Observation::default();
    for s in 0..2 {
        for o in 0..2 {
            let pod = format!("c-{s}-{o}");
            obs.pods.insert(
                pod.clone(),
                PodView {
                    ip: Some(ip(&pod)),
                    ready: true,
                    alive: true,
                    revision: Some("rev1".into()),
                    ..PodView::default()
                },
            );
            let seen = if o == 0 {
                primary_seen(100)
            } else {
                replica_seen(100)
            };
            obs.seen.insert(pod, seen);
        }
        obs.revisions.insert(format!("c-{s}"), "rev1".into());
    }
    obs
}

fn copying(status: &mut CacheClusterStatus) {
    status.rebalance = Some(RebalanceStatus {
        shards: 2,
        moves: vec![MoveStatus {
            from: "c-0".into(),
            to: "c-1".into(),
            slots: vec!["0-10".into()],
            keys: 1,
            state: MoveState::Copying,
            epoch: 9,
            attempts: 1,
            last_error: None,
            retry_after: None,
        }],
    });
}

fn shape() -> Shape {
    Shape::of(&cluster(2, 1), &settled())
}

#[test]
fn a_settled_cluster_changes_nothing_and_keeps_its_epoch() {
    let prev = settled();
    let obs = healthy();
    let changes = changes(&prev, &obs, 1);
    assert_eq!(
        changes,
        Changes {
            held: false,
            promotions: vec![],
            stuck: vec![],
            rolling: Step::Done,
        }
    );
    let layout = layout("c", shape(), &prev, &obs, &changes, None);
    assert_eq!(layout.status, prev, "nothing to record");
    assert_eq!(layout.document.as_ref().unwrap().epoch, EPOCH);
    assert!(layout.notes.is_empty() && layout.replace.is_none());
}

#[test]
fn a_lost_primary_is_replaced_under_a_new_epoch() {
    let prev = settled();
    let mut obs = healthy();
    obs.seen.insert("c-1-0".into(), lost());
    let changes = changes(&prev, &obs, 1);
    assert_eq!(changes.promotions.len(), 1);
    assert_eq!(changes.promotions[0].shard, 1);
    assert_eq!(changes.promotions[0].replica, "c-1-1");
    assert_eq!(
        changes.rolling,
        Step::Done,
        "no rolling step beside a failover"
    );
    let layout = layout("c", shape(), &prev, &obs, &changes, None);
    // The pods and slots are the same: only the primary changed, and that
    // alone is a new document.
    assert_eq!(layout.status.epoch, EPOCH + 1);
    let s1 = &layout.status.shards[1];
    assert_eq!(s1.primary, Some(node("c-1-1")));
    assert_eq!(s1.replicas, vec![node("c-1-0")]);
    assert_eq!(layout.notes[0].reason, "Failover");
    assert!(layout.notes[0].warning);
}

#[test]
fn a_shard_outside_a_copying_move_fails_over_below_the_moves_epoch() {
    // Shard c-0 moves slots to a new shard c-2 under epoch 30; c-1's
    // primary is lost.
    let mut prev = settled();
    prev.shards.push(ShardStatus {
        name: "c-2".into(),
        slots: vec![],
        primary: Some(node("c-2-0")),
        replicas: vec![node("c-2-1")],
    });
    copying(&mut prev);
    let mv = &mut prev.rebalance.as_mut().unwrap().moves[0];
    (mv.to, mv.epoch) = ("c-2".into(), 30);
    let mut obs = healthy();
    for o in 0..2 {
        let pod = format!("c-2-{o}");
        obs.pods.insert(pod.clone(), obs.pods["c-0-0"].clone());
        obs.pods.get_mut(&pod).unwrap().ip = Some(ip(&pod));
        obs.seen.insert(pod, replica_seen(100));
    }
    obs.seen.insert("c-2-0".into(), primary_seen(100));
    obs.seen.insert("c-1-0".into(), lost());
    let c = changes(&prev, &obs, 1);
    assert!(c.held);
    assert_eq!(c.promotions.len(), 1);
    assert_eq!(c.promotions[0].replica, "c-1-1");
    assert_eq!(c.rolling, Step::Done, "nothing else while it copies");
    let shape = Shape {
        wanted: 3,
        spare: 0,
        shards: 3,
        replicas: 1,
    };
    let layout = layout("c", shape, &prev, &obs, &c, None);
    assert_eq!(layout.status.epoch, EPOCH + 1);
    assert!(layout.status.epoch < 30);
    assert_eq!(layout.status.shards[1].primary, Some(node("c-1-1")));
    // The moving shards stay as recorded.
    assert_eq!(layout.status.shards[0], prev.shards[0]);
    assert_eq!(layout.status.shards[2], prev.shards[2]);
    assert_eq!(layout.document.unwrap().epoch, EPOCH + 1);
    // A lost primary of a moving shard waits for the move, as before.
    obs.seen.insert("c-1-0".into(), primary_seen(100));
    obs.seen.insert("c-0-0".into(), lost());
    assert!(changes(&prev, &obs, 1).promotions.is_empty());
    // So does any failover once the room below the move is spent.
    prev.epoch = 29;
    let mut obs = healthy();
    obs.seen.insert("c-1-0".into(), lost());
    assert!(changes(&prev, &obs, 1).promotions.is_empty());
}

#[test]
fn a_promotion_goes_above_an_epoch_a_move_reserved() {
    let mut prev = settled();
    prev.rebalance = Some(RebalanceStatus {
        shards: 2,
        moves: vec![MoveStatus {
            state: MoveState::Pending,
            epoch: 12,
            ..copying_move()
        }],
    });
    let mut obs = healthy();
    obs.seen.insert("c-0-0".into(), lost());
    let c = changes(&prev, &obs, 1);
    assert_eq!(layout("c", shape(), &prev, &obs, &c, None).status.epoch, 13);
}

fn copying_move() -> MoveStatus {
    let mut s = settled();
    copying(&mut s);
    s.rebalance.unwrap().moves.remove(0)
}

#[test]
fn a_copying_move_holds_the_layout_even_for_a_failover() {
    let mut prev = settled();
    copying(&mut prev);
    let mut obs = healthy();
    obs.seen.insert("c-1-0".into(), lost());
    let changes = changes(&prev, &obs, 1);
    assert!(changes.held);
    assert!(changes.promotions.is_empty() && changes.rolling == Step::Done);
    // A pod moved meanwhile: the move still reaches it by its new address,
    // but the recorded layout and epoch stay.
    obs.pods.get_mut("c-1-0").unwrap().ip = Some("10.9.9.9".into());
    let layout = layout("c", shape(), &prev, &obs, &changes, None);
    assert_eq!(layout.status, prev);
    assert_eq!(
        layout.addresses[1].primary.as_ref().unwrap().address,
        format!("10.9.9.9:{CLIENT_PORT}")
    );
}

#[test]
fn a_rolling_change_waits_for_a_rebalance_and_replaces_replicas_first() {
    let prev = settled();
    let mut obs = healthy();
    obs.revisions.insert("c-0".into(), "rev2".into());
    assert_eq!(
        changes(&prev, &obs, 1).rolling,
        Step::Replace("c-0-1".into())
    );
    let mut rebalancing = prev.clone();
    rebalancing.rebalance = Some(RebalanceStatus {
        shards: 2,
        moves: vec![MoveStatus {
            state: MoveState::Pending,
            ..copying_move()
        }],
    });
    assert_eq!(changes(&rebalancing, &obs, 1).rolling, Step::Done);
}

#[test]
fn a_switchover_swaps_roles_only_when_the_replica_caught_up() {
    let prev = settled();
    let obs = healthy();
    let c = Changes {
        held: false,
        promotions: vec![],
        stuck: vec![],
        rolling: Step::Switchover {
            shard: 0,
            to: "c-0-1".into(),
        },
    };
    assert_eq!(
        switchover(&prev, &c.rolling),
        Some((node("c-0-0"), node("c-0-1")))
    );
    let done = layout("c", shape(), &prev, &obs, &c, Some(true));
    assert_eq!(done.status.shards[0].primary, Some(node("c-0-1")));
    assert_eq!(done.switchover, Some((node("c-0-0"), node("c-0-1"))));
    assert_eq!(done.status.epoch, EPOCH + 1);
    // Called off: the layout stays, but a new epoch lifts the fence.
    let off = layout("c", shape(), &prev, &obs, &c, Some(false));
    assert_eq!(off.status.shards, prev.shards);
    assert_eq!(off.status.epoch, EPOCH + 1);
    assert_eq!(off.switchover, None);
    assert_eq!(off.notes[0].reason, "SwitchoverAborted");
}

#[test]
fn a_primary_restarted_empty_is_guarded_while_a_replica_holds_its_data() {
    let prev = settled();
    let mut obs = healthy();
    let c = changes(&prev, &obs, 1);
    let l = layout("c", shape(), &prev, &obs, &c, None);
    assert_eq!(l.guarded, vec!["c-0-0".to_owned(), "c-1-0".to_owned()]);
    // A replica in the middle of a full sync holds no whole copy.
    obs.seen
        .get_mut("c-1-1")
        .unwrap()
        .replication
        .as_mut()
        .unwrap()
        .syncing = true;
    let l = layout("c", shape(), &prev, &obs, &c, None);
    assert_eq!(l.guarded, vec!["c-0-0".to_owned()]);
}

#[test]
fn a_promoted_primary_gets_the_document_after_its_shards_replicas() {
    // Three pods in shard 1: c-1-1 was promoted; c-1-2 still follows c-1-0.
    let mut prev = settled();
    prev.shards[1].replicas.push(node("c-1-2"));
    let mut obs = healthy();
    obs.seen.insert("c-1-0".into(), lost());
    obs.seen.insert("c-1-2".into(), replica_seen(90));
    obs.pods.insert(
        "c-1-2".into(),
        PodView {
            ip: Some(ip("c-1-2")),
            ready: true,
            alive: true,
            revision: Some("rev1".into()),
            ..PodView::default()
        },
    );
    let c = changes(&prev, &obs, 1);
    let shape = Shape::of(&cluster(2, 2), &prev);
    let l = layout("c", shape, &prev, &obs, &c, None);
    let doc = l.document.clone().unwrap();
    let held = push_plan(&l, &obs, &doc);
    assert_eq!(held, vec!["c-1-1".to_owned()]);
    // The replica that could renew the old lease took the document.
    assert!(released(&l, &obs, &doc, &held, &["c-0-0".into()]).is_empty());
    assert_eq!(
        released(&l, &obs, &doc, &held, &["c-1-2".into()]),
        vec!["c-1-1".to_owned()]
    );
}

#[test]
fn a_switchover_waives_the_lease_only_when_both_hold_the_document() {
    let (old, new) = (node("c-0-0"), node("c-0-1"));
    assert!(waive_lease(&old, &new, &["c-0-0".into(), "c-0-1".into()]));
    assert!(!waive_lease(&old, &new, &["c-0-1".into()]));
    assert!(!waive_lease(&old, &new, &["c-0-0".into()]));
}

#[test]
fn serving_counts_ready_primaries_that_hold_the_document() {
    let status = settled();
    let mut obs = healthy();
    let both = Serving {
        all: 2,
        with_slots: 2,
    };
    assert_eq!(
        serving(&status, &obs, &["c-0-0".into(), "c-1-0".into()]),
        both
    );
    assert_eq!(
        serving(&status, &obs, &["c-0-0".into(), "c-1-1".into()]).all,
        1
    );
    obs.pods.get_mut("c-0-0").unwrap().ready = false;
    assert_eq!(
        serving(&status, &obs, &["c-0-0".into(), "c-1-0".into()]).with_slots,
        1
    );
    // A shard that owns no slots yet counts for moves, not for clients.
    let mut adding = settled();
    adding.shards[1].slots.clear();
    let obs = healthy();
    let s = serving(&adding, &obs, &["c-0-0".into()]);
    assert_eq!((s.all, s.with_slots), (1, 1));
}

#[test]
fn the_status_reports_phase_conditions_and_when_to_look_again() {
    let cc = cluster(2, 1);
    let mut prev = settled();
    prev.phase = Some("Pending".into());
    let doc = super::super::topology::document(prev.epoch, &prev.shards).unwrap();
    let two = Serving {
        all: 2,
        with_slots: 2,
    };
    let out = conclude(&cc, shape(), &prev, prev.clone(), Some(&doc), two, None);
    assert_eq!(out.status.phase.as_deref(), Some("Ready"));
    assert_eq!(out.notes[0].reason, "ClusterReady");
    assert_eq!(out.status.observed_generation, Some(3));
    assert_eq!(out.status.current_shards, 2);
    assert_eq!(
        out.status.endpoints.as_ref().unwrap().primary,
        format!("c.ns.svc:{CLIENT_PORT}")
    );
    let cond = |t: &str| {
        out.status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
            .clone()
    };
    assert_eq!(cond("Ready").status, "True");
    assert_eq!(cond("Rebalancing").reason, "Balanced");
    assert_eq!(out.requeue, LEASE_RENEW_EVERY, "replicas: leases to renew");
    // Ready again: no second event.
    let again = conclude(
        &cc,
        shape(),
        &out.status,
        out.status.clone(),
        Some(&doc),
        two,
        None,
    );
    assert!(again.notes.is_empty());
    // A shard not serving: Degraded, since it was Ready.
    let mut moving = out.status.clone();
    copying(&mut moving);
    let degraded = conclude(
        &cc,
        shape(),
        &out.status,
        moving,
        Some(&doc),
        Serving {
            all: 1,
            with_slots: 1,
        },
        Some(Duration::from_millis(300)),
    );
    assert_eq!(degraded.status.phase.as_deref(), Some("Degraded"));
    let rebalancing = degraded
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Rebalancing")
        .unwrap();
    assert_eq!(rebalancing.status, "True");
    assert_eq!(rebalancing.message, "0 of 1 moves done towards 2 shards");
    assert_eq!(degraded.requeue, Duration::from_millis(300));
    // Without replicas nothing needs renewing.
    let lone = Shape {
        replicas: 0,
        ..shape()
    };
    let idle = conclude(&cc, lone, &prev, prev.clone(), Some(&doc), two, None);
    assert_eq!(idle.requeue, IDLE_READY);
    let waiting = conclude(
        &cc,
        lone,
        &prev,
        prev.clone(),
        None,
        Serving::default(),
        None,
    );
    assert_eq!(waiting.requeue, IDLE_NOT_READY);
    assert_eq!(waiting.status.phase.as_deref(), Some("Pending"));
    // A shard added without slots yet, not serving: still Ready.
    let mut adding = out.status.clone();
    adding.shards.push(ShardStatus {
        name: "c-2".into(),
        slots: vec![],
        primary: Some(node("c-2-0")),
        replicas: vec![],
    });
    let three = Shape {
        wanted: 3,
        shards: 3,
        ..shape()
    };
    let growing = conclude(&cc, three, &out.status, adding, Some(&doc), two, None);
    assert_eq!(growing.status.phase.as_deref(), Some("Ready"));
    assert_eq!(growing.status.current_shards, 3);
}

#[test]
fn an_invalid_spec_only_sets_its_condition() {
    let cc = cluster(2, 1);
    let prev = settled();
    let (status, note) = invalid(&cc, &prev, "shards must be at least 1");
    assert_eq!(status.shards, prev.shards);
    assert_eq!(status.epoch, prev.epoch);
    let c = &status.conditions[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str()),
        ("SpecValid", "False")
    );
    assert_eq!(note.reason, "InvalidSpec");
    assert!(note.warning);
}

#[test]
fn shards_the_spec_drops_run_until_drained() {
    let cc = cluster(1, 1);
    let s = Shape::of(&cc, &settled());
    assert_eq!((s.wanted, s.shards, s.replicas), (1, 2, 1));
}

#[test]
fn a_cached_object_older_than_the_last_write_waits() {
    assert!(!stale_cache(None, 5));
    assert!(!stale_cache(Some(5), 5));
    assert!(!stale_cache(Some(4), 5));
    assert!(stale_cache(Some(6), 5));
}

#[test]
fn a_rebalance_waits_until_every_shard_serves() {
    let status = settled();
    let doc = super::super::topology::document(status.epoch, &status.shards).unwrap();
    let n = |all| Serving {
        all,
        with_slots: all,
    };
    assert!(all_serving(Some(&doc), n(2), shape()));
    assert!(!all_serving(Some(&doc), n(1), shape()));
    assert!(!all_serving(None, n(2), shape()));
}

#[test]
fn drained_shards_are_pruned_only_when_no_rebalance_runs() {
    let mut status = settled();
    assert_eq!(prune_from(&status, 2), Some(2));
    assert_eq!(prune_from(&status, 1), Some(2), "still in the status");
    copying(&mut status);
    assert_eq!(prune_from(&status, 1), None);
    assert!(is_pruned("c", "c-2", 2));
    assert!(is_pruned("c", "c-10", 2));
    assert!(!is_pruned("c", "c-1", 2));
    assert!(!is_pruned("c", "cc-3", 2), "another cluster's");
    assert!(!is_pruned("c", "c-x", 2));
}

#[test]
fn a_pod_is_replaced_only_by_a_pass_that_kept_the_epoch() {
    let prev = settled();
    let mut obs = healthy();
    obs.revisions.insert("c-1".into(), "rev2".into());
    let c = changes(&prev, &obs, 1);
    let l = layout("c", shape(), &prev, &obs, &c, None);
    assert_eq!(replacement(&l, &prev), Some("c-1-1"));
    let mut newer = l.clone();
    newer.status.epoch += 1;
    assert_eq!(replacement(&newer, &prev), None);
}

#[test]
fn a_push_installs_only_where_needed_and_never_on_a_guarded_empty_primary() {
    assert_eq!(push(5, 5, true), Push::Has);
    assert_eq!(push(4, 5, false), Push::Install);
    assert_eq!(push(4, 5, true), Push::Install, "it kept its data");
    assert_eq!(push(0, 5, true), Push::Withhold);
    assert_eq!(push(0, 5, false), Push::Install);
}

#[test]
fn a_switchover_replica_is_caught_up_at_the_fence_in_the_same_history() {
    let r = |replid: &str, offset| Replication {
        replid: replid.into(),
        offset,
        ..Replication::default()
    };
    assert!(caught_up(&r("h", 10), "h", 10));
    assert!(caught_up(&r("h", 11), "h", 10));
    assert!(!caught_up(&r("h", 9), "h", 10));
    assert!(!caught_up(&r("g", 99), "h", 10));
}

#[test]
fn serverless_shape_follows_the_autoscalers_choice_not_the_spec() {
    let yaml = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
                metadata: {name: c, namespace: ns}\n\
                spec: {mode: Serverless, shards: 7, serverless: {limits: {dataStorage: {minimum: 1Gi}}}}\n";
    let cc: CacheCluster = serde_yaml::from_str(yaml).unwrap();
    let mut status = settled();
    // Nothing chosen yet: the shards that own slots, within the limits
    // (1Gi of 768Mi shards needs 2).
    assert_eq!(Shape::of(&cc, &status).wanted, 2);
    status.serverless = Some(crate::crd::ServerlessStatus {
        shards: 4,
        ..Default::default()
    });
    let shape = Shape::of(&cc, &status);
    assert_eq!((shape.wanted, shape.shards, shape.replicas), (4, 4, 1));
}

#[test]
fn spares_run_beside_a_settled_cluster_below_its_maximum_only() {
    let status = settled();
    assert_eq!(spare(1, 2, 8, &status), 1);
    assert_eq!(spare(3, 2, 4, &status), 2, "no more than could take slots");
    assert_eq!(spare(1, 2, 2, &status), 0, "at the maximum");
    assert_eq!(
        spare(1, 3, 8, &status),
        0,
        "a wanted shard owns nothing yet"
    );
    // Moves at the same count (a hot shard) or a scale-in keep it: a
    // rebalance once removed the spare when it finished.
    let mut moving = status.clone();
    copying(&mut moving);
    assert_eq!(spare(1, 2, 8, &moving), 1, "moves at the same count");
    let yaml = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\n\
                metadata: {name: c, namespace: ns}\n\
                spec: {mode: Serverless, serverless: {spareShards: 1}}\n";
    let cc: CacheCluster = serde_yaml::from_str(yaml).unwrap();
    let shape = Shape::of(&cc, &status);
    assert_eq!((shape.wanted, shape.spare, shape.shards), (2, 1, 3));
    assert_eq!(shape.keep(), 3);
    assert!(changing(&status, 2, 1), "the spare is not there yet");
}

#[test]
fn a_serverless_cluster_is_changing_until_it_serves_the_chosen_shards() {
    let status = settled();
    assert!(!changing(&status, 2, 0));
    assert!(changing(&status, 3, 0), "a shard to add");
    let mut moving = status.clone();
    copying(&mut moving);
    assert!(changing(&moving, 2, 0));
    let mut pending = status.clone();
    pending.phase = Some("Degraded".into());
    assert!(changing(&pending, 2, 0));
    let mut empty = status.clone();
    empty.shards[1].slots.clear();
    assert!(changing(&empty, 2, 0), "a new shard without slots yet");
}

#[test]
fn limits_reached_are_conditions() {
    let mut conditions = vec![];
    let at = autoscale::AtLimit {
        storage: true,
        compute: false,
    };
    let notes = limit_conditions(&mut conditions, at, Some(1));
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].reason, "AtStorageLimit");
    // Still at the limit: no second Event.
    assert!(limit_conditions(&mut conditions.clone(), at, Some(1)).is_empty());
    let get = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap().clone();
    assert_eq!(get("AtStorageLimit").status, "True");
    assert!(
        get("AtStorageLimit")
            .message
            .contains("keys with a TTL first")
    );
    assert_eq!(get("AtComputeLimit").status, "False");
}
