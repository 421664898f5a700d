//! Reconciliation of `CacheCluster`s.
//!
//! A pass is observe → decide → act. [`reconcile`] only orchestrates;
//! [`observe`] reads the API server and the nodes; [`act`] writes to both;
//! everything in between is pure and tested without either: [`decide`] (the
//! pass's rules: failover, rolling step, layout, pushes, status),
//! [`resharding`] (a shard-count change as a state machine of moves),
//! [`epoch`] (which epoch a document takes), and the rules they call —
//! [`validate`], [`desired`] (the objects to apply), [`topology`] (slots and
//! the document), [`failover`], [`rolling`], [`rebalance`] (the move
//! planner), [`status`] (phase and conditions), [`restore`] (seeding a new
//! cluster from `spec.restoreFrom`). [`snapshot`] is the `CacheSnapshot`
//! controller; [`manifest`] names a snapshot's objects and checks its
//! manifest, [`storage`] reads and writes manifests; [`policy`] takes scheduled
//! snapshots, prunes them ([`schedule`] holds the rules) and the final
//! snapshot a deletion waits for; [`hibernate`] pauses a cluster into a
//! snapshot and back.

pub mod act;
pub mod autoscale;
pub mod context;
pub mod decide;
pub mod desired;
pub mod epoch;
pub mod evacuate;
pub mod failover;
pub mod hibernate;
pub mod manifest;
pub mod observe;
pub mod policy;
pub mod rebalance;
pub mod reconcile;
pub mod resharding;
pub mod restore;
pub mod rolling;
pub mod schedule;
pub mod snapshot;
pub mod status;
pub mod storage;
pub mod topology;
pub mod validate;

pub use context::{Context, reporter};
pub use reconcile::run;

/// Why a reconcile failed. Each variant names its step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("auth Secret {0}: {1}")]
    Secret(String, String),
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    /// A short, stable label for the `tidecache_reconcile_errors` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Kube(_) => "kube_api",
            Error::Secret(..) => "secret",
            Error::NoNamespace => "no_namespace",
        }
    }
}
