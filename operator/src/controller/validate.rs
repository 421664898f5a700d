//! Checks the API server's schema and CEL rules cannot make (they see one
//! object; these compare the spec with what the cluster already is).

use super::Error;
use crate::crd::{CacheClusterSpec, Mode};

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
}
