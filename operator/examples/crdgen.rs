//! `make crds`: writes the CRD to `crds/` and to the Helm chart (run from the repository root).

use pushcluster_operator::crdgen;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::write(root.join(crdgen::CRD_PATH), crdgen::crd_yaml()?)?;
    std::fs::write(
        root.join(crdgen::CHART_CRD_PATH),
        crdgen::chart_crd_template()?,
    )?;
    println!("wrote {} and {}", crdgen::CRD_PATH, crdgen::CHART_CRD_PATH);
    Ok(())
}
