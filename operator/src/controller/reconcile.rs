//! The reconcile loop: orchestration only. Each pass runs
//! observe ([`super::observe`]) → decide ([`super::decide`],
//! [`super::resharding`]) → act ([`super::act`]), in this order:
//!
//! 1. validate the spec; ensure the auth Secret; apply Services, PDBs and
//!    StatefulSets;
//! 2. observe pods, revisions and every recorded node (renewing leases);
//! 3. decide what changes the layout (failover, rolling step); a
//!    switchover's fence and catch-up is carried out here, and its outcome
//!    goes into the layout decision;
//! 4. record the layout's epoch, then push the document (in two phases
//!    when a just-promoted primary must wait for its replicas);
//! 5. one step of a shard-count change;
//! 6. prune drained shards, replace a pod, write the status.
//!
//! Every step is idempotent, so a pass interrupted anywhere (an operator
//! restart) is simply run again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt as _, watcher};
use kube::{Api, Resource as _, ResourceExt as _};
use tracing::{debug, info, warn};

use super::act::{self, StatusWriter};
use super::context::Context;
use super::decide::{self, Layout, Note, Observation, Shape};
use super::desired::labels;
use super::resharding::{self, Conclusion, Finished, Next, Source};
use super::validate::validate;
use super::{Error, autoscale, evacuate, observe};
use crate::crd::{CacheCluster, CacheClusterStatus, Mode, ServerlessStatus};

/// Runs the controller until the stream ends (shutdown).
pub async fn run(ctx: Arc<Context>, nodes: reflector::store::Writer<Node>) {
    let client = ctx.client.clone();
    // Which nodes are cordoned ([`Context::cordoned`]): a watch fills the
    // store. Without the permission to list nodes it stays empty, and no
    // primary is moved for a drain (the budget still refuses to evict it).
    let nodes = reflector::reflector(
        nodes,
        watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| futures::future::ready(()));
    tokio::spawn(nodes);
    tokio::spawn(super::snapshot::run(ctx.clone()));
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
        // A final snapshot first, if asked for; then owner references let
        // the garbage collector remove everything.
        return super::policy::on_delete(&ctx, &cc).await;
    }
    let name = cc.name_any();
    let mut prev = cc.status.clone().unwrap_or_default();
    if decide::stale_cache(
        ctx.memory.written_epoch(&format!("{ns}/{name}")),
        prev.epoch,
    ) {
        debug!(cluster = %name, "cached status older than the last write; waiting for it");
        return Ok(Action::requeue(decide::STALE_CACHE_WAIT));
    }
    let mut writer = StatusWriter::new(&ctx, &cc);

    if let Err(e) = validate(&cc.spec) {
        let (status, note) = decide::invalid(&cc, &prev, &e.to_string());
        act::publish(&ctx, &cc, note).await;
        writer.save(&status).await?;
        return Err(e);
    }
    super::policy::ensure_finalizer(&ctx, &cc).await?;
    let shape = Shape::of(&cc, &prev);
    let password = act::ensure_auth_secret(&ctx, &cc, &ns).await?;
    if let Some(paused) =
        super::hibernate::step(&ctx, &cc, &ns, shape, &mut prev, &mut writer).await?
    {
        return Ok(paused);
    }
    let prev = prev;
    act::apply_objects(&ctx, &cc, &ns, shape, &prev).await?;

    let serverless = cc.spec.mode == Mode::Serverless;
    let obs = observe::observe(&ctx, &ns, &name, &password, &prev, serverless).await?;

    let changes = decide::changes(&prev, &obs, shape.replicas);
    for (shard, why) in &changes.stuck {
        debug!(cluster = %name, %shard, "{why}");
    }
    for p in &changes.promotions {
        warn!(cluster = %name, shard = p.shard, "failover: {}", p.reason);
        ctx.metrics.failover();
    }
    if let super::rolling::Step::Wait(why) = &changes.rolling {
        debug!(cluster = %name, "rolling change waits: {why}");
    }
    // The old primary's writes are fenced and the new one must have every
    // one of them before the layout changes; if not, the layout stays and
    // the new epoch lifts the fence.
    let caught_up = match decide::switchover(&prev, &changes.rolling) {
        Some((old, new)) => {
            info!(cluster = %name, from = %old.pod, to = %new.pod, "switchover before replacing the primary");
            Some(act::fence_and_catch_up(&ctx, &password, &old, &new, prev.epoch).await)
        }
        None => None,
    };
    let layout = decide::layout(&name, shape, &prev, &obs, &changes, caught_up);
    act::publish_all(&ctx, &cc, layout.notes.clone()).await;
    if layout.status.epoch != prev.epoch {
        info!(cluster = %name, namespace = %ns, epoch = layout.status.epoch, "topology changed");
    }
    // Recorded before it is pushed: a node must never hold an epoch the
    // status does not know, or a restarted operator could reuse that epoch
    // for a different document.
    writer.save(&layout.status).await?;

    let acked = push(&ctx, &cc, &password, &obs, &layout).await;
    // The budgets select on the roles: once the document is out, a new
    // primary is protected and an old one may be evicted.
    act::label_roles(
        &ctx,
        &ns,
        &evacuate::relabel(&layout.status.shards, &obs.pods),
    )
    .await;
    let serving = decide::serving(&layout.status, &obs, &acked);
    let document = layout.document.as_ref();

    let mut status = layout.status.clone();
    let rebalance_after = rebalance(
        &ctx,
        &cc,
        &password,
        &mut status,
        &mut writer,
        &layout,
        shape,
        decide::all_serving(document, serving, shape),
        &obs,
    )
    .await?;

    if let Some(keep) = decide::prune_from(&status, shape.keep()) {
        act::prune_shards(&ctx, &cc, &ns, keep).await?;
    }
    if let Some(pod) = decide::replacement(&layout, &prev) {
        info!(cluster = %name, %pod, "replacing a pod for a rolling change");
        act::replace_pod(&ctx, &ns, pod).await?;
        act::publish(
            &ctx,
            &cc,
            Note::normal(
                "PodReplaced",
                "RollingChange",
                format!("replaced {pod} with the current template"),
            ),
        )
        .await;
    }

    let mut outcome = decide::conclude(
        &cc,
        shape,
        &prev,
        status,
        document,
        serving,
        rebalance_after,
    );
    // Seeding from `spec.restoreFrom`: started once every primary serves,
    // then polled; it decides the phase until it completes.
    if outcome.status.restore.is_none() {
        outcome.status.restore = prev.restore.clone();
    }
    if outcome.status.hibernation.is_none() {
        outcome.status.hibernation = prev.hibernation.clone();
    }
    let all_serving = decide::all_serving(document, serving, shape);
    if let Some((restore, notes)) =
        super::restore::step(&ctx, &cc, &password, &outcome.status, all_serving).await
    {
        if restore.phase == "Restoring" {
            outcome.requeue = outcome.requeue.min(super::restore::POLL);
        }
        outcome.status.restore = Some(restore);
        outcome.notes.extend(notes);
    }
    super::restore::apply(&mut outcome.status, cc.metadata.generation);
    if let Some(note) = super::hibernate::resumed(&mut outcome.status, cc.metadata.generation) {
        info!(cluster = %name, "resumed");
        outcome.notes.push(note);
    }
    if outcome.status.hibernation.as_ref().is_some_and(|h| {
        h.phase == super::hibernate::SNAPSHOTTING || h.phase == super::hibernate::RESUMING
    }) {
        outcome.requeue = outcome.requeue.min(super::hibernate::POLL);
    }
    let recorded = outcome.status.serverless.clone();
    if let Some(scaled) = autoscale(&ctx, &cc, &prev, recorded.as_ref(), &obs, shape) {
        let limits = decide::limit_conditions(
            &mut outcome.status.conditions,
            scaled.at_limit,
            cc.metadata.generation,
        );
        outcome.notes.extend(limits);
        outcome.status.serverless = Some(scaled.status);
        outcome.notes.extend(scaled.notes);
        outcome.requeue = outcome.requeue.min(autoscale::SAMPLE_EVERY);
    }
    if let Some(after) = super::policy::schedule(&ctx, &cc, &mut outcome.status, &prev).await? {
        outcome.requeue = outcome.requeue.min(after);
    }
    act::publish_all(&ctx, &cc, outcome.notes).await;
    ctx.metrics.moves(&cc, outcome.status.rebalance.as_ref());
    writer.save(&outcome.status).await?;
    Ok(Action::requeue(outcome.requeue))
}

/// What an autoscaling pass leaves for the status.
struct Scaled {
    status: ServerlessStatus,
    notes: Vec<Note>,
    at_limit: autoscale::AtLimit,
}

/// Serverless mode: samples the primaries (what the survey read), adds the
/// sample to the cluster's window and decides the shard count, which the
/// next pass applies; `recorded` is `status.serverless` as this pass left
/// it. `None` in Provisioned mode.
fn autoscale(
    ctx: &Context,
    cc: &CacheCluster,
    prev: &CacheClusterStatus,
    recorded: Option<&ServerlessStatus>,
    obs: &Observation,
    shape: Shape,
) -> Option<Scaled> {
    if cc.spec.mode != Mode::Serverless {
        return None;
    }
    let limits = autoscale::Limits::of(&cc.spec).ok()?;
    let chosen = shape.wanted;
    let now_ms = ctx.memory.clock_ms();
    let readings: BTreeMap<String, autoscale::Reading> = prev
        .shards
        .iter()
        .filter(|s| !s.slots.is_empty())
        .filter_map(|s| {
            let pod = &s.primary.as_ref()?.pod;
            let usage = obs.seen.get(pod)?.usage?;
            Some((
                pod.clone(),
                autoscale::Reading {
                    at_ms: now_ms,
                    usage,
                },
            ))
        })
        .collect();
    let key = format!("{}/{}", cc.namespace().unwrap_or_default(), cc.name_any());
    let mut windows = ctx.memory.windows.lock().expect("windows lock");
    let window = windows.entry(key).or_default();
    let sample = autoscale::sample(
        &limits,
        decide::owning(prev),
        now_ms,
        &window.readings,
        &readings,
    );
    window.readings = readings;
    window.samples.push_back(sample);
    autoscale::trim(&mut window.samples, &limits, now_ms);
    let samples: Vec<autoscale::Sample> = window.samples.iter().copied().collect();
    drop(windows);
    let d = autoscale::decide(
        &limits,
        chosen,
        decide::changing(prev, chosen, shape.spare),
        &samples,
        now_ms,
    );
    if d.action != autoscale::Action::Hold {
        info!(cluster = %cc.name_any(), action = %d.action, from = d.from, to = d.to, reason = %d.reason, "autoscaling");
        ctx.metrics.scale_decision(cc, &d.action.to_string());
    }
    ctx.metrics.usage(cc, &sample, &limits, d.to);
    let (mut status, notes) = autoscale::record(
        recorded,
        &limits,
        &d,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
    );
    status.spare_shards = shape.spare as i32;
    Some(Scaled {
        status,
        notes,
        at_limit: d.at_limit,
    })
}

/// Pushes the layout's document: first to every node but the held
/// promotions, then to those the acknowledgements released; finishes a
/// switchover. Returns the pods that hold the document.
async fn push(
    ctx: &Context,
    cc: &CacheCluster,
    password: &str,
    obs: &Observation,
    layout: &Layout,
) -> Vec<String> {
    let Some(doc) = &layout.document else {
        return Vec::new();
    };
    let name = cc.name_any();
    let held = decide::push_plan(layout, obs, doc);
    let mut acked = act::push_topology(ctx, cc, doc, password, &obs.pods, &layout.guarded, &|p| {
        !held.iter().any(|h| h == p)
    })
    .await;
    if !held.is_empty() {
        let ready = decide::released(layout, obs, doc, &held, &acked);
        for p in held.iter().filter(|p| !ready.contains(p)) {
            info!(cluster = %name, pod = %p, epoch = doc.epoch, "promoted primary waits for its shard's replicas to take the document first");
        }
        if !ready.is_empty() {
            let more =
                act::push_topology(ctx, cc, doc, password, &obs.pods, &layout.guarded, &|p| {
                    ready.iter().any(|r| r == p)
                })
                .await;
            acked.extend(more);
        }
    }
    if let Some((old, new)) = &layout.switchover {
        let waived = decide::waive_lease(old, new, &acked)
            && act::waive_lease(ctx, password, new, doc.epoch).await;
        let how = if waived {
            "at once: it had every write of the fenced primary"
        } else {
            "after the old primary's write lease"
        };
        act::publish(
            ctx,
            cc,
            Note::normal(
                "Switchover",
                "Promote",
                format!(
                    "{} is primary in place of {}, taking writes {how}",
                    new.pod, old.pod
                ),
            ),
        )
        .await;
    }
    acked
}

/// One step of a shard-count change ([`resharding::next`]). The status is
/// written before any order to a node, so that a restart at any point
/// resumes. Returns when to look again while a rebalance is on.
#[allow(clippy::too_many_arguments)]
async fn rebalance(
    ctx: &Context,
    cc: &CacheCluster,
    password: &str,
    status: &mut CacheClusterStatus,
    writer: &mut StatusWriter<'_>,
    layout: &Layout,
    shape: Shape,
    all_serving: bool,
    obs: &Observation,
) -> Result<Option<Duration>, Error> {
    let name = cc.name_any();
    let replan = status
        .serverless
        .as_ref()
        .is_some_and(|s| s.rebalance_requested);
    match resharding::next(
        status,
        &layout.addresses,
        (shape.wanted, shape.spare),
        all_serving,
        replan,
        Timestamp::now(),
    ) {
        Next::Settled => Ok(None),
        Next::Wait(d) => Ok(Some(d)),
        Next::Plan => {
            let Some(loads) = observe::slot_loads(ctx, status, password).await else {
                return Ok(Some(resharding::LATER));
            };
            match resharding::start(&status.shards, shape.wanted, &loads) {
                Ok(r) => {
                    let message = resharding::planned(status, r);
                    if let Some(sv) = status.serverless.as_mut() {
                        sv.rebalance_requested = false;
                    }
                    info!(cluster = %name, %message, "rebalance planned");
                    writer.save(status).await?;
                    act::publish(
                        ctx,
                        cc,
                        Note::normal("RebalanceStarted", "Rebalance", message),
                    )
                    .await;
                    Ok(Some(resharding::SOON))
                }
                Err(e) => {
                    warn!(cluster = %name, error = %e, "cannot plan a rebalance");
                    Ok(Some(resharding::REPLAN_AFTER))
                }
            }
        }
        Next::Record => {
            match resharding::record(status) {
                Ok(()) => {
                    info!(cluster = %name, epoch = status.epoch, "moves handed over meanwhile recorded")
                }
                Err(e) => {
                    warn!(cluster = %name, error = %e, "a finished move does not fit the status; planning again")
                }
            }
            writer.save(status).await?;
            Ok(Some(resharding::SOON))
        }
        Next::Finish => {
            let finished = resharding::finish(status, shape.wanted, shape.spare);
            // The drained shards' StatefulSets go in `prune_shards`, on this
            // pass and, should a deletion fail, on later ones.
            writer.save(status).await?;
            let message = finished.message(shape.wanted);
            match finished {
                Finished::Replan => warn!(cluster = %name, "moves done but {message}"),
                Finished::Removed(_) => {
                    info!(cluster = %name, %message, "rebalance done");
                    act::publish(ctx, cc, Note::normal("RebalanceDone", "Rebalance", message))
                        .await;
                }
            }
            Ok(Some(resharding::SOON))
        }
        Next::Start {
            index,
            source,
            target,
        } => {
            let begun = resharding::begin(status, &name, index);
            writer.save(status).await?;
            let mv = &status.rebalance.as_ref().expect("a rebalance").moves[index];
            match act::migrate_start(
                ctx,
                password,
                &source,
                &target,
                &begun.id,
                begun.epoch,
                &begun.ranges,
            )
            .await
            {
                Ok(()) => {
                    info!(cluster = %name, id = %begun.id, from = %mv.from, to = %mv.to, slots = ?mv.slots, "migration started")
                }
                // Judged on the next pass: the target will not know the import.
                Err(e) => {
                    warn!(cluster = %name, id = %begun.id, error = %e, "could not start the migration")
                }
            }
            Ok(Some(resharding::SOON))
        }
        Next::Check {
            index,
            source,
            target,
        } => {
            let mv = status.rebalance.as_ref().expect("a rebalance").moves[index].clone();
            let id = resharding::migration_id(&name, mv.epoch);
            let on_source = observe::migration_on_source(ctx, password, &source, &id).await;
            // One connection to the target for its status, an abort and
            // the status after it.
            let mut target_admin = observe::connect(ctx, password, &target).await.ok();
            let mut on_target = observe::import_on_target(target_admin.as_mut(), &id).await;
            let source_lost = resharding::source_lost(status, &mv.from, &obs.seen);
            if let Some(state) = on_target
                && let Some(admin) = target_admin.as_mut()
                && resharding::abort_for_lost_source(on_source.is_err(), source_lost, state)
            {
                match act::abort_import(admin, &id).await {
                    Ok(()) => {
                        warn!(cluster = %name, %id, from = %mv.from, "the move's source is lost: its import was aborted");
                        on_target = observe::import_on_target(Some(admin), &id).await;
                    }
                    Err(e) => {
                        warn!(cluster = %name, %id, error = %e, "could not abort the import of a lost source")
                    }
                }
            }
            let source_view = Source::of(&on_source);
            let verdict = resharding::judge(source_view, on_target);
            let mut next = status.clone();
            match resharding::conclude(&mut next, index, verdict, on_target, Timestamp::now()) {
                Conclusion::Wait => return Ok(Some(resharding::SOON)),
                Conclusion::Committed => {
                    info!(cluster = %name, %id, from = %mv.from, to = %mv.to, epoch = mv.epoch, "move handed over; recorded once the other moves end")
                }
                Conclusion::Done(misfit) => match misfit {
                    Some(e) => {
                        warn!(cluster = %name, %id, error = %e, "a finished move does not fit the status; planning again")
                    }
                    None => {
                        info!(cluster = %name, %id, from = %mv.from, to = %mv.to, epoch = mv.epoch, "move done")
                    }
                },
                Conclusion::Retry {
                    why,
                    abort_target,
                    backoff,
                } => {
                    // `abort_target` means the target answered `importing`
                    // over this connection.
                    if abort_target
                        && let Some(admin) = target_admin.as_mut()
                        && let Err(e) = act::abort_import(admin, &id).await
                    {
                        warn!(cluster = %name, %id, error = %e, "could not abort the import; retrying later");
                        return Ok(Some(resharding::LATER));
                    }
                    warn!(cluster = %name, %id, reason = %why, "move failed; retrying under a new epoch");
                    *status = next;
                    writer.save(status).await?;
                    act::publish(
                        ctx,
                        cc,
                        Note::warning("MoveFailed", "Rebalance", format!("{id}: {why}")),
                    )
                    .await;
                    return Ok(Some(backoff));
                }
            }
            *status = next;
            writer.save(status).await?;
            Ok(Some(resharding::SOON))
        }
    }
}
