//! Prints the CRDs as YAML; `make crds` writes them to `crds/`.

fn main() -> anyhow::Result<()> {
    print!("{}", tidecache_operator::crds_yaml()?);
    Ok(())
}
