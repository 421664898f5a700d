//! HTTP endpoints: `/livez`, `/readyz` (ready once a topology is installed)
//! and `/metrics` in the Prometheus text format.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::Shared;

pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.gate.lock().expect("gate lock").is_some() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "restoring a snapshot, or the restore failed",
        );
    }
    if shared.cluster.read().expect("cluster lock").is_configured() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no topology installed yet")
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector(shared)));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
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

/// Reads the node's counters at scrape time rather than mirroring every
/// change into metric objects on the command path.
#[derive(Debug)]
struct NodeCollector(Arc<Shared>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for NodeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let (keys, memory, stats) = {
            let mut db = s.db.lock().expect("db lock");
            (db.len(), db.memory_report(), db.stats)
        };
        let (epoch, configured) = {
            let c = s.cluster.read().expect("cluster lock");
            (c.epoch(), c.is_configured())
        };
        gauge(&mut enc, "tidecache_keys", "Keys stored.", keys as i64)?;
        gauge(
            &mut enc,
            "tidecache_used_memory_bytes",
            "Memory used, as the allocator counts it (INFO used_memory).",
            memory.used as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_used_memory_dataset_bytes",
            "Memory the keyspace accounts for its keys and values.",
            memory.dataset as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_used_memory_peak_bytes",
            "Highest used memory seen.",
            memory.peak as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_used_memory_rss_bytes",
            "Resident set size of the process.",
            memory.rss as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_allocator_allocated_bytes",
            "Bytes allocated, from jemalloc's statistics (0 on another allocator).",
            memory.allocator.allocated as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_allocator_resident_bytes",
            "Bytes in physically resident allocator pages (0 on another allocator).",
            memory.allocator.resident as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_maxmemory_bytes",
            "Configured memory limit (0 = none).",
            s.maxmemory() as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_connected_clients",
            "Open client connections.",
            s.stats.connected_clients.load(Ordering::Relaxed) as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_topology_epoch",
            "Epoch of the installed topology.",
            epoch as i64,
        )?;
        gauge(
            &mut enc,
            "tidecache_topology_installed",
            "1 when a topology is installed.",
            i64::from(configured),
        )?;
        counter(
            &mut enc,
            "tidecache_connections_received",
            "Client connections accepted.",
            s.stats.connections_received.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "tidecache_commands_processed",
            "Commands processed.",
            s.stats.commands_processed.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "tidecache_keyspace_hits",
            "Successful key lookups.",
            stats.hits,
        )?;
        counter(
            &mut enc,
            "tidecache_keyspace_misses",
            "Failed key lookups.",
            stats.misses,
        )?;
        counter(
            &mut enc,
            "tidecache_expired_keys",
            "Keys removed because their TTL passed.",
            stats.expired,
        )?;
        counter(
            &mut enc,
            "tidecache_evicted_keys",
            "Keys evicted to stay within maxmemory.",
            stats.evicted,
        )?;
        counter(
            &mut enc,
            "tidecache_oom_rejected",
            "Writes refused with OOM: at maxmemory with nothing to evict.",
            s.stats.oom_rejected.load(Ordering::Relaxed),
        )?;
        let cpu = crate::cpu::used();
        let seconds = ConstCounter::new((cpu.system + cpu.user).as_secs_f64());
        seconds.encode(enc.encode_descriptor(
            "tidecache_cpu_seconds",
            "CPU seconds the node process used (kernel and user).",
            None,
            seconds.metric_type(),
        )?)?;
        counter(
            &mut enc,
            "tidecache_protocol_errors",
            "Connections closed for protocol errors.",
            s.stats.protocol_errors.load(Ordering::Relaxed),
        )?;
        let jobs = &s.jobs;
        for (name, help, v) in [
            (
                "tidecache_snapshots_done",
                "Snapshots written to the snapshot store.",
                &jobs.snapshots_done,
            ),
            (
                "tidecache_snapshots_failed",
                "Snapshots that failed.",
                &jobs.snapshots_failed,
            ),
            (
                "tidecache_restores_done",
                "Restores from the snapshot store that completed.",
                &jobs.restores_done,
            ),
            (
                "tidecache_restores_failed",
                "Restores that failed (the node then serves no data).",
                &jobs.restores_failed,
            ),
        ] {
            counter(&mut enc, name, help, v.load(Ordering::Relaxed))?;
        }
        let running = |job: &std::sync::Mutex<Option<crate::snapshot::jobs::Job>>| {
            let job = job.lock().expect("job lock");
            i64::from(
                job.as_ref()
                    .is_some_and(|j| j.phase == crate::snapshot::jobs::Phase::Running),
            )
        };
        gauge(
            &mut enc,
            "tidecache_snapshot_in_progress",
            "1 while a snapshot runs.",
            running(&jobs.snapshot),
        )?;
        gauge(
            &mut enc,
            "tidecache_restore_in_progress",
            "1 while a restore runs.",
            running(&jobs.restore),
        )?;
        let saves = s.saves.state();
        gauge(
            &mut enc,
            "tidecache_rdb_last_save_time",
            "Unix time of the last successful SAVE or BGSAVE.",
            saves.last_save as i64,
        )?;
        let mut family = enc.encode_descriptor(
            "tidecache_command_calls",
            "Calls per command.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (name, calls) in s.call_counts() {
            let labels = [("command", name)];
            ConstCounter::new(calls).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
