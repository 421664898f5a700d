//! The Tidecache Kubernetes operator.
