//! The committed CRD files are what the generator writes (`make crds` regenerates them).

use pushcluster_operator::crdgen;

fn committed(path: &str) -> String {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e} (run `make crds`)", file.display()))
}

#[test]
fn crd_file_is_up_to_date() {
    assert!(
        committed(crdgen::CRD_PATH) == crdgen::crd_yaml().unwrap(),
        "{} differs from the generator's output: run `make crds`",
        crdgen::CRD_PATH
    );
}

#[test]
fn chart_crd_template_is_up_to_date() {
    assert!(
        committed(crdgen::CHART_CRD_PATH) == crdgen::chart_crd_template().unwrap(),
        "{} differs from the generator's output: run `make crds`",
        crdgen::CHART_CRD_PATH
    );
}
