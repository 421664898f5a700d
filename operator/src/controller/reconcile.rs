//! The reconcile loop: the only part of the controller that does I/O.
//!
//! Each pass: validate → ensure the auth Secret → apply Services and
//! StatefulSets (server-side apply, one field manager) → observe pods →
//! plan the topology → push it to every node → write status. Every step is
//! idempotent, so a pass interrupted anywhere (an operator restart) is simply
//! run again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource as _, ResourceExt as _};
use serde::de::DeserializeOwned;
use tidecache_topology::admin::{AdminClient, LeaseOrder};
use tracing::{debug, info, warn};

use super::Error;
use super::desired::{self, Defaults, MANAGER, labels};
use super::rebalance::SlotLoad;
use super::resharding::{self, COPYING, DONE, PENDING, Verdict};
use super::status::{Observed, readiness, set_condition};
use super::topology::{PodView, plan};
use super::validate::validate;
use super::{failover, rolling};
use crate::crd::{CacheCluster, CacheClusterStatus, Endpoints};
use crate::metrics::Metrics;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub defaults: Defaults,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Timeout for each admin connection and reply.
    pub admin_timeout: Duration,
    /// What earlier passes learnt that the status does not hold.
    pub memory: Memory,
}

/// Kept between passes, in memory only (a restarted operator relearns it
/// within seconds).
#[derive(Default)]
pub struct Memory {
    /// Since when each node (`namespace/pod`) has failed to answer.
    unreachable: std::sync::Mutex<BTreeMap<String, std::time::Instant>>,
    /// The last epoch this operator wrote to each cluster's status
    /// (`namespace/name`): a cached object older than that is stale, and a
    /// pass on it could renew the lease of a primary just replaced.
    epochs: std::sync::Mutex<BTreeMap<String, u64>>,
}

/// How long a primary may fail to answer before it is replaced.
const FAILOVER_AFTER: Duration = Duration::from_secs(2);
/// How often a cluster with replicas is visited: each visit renews its
/// primaries' write leases (the node's `--write-lease-ms` is 3 s).
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(1);

/// Runs the controller until the stream ends (shutdown).
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let clusters = Api::<CacheCluster>::all(client.clone());
    let pod_selector = format!("{}=tidecache", labels::NAME);
    Controller::new(clusters, watcher::Config::default())
        .owns(
            Api::<StatefulSet>::all(client.clone()),
            watcher::Config::default(),
        )
        // Pod changes (a restart, a new IP, readiness) call for a re-push.
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(&pod_selector),
            |pod: Pod| {
                let cluster = pod.labels().get(labels::CLUSTER)?.clone();
                Some(ObjectRef::<CacheCluster>::new(&cluster).within(&pod.namespace()?))
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => {
                    debug!(cluster = %obj.name, namespace = ?obj.namespace, "reconciled")
                }
                Err(e) => debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

fn error_policy(cc: Arc<CacheCluster>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_error(err.metric_label());
    warn!(cluster = %cc.name_any(), namespace = ?cc.namespace(), error = %err, "reconcile failed");
    match err {
        // Nothing changes until the user edits the spec, which triggers a reconcile anyway.
        Error::InvalidSpec(_) => Action::requeue(Duration::from_secs(300)),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

async fn reconcile(cc: Arc<CacheCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let ns = cc.namespace().ok_or(Error::NoNamespace)?;
    if cc.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove everything.
        return Ok(Action::await_change());
    }
    let name = cc.name_any();
    let prev_status = cc.status.clone().unwrap_or_default();
    let key = format!("{ns}/{name}");
    let written_epoch = ctx
        .memory
        .epochs
        .lock()
        .expect("epochs lock")
        .get(&key)
        .copied();
    if written_epoch.is_some_and(|e| e > prev_status.epoch) {
        debug!(cluster = %name, "cached status older than the last write; waiting for it");
        return Ok(Action::requeue(Duration::from_millis(200)));
    }

    if let Err(e) = validate(&cc.spec) {
        publish(
            &ctx,
            &cc,
            EventType::Warning,
            "InvalidSpec",
            "Validate",
            e.to_string(),
        )
        .await;
        let mut status = prev_status.clone();
        set_condition(
            &mut status.conditions,
            "SpecValid",
            false,
            "InvalidSpec",
            e.to_string(),
            cc.metadata.generation,
        );
        write_status(&ctx, &cc, &ns, &prev_status, status).await?;
        return Err(e);
    }

    // Shards the spec drops keep running until their slots have moved away.
    let wanted = cc.spec.shards as usize;
    let shards = wanted.max(prev_status.shards.len());

    let admin_password = ensure_auth_secret(&ctx, &cc, &ns).await?;
    apply_objects(&ctx, &cc, &ns, shards).await?;

    let pods = observe_pods(&ctx, &ns, &name).await?;
    let replicas = cc.spec.replicas_per_shard as usize;
    // While a move is copying, no new document is made: one with the old
    // layout under a newer epoch would undo the move's handoff on the
    // nodes (and the source drops its copy once handed off). Changes wait
    // until the move is judged, within seconds; the fresh addresses are
    // still used to reach the move's nodes.
    let copying = resharding::holds_topology(prev_status.rebalance.as_ref());

    // Every node of the recorded document: reachable, on which epoch,
    // how far replicated. Primaries' leases are renewed on the way.
    let seen = survey(&ctx, &ns, &admin_password, &prev_status, &pods).await;
    let mut recorded = prev_status.shards.clone();
    let mut failed_over = false;
    if !copying {
        for shard in &mut recorded {
            let Some(primary) = shard.primary.clone() else {
                continue;
            };
            let unseen = failover::Seen::default();
            let replicas: Vec<(&str, &failover::Seen)> = shard
                .replicas
                .iter()
                .map(|r| (r.pod.as_str(), seen.get(&r.pod).unwrap_or(&unseen)))
                .collect();
            let verdict = failover::judge(
                prev_status.epoch,
                (&primary.pod, seen.get(&primary.pod).unwrap_or(&unseen)),
                &replicas,
                FAILOVER_AFTER,
            );
            match verdict {
                failover::Verdict::Healthy => {}
                failover::Verdict::Stuck(why) => {
                    // Also every pass while a new cluster's pods start.
                    debug!(cluster = %name, shard = %shard.name, "{why}");
                }
                failover::Verdict::Promote { replica, reason } => {
                    warn!(cluster = %name, shard = %shard.name, "failover: {reason}");
                    publish(
                        &ctx,
                        &cc,
                        EventType::Warning,
                        "Failover",
                        "Promote",
                        format!("shard {}: {reason}", shard.name),
                    )
                    .await;
                    ctx.metrics.failover();
                    let address = pods
                        .get(&replica)
                        .and_then(|p| p.ip.as_ref())
                        .map(|ip| format!("{ip}:{}", desired::CLIENT_PORT))
                        .unwrap_or_default();
                    shard.primary = Some(crate::crd::NodeStatus {
                        pod: replica,
                        address,
                    });
                    failed_over = true;
                }
            }
        }
    }
    // A rolling change: one pod replaced, or one switchover, per pass,
    // and only while nothing else changes the cluster.
    let mut switchover = None;
    let mut fenced_only = false;
    let mut replace = None;
    if !copying && !failed_over && prev_status.rebalance.is_none() {
        let revisions = shard_revisions(&ctx, &ns, &name).await?;
        match rolling::next_step(&recorded, &pods, &revisions, &seen) {
            rolling::Step::Done => {}
            rolling::Step::Wait(why) => debug!(cluster = %name, "rolling change waits: {why}"),
            rolling::Step::Replace(pod) => replace = Some(pod),
            rolling::Step::Switchover { shard, to } => {
                let s = &mut recorded[shard];
                let old = s
                    .primary
                    .clone()
                    .expect("a shard switching over has a primary");
                let new = s
                    .replicas
                    .iter()
                    .find(|r| r.pod == to)
                    .cloned()
                    .expect("the switchover's target is a replica");
                info!(cluster = %name, shard = %s.name, from = %old.pod, to = %new.pod, "switchover before replacing the primary");
                // The old primary's writes are fenced and the new one must
                // have every one of them before the layout changes; if not,
                // the layout stays and the new epoch lifts the fence.
                if fence_and_catch_up(&ctx, &admin_password, &old, &new, prev_status.epoch).await {
                    s.primary = Some(new.clone());
                    switchover = Some((old, new));
                } else {
                    publish(
                        &ctx,
                        &cc,
                        EventType::Warning,
                        "SwitchoverAborted",
                        "Promote",
                        format!(
                            "{} did not reach {}'s last write in time; {} stays primary",
                            new.pod, old.pod, old.pod
                        ),
                    )
                    .await;
                    fenced_only = true;
                }
            }
        }
    }
    let mut planned = plan(
        &name,
        shards,
        replicas,
        prev_status.epoch,
        resharding::reserved_epoch(prev_status.rebalance.as_ref()),
        &recorded,
        &pods,
    );
    if (failed_over || switchover.is_some() || fenced_only) && planned.epoch == prev_status.epoch {
        // A new primary is a new document, whatever else stayed.
        planned.epoch = prev_status
            .epoch
            .max(resharding::reserved_epoch(prev_status.rebalance.as_ref()))
            + 1;
    }
    let mut status = prev_status.clone();
    // What the API server holds now, for each later write's diff.
    let mut written = prev_status.clone();
    if !copying {
        if planned.epoch != prev_status.epoch {
            info!(cluster = %name, namespace = %ns, epoch = planned.epoch, "topology changed");
        }
        // Record the plan before pushing it: a node must never hold an
        // epoch the status does not know, or a restarted operator could
        // reuse that epoch for a different document.
        status.epoch = planned.epoch;
        status.shards = planned.shards.clone();
        if planned.epoch != prev_status.epoch {
            write_status(&ctx, &cc, &ns, &written, status.clone()).await?;
            written = status.clone();
        }
    }

    let mut serving = 0;
    let document = super::topology::document(status.epoch, &status.shards);
    if let Some(doc) = &document {
        // A primary that restarted empty must not be handed its shard
        // while a replica holds the data: the replicas would sync from it
        // and drop theirs. The next pass promotes a replica instead.
        let guarded: Vec<String> = status
            .shards
            .iter()
            .filter(|s| {
                s.replicas.iter().any(|r| {
                    seen.get(&r.pod)
                        .and_then(|r| r.replication.as_ref())
                        .is_some_and(|r| r.is_synced_replica())
                })
            })
            .filter_map(|s| Some(s.primary.as_ref()?.pod.clone()))
            .collect();
        // A just-promoted primary gets the document after its shard's other
        // live replicas (see `failover::held_promotions`): two phases.
        let members: Vec<(&str, Vec<&str>)> = status
            .shards
            .iter()
            .filter_map(|s| {
                let replicas = s.replicas.iter().map(|r| r.pod.as_str()).collect();
                Some((s.primary.as_ref()?.pod.as_str(), replicas))
            })
            .collect();
        let replica_now = |n: &str| {
            seen.get(n)
                .and_then(|s| s.replication.as_ref())
                .is_some_and(|r| !r.primary)
        };
        let may_renew =
            |n: &str| seen.get(n).is_some_and(|s| s.pod_alive && s.answered()) && replica_now(n);
        let had = |n: &str| seen.get(n).is_some_and(|s| s.epoch == Some(doc.epoch));
        let held = failover::held_promotions(&members, replica_now, may_renew, had);
        let mut acked = push_topology(&ctx, &cc, doc, &admin_password, &pods, &guarded, &|p| {
            !held.contains(&p)
        })
        .await;
        if !held.is_empty() {
            let has = |n: &str| had(n) || acked.iter().any(|a| a == n);
            let still = failover::held_promotions(&members, replica_now, may_renew, has);
            let ready: Vec<&str> = held
                .iter()
                .copied()
                .filter(|p| !still.contains(p))
                .collect();
            for p in &still {
                info!(cluster = %name, pod = %p, epoch = doc.epoch, "promoted primary waits for its shard's replicas to take the document first");
            }
            if !ready.is_empty() {
                let more = push_topology(&ctx, &cc, doc, &admin_password, &pods, &guarded, &|p| {
                    ready.contains(&p)
                })
                .await;
                acked.extend(more);
            }
        }
        if let Some((old, new)) = &switchover {
            // At once only if the old primary holds the new document too:
            // one that missed it lifts its fence by itself after a while,
            // and would take writes beside the new one.
            let waived = acked.contains(&new.pod)
                && acked.contains(&old.pod)
                && lease_order(&ctx, &admin_password, new, LeaseOrder::Waive, doc.epoch).await;
            let how = if waived {
                "at once: it had every write of the fenced primary"
            } else {
                "after the old primary's write lease"
            };
            publish(
                &ctx,
                &cc,
                EventType::Normal,
                "Switchover",
                "Promote",
                format!(
                    "{} is primary in place of {}, taking writes {how}",
                    new.pod, old.pod
                ),
            )
            .await;
        }
        serving = status
            .shards
            .iter()
            .filter(|s| {
                s.primary.as_ref().is_some_and(|p| {
                    acked.contains(&p.pod) && pods.get(&p.pod).is_some_and(|v| v.ready)
                })
            })
            .count();
    }

    let rebalance_after = rebalance_step(
        &ctx,
        &cc,
        &ns,
        &admin_password,
        &mut status,
        &mut written,
        &planned.shards,
        wanted,
        document.is_some() && serving == shards,
        &seen,
    )
    .await?;

    if status.rebalance.is_none() {
        prune_shards(&ctx, &cc, &ns, wanted.max(status.shards.len())).await?;
    }
    if let Some(pod) = replace
        && status.epoch == prev_status.epoch
    {
        info!(cluster = %name, %pod, "replacing a pod for a rolling change");
        delete_if_present::<Pod>(&ctx, &ns, &pod).await?;
        publish(
            &ctx,
            &cc,
            EventType::Normal,
            "PodReplaced",
            "RollingChange",
            format!("replaced {pod} with the current template"),
        )
        .await;
    }

    let observed = Observed {
        has_document: document.is_some(),
        assigned_slots: document.as_ref().map_or(0, |d| d.assigned_slots()),
        serving_shards: serving,
        shards,
        was_ready: matches!(prev_status.phase.as_deref(), Some("Ready" | "Degraded")),
    };
    let (phase, ready, reason, message) = readiness(&observed);
    if phase == "Ready" && prev_status.phase.as_deref() != Some("Ready") {
        publish(
            &ctx,
            &cc,
            EventType::Normal,
            "ClusterReady",
            "Reconcile",
            message.clone(),
        )
        .await;
    }
    status.phase = Some(phase.into());
    status.observed_generation = cc.metadata.generation;
    status.current_shards = shards as i32;
    status.selector = Some(desired::selector_string(&cc));
    status.endpoints = Some(Endpoints {
        primary: format!("{name}.{ns}.svc:{}", desired::CLIENT_PORT),
    });
    set_condition(
        &mut status.conditions,
        "SpecValid",
        true,
        "Valid",
        "the spec is valid".into(),
        cc.metadata.generation,
    );
    let (rebalancing, why) = match &status.rebalance {
        Some(r) => (
            true,
            format!(
                "{} of {} moves done towards {} shards",
                r.moves.iter().filter(|m| m.state == DONE).count(),
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
        cc.metadata.generation,
    );
    set_condition(
        &mut status.conditions,
        "Ready",
        ready,
        reason,
        message,
        cc.metadata.generation,
    );
    write_status(&ctx, &cc, &ns, &written, status).await?;

    let idle = if replicas > 0 {
        LEASE_RENEW_EVERY
    } else if ready {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(3)
    };
    Ok(Action::requeue(
        rebalance_after.map_or(idle, |r| r.min(idle)),
    ))
}

/// One step of a shard-count change (see [`resharding`]): plans the moves,
/// starts the next one, or checks the one running. Writes the status itself
/// before any order to a node, so that a restart at any point resumes.
/// Returns when to look again while a rebalance is on.
#[allow(clippy::too_many_arguments)]
async fn rebalance_step(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    password: &str,
    status: &mut CacheClusterStatus,
    written: &mut CacheClusterStatus,
    addresses: &[crate::crd::ShardStatus],
    wanted: usize,
    all_serving: bool,
    seen: &BTreeMap<String, failover::Seen>,
) -> Result<Option<Duration>, Error> {
    let name = cc.name_any();
    let soon = Some(Duration::from_millis(300));
    let later = Some(Duration::from_secs(3));
    let Some(r) = &status.rebalance else {
        if resharding::settled(&status.shards, wanted) {
            return Ok(None);
        }
        if !all_serving {
            return Ok(later);
        }
        let Some(loads) = slot_loads(ctx, status, password).await else {
            return Ok(later);
        };
        match resharding::start(&status.shards, wanted, &loads) {
            Ok(r) => {
                let message = format!(
                    "moving {} slot ranges' worth in {} moves to go from {} to {wanted} shards",
                    r.moves.iter().map(|m| m.slots.len()).sum::<usize>(),
                    r.moves.len(),
                    status.shards.iter().filter(|s| !s.slots.is_empty()).count()
                );
                info!(cluster = %name, %message, "rebalance planned");
                publish(
                    ctx,
                    cc,
                    EventType::Normal,
                    "RebalanceStarted",
                    "Rebalance",
                    message,
                )
                .await;
                status.rebalance = Some(r);
                save(ctx, cc, ns, status, written).await?;
                return Ok(soon);
            }
            Err(e) => {
                warn!(cluster = %name, error = %e, "cannot plan a rebalance");
                return Ok(Some(Duration::from_secs(30)));
            }
        }
    };
    let Some(i) = resharding::current(r) else {
        // Every move is done: the shards the spec dropped own nothing now.
        let Some(leaving) = resharding::leaving_drained(&status.shards, wanted) else {
            warn!(cluster = %name, "moves done but a leaving shard still owns slots; planning again");
            status.rebalance = None;
            save(ctx, cc, ns, status, written).await?;
            return Ok(soon);
        };
        if !leaving.is_empty() {
            // A document without the drained shards.
            status.shards.truncate(wanted);
            status.epoch = status
                .epoch
                .max(resharding::reserved_epoch(status.rebalance.as_ref()))
                + 1;
        }
        status.rebalance = None;
        // Their StatefulSets go in `prune_shards`, on this pass and, should
        // a deletion fail, on later ones.
        save(ctx, cc, ns, status, written).await?;
        let message = format!(
            "{wanted} shards; removed {}",
            if leaving.is_empty() {
                "none".to_owned()
            } else {
                leaving.join(", ")
            }
        );
        info!(cluster = %name, %message, "rebalance done");
        publish(
            ctx,
            cc,
            EventType::Normal,
            "RebalanceDone",
            "Rebalance",
            message,
        )
        .await;
        return Ok(soon);
    };
    let mv = r.moves[i].clone();
    // The primaries' current addresses (a restarted pod has a new one).
    let address = |shard: &str| {
        addresses
            .iter()
            .find(|s| s.name == shard)
            .and_then(|s| s.primary.as_ref())
            .and_then(|p| {
                p.address
                    .rsplit_once(':')
                    .map(|(h, p)| (h.to_owned(), p.parse::<u16>().ok()))
            })
            .and_then(|(h, p)| Some((h, p?)))
    };
    let (Some(source), Some(target)) = (address(&mv.from), address(&mv.to)) else {
        return Ok(later);
    };
    if mv.state == PENDING {
        if !all_serving {
            return Ok(later);
        }
        // A failed move waits out its backoff first.
        if let Some(wait) = mv
            .retry_after
            .as_ref()
            .and_then(|t| {
                t.0.duration_since(k8s_openapi::jiff::Timestamp::now())
                    .try_into()
                    .ok()
            })
            .filter(|d: &Duration| !d.is_zero())
        {
            return Ok(Some(wait));
        }
        // The epoch is recorded before any node hears of it.
        let epoch = status
            .epoch
            .max(resharding::reserved_epoch(status.rebalance.as_ref()))
            + 1;
        let m = &mut status.rebalance.as_mut().expect("a rebalance").moves[i];
        m.epoch = epoch;
        m.state = COPYING.into();
        m.attempts += 1;
        save(ctx, cc, ns, status, written).await?;
        let id = resharding::migration_id(&name, epoch);
        let ranges: Vec<tidecache_topology::SlotRange> =
            mv.slots.iter().filter_map(|r| r.parse().ok()).collect();
        let started = async {
            let mut admin =
                AdminClient::connect(&source.0, source.1, password, ctx.admin_timeout).await?;
            admin
                .migrate_start(&id, (&target.0, target.1), epoch, &ranges)
                .await
        }
        .await;
        match started {
            Ok(()) => {
                info!(cluster = %name, %id, from = %mv.from, to = %mv.to, slots = ?mv.slots, "migration started")
            }
            // Judged on the next pass: the target will not know the import.
            Err(e) => warn!(cluster = %name, %id, error = %e, "could not start the migration"),
        }
        return Ok(soon);
    }
    let id = resharding::migration_id(&name, mv.epoch);
    let on_source = async {
        let mut admin =
            AdminClient::connect(&source.0, source.1, password, ctx.admin_timeout).await?;
        admin.migrate_status(&id).await
    }
    .await;
    // An unreachable source may still be migrating, and a move is never
    // retried over it, but a source that is gone holds up its shard's
    // failover (no document while a move copies). The target aborting the
    // import settles it: after that it refuses the source's commit for good.
    let give_up = on_source.is_err() && source_lost(status, &mv.from, seen);
    let on_target = async {
        let mut admin =
            AdminClient::connect(&target.0, target.1, password, ctx.admin_timeout).await?;
        let state = admin.import_status(&id).await?;
        if !(give_up && matches!(state.as_str(), "importing" | "unknown")) {
            return Ok(state);
        }
        match admin.import_abort(&id).await {
            Ok(()) => {
                warn!(cluster = %name, %id, from = %mv.from, "the move's source is lost: its import was aborted");
                admin.import_status(&id).await
            }
            Err(e) => {
                warn!(cluster = %name, %id, error = %e, "could not abort the import of a lost source");
                Ok(state)
            }
        }
    }
    .await
    .ok();
    let source_view = match &on_source {
        Err(_) => resharding::Source::Unreachable,
        Ok(None) => resharding::Source::Unknown,
        Ok(Some(s)) => resharding::Source::Known(s),
    };
    let verdict = resharding::judge(source_view, on_target.as_deref());
    match verdict {
        Verdict::Wait => Ok(soon),
        Verdict::Done => {
            if let Err(e) = resharding::apply_done(&mut status.shards, &mv) {
                warn!(cluster = %name, %id, error = %e, "a finished move does not fit the status; planning again");
                // The nodes know the move's epoch: later documents go above it.
                status.epoch = status.epoch.max(mv.epoch) + 1;
                status.rebalance = None;
            } else {
                // The new layout under the move's epoch, or above it should
                // the status already be there.
                status.epoch = if status.epoch < mv.epoch {
                    mv.epoch
                } else {
                    status.epoch + 1
                };
                status.rebalance.as_mut().expect("a rebalance").moves[i].state = DONE.into();
                info!(cluster = %name, %id, from = %mv.from, to = %mv.to, epoch = mv.epoch, "move done");
            }
            save(ctx, cc, ns, status, written).await?;
            Ok(soon)
        }
        Verdict::Retry(why) => {
            if on_target.as_deref() == Some("importing") {
                let aborted = async {
                    let mut admin =
                        AdminClient::connect(&target.0, target.1, password, ctx.admin_timeout)
                            .await?;
                    admin.import_abort(&id).await
                }
                .await;
                if let Err(e) = aborted {
                    warn!(cluster = %name, %id, error = %e, "could not abort the import; retrying later");
                    return Ok(later);
                }
            }
            warn!(cluster = %name, %id, reason = %why, "move failed; retrying under a new epoch");
            publish(
                ctx,
                cc,
                EventType::Warning,
                "MoveFailed",
                "Rebalance",
                format!("{id}: {why}"),
            )
            .await;
            // The spent epoch becomes the document's: it settles any write
            // freeze the attempt left behind.
            status.epoch = status.epoch.max(mv.epoch);
            let m = &mut status.rebalance.as_mut().expect("a rebalance").moves[i];
            m.state = PENDING.into();
            m.last_error = Some(why);
            let backoff = resharding::retry_backoff(m.attempts);
            m.retry_after = k8s_openapi::jiff::SignedDuration::try_from(backoff)
                .ok()
                .and_then(|d| k8s_openapi::jiff::Timestamp::now().checked_add(d).ok())
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            save(ctx, cc, ns, status, written).await?;
            Ok(Some(backoff))
        }
    }
}

/// Whether the primary of shard `shard` (in status) is gone as a failover
/// judges it ([`failover::Seen::gone`]).
fn source_lost(
    status: &CacheClusterStatus,
    shard: &str,
    seen: &BTreeMap<String, failover::Seen>,
) -> bool {
    let Some(pod) = status
        .shards
        .iter()
        .find(|s| s.name == shard)
        .and_then(|s| s.primary.as_ref())
    else {
        return false;
    };
    seen.get(&pod.pod).is_some_and(|s| s.gone(FAILOVER_AFTER))
}

/// Writes `status` if it differs from what was last written.
async fn save(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    status: &CacheClusterStatus,
    written: &mut CacheClusterStatus,
) -> Result<(), Error> {
    write_status(ctx, cc, ns, written, status.clone()).await?;
    *written = status.clone();
    Ok(())
}

/// Keys and bytes per slot, from each shard's primary, counting only the
/// slots the status gives that shard (a source's copy of a moved slot may
/// linger a moment). `None` if some primary could not be asked.
async fn slot_loads(
    ctx: &Context,
    status: &CacheClusterStatus,
    password: &str,
) -> Option<Vec<SlotLoad>> {
    let owners = resharding::ownership(&status.shards).ok()?;
    let mut loads = vec![SlotLoad::default(); usize::from(tidecache_topology::SLOT_COUNT)];
    for (i, shard) in status.shards.iter().enumerate() {
        let (host, port) = shard.primary.as_ref()?.address.rsplit_once(':')?;
        let mut admin = AdminClient::connect(host, port.parse().ok()?, password, ctx.admin_timeout)
            .await
            .ok()?;
        for (slot, keys, bytes) in admin.slot_stats().await.ok()? {
            if slot < tidecache_topology::SLOT_COUNT && usize::from(owners.owner(slot)) == i {
                loads[usize::from(slot)] = SlotLoad { keys, bytes };
            }
        }
    }
    Some(loads)
}

/// Deletes the StatefulSets (and Services) of shards numbered `keep` and
/// up: shards a scale-in drained and removed from the status.
async fn prune_shards(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    keep: usize,
) -> Result<(), Error> {
    let name = cc.name_any();
    let sts: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    let prefix = format!("{name}-");
    let list = sts
        .list(&ListParams::default().labels(&format!("{}={name}", labels::CLUSTER)))
        .await?;
    for s in list.items {
        let shard = s.name_any();
        let index = shard
            .strip_prefix(&prefix)
            .and_then(|i| i.parse::<usize>().ok());
        if index.is_some_and(|i| i >= keep) {
            delete_shard(ctx, ns, &shard).await?;
            publish(
                ctx,
                cc,
                EventType::Normal,
                "ShardRemoved",
                "Rebalance",
                format!("deleted the drained shard {shard}"),
            )
            .await;
        }
    }
    Ok(())
}

/// Deletes a drained shard's StatefulSet, Service and PodDisruptionBudget
/// (all named after the shard; gone already is fine).
async fn delete_shard(ctx: &Context, ns: &str, shard: &str) -> Result<(), Error> {
    delete_if_present::<StatefulSet>(ctx, ns, shard).await?;
    delete_if_present::<Service>(ctx, ns, shard).await?;
    delete_if_present::<PodDisruptionBudget>(ctx, ns, shard).await?;
    info!(%shard, "deleted a drained shard's StatefulSet, Service and PodDisruptionBudget");
    Ok(())
}

async fn delete_if_present<K>(ctx: &Context, ns: &str, name: &str) -> Result<(), Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the operator's auth Secret once; never regenerates an existing
/// password (re-applying a manifest must not rotate credentials). Returns
/// the admin password.
async fn ensure_auth_secret(ctx: &Context, cc: &CacheCluster, ns: &str) -> Result<String, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = desired::auth_secret_name(&cc.name_any());
    let user_secret = cc
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.password_secret.as_ref());
    if let Some(existing) = api.get_opt(&name).await? {
        let key = |k: &str| -> Option<String> {
            existing
                .data
                .as_ref()?
                .get(k)
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        };
        return key(desired::ADMIN_PASSWORD_KEY).ok_or_else(|| {
            Error::Secret(
                name.clone(),
                format!("has no key {:?}", desired::ADMIN_PASSWORD_KEY),
            )
        });
    }
    if let Some(r) = user_secret {
        // Fail early with a clear message rather than leave pods pending on a missing volume.
        let s = api
            .get_opt(&r.name)
            .await?
            .ok_or_else(|| Error::Secret(r.name.clone(), "does not exist".into()))?;
        if !s.data.as_ref().is_some_and(|d| d.contains_key(&r.key)) {
            return Err(Error::Secret(
                r.name.clone(),
                format!("has no key {:?}", r.key),
            ));
        }
    }
    let admin = random_password();
    let mut data = BTreeMap::from([(
        desired::ADMIN_PASSWORD_KEY.to_owned(),
        ByteString(admin.clone().into_bytes()),
    )]);
    if user_secret.is_none() {
        data.insert(
            "password".into(),
            ByteString(random_password().into_bytes()),
        );
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_owned()),
            labels: Some(desired::cluster_labels(cc)),
            owner_references: Some(vec![cc.controller_owner_ref(&()).expect("uid")]),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    match api
        .create(
            &PostParams {
                field_manager: Some(MANAGER.into()),
                ..PostParams::default()
            },
            &secret,
        )
        .await
    {
        Ok(_) => {
            publish(
                ctx,
                cc,
                EventType::Normal,
                "SecretCreated",
                "Create",
                format!("generated credentials in Secret {name}"),
            )
            .await;
            Ok(admin)
        }
        // Another pass created it first: use what is stored.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Box::pin(ensure_auth_secret(ctx, cc, ns)).await
        }
        Err(e) => Err(e.into()),
    }
}

fn random_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<bool, Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.meta().name.clone().expect("desired objects are named");
    let before = api
        .get_opt(&name)
        .await?
        .and_then(|o| o.meta().resource_version.clone());
    let after = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?;
    Ok(before != after.meta().resource_version)
}

async fn apply_objects(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    shards: usize,
) -> Result<(), Error> {
    let name = cc.name_any();
    if apply(ctx, ns, &desired::client_service(cc)).await? {
        debug!(cluster = %name, "applied client Service");
    }
    for i in 0..shards {
        apply(ctx, ns, &desired::shard_service(cc, i)).await?;
        apply(ctx, ns, &desired::shard_pdb(cc, i)).await?;
        let sts = desired::shard_statefulset(cc, i, &ctx.defaults);
        if apply(ctx, ns, &sts).await? {
            let sts_name = desired::shard_name(&name, i);
            info!(cluster = %name, statefulset = %sts_name, "applied StatefulSet");
            publish(
                ctx,
                cc,
                EventType::Normal,
                "StatefulSetApplied",
                "Apply",
                format!("applied StatefulSet {sts_name}"),
            )
            .await;
        }
    }
    Ok(())
}

async fn observe_pods(
    ctx: &Context,
    ns: &str,
    cluster: &str,
) -> Result<BTreeMap<String, PodView>, Error> {
    Ok(list_of::<Pod>(ctx, ns, cluster)
        .await?
        .into_iter()
        .map(|p| {
            let status = p.status.as_ref();
            let view = PodView {
                ip: status
                    .and_then(|s| s.pod_ip.clone())
                    .filter(|ip| !ip.is_empty()),
                ready: status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
                alive: p.metadata.deletion_timestamp.is_none(),
                revision: p.labels().get("controller-revision-hash").cloned(),
            };
            (p.name_any(), view)
        })
        .collect())
}

/// The objects of kind `K` labelled as `cluster`'s.
async fn list_of<K>(ctx: &Context, ns: &str, cluster: &str) -> Result<Vec<K>, Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!("{}={cluster}", labels::CLUSTER);
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// Each shard's current template revision (its StatefulSet's
/// `updateRevision`), by shard name.
async fn shard_revisions(
    ctx: &Context,
    ns: &str,
    cluster: &str,
) -> Result<BTreeMap<String, String>, Error> {
    Ok(list_of::<StatefulSet>(ctx, ns, cluster)
        .await?
        .into_iter()
        .filter_map(|s| {
            let revision = s.status.as_ref()?.update_revision.clone()?;
            Some((s.name_any(), revision))
        })
        .collect())
}

/// Connects to a node of the status as the admin user.
async fn admin_of(
    ctx: &Context,
    password: &str,
    node: &crate::crd::NodeStatus,
) -> Option<AdminClient> {
    let (host, port) = node.address.rsplit_once(':')?;
    AdminClient::connect(host, port.parse().ok()?, password, ctx.admin_timeout)
        .await
        .ok()
}

async fn lease_order(
    ctx: &Context,
    password: &str,
    node: &crate::crd::NodeStatus,
    order: LeaseOrder,
    epoch: u64,
) -> bool {
    match admin_of(ctx, password, node).await {
        Some(mut admin) => admin.lease(order, epoch).await.is_ok(),
        None => false,
    }
}

/// Fences the old primary's writes (it runs `epoch`) and waits, briefly,
/// for the new one to have every write before the fence. False when that
/// could not be made sure of: the switchover is called off (a document of
/// a newer epoch lifts the fence; the node lifts it by itself after a
/// while, should the operator stop before sending one).
async fn fence_and_catch_up(
    ctx: &Context,
    password: &str,
    old: &crate::crd::NodeStatus,
    new: &crate::crd::NodeStatus,
    epoch: u64,
) -> bool {
    let Some(mut primary) = admin_of(ctx, password, old).await else {
        return false;
    };
    let (replid, end) = match primary.fence(epoch).await {
        Ok(fence) => fence,
        Err(e) => {
            warn!(pod = %old.pod, error = %e, "could not fence the primary for a switchover");
            return false;
        }
    };
    let Some(mut replica) = admin_of(ctx, password, new).await else {
        return false;
    };
    let until = std::time::Instant::now() + SWITCHOVER_CATCH_UP;
    while std::time::Instant::now() < until {
        if let Ok(r) = replica.replication().await
            && r.replid == replid
            && r.offset >= end
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    warn!(pod = %new.pod, "the replica did not reach the fenced primary's last write in time");
    false
}

/// How long a switchover waits for the replica to reach the fence.
const SWITCHOVER_CATCH_UP: Duration = Duration::from_secs(3);

/// Asks every node of the recorded shards which epoch it runs and how far
/// it replicated, renewing the write lease of each primary that runs the
/// recorded epoch; tracks since when each node fails to answer.
async fn survey(
    ctx: &Context,
    ns: &str,
    admin_password: &str,
    status: &CacheClusterStatus,
    pods: &BTreeMap<String, PodView>,
) -> BTreeMap<String, failover::Seen> {
    let nodes: Vec<(&crate::crd::NodeStatus, bool)> = status
        .shards
        .iter()
        .flat_map(|s| {
            s.primary
                .iter()
                .map(|p| (p, true))
                .chain(s.replicas.iter().map(|r| (r, false)))
        })
        .collect();
    let asks = nodes.into_iter().map(|(node, primary)| async move {
        let alive = pods.get(&node.pod).is_some_and(|p| p.alive);
        let answer = async {
            let mut admin = admin_of(ctx, admin_password, node).await.ok_or(None)?;
            let epoch = admin.epoch().await.map_err(Some)?;
            let replication = admin.replication().await.map_err(Some)?;
            if primary
                && epoch == status.epoch
                && epoch > 0
                && let Err(e) = admin.renew_lease(epoch, replication.lease_clock_ms).await
            {
                debug!(pod = %node.pod, error = %e, "lease not renewed");
            }
            Ok::<_, Option<tidecache_topology::admin::AdminError>>((epoch, replication))
        }
        .await;
        (node.pod.clone(), alive, answer)
    });
    // A node that fails to answer is counted silent from when it was
    // asked, not from when the timeout ended.
    let asked = std::time::Instant::now();
    let answers = futures::future::join_all(asks).await;
    let now = std::time::Instant::now();
    let mut unreachable = ctx.memory.unreachable.lock().expect("unreachable lock");
    let mut seen = BTreeMap::new();
    for (pod, alive, answer) in answers {
        let key = format!("{ns}/{pod}");
        let view = match answer {
            Ok((epoch, replication)) => {
                unreachable.remove(&key);
                failover::Seen {
                    pod_alive: alive,
                    epoch: Some(epoch),
                    unreachable_for: Duration::ZERO,
                    replication: Some(replication),
                }
            }
            Err(_) => {
                let since = *unreachable.entry(key).or_insert(asked);
                failover::Seen {
                    pod_alive: alive,
                    epoch: None,
                    unreachable_for: now.duration_since(since),
                    replication: None,
                }
            }
        };
        seen.insert(pod, view);
    }
    seen
}

/// Pushes `doc` to every node that has an address; returns the pods that
/// hold it afterwards. Unreachable nodes are retried on the next pass.
async fn push_topology(
    ctx: &Context,
    cc: &CacheCluster,
    doc: &tidecache_topology::Topology,
    admin_password: &str,
    pods: &BTreeMap<String, PodView>,
    guarded: &[String],
    wanted: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<String> {
    // Node ids derive from pod names, so the pods a document names are found by id.
    let pod_of: BTreeMap<String, &String> = pods
        .keys()
        .map(|p| (tidecache_topology::node_id_for(p), p))
        .collect();
    let targets: Vec<(String, tidecache_topology::NodeAddr)> = doc
        .shards
        .iter()
        .flat_map(|s| std::iter::once(&s.primary).chain(&s.replicas))
        .filter_map(|n| Some((pod_of.get(&n.id)?.to_string(), n.clone())))
        .filter(|(pod, _)| wanted(pod))
        .collect();
    let pushes = targets.into_iter().map(|(pod, node)| async move {
        let result = async {
            let mut admin =
                AdminClient::connect(&node.host, node.port, admin_password, ctx.admin_timeout)
                    .await?;
            let epoch = admin.epoch().await?;
            if epoch == doc.epoch {
                return Ok(Some(false));
            }
            if epoch == 0 && guarded.contains(&pod) {
                return Ok(None);
            }
            admin.install_topology(doc).await.map(|()| Some(true))
        }
        .await;
        (pod, result)
    });
    let mut acked = Vec::new();
    for (pod, result) in futures::future::join_all(pushes).await {
        match result {
            Ok(None) => {
                warn!(cluster = %cc.name_any(), %pod, "primary restarted without its data; not handing it the shard");
            }
            Ok(Some(installed)) => {
                if installed {
                    ctx.metrics.topology_pushed();
                    info!(cluster = %cc.name_any(), %pod, epoch = doc.epoch, "pushed topology");
                }
                acked.push(pod);
            }
            Err(e) if e.is_stale() => {
                // The node knows a newer epoch than our status: never overwrite it.
                warn!(cluster = %cc.name_any(), %pod, error = %e, "node holds a newer topology than the status records");
            }
            Err(e) => {
                debug!(cluster = %cc.name_any(), %pod, error = %e, "topology push failed; will retry")
            }
        }
    }
    acked
}

async fn write_status(
    ctx: &Context,
    cc: &CacheCluster,
    ns: &str,
    prev: &CacheClusterStatus,
    next: CacheClusterStatus,
) -> Result<(), Error> {
    if *prev == next {
        return Ok(());
    }
    let api: Api<CacheCluster> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({ "status": next });
    api.patch_status(
        &cc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    ctx.memory
        .epochs
        .lock()
        .expect("epochs lock")
        .insert(format!("{ns}/{}", cc.name_any()), next.epoch);
    Ok(())
}

async fn publish(
    ctx: &Context,
    cc: &CacheCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cc.object_ref(&())).await {
        debug!(error = %e, "could not publish event");
    }
}

/// The reporter events are published under.
pub fn reporter(instance: Option<String>) -> Reporter {
    Reporter {
        controller: MANAGER.into(),
        instance,
    }
}
