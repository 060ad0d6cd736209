//! The committed gRPC code in `src/gen/` must match what the generator makes from the
//! `.proto`. `PUSHCLUSTER_REGEN=1` (or `make proto`) rewrites it instead of comparing.

use std::path::Path;

#[test]
fn generated_grpc_code_matches_the_proto() {
    let Some(protoc) = pushcluster_test_support::require("protoc") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let proto = root.join("proto/pushcluster/v1/pushcluster.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_with_config(config, &[proto], &[root.join("proto")])
        .expect("protoc + tonic-prost-build");
    let generated = std::fs::read_to_string(out.path().join("pushcluster.v1.rs")).unwrap();
    let committed_path = root.join("src/gen/pushcluster.v1.rs");
    if std::env::var_os("PUSHCLUSTER_REGEN").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "src/gen/pushcluster.v1.rs is stale: run `make proto` and commit the result"
    );
}
