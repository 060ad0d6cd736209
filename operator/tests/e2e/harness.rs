//! Helpers of the end-to-end test: operator processes, their admin endpoints, kubectl JSON.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pushcluster_test_support::{Kubectl, Proc, free_port, metric_value, progress};
pub use pushcluster_test_support::{eventually, http_get};
use serde_json::Value;

pub const NS: &str = "pushcluster-system";
pub const APPS: &str = "apps";
pub const RELEASE: &str = "pushcluster-operator";
pub const SA_USER: &str = "system:serviceaccount:pushcluster-system:pushcluster-operator";
pub const IMAGE: &str = "registry.example/pushcluster:e2e";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A copy of the admin kubeconfig that impersonates the chart's ServiceAccount.
pub fn impersonating_kubeconfig(admin: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(admin).unwrap();
    let text = text.replacen("  user:\n", &format!("  user:\n    as: {SA_USER}\n"), 1);
    assert!(
        text.contains("as: system:serviceaccount"),
        "kubeconfig layout changed"
    );
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// One operator process and its admin address.
pub struct Operator {
    pub proc: Proc,
    pub admin: SocketAddr,
}

pub fn start_operator(name: &str, kubeconfig: &Path, dir: &Path) -> Operator {
    let port = free_port();
    let admin = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushcluster-operator"));
    cmd.env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .args(["--admin-listen", &admin.to_string()])
        .args(["--lease-namespace", NS, "--lease-name", RELEASE])
        .args(["--lease-identity", name])
        .args([
            "--lease-duration=4s",
            "--lease-renew-deadline=3s",
            "--lease-retry-period=500ms",
        ])
        .args(["--pushd-image", IMAGE]);
    let proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.log"))).unwrap();
    Operator { proc, admin }
}

/// The value of an unlabelled metric, e.g. `pushcluster_operator_leader`.
pub async fn metric(admin: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let (_, body) = http_get(admin, "/metrics").await?;
    metric_value(&body, name)
}

pub fn json(k: &Kubectl, args: &[&str]) -> anyhow::Result<Value> {
    k.json(args)
}

pub fn phase(start: Instant, what: &str) {
    progress(start, "e2e", what);
}
