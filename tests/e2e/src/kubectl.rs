//! kubectl helpers of the end-to-end test: JSON lists, NodePorts, env vars, progress lines.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use pushcluster_test_support::Kubectl;
use serde_json::Value;

/// Polls `check` (which usually runs kubectl) every half second until it succeeds; panics
/// with the last error after `secs`. Half a second: each kubectl costs a tenth of a second of
/// CPU, and the machine is shared.
pub async fn eventually<F, Fut>(what: &str, secs: u64, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let every = Duration::from_millis(500);
    let timeout = Duration::from_secs(secs);
    if let Err(e) = pushcluster_test_support::poll_until(what, timeout, every, check).await {
        panic!("{e:#}");
    }
}

/// `kubectl ARGS -o json`, parsed.
pub fn json(k: &Kubectl, args: &[&str]) -> anyhow::Result<Value> {
    k.json(args)
}

/// The `items` of a `kubectl get` list.
pub fn items(k: &Kubectl, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    Ok(json(k, args)?["items"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The `nodePort` of the Service port named `port`.
pub fn node_port(k: &Kubectl, ns: &str, service: &str, port: &str) -> anyhow::Result<u16> {
    let svc = json(k, &["get", "service", service, "-n", ns])?;
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == port)
        .and_then(|p| p["nodePort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("service {ns}/{service} has no nodePort named {port}"))
}

/// The env var `name` of a pod spec's first container.
pub fn container_env<'a>(pod_spec: &'a Value, name: &str) -> Option<&'a Value> {
    pod_spec["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// Prints a timed progress line.
pub fn phase(start: Instant, what: &str) {
    pushcluster_test_support::progress(start, "e2e-k8s", what);
}
