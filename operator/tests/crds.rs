//! The CRD YAML in `crds/` is generated from the Rust types; this test fails
//! when someone changes the types and forgets `make crds`.

#[test]
fn committed_crds_match_the_types() {
    let generated = tidecache_operator::crds_yaml().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/tidecache.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "crds/tidecache.yaml is out of date: run `make crds` (cargo run -p tidecache-operator --bin crdgen > crds/tidecache.yaml)"
    );
}

#[test]
fn the_schema_carries_the_validation_rules() {
    let yaml = tidecache_operator::crds_yaml().unwrap();
    for needle in [
        "x-kubernetes-validations",
        "minimum must not exceed maximum",
        "serverless.limits.dataStorage.maximum is below one node's data",
        "serverless.limits.compute.maximum is below one shard's CPU",
        "maximum: 5",
        "minimum: 1",
        "scale:",
        "specReplicasPath: .spec.shards",
        "status: {}",
    ] {
        assert!(yaml.contains(needle), "generated CRD lacks {needle:?}");
    }
}
