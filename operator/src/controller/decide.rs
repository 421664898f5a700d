//! The decide step of a reconcile: pure functions of the `CacheCluster`, its
//! recorded status and what this pass observed, returning the status to
//! record, the orders to give and the Events to publish. `reconcile` runs
//! them in order and `act` carries out what they return; where an order's
//! outcome feeds a later decision (a switchover's catch-up, the two-phase
//! push of a just-promoted primary), the next function here takes that
//! outcome as input.
//!
//! The rules, in the order a pass applies them:
//!
//! 1. [`changes`]: while a move copies, nothing changes the layout (a
//!    document with the old layout under a newer epoch would undo the
//!    move's handoff on the nodes); else a lost primary's best replica is
//!    promoted ([`super::failover::judge`]); else, with no rebalance under
//!    way, the switchover of a primary that must leave its pod (a drain, a
//!    smaller shard: [`super::evacuate::next`]) or one step of a rolling
//!    change ([`super::rolling::next_step`]).
//! 2. [`layout`]: the shards to record and the epoch ([`super::epoch`]): a
//!    new primary is a new document even when nothing else changed. The
//!    status records it before any node hears of it.
//! 3. [`push_plan`], [`released`]: who gets the document now, and which
//!    just-promoted primaries only once their shard's other replicas took
//!    it ([`super::failover::held_promotions`]); a primary that restarted
//!    empty is not handed its shard while a replica holds its data.
//! 4. [`waive_lease`]: a switchover's new primary writes at once only if
//!    the old one holds the new document too.
//! 5. [`conclude`]: phase, conditions, endpoints and when to look again.

use std::collections::BTreeMap;
use std::time::Duration;

use tidecache_topology::Topology;

use super::desired::{self, CLIENT_PORT};
use super::failover::{self, Seen};
use super::rolling::{self, Step};
use super::status::{Observed, readiness, set_condition};
use super::topology::{PodView, plan};
use super::{autoscale, epoch, evacuate, resharding};
use crate::crd::{
    CacheCluster, CacheClusterStatus, Endpoints, Mode, MoveState, NodeStatus, ShardStatus,
};

/// How long a primary may fail to answer before it is replaced.
pub const FAILOVER_AFTER: Duration = Duration::from_secs(2);
/// How often a cluster with replicas is visited: each visit renews its
/// primaries' write leases (the node's `--write-lease-ms` is 3 s).
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often a Ready cluster without replicas is visited.
pub const IDLE_READY: Duration = Duration::from_secs(30);
/// How often a cluster that is not Ready is visited.
pub const IDLE_NOT_READY: Duration = Duration::from_secs(3);

/// What a pass read before deciding.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The cluster's pods, by name.
    pub pods: BTreeMap<String, PodView>,
    /// What each node of the recorded shards answered, by pod name.
    pub seen: BTreeMap<String, Seen>,
    /// Each shard's current template revision, by shard (StatefulSet) name.
    pub revisions: BTreeMap<String, String>,
}

/// An Event to publish on the `CacheCluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    /// CamelCase, stable: what users filter on.
    pub reason: &'static str,
    pub action: &'static str,
    pub message: String,
}

impl Note {
    pub fn normal(reason: &'static str, action: &'static str, message: String) -> Self {
        Note {
            warning: false,
            reason,
            action,
            message,
        }
    }

    pub fn warning(reason: &'static str, action: &'static str, message: String) -> Self {
        Note {
            warning: true,
            reason,
            action,
            message,
        }
    }
}

/// The shard counts a pass works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// What the spec asks for (in Serverless mode, what the autoscaler
    /// chose): the shards that own slots once the cluster is settled.
    pub wanted: usize,
    /// Warm spares kept beside them, owning no slots ([`spare`]).
    pub spare: usize,
    /// What exists: shards the spec drops keep running until their slots
    /// have moved away.
    pub shards: usize,
    pub replicas: usize,
}

impl Shape {
    pub fn of(cc: &CacheCluster, status: &CacheClusterStatus) -> Self {
        let limits = match cc.spec.mode {
            Mode::Provisioned => None,
            // Validation has made sure the limits can be read.
            Mode::Serverless => autoscale::Limits::of(&cc.spec).ok(),
        };
        let (wanted, spare) = match (cc.spec.mode, limits) {
            (Mode::Provisioned, _) => (cc.spec.shards as usize, 0),
            (Mode::Serverless, None) => (1, 0),
            // The autoscaler's choice, recorded in status.
            (Mode::Serverless, Some(l)) => {
                let wanted = autoscale::chosen(
                    &l,
                    status.serverless.as_ref().map(|s| s.shards),
                    owning(status),
                );
                let asked = cc.spec.serverless.as_ref().map_or(0, |s| s.spare_shards);
                (wanted, spare(asked, wanted, l.max_shards, status))
            }
        };
        Shape {
            wanted,
            spare,
            shards: (wanted + spare).max(status.shards.len()),
            replicas: cc.spec.replicas() as usize,
        }
    }

    /// The shards a settled cluster runs: the wanted ones and the spares.
    pub fn keep(&self) -> usize {
        self.wanted + self.spare
    }
}

/// How many warm spares to run beside `wanted` shards: the `asked` ones,
/// but none that could never take slots (past the shard maximum), and
/// none while a wanted shard has no slots yet (a scale-out under way). A
/// scale-out is then only a slot move onto a spare that already serves,
/// and no new spare starting holds it up (a move starts only once every
/// shard serves); the spare is replenished after. Moves at the same shard
/// count or a scale-in keep the spare (a scale-in's drained shard becomes
/// it).
pub fn spare(asked: i32, wanted: usize, max_shards: usize, status: &CacheClusterStatus) -> usize {
    let owning = status.shards.len() >= wanted
        && status.shards[..wanted].iter().all(|s| !s.slots.is_empty());
    if owning {
        usize::try_from(asked)
            .unwrap_or(0)
            .min(max_shards.saturating_sub(wanted))
    } else {
        0
    }
}

/// Shards of `status` that own slots.
pub fn owning(status: &CacheClusterStatus) -> usize {
    status.shards.iter().filter(|s| !s.slots.is_empty()).count()
}

/// Whether a Serverless cluster is in the middle of a change: moves
/// planned or running, shards that do not own slots yet, a shard count
/// not yet the one chosen (with its spares), or not every slot served.
pub fn changing(status: &CacheClusterStatus, wanted: usize, spare: usize) -> bool {
    status.rebalance.is_some()
        || !resharding::settled(&status.shards, wanted, spare)
        || status.phase.as_deref() != Some("Ready")
}

/// The conditions a Serverless decision sets: `AtStorageLimit` (nodes
/// evict, keys with a TTL first) and `AtComputeLimit` (nodes keep
/// serving, slower).
pub fn limit_conditions(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    at: autoscale::AtLimit,
    generation: Option<i64>,
) -> Vec<Note> {
    let (storage, compute) = (at.storage, at.compute);
    let was = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let mut notes = Vec::new();
    if storage && !was("AtStorageLimit") {
        notes.push(Note::warning(
            "AtStorageLimit",
            "Autoscale",
            "the data needs more shards than serverless.limits.dataStorage.maximum allows: nodes evict, keys with a TTL first".into(),
        ));
    }
    if compute && !was("AtComputeLimit") {
        notes.push(Note::warning(
            "AtComputeLimit",
            "Autoscale",
            "the load needs more shards than serverless.limits.compute.maximum allows: nodes keep serving, slower".into(),
        ));
    }
    set_condition(
        conditions,
        "AtStorageLimit",
        storage,
        if storage {
            "DataStorageMaximum"
        } else {
            "BelowLimit"
        },
        if storage {
            "the data needs more than serverless.limits.dataStorage.maximum: nodes evict, keys with a TTL first".into()
        } else {
            "the data fits within serverless.limits.dataStorage.maximum".into()
        },
        generation,
    );
    set_condition(
        conditions,
        "AtComputeLimit",
        compute,
        if compute {
            "ComputeMaximum"
        } else {
            "BelowLimit"
        },
        if compute {
            "the load needs more CPU than serverless.limits.compute.maximum: nodes keep serving, slower".into()
        } else {
            "the load fits within serverless.limits.compute.maximum".into()
        },
        generation,
    );
    notes
}

/// A lost primary replaced by a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub shard: usize,
    pub replica: String,
    pub reason: String,
}

/// What changes the layout this pass, before anything is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// A move is copying: no new document this pass.
    pub held: bool,
    pub promotions: Vec<Promotion>,
    /// Shards whose primary is lost but that no replica can take over yet
    /// (name, why): also every pass while a new cluster's pods start.
    pub stuck: Vec<(String, String)>,
    /// The rolling change's step ([`Step::Done`] when none is considered).
    pub rolling: Step,
}

/// Rule 1 (see the module documentation). `replicas`: the replicas per
/// shard the spec asks for.
pub fn changes(prev: &CacheClusterStatus, obs: &Observation, replicas: usize) -> Changes {
    let held = resharding::holds_topology(prev.rebalance.as_ref());
    let mut out = Changes {
        held,
        promotions: Vec::new(),
        stuck: Vec::new(),
        rolling: Step::Done,
    };
    // While a move copies, only the shards outside it may fail over, and
    // only while there is room below its epoch.
    let moving = resharding::moving(prev.rebalance.as_ref());
    if held && epoch::during_move(prev).is_none() {
        return out;
    }
    let unseen = Seen::default();
    let seen = |pod: &str| obs.seen.get(pod).unwrap_or(&unseen);
    for (i, shard) in prev.shards.iter().enumerate() {
        let Some(primary) = &shard.primary else {
            continue;
        };
        if moving.contains(&shard.name.as_str()) {
            continue;
        }
        let replicas: Vec<(&str, &Seen)> = shard
            .replicas
            .iter()
            .map(|r| (r.pod.as_str(), seen(&r.pod)))
            .collect();
        match failover::judge(
            prev.epoch,
            (&primary.pod, seen(&primary.pod)),
            &replicas,
            FAILOVER_AFTER,
        ) {
            failover::Verdict::Healthy => {}
            failover::Verdict::Stuck(why) => out.stuck.push((shard.name.clone(), why)),
            failover::Verdict::Promote { replica, reason } => out.promotions.push(Promotion {
                shard: i,
                replica,
                reason,
            }),
        }
    }
    if out.promotions.is_empty() && prev.rebalance.is_none() {
        // A primary that must leave its pod goes first, then the template.
        out.rolling =
            evacuate::next(&prev.shards, &obs.pods, &obs.seen, replicas).unwrap_or_else(|| {
                rolling::next_step(&prev.shards, &obs.pods, &obs.revisions, &obs.seen)
            });
    }
    out
}

/// A planned switchover: the shard's current primary and the replica that
/// takes over, once the old one is fenced and the new one has caught up.
pub fn switchover(prev: &CacheClusterStatus, step: &Step) -> Option<(NodeStatus, NodeStatus)> {
    let Step::Switchover { shard, to } = step else {
        return None;
    };
    let s = prev.shards.get(*shard)?;
    let old = s.primary.clone()?;
    let new = s.replicas.iter().find(|r| r.pod == *to)?.clone();
    Some((old, new))
}

/// The layout a pass records and pushes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The status with the shards and epoch to record, before any push.
    pub status: CacheClusterStatus,
    /// The shards as planned, with every primary's current address (while
    /// a move holds the layout, `status.shards` keeps the recorded ones).
    pub addresses: Vec<ShardStatus>,
    /// The document to push, once every primary has an address.
    pub document: Option<Topology>,
    /// Primaries that must not be handed their shard should they answer
    /// without any topology (restarted empty): a replica holds the data,
    /// and the next pass promotes it.
    pub guarded: Vec<String>,
    /// A switchover made this pass: (old primary, new primary).
    pub switchover: Option<(NodeStatus, NodeStatus)>,
    /// A pod to replace for a rolling change, once the layout is pushed.
    pub replace: Option<String>,
    pub notes: Vec<Note>,
}

/// Rule 2. `caught_up`: for a [`Step::Switchover`], whether the new
/// primary reached the fenced old primary's last write (`None` when no
/// switchover was tried).
pub fn layout(
    name: &str,
    shape: Shape,
    prev: &CacheClusterStatus,
    obs: &Observation,
    changes: &Changes,
    caught_up: Option<bool>,
) -> Layout {
    let mut notes = Vec::new();
    let mut recorded = prev.shards.clone();
    for p in &changes.promotions {
        notes.push(Note::warning(
            "Failover",
            "Promote",
            format!("shard {}: {}", recorded[p.shard].name, p.reason),
        ));
        let address = obs
            .pods
            .get(&p.replica)
            .and_then(|v| v.ip.as_ref())
            .map(|ip| format!("{ip}:{CLIENT_PORT}"))
            .unwrap_or_default();
        recorded[p.shard].primary = Some(NodeStatus {
            pod: p.replica.clone(),
            address,
        });
    }
    let mut switched = None;
    let mut replace = None;
    match (&changes.rolling, switchover(prev, &changes.rolling)) {
        (Step::Replace(pod), _) => replace = Some(pod.clone()),
        (Step::Switchover { shard, .. }, Some((old, new))) => {
            if caught_up == Some(true) {
                recorded[*shard].primary = Some(new.clone());
                switched = Some((old, new));
            } else {
                notes.push(Note::warning(
                    "SwitchoverAborted",
                    "Promote",
                    format!(
                        "{} did not reach {}'s last write in time; {} stays primary",
                        new.pod, old.pod, old.pod
                    ),
                ));
            }
        }
        _ => {}
    }
    let mut planned = plan(
        name,
        shape.shards,
        shape.replicas,
        prev.epoch,
        epoch::next(prev),
        &recorded,
        &obs.pods,
    );
    // A new primary is a new document, whatever else stayed; so is a
    // fence to lift (a switchover called off).
    if (!changes.promotions.is_empty() || caught_up.is_some()) && planned.epoch == prev.epoch {
        planned.epoch = epoch::next(prev);
    }
    let mut status = prev.clone();
    if !changes.held {
        status.epoch = planned.epoch;
        status.shards = planned.shards.clone();
    } else if let (false, Some(epoch)) = (changes.promotions.is_empty(), epoch::during_move(prev)) {
        // A failover while a move copies: only the promoted shards change,
        // under an epoch below the move's.
        status.epoch = epoch;
        for p in &changes.promotions {
            status.shards[p.shard] = planned.shards[p.shard].clone();
        }
    }
    let document = super::topology::document(status.epoch, &status.shards);
    let guarded = status
        .shards
        .iter()
        .filter(|s| {
            s.replicas.iter().any(|r| {
                obs.seen
                    .get(&r.pod)
                    .and_then(|r| r.replication.as_ref())
                    .is_some_and(|r| r.is_synced_replica())
            })
        })
        .filter_map(|s| Some(s.primary.as_ref()?.pod.clone()))
        .collect();
    Layout {
        status,
        addresses: planned.shards,
        document,
        guarded,
        switchover: switched,
        replace,
        notes,
    }
}

/// Who holds the document, as [`failover::held_promotions`] reads it.
fn held_promotions(
    status: &CacheClusterStatus,
    obs: &Observation,
    epoch: u64,
    acked: &[String],
) -> Vec<String> {
    let members: Vec<(&str, Vec<&str>)> = status
        .shards
        .iter()
        .filter_map(|s| {
            let replicas = s.replicas.iter().map(|r| r.pod.as_str()).collect();
            Some((s.primary.as_ref()?.pod.as_str(), replicas))
        })
        .collect();
    let replica_now = |n: &str| {
        obs.seen
            .get(n)
            .and_then(|s| s.replication.as_ref())
            .is_some_and(|r| !r.primary)
    };
    let may_renew =
        |n: &str| obs.seen.get(n).is_some_and(|s| s.pod_alive && s.answered()) && replica_now(n);
    let has = |n: &str| {
        obs.seen.get(n).is_some_and(|s| s.epoch == Some(epoch)) || acked.iter().any(|a| a == n)
    };
    failover::held_promotions(&members, replica_now, may_renew, has)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Rule 3, first phase: the pods whose push waits (just-promoted primaries
/// whose shard's replicas may still renew the old primary's lease).
pub fn push_plan(layout: &Layout, obs: &Observation, doc: &Topology) -> Vec<String> {
    held_promotions(&layout.status, obs, doc.epoch, &[])
}

/// Rule 3, second phase: of the `held` pods, those that may have the
/// document now that `acked` acknowledged it.
pub fn released(
    layout: &Layout,
    obs: &Observation,
    doc: &Topology,
    held: &[String],
    acked: &[String],
) -> Vec<String> {
    let still = held_promotions(&layout.status, obs, doc.epoch, acked);
    held.iter()
        .filter(|p| !still.contains(p))
        .cloned()
        .collect()
}

/// Rule 4: whether a switchover's new primary may write at once. Only if
/// both hold the new document: an old primary that missed it lifts its
/// fence by itself after a while and would take writes beside the new one.
pub fn waive_lease(old: &NodeStatus, new: &NodeStatus, acked: &[String]) -> bool {
    acked.contains(&new.pod) && acked.contains(&old.pod)
}

/// Shards whose primary acknowledged the document and is Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Serving {
    /// Of every shard (a move needs its target serving too).
    pub all: usize,
    /// Of the shards that own slots: what clients see. A shard just added
    /// owns nothing yet, and its start does not make the cluster Degraded.
    pub with_slots: usize,
}

pub fn serving(status: &CacheClusterStatus, obs: &Observation, acked: &[String]) -> Serving {
    let up: Vec<&ShardStatus> = status
        .shards
        .iter()
        .filter(|s| {
            s.primary.as_ref().is_some_and(|p| {
                acked.contains(&p.pod) && obs.pods.get(&p.pod).is_some_and(|v| v.ready)
            })
        })
        .collect();
    Serving {
        all: up.len(),
        with_slots: up.iter().filter(|s| !s.slots.is_empty()).count(),
    }
}

/// Whether the cached object is older than the status this operator last
/// wrote (`written`): a pass on it could renew the lease of a primary just
/// replaced, so it waits for the cache to catch up.
pub fn stale_cache(written: Option<u64>, recorded: u64) -> bool {
    written.is_some_and(|e| e > recorded)
}

/// How long to wait for a stale cache ([`stale_cache`]).
pub const STALE_CACHE_WAIT: Duration = Duration::from_millis(200);

/// Whether every shard serves the document: a rebalance plans or starts
/// moves only then.
pub fn all_serving(document: Option<&Topology>, serving: Serving, shape: Shape) -> bool {
    document.is_some() && serving.all == shape.shards
}

/// The shards whose objects may be deleted: numbers from the returned one
/// up. None while a rebalance runs (a leaving shard still owns slots until
/// its moves are done); else whatever the spec and the status both leave.
pub fn prune_from(status: &CacheClusterStatus, keep: usize) -> Option<usize> {
    status
        .rebalance
        .is_none()
        .then(|| keep.max(status.shards.len()))
}

/// Whether StatefulSet `name` of cluster `cluster` is shard `keep` or
/// above (`<cluster>-<index>`): one to delete.
pub fn is_pruned(cluster: &str, name: &str, keep: usize) -> bool {
    name.strip_prefix(cluster)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i >= keep)
}

/// The pod a rolling change replaces this pass: only when the layout kept
/// its epoch (a pass that changed the document replaces nothing, so that
/// at most one thing changes at a time).
pub fn replacement<'a>(layout: &'a Layout, prev: &CacheClusterStatus) -> Option<&'a str> {
    layout
        .replace
        .as_deref()
        .filter(|_| layout.status.epoch == prev.epoch)
}

/// What a push does with one node that answered its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// It runs the document already.
    Has,
    /// It restarted empty (no topology at all) and a replica holds its
    /// shard's data: it is not handed the shard (see [`Layout::guarded`]).
    Withhold,
    Install,
}

/// Rule 3 for one node: `epoch` is what it runs, `doc_epoch` the document's.
pub fn push(epoch: u64, doc_epoch: u64, guarded: bool) -> Push {
    if epoch == doc_epoch {
        Push::Has
    } else if epoch == 0 && guarded {
        Push::Withhold
    } else {
        Push::Install
    }
}

/// Whether a switchover's replica has every write the fenced primary took:
/// same history, at or past the fence's offset.
pub fn caught_up(
    replication: &tidecache_topology::admin::Replication,
    replid: &str,
    end: u64,
) -> bool {
    replication.replid == replid && replication.offset >= end
}

/// What the end of a pass writes and when it looks again.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: CacheClusterStatus,
    pub notes: Vec<Note>,
    pub requeue: Duration,
}

/// Rule 5: phase, conditions and endpoints of `status`, given the document
/// pushed and how many shards serve it, and the requeue (`rebalance_after`:
/// when the rebalance wants to look again, if it does).
pub fn conclude(
    cc: &CacheCluster,
    shape: Shape,
    prev: &CacheClusterStatus,
    mut status: CacheClusterStatus,
    document: Option<&Topology>,
    serving: Serving,
    rebalance_after: Option<Duration>,
) -> Outcome {
    let generation = cc.metadata.generation;
    let name = cc.metadata.name.as_deref().unwrap_or_default();
    let ns = cc.metadata.namespace.as_deref().unwrap_or_default();
    let observed = Observed {
        has_document: document.is_some(),
        assigned_slots: document.map_or(0, Topology::assigned_slots),
        serving_shards: serving.with_slots,
        shards: owning(&status),
        was_ready: matches!(prev.phase.as_deref(), Some("Ready" | "Degraded")),
    };
    let (phase, ready, reason, message) = readiness(&observed);
    let mut notes = Vec::new();
    if phase == "Ready" && prev.phase.as_deref() != Some("Ready") {
        notes.push(Note::normal("ClusterReady", "Reconcile", message.clone()));
    }
    status.phase = Some(phase.into());
    status.observed_generation = generation;
    // The spares serve no data: what clients are served by.
    status.current_shards = (shape.shards - shape.spare) as i32;
    status.replicas_per_shard = shape.replicas as i32;
    status.selector = Some(desired::selector_string(cc));
    status.endpoints = Some(Endpoints {
        primary: format!("{name}.{ns}.svc:{CLIENT_PORT}"),
    });
    set_condition(
        &mut status.conditions,
        "SpecValid",
        true,
        "Valid",
        "the spec is valid".into(),
        generation,
    );
    let (rebalancing, why) = match &status.rebalance {
        Some(r) => (
            true,
            format!(
                "{} of {} moves done towards {} shards",
                r.moves
                    .iter()
                    .filter(|m| m.state == MoveState::Done)
                    .count(),
                r.moves.len(),
                r.shards
            ),
        ),
        None => (
            false,
            format!("{} shards as the spec asks", status.shards.len()),
        ),
    };
    set_condition(
        &mut status.conditions,
        "Rebalancing",
        rebalancing,
        if rebalancing {
            "MovingSlots"
        } else {
            "Balanced"
        },
        why,
        generation,
    );
    set_condition(
        &mut status.conditions,
        "Ready",
        ready,
        reason,
        message,
        generation,
    );
    let idle = if shape.replicas > 0 {
        LEASE_RENEW_EVERY
    } else if ready {
        IDLE_READY
    } else {
        IDLE_NOT_READY
    };
    Outcome {
        status,
        notes,
        requeue: rebalance_after.map_or(idle, |r| r.min(idle)),
    }
}

/// The status an invalid spec leaves: the previous one with
/// `SpecValid=False`, and a Warning.
pub fn invalid(
    cc: &CacheCluster,
    prev: &CacheClusterStatus,
    error: &str,
) -> (CacheClusterStatus, Note) {
    let mut status = prev.clone();
    set_condition(
        &mut status.conditions,
        "SpecValid",
        false,
        "InvalidSpec",
        error.to_owned(),
        cc.metadata.generation,
    );
    (
        status,
        Note::warning("InvalidSpec", "Validate", error.to_owned()),
    )
}

#[cfg(test)]
mod tests;
