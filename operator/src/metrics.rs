//! The operator's own metrics and health endpoints.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MoveLabels {
    namespace: String,
    cluster: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    namespace: String,
    cluster: String,
    action: String,
}

/// A Serverless cluster's usage against its limits and its shard count.
#[derive(Default)]
struct Serverless {
    memory: Family<ClusterLabels, Gauge>,
    memory_limit: Family<ClusterLabels, Gauge>,
    cpu: Family<ClusterLabels, Gauge>,
    cpu_limit: Family<ClusterLabels, Gauge>,
    ops: Family<ClusterLabels, Gauge>,
    shards: Family<ClusterLabels, Gauge>,
    max_shards: Family<ClusterLabels, Gauge>,
    decisions: Family<DecisionLabels, Counter>,
}

/// Reconcile counters and durations.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    pushes: Counter,
    failovers: Counter,
    serverless: Serverless,
    /// Each cluster's slot moves, by state: its rebalance's progress.
    moves: Family<MoveLabels, Gauge>,
    /// 1 while this replica leads and its controller runs.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tidecache_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0]);
        let pushes = Counter::default();
        let failovers = Counter::default();
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register("reconciles", "Reconcile passes started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconcile passes that failed, by error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes",
            duration.clone(),
        );
        registry.register(
            "topology_pushes",
            "Topology documents installed on nodes",
            pushes.clone(),
        );
        registry.register(
            "failovers",
            "Replicas promoted because their primary was lost",
            failovers.clone(),
        );
        let serverless = Serverless::default();
        for (name, help, family) in [
            (
                "cluster_memory_bytes",
                "Serverless: data used, summed over primaries",
                &serverless.memory,
            ),
            (
                "cluster_memory_limit_bytes",
                "Serverless: data the current shards hold",
                &serverless.memory_limit,
            ),
            (
                "cluster_cpu_millicores",
                "Serverless: CPU used by the primaries",
                &serverless.cpu,
            ),
            (
                "cluster_cpu_limit_millicores",
                "Serverless: CPU the primaries may use",
                &serverless.cpu_limit,
            ),
            (
                "cluster_ops_per_second",
                "Serverless: commands per second",
                &serverless.ops,
            ),
            (
                "cluster_shards",
                "Serverless: the shard count the autoscaler chose",
                &serverless.shards,
            ),
            (
                "cluster_max_shards",
                "Serverless: the most shards the limits allow",
                &serverless.max_shards,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        let moves = Family::<MoveLabels, Gauge>::default();
        registry.register(
            "cluster_moves",
            "Slot moves of the cluster's current rebalance, by state (0 when none runs)",
            moves.clone(),
        );
        registry.register(
            "scale_decisions",
            "Serverless: autoscaling decisions that changed something, by action",
            serverless.decisions.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            pushes,
            failovers,
            serverless,
            moves,
            leader,
        }
    }
}

fn cluster_labels(cc: &crate::crd::CacheCluster) -> ClusterLabels {
    use kube::ResourceExt as _;
    ClusterLabels {
        namespace: cc.namespace().unwrap_or_default(),
        cluster: cc.name_any(),
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    start: Instant,
    metrics: &'a Metrics,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            metrics: self,
        }
    }

    pub fn reconcile_error(&self, label: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { error: label })
            .inc();
    }

    pub fn topology_pushed(&self) {
        self.pushes.inc();
    }

    pub fn failover(&self) {
        self.failovers.inc();
    }

    /// A Serverless cluster's usage at its newest sample.
    pub fn usage(
        &self,
        cc: &crate::crd::CacheCluster,
        sample: &crate::controller::autoscale::Sample,
        limits: &crate::controller::autoscale::Limits,
        shards: usize,
    ) {
        let labels = cluster_labels(cc);
        let s = &self.serverless;
        let set = |f: &Family<ClusterLabels, Gauge>, v: u64| {
            f.get_or_create(&labels)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&s.memory, sample.memory);
        set(&s.memory_limit, limits.shard_bytes * sample.shards as u64);
        set(&s.cpu, sample.millicores);
        set(&s.cpu_limit, limits.shard_millicores * sample.shards as u64);
        set(&s.ops, sample.ops);
        set(&s.shards, shards as u64);
        set(&s.max_shards, limits.max_shards as u64);
    }

    /// A cluster's slot moves by state, from its status.
    pub fn moves(&self, cc: &crate::crd::CacheCluster, r: Option<&crate::crd::RebalanceStatus>) {
        use crate::crd::MoveState;
        let ClusterLabels { namespace, cluster } = cluster_labels(cc);
        for (state, word) in [
            (MoveState::Pending, "pending"),
            (MoveState::Copying, "copying"),
            (MoveState::Committed, "committed"),
            (MoveState::Done, "done"),
        ] {
            let n = r.map_or(0, |r| r.moves.iter().filter(|m| m.state == state).count());
            self.moves
                .get_or_create(&MoveLabels {
                    namespace: namespace.clone(),
                    cluster: cluster.clone(),
                    state: word,
                })
                .set(n as i64);
        }
    }

    /// An autoscaling decision that changed something.
    pub fn scale_decision(&self, cc: &crate::crd::CacheCluster, action: &str) {
        let ClusterLabels { namespace, cluster } = cluster_labels(cc);
        self.serverless
            .decisions
            .get_or_create(&DecisionLabels {
                namespace,
                cluster,
                action: action.to_owned(),
            })
            .inc();
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Serves `/healthz`, `/readyz` (ready = leading or standing by) and `/metrics`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(render))
        .with_state(metrics);
    axum::serve(listener, app).await
}

async fn render(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CacheCluster, MoveState, MoveStatus, RebalanceStatus};

    #[test]
    fn a_clusters_moves_are_counted_by_state() {
        let cc: CacheCluster = serde_yaml::from_str(
            "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {name: c, namespace: ns}\nspec: {}",
        )
        .unwrap();
        let mv = |state| MoveStatus {
            from: "c-0".into(),
            to: "c-1".into(),
            slots: vec![],
            keys: 0,
            state,
            epoch: 0,
            attempts: 0,
            last_error: None,
            retry_after: None,
        };
        let r = RebalanceStatus {
            shards: 3,
            moves: vec![
                mv(MoveState::Done),
                mv(MoveState::Copying),
                mv(MoveState::Copying),
            ],
        };
        let m = Metrics::default();
        m.moves(&cc, Some(&r));
        let text = m.encode().unwrap();
        let line = |state: &str, n: u32| {
            format!(
                "tidecache_operator_cluster_moves{{namespace=\"ns\",cluster=\"c\",state=\"{state}\"}} {n}"
            )
        };
        for want in [line("copying", 2), line("done", 1), line("pending", 0)] {
            assert!(text.contains(&want), "{want} in\n{text}");
        }
        m.moves(&cc, None);
        assert!(m.encode().unwrap().contains(&line("copying", 0)));
    }
}
