//! Getting to the start of the story: data services, the chart, the PushCluster.

use std::path::PathBuf;

use anyhow::{Context as _, ensure};
use pushcluster_e2e::images::Images;
use pushcluster_e2e::kubectl::{eventually, items, json};
use pushcluster_test_support::{Helm, Kubectl};
use serde_json::Value;

pub const OPERATOR_NS: &str = "pushcluster-system";
pub const RELEASE: &str = "pushcluster-operator";
pub const APPS: &str = "apps";
pub const NAME: &str = "demo";
pub const JWT_SECRET: &str = "e2e-jwt-secret-0123456789abcdef0123456789";
pub const API_KEY: &str = "e2e-api-key-0123456789abcdef";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Redis and FerretDB as pods in `databases` (wait with [`pods_ready`]); returns Redis'
/// NodePort.
pub fn install_databases(k: &Kubectl, images: &Images) -> anyhow::Result<u16> {
    let text = manifest("databases.yaml")
        .replace("{{REDIS_IMAGE}}", &images.redis)
        .replace("{{FERRETDB_IMAGE}}", &images.ferretdb);
    k.apply(&text)?;
    pushcluster_e2e::kubectl::node_port(k, "databases", "redis", "redis")
}

/// `helm install` of the chart with the image built here (wait with [`pods_ready`]).
pub fn install_operator(helm: &Helm, images: &Images) -> anyhow::Result<()> {
    let (repository, tag) = images.pushcluster_repository_and_tag();
    let chart = repo().join("charts/pushcluster-operator");
    helm.run(&[
        "install",
        RELEASE,
        chart.to_str().context("chart path")?,
        "-n",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        "image.pullPolicy=Never",
    ])?;
    Ok(())
}

/// Waits until the pods of `selector` in `ns` are all Ready; fails at once, with the logs,
/// when a container crashes or cannot start (instead of waiting out a timeout).
pub async fn pods_ready(k: &Kubectl, ns: &str, selector: &str, secs: u64) {
    eventually(&format!("pods {selector} in {ns} Ready"), secs, || {
        let pods = items(k, &["get", "pods", "-n", ns, "-l", selector]);
        async move {
            let pods = pods?;
            ensure!(!pods.is_empty(), "no pods yet");
            for p in &pods {
                let name = p["metadata"]["name"].as_str().unwrap_or_default();
                for c in p["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let waiting = c["state"]["waiting"]["reason"].as_str().unwrap_or_default();
                    if c["restartCount"].as_u64().unwrap_or(0) > 0
                        || [
                            "CrashLoopBackOff",
                            "ErrImageNeverPull",
                            "CreateContainerError",
                            "CreateContainerConfigError",
                        ]
                        .contains(&waiting)
                    {
                        let logs = k
                            .run(&["logs", "-n", ns, name, "--previous", "--tail=60"])
                            .or_else(|_| k.run(&["logs", "-n", ns, name, "--tail=60"]))
                            .unwrap_or_else(|e| e.to_string());
                        panic!(
                            "pod {ns}/{name} does not start ({waiting}): {}\nlogs:\n{logs}",
                            c["state"]
                        );
                    }
                }
                ensure!(ready(p), "{name} not Ready");
            }
            Ok(())
        }
    })
    .await;
}

/// The operator's pods, and which of them holds the Lease (named by the Deployment's own
/// `PUSHCLUSTER_LEASE_NAME`). Checks they run as the chart's ServiceAccount.
pub async fn operator_leader(k: &Kubectl) -> (Vec<String>, String) {
    let deploy = json(k, &["get", "deployment", RELEASE, "-n", OPERATOR_NS]).unwrap();
    let spec = &deploy["spec"]["template"]["spec"];
    let sa = spec["serviceAccountName"].as_str().unwrap().to_owned();
    let lease = pushcluster_e2e::kubectl::container_env(spec, "PUSHCLUSTER_LEASE_NAME")
        .and_then(|e| e["value"].as_str())
        .unwrap()
        .to_owned();
    let selector = label_selector(&deploy["spec"]["selector"]["matchLabels"]);
    let result = std::sync::Mutex::new(None);
    eventually("an operator pod holds the Lease", 60, || {
        let pods = items(k, &["get", "pods", "-n", OPERATOR_NS, "-l", &selector]);
        let holder = json(k, &["get", "lease", &lease, "-n", OPERATOR_NS]);
        let found = &result;
        let sa = sa.clone();
        async move {
            let pods = pods?;
            for p in &pods {
                ensure!(
                    p["spec"]["serviceAccountName"] == sa.as_str(),
                    "pod SA: {}",
                    p["spec"]
                );
                ensure!(ready(p), "{} not ready", p["metadata"]["name"]);
            }
            let names: Vec<String> = pods
                .iter()
                .map(|p| {
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            let holder = holder?["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            ensure!(
                names.contains(&holder),
                "Lease holder {holder:?} is none of {names:?}"
            );
            *found.lock().expect("result") = Some((names, holder));
            Ok(())
        }
    })
    .await;
    result.into_inner().expect("result").expect("found")
}

/// The name of the operator container's port that serves its probes and metrics (the
/// chart's readiness probe names it).
pub fn operator_admin_port(k: &Kubectl) -> anyhow::Result<String> {
    let deploy = json(k, &["get", "deployment", RELEASE, "-n", OPERATOR_NS])?;
    let probe = &deploy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    match &probe["httpGet"]["port"] {
        Value::String(name) => Ok(name.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => anyhow::bail!("operator readiness probe has no HTTP port: {other}"),
    }
}

/// A metric of a pod, read through the API server's pod proxy on the container port `port`.
pub fn pod_metric(k: &Kubectl, ns: &str, pod: &str, port: &str, name: &str) -> anyhow::Result<f64> {
    let p = json(k, &["get", "pod", pod, "-n", ns])?;
    let named = p["spec"]["containers"][0]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == port)
        .and_then(|c| c["containerPort"].as_u64());
    let number = named
        .or_else(|| port.parse().ok())
        .with_context(|| format!("pod {pod} has no port {port}"))?;
    let text = k.run(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/pods/{pod}:{number}/proxy/metrics"),
    ])?;
    pushcluster_test_support::metric_value(&text, name)
}

/// The Secrets and the PushCluster of manifests/pushcluster.yaml in `apps`.
pub fn apply_cluster(k: &Kubectl) -> anyhow::Result<()> {
    k.run(&["create", "namespace", APPS])?;
    let text = manifest("pushcluster.yaml")
        .replace("{{JWT_SECRET}}", JWT_SECRET)
        .replace("{{API_KEY}}", API_KEY);
    k.apply_with(&text, &["-n", APPS]).map(drop)
}

/// Every role's Deployment has all its replicas ready and updated, no old pod is left, and
/// the PushCluster says Ready.
pub async fn cluster_settled(k: &Kubectl, secs: u64) {
    eventually("the PushCluster settled", secs, || {
        let pc = json(k, &["get", "pushcluster", NAME, "-n", APPS]);
        let deployments = items(
            k,
            &[
                "get",
                "deployments",
                "-n",
                APPS,
                "-l",
                &format!("app.kubernetes.io/instance={NAME}"),
            ],
        );
        let pods = items(
            k,
            &[
                "get",
                "pods",
                "-n",
                APPS,
                "-l",
                &format!("app.kubernetes.io/instance={NAME}"),
            ],
        );
        async move {
            let pc = pc?;
            let ready = pc["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            ensure!(ready, "PushCluster not Ready: {}", pc["status"]);
            ensure!(pc["status"]["observedGeneration"] == pc["metadata"]["generation"]);
            let deployments = deployments?;
            ensure!(deployments.len() == 4, "{} Deployments", deployments.len());
            let mut want = 0;
            for d in &deployments {
                let replicas = d["spec"]["replicas"].as_u64().unwrap_or(0);
                let s = &d["status"];
                ensure!(
                    d["metadata"]["generation"] == s["observedGeneration"]
                        && s["readyReplicas"].as_u64().unwrap_or(0) == replicas
                        && s["updatedReplicas"].as_u64().unwrap_or(0) == replicas
                        && s["replicas"].as_u64().unwrap_or(0) == replicas,
                    "{}: {}",
                    d["metadata"]["name"],
                    s
                );
                want += replicas as usize;
            }
            let pods = pods?;
            ensure!(pods.len() == want, "{} pods, want {want}", pods.len());
            Ok(())
        }
    })
    .await;
}

/// `k=v,k=v` of a label map.
pub fn label_selector(labels: &Value) -> String {
    labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a pod is Ready (and not being deleted).
pub fn ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// A push pod: name, IP, container id.
#[derive(Debug, Clone)]
pub struct PushPod {
    pub name: String,
    pub ip: String,
    pub container: String,
    pub restarts: u64,
}

/// The ready push pods.
pub fn push_pods(k: &Kubectl) -> anyhow::Result<Vec<PushPod>> {
    let selector = format!("app.kubernetes.io/instance={NAME},app.kubernetes.io/component=push");
    Ok(items(k, &["get", "pods", "-n", APPS, "-l", &selector])?
        .iter()
        .filter(|p| ready(p))
        .map(|p| PushPod {
            name: p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            ip: p["status"]["podIP"].as_str().unwrap_or_default().to_owned(),
            container: p["status"]["containerStatuses"][0]["containerID"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            restarts: p["status"]["containerStatuses"][0]["restartCount"]
                .as_u64()
                .unwrap_or(0),
        })
        .collect())
}
