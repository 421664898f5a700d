//! Reconciliation of `CacheCluster`s.

pub mod desired;
pub mod failover;
pub mod rebalance;
pub mod reconcile;
pub mod resharding;
pub mod rolling;
pub mod status;
pub mod topology;
pub mod validate;

pub use reconcile::{Context, run};

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
