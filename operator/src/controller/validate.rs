//! Checks the API server's schema and CEL rules cannot make (they see one
//! object; these compare the spec with what the cluster already is).

use super::Error;
use crate::crd::{CacheClusterSpec, CacheClusterStatus, Mode};

/// Checks `spec` alone. A failure means the spec cannot be run at all.
pub fn validate(spec: &CacheClusterSpec) -> Result<(), Error> {
    if spec.mode != Mode::Provisioned {
        return Err(Error::InvalidSpec(
            "mode Serverless is not available yet; use Provisioned".into(),
        ));
    }
    if !(1..=500).contains(&spec.shards) {
        return Err(Error::InvalidSpec(format!(
            "shards must be between 1 and 500, got {}",
            spec.shards
        )));
    }
    if !(0..=5).contains(&spec.replicas_per_shard) {
        return Err(Error::InvalidSpec(format!(
            "replicasPerShard must be between 0 and 5, got {}",
            spec.replicas_per_shard
        )));
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

/// The number of shards to run now, and why it differs from the spec if it
/// does. Changing the shard count of a running cluster needs live slot
/// migration, which this version does not have: until it does, the cluster
/// keeps running — and being repaired — with the shards it has.
pub fn effective_shards(
    spec: &CacheClusterSpec,
    status: Option<&CacheClusterStatus>,
) -> (usize, Option<String>) {
    let wanted = spec.shards as usize;
    match status.map(|s| s.shards.len()) {
        Some(current) if current > 0 && current != wanted => (
            current,
            Some(format!(
                "changing shards from {current} to {wanted} needs live slot migration, which this operator version does not have yet; \
                 the cluster keeps {current} shards (set shards back to {current} to clear this)"
            )),
        ),
        _ => (wanted, None),
    }
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
        assert_eq!(s.replicas_per_shard, 0);
        assert!(validate(&s).is_ok());
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
                "mode: Serverless",
                "mode Serverless is not available yet; use Provisioned",
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

    #[test]
    fn resharding_a_running_cluster_keeps_its_shards_for_now() {
        let status = CacheClusterStatus {
            shards: (0..3)
                .map(|i| crate::crd::ShardStatus {
                    name: format!("c-{i}"),
                    slots: vec![],
                    primary: None,
                    replicas: vec![],
                })
                .collect(),
            ..CacheClusterStatus::default()
        };
        assert_eq!(
            effective_shards(&spec("shards: 3"), Some(&status)),
            (3, None)
        );
        let (n, why) = effective_shards(&spec("shards: 4"), Some(&status));
        assert_eq!(n, 3, "the running shard count is kept");
        assert!(why.unwrap().contains("set shards back to 3"));
        assert_eq!(
            effective_shards(&spec("shards: 4"), None),
            (4, None),
            "a new cluster gets what it asks for"
        );
    }
}
