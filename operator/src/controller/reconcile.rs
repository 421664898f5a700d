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
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource as _, ResourceExt as _};
use serde::de::DeserializeOwned;
use tidecache_topology::admin::AdminClient;
use tracing::{debug, info, warn};

use super::Error;
use super::desired::{self, Defaults, MANAGER, labels};
use super::status::{Observed, readiness, set_condition};
use super::topology::{PodView, plan};
use super::validate::{effective_shards, validate};
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
}

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

    let (shards, pending) = effective_shards(&cc.spec, cc.status.as_ref());
    if let Some(why) = &pending
        && !prev_status
            .conditions
            .iter()
            .any(|c| c.type_ == "SpecValid" && c.status == "False")
    {
        publish(
            &ctx,
            &cc,
            EventType::Warning,
            "ReshardingNotSupported",
            "Validate",
            why.clone(),
        )
        .await;
    }

    let admin_password = ensure_auth_secret(&ctx, &cc, &ns).await?;
    apply_objects(&ctx, &cc, &ns, shards).await?;

    let pods = observe_pods(&ctx, &ns, &name).await?;
    let replicas = cc.spec.replicas_per_shard as usize;
    let planned = plan(
        &name,
        shards,
        replicas,
        prev_status.epoch,
        &prev_status.shards,
        &pods,
    );
    if planned.epoch != prev_status.epoch {
        info!(cluster = %name, namespace = %ns, epoch = planned.epoch, "topology changed");
    }

    // Record the plan before pushing it: a node must never hold an epoch the
    // status does not know, or a restarted operator could reuse that epoch
    // for a different document.
    let mut status = prev_status.clone();
    status.epoch = planned.epoch;
    status.shards = planned.shards.clone();
    if planned.epoch != prev_status.epoch {
        write_status(&ctx, &cc, &ns, &prev_status, status.clone()).await?;
    }

    let mut serving = 0;
    let document = planned.document();
    if let Some(doc) = &document {
        let acked = push_topology(&ctx, &cc, doc, &admin_password, &pods).await;
        serving = planned
            .shards
            .iter()
            .filter(|s| {
                s.primary.as_ref().is_some_and(|p| {
                    acked.contains(&p.pod) && pods.get(&p.pod).is_some_and(|v| v.ready)
                })
            })
            .count();
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
    match pending {
        Some(why) => set_condition(
            &mut status.conditions,
            "SpecValid",
            false,
            "ReshardingNotSupported",
            why,
            cc.metadata.generation,
        ),
        None => set_condition(
            &mut status.conditions,
            "SpecValid",
            true,
            "Valid",
            "the spec is valid".into(),
            cc.metadata.generation,
        ),
    }
    set_condition(
        &mut status.conditions,
        "Ready",
        ready,
        reason,
        message,
        cc.metadata.generation,
    );
    write_status(&ctx, &cc, &ns, &prev_status, status).await?;

    Ok(Action::requeue(if ready {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(3)
    }))
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
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("{}={cluster}", labels::CLUSTER)))
        .await?;
    Ok(list
        .items
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
            };
            (p.name_any(), view)
        })
        .collect())
}

/// Pushes `doc` to every node that has an address; returns the pods that
/// hold it afterwards. Unreachable nodes are retried on the next pass.
async fn push_topology(
    ctx: &Context,
    cc: &CacheCluster,
    doc: &tidecache_topology::Topology,
    admin_password: &str,
    pods: &BTreeMap<String, PodView>,
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
        .collect();
    let pushes = targets.into_iter().map(|(pod, node)| async move {
        let result = async {
            let mut admin =
                AdminClient::connect(&node.host, node.port, admin_password, ctx.admin_timeout)
                    .await?;
            if admin.epoch().await? == doc.epoch {
                return Ok(false);
            }
            admin.install_topology(doc).await.map(|()| true)
        }
        .await;
        (pod, result)
    });
    let mut acked = Vec::new();
    for (pod, result) in futures::future::join_all(pushes).await {
        match result {
            Ok(installed) => {
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
