//! Checks the API server's schema and CEL rules cannot make (they see one
//! object; these compare the spec with what the cluster already is).

use super::Error;
use crate::crd::{CacheClusterSpec, Mode};

/// Checks `spec` alone. A failure means the spec cannot be run at all.
pub fn validate(spec: &CacheClusterSpec) -> Result<(), Error> {
    if !(1..=500).contains(&spec.shards) {
        return Err(Error::InvalidSpec(format!(
            "shards must be between 1 and 500, got {}",
            spec.shards
        )));
    }
    if !(0..=5).contains(&spec.replicas()) {
        return Err(Error::InvalidSpec(format!(
            "replicasPerShard must be between 0 and 5, got {}",
            spec.replicas()
        )));
    }
    if spec.mode == Mode::Serverless {
        super::autoscale::Limits::of(spec).map_err(Error::InvalidSpec)?;
    }
    if let Some(expr) = spec.snapshots.as_ref().and_then(|s| s.schedule.as_deref()) {
        super::schedule::Schedule::parse(expr).map_err(Error::InvalidSpec)?;
    }
    if spec
        .restore_from
        .as_ref()
        .is_some_and(|r| r.manifest.is_some() || !r.objects.is_empty())
        && spec.snapshots.is_none()
    {
        return Err(Error::InvalidSpec(
            "restoreFrom.manifest and restoreFrom.objects need spec.snapshots.storage".into(),
        ));
    }
    if let Some(max) = &spec.node.max_memory {
        super::desired::quantity_bytes(&max.0).ok_or_else(|| {
            Error::InvalidSpec(format!(
                "node.maxMemory {:?} is not a memory quantity",
                max.0
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> CacheClusterSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let s = spec("{}");
        assert_eq!(s.shards, 1);
        assert_eq!(s.replicas(), 0);
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn serverless_alone_is_valid_with_sane_defaults() {
        let s = spec("mode: Serverless");
        assert_eq!(s.replicas(), 1, "Serverless replicates by default");
        assert!(validate(&s).is_ok());
        let l = super::super::autoscale::Limits::of(&s).unwrap();
        assert_eq!(
            (l.min_shards, l.max_shards),
            (1, 8),
            "16 cores of 2-core shards"
        );
        assert_eq!(l.shard_bytes, 768 << 20);
        assert_eq!(l.shard_millicores, 1000);
        assert_eq!((l.target_memory, l.target_cpu), (0.7, 0.7));
        let l = super::super::autoscale::Limits::of(&spec(
            "{mode: Serverless, replicasPerShard: 0, serverless: {limits: {dataStorage: {minimum: 2Gi, maximum: 4Gi}}}}",
        ))
        .unwrap();
        assert_eq!((l.min_shards, l.max_shards), (3, 5));
    }

    #[test]
    fn out_of_range_values_are_refused_with_a_clear_message() {
        let cases = [
            ("shards: 0", "shards must be between 1 and 500, got 0"),
            (
                "replicasPerShard: 6",
                "replicasPerShard must be between 0 and 5, got 6",
            ),
            (
                "{mode: Serverless, serverless: {limits: {dataStorage: {maximum: 100Mi}}}}",
                "the maximums do not hold one shard: a shard stores 805306368 bytes and costs 2000 millicores",
            ),
            (
                "{mode: Serverless, serverless: {limits: {dataStorage: {minimum: 10Gi}, compute: {maximum: \"4\"}}}}",
                "the minimums need 14 shards but the maximums allow 2",
            ),
            (
                "{mode: Serverless, node: {resources: {limits: {cpu: \"1\"}}}}",
                "Serverless mode needs a node size: node.resources.limits.memory or node.maxMemory",
            ),
            (
                "{mode: Serverless, serverless: {limits: {compute: {maximum: lots}}}}",
                "serverless.limits.compute.maximum \"lots\" is not a quantity",
            ),
            (
                "node: {maxMemory: lots}",
                "node.maxMemory \"lots\" is not a memory quantity",
            ),
        ];
        for (yaml, msg) in cases {
            let err = validate(&spec(yaml)).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid spec: {msg}"), "{yaml}");
        }
    }
}
