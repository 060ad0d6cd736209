//! The user's whole story on a real single-node Kubernetes: `helm install` the chart (the
//! operator runs as a pod and leads), `kubectl apply` a PushCluster, clients outside the
//! cluster connect and receive every message, in order, while the cluster is scaled, loses
//! pods, rolls, and is drained; deleting the PushCluster removes everything.
//!
//! Every step counts the messages collect accepted (202) and what each device received, and
//! fails on any difference. Needs root and `make tools`; skipped loudly without them unless
//! CI / PUSHCLUSTER_REQUIRE_SERVICES. `make e2e-k8s`; see docs/kubernetes-e2e.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use pushcluster_e2e::images;
use pushcluster_e2e::kubectl::{eventually, items, json, node_port, phase};
use pushcluster_e2e::traffic::{Endpoints, Fleet, StepReport};
use pushcluster_test_support::kubenode::{NODE_NAME, Node};
use pushcluster_test_support::{Helm, Kubectl};

#[path = "k8s/checks.rs"]
mod checks;
#[path = "k8s/diagnostics.rs"]
mod diagnostics;
use diagnostics::Diagnostics;
#[path = "k8s/setup.rs"]
mod setup;
use setup::*;

/// Messages per second while a step runs.
const RATE: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_users_story_on_a_real_node() {
    let start = Instant::now();
    let Some(helm) = Helm::helm() else { return };
    if Node::available().is_none() {
        return;
    }
    let binaries = images::build_binaries().expect("building pushd and the operator");
    phase(
        start,
        &format!("{} binaries in {}", images::profile(), binaries.display()),
    );
    let Some(node) = Node::start().await else {
        return;
    };
    let _diagnostics = Diagnostics { node: &node };
    let k = node.kubectl();
    let version = json(&k, &["version"]).unwrap();
    phase(
        start,
        &format!(
            "node Ready: Kubernetes {}",
            version["serverVersion"]["gitVersion"]
        ),
    );
    let images = images::build_and_import(&node, &binaries).expect("images");
    let redis_port = install_databases(&k, &images).expect("Redis and FerretDB pods");
    for app in ["redis", "ferretdb"] {
        pods_ready(&k, "databases", &format!("app={app}"), 180).await;
    }
    phase(start, "images imported; Redis and FerretDB run as pods");

    // helm install: the operator runs as a pod, with the chart's ServiceAccount, and leads.
    let helm = helm.with_kubeconfig(&node.kubeconfig);
    install_operator(&helm, &images).expect("helm install");
    pods_ready(
        &k,
        OPERATOR_NS,
        &format!("app.kubernetes.io/instance={RELEASE}"),
        180,
    )
    .await;
    let (operators, leader) = operator_leader(&k).await;
    let admin_port = operator_admin_port(&k).unwrap();
    eventually("the Lease holder reports itself leader", 60, || {
        let m = pod_metric(
            &k,
            OPERATOR_NS,
            &leader,
            &admin_port,
            "pushcluster_operator_leader",
        );
        async move {
            ensure!(m? == 1.0, "not leader");
            Ok(())
        }
    })
    .await;
    phase(
        start,
        &format!("helm install: operator pods {operators:?}, leader {leader}"),
    );

    // kubectl apply: every role Ready; push pods know their pod IP.
    apply_cluster(&k).expect("kubectl apply the PushCluster");
    pods_ready(&k, APPS, &format!("app.kubernetes.io/instance={NAME}"), 240).await;
    cluster_settled(&k, 240).await;
    let pods = push_pods(&k).unwrap();
    let d = json(
        &k,
        &["get", "deployment", &format!("{NAME}-push"), "-n", APPS],
    )
    .unwrap();
    let node_ip =
        pushcluster_e2e::kubectl::container_env(&d["spec"]["template"]["spec"], "PUSHD_NODE_IP")
            .expect("PUSHD_NODE_IP");
    assert_eq!(
        node_ip["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
    phase(
        start,
        &format!("kubectl apply: PushCluster Ready, push pods {pods:?}"),
    );

    // Clients outside the cluster, through the NodePorts of the operator's Services.
    let endpoints = Endpoints {
        push: SocketAddr::from((
            node.address,
            node_port(&k, APPS, &format!("{NAME}-push"), "http").unwrap(),
        )),
        collect: SocketAddr::from((
            node.address,
            node_port(&k, APPS, &format!("{NAME}-collect"), "http").unwrap(),
        )),
    };
    let fleet = Fleet::start(endpoints, JWT_SECRET, API_KEY, 24, 4);
    fleet.wait_connected(60).await.unwrap();
    let (grpc_port, headless) = checks::push_addressing(&k).unwrap();
    let redis = SocketAddr::from((node.address, redis_port));
    let routes = checks::routes_carry_pod_ips(redis, &pods, grpc_port, &fleet.connections())
        .await
        .unwrap();
    checks::dns_serves_push_pods(&node, &pods, &headless)
        .await
        .unwrap();
    phase(
        start,
        &format!(
            "{} devices connected through NodePort {}; {routes} route entries in Redis, all pod IPs; \
             CoreDNS serves the headless names, NXDOMAIN outside",
            fleet.devices(),
            endpoints.push
        ),
    );

    // Per-user order is enforced (see StepReport::assert_complete);
    // PUSHCLUSTER_E2E_STRICT_ORDER=0 only counts it.
    let strict_order = std::env::var("PUSHCLUSTER_E2E_STRICT_ORDER").map_or(true, |v| v != "0");
    let mut reports: Vec<StepReport> = Vec::new();
    let mut record = |r: StepReport| {
        phase(start, &r.to_string());
        r.assert_complete(strict_order);
        reports.push(r);
    };

    // 1. Messages flow: every device gets every message of its user.
    record(
        fleet
            .step(1, "messages flow", RATE, async {
                tokio::time::sleep(Duration::from_secs(4)).await;
                Ok(())
            })
            .await,
    );
    // Dispatch found the push pods by their headless names, through CoreDNS.
    let dispatch_ips: Vec<String> = items(
        &k,
        &[
            "get",
            "pods",
            "-n",
            APPS,
            "-l",
            "app.kubernetes.io/component=dispatch",
        ],
    )
    .unwrap()
    .iter()
    .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
    .collect();
    let askers = checks::headless_lookups(&node, &headless);
    assert!(
        dispatch_ips.iter().any(|ip| askers.contains(ip)),
        "no dispatch pod ({dispatch_ips:?}) looked up a headless name; askers: {askers:?}"
    );

    // 2. kubectl scale 5, the devices spread over 5 pods, then scale 2: removed pods drain.
    let on_removed = std::sync::Mutex::new(Vec::new());
    let r = fleet
        .step(2, "scale 3 → 5 → 2 (drain)", RATE, async {
            k.run(&[
                "scale",
                &format!("pushcluster/{NAME}"),
                "-n",
                APPS,
                "--replicas=5",
            ])?;
            cluster_settled(&k, 120).await;
            spread(&fleet, &k, 4).await?;
            let before = fleet.connections();
            k.run(&[
                "scale",
                &format!("pushcluster/{NAME}"),
                "-n",
                APPS,
                "--replicas=2",
            ])?;
            cluster_settled(&k, 120).await;
            let kept: Vec<String> = push_pods(&k)?.iter().map(|p| p.ip.clone()).collect();
            *on_removed.lock().unwrap() = before
                .iter()
                .filter(|(_, _, node)| !kept.iter().any(|ip| node.starts_with(&format!("{ip}:"))))
                .map(|(dev, _, _)| *dev)
                .collect();
            fleet.wait_connected(60).await
        })
        .await;
    let removed = on_removed.lock().unwrap().clone();
    let drained: Vec<_> = r
        .devices
        .iter()
        .filter(|d| removed.contains(&d.dev))
        .collect();
    assert!(
        !removed.is_empty() && drained.iter().all(|d| d.going_away > 0),
        "{} devices were on removed pods; not all saw 1001: {drained:#?}",
        removed.len()
    );
    record(r);

    // 3. A push pod deleted with --grace-period=0 --force.
    let r = fleet
        .step(3, "push pod force-deleted", RATE, async {
            spread(&fleet, &k, 2).await?;
            let victim = busiest(&fleet, &k)?;
            k.run(&[
                "delete",
                "pod",
                &victim,
                "-n",
                APPS,
                "--grace-period=0",
                "--force",
            ])?;
            cluster_settled(&k, 120).await;
            fleet.wait_connected(60).await
        })
        .await;
    record(r);

    // 4. The node kills a push container behind the kubelet's back; the kubelet restarts it.
    let r = fleet
        .step(4, "push container killed on the node", RATE, async {
            spread(&fleet, &k, 2).await?;
            let victim = busiest(&fleet, &k)?;
            let pod = push_pods(&k)?
                .into_iter()
                .find(|p| p.name == victim)
                .unwrap();
            node.kill_container(&pod.container)?;
            eventually("the kubelet restarted the container", 120, || {
                let pods = push_pods(&k);
                let pod = pod.clone();
                async move {
                    let now = pods?.into_iter().find(|p| p.name == pod.name);
                    ensure!(
                        now.is_some_and(|p| p.restarts > pod.restarts),
                        "not restarted and ready yet"
                    );
                    Ok(())
                }
            })
            .await;
            fleet.wait_connected(60).await
        })
        .await;
    assert!(
        r.broken() > 0,
        "nobody's connection broke when the container was killed: {r}"
    );
    record(r);

    // 5. A spec change that rolls every role.
    let r = fleet
        .step(5, "rolling update of every role", RATE, async {
            let before = replica_sets(&k)?;
            k.run(&[
                "patch",
                "pushcluster",
                NAME,
                "-n",
                APPS,
                "--type=merge",
                "-p",
                r#"{"spec":{"logFormat":"plain"}}"#,
            ])?;
            eventually("every role has a new ReplicaSet", 60, || {
                let now = replica_sets(&k);
                let before = before.clone();
                async move {
                    let now = now?;
                    for (role, sets) in &before {
                        ensure!(
                            now.get(role).is_some_and(|n| n.len() > sets.len()),
                            "{role} did not roll"
                        );
                    }
                    Ok(())
                }
            })
            .await;
            cluster_settled(&k, 240).await;
            fleet.wait_connected(60).await
        })
        .await;
    record(r);

    // 6. A drain of the push pods respects the PodDisruptionBudget (maxUnavailable 1).
    let r = fleet
        .step(6, "kubectl drain vs the PDB", RATE, async {
            let before = push_pods(&k)?;
            let out = k.command()
                .args(["drain", NODE_NAME, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=25s"])
                .arg(format!("--pod-selector=app.kubernetes.io/instance={NAME},app.kubernetes.io/component=push"))
                .output()?;
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            ensure!(!out.status.success(), "drain evicted every push pod despite the PDB:\n{text}");
            ensure!(text.contains("disruption budget"), "drain failed for another reason:\n{text}");
            let evicted = before.len() - push_pods(&k)?.iter().filter(|p| before.iter().any(|b| b.name == p.name)).count();
            ensure!(evicted == 1, "{evicted} push pods evicted; the PDB allows 1\n{text}");
            k.run(&["uncordon", NODE_NAME])?;
            cluster_settled(&k, 120).await;
            fleet.wait_connected(60).await
        })
        .await;
    record(r);

    // 7. Deleting the PushCluster removes every pod and child.
    k.run(&["delete", "pushcluster", NAME, "-n", APPS, "--wait=false"])
        .unwrap();
    eventually("every child of the PushCluster is gone", 120, || {
        let sel = format!("app.kubernetes.io/instance={NAME}");
        let lists: Vec<_> = [
            "pods",
            "deployments",
            "replicasets",
            "services",
            "configmaps",
            "secrets",
            "pdb",
            "networkpolicies",
        ]
        .iter()
        .map(|kind| (*kind, items(&k, &["get", kind, "-n", APPS, "-l", &sel])))
        .collect();
        async move {
            for (kind, list) in lists {
                let n = list?.len();
                if n > 0 {
                    bail!("{n} {kind} left");
                }
            }
            Ok(())
        }
    })
    .await;
    phase(start, "PushCluster deleted: every pod and child gone");

    let (expected, delivered): (usize, usize) = reports
        .iter()
        .map(StepReport::deliveries)
        .fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    phase(
        start,
        &format!(
            "done: {} messages accepted, {delivered} of {expected} deliveries made, over {} \
             steps; devices reordered {}, seq inversions {}",
            reports.iter().map(StepReport::accepted).sum::<usize>(),
            reports.len(),
            reports.iter().map(StepReport::reordered).sum::<usize>(),
            reports
                .iter()
                .map(StepReport::seq_inversions)
                .sum::<usize>()
        ),
    );
}

/// Reconnects every device until they are spread over at least `pods` push pods (kube-proxy
/// picks a pod at random per connection, and programs a new pod a moment after it is Ready:
/// a few rounds may be needed).
async fn spread(fleet: &Fleet, k: &Kubectl, pods: usize) -> anyhow::Result<()> {
    let mut seen = 0;
    for _ in 0..8 {
        fleet.reconnect_all();
        fleet.wait_connected(60).await?;
        let ready = push_pods(k)?;
        let nodes: std::collections::BTreeSet<String> = fleet
            .connections()
            .into_iter()
            .map(|(_, _, node)| node)
            .collect();
        seen = nodes.len();
        if seen >= pods.min(ready.len()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("devices stayed on {seen} push pods after 8 reconnects; wanted {pods}")
}

/// The push pod holding the most devices now.
fn busiest(fleet: &Fleet, k: &Kubectl) -> anyhow::Result<String> {
    let pods = push_pods(k)?;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, node) in fleet.connections() {
        if let Some(p) = pods
            .iter()
            .find(|p| node.starts_with(&format!("{}:", p.ip)))
        {
            *count.entry(p.name.clone()).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(name, _)| name)
        .ok_or_else(|| anyhow::anyhow!("no device is connected to a ready push pod"))
}

/// Names of each role's ReplicaSets.
fn replica_sets(k: &Kubectl) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rs in items(
        k,
        &[
            "get",
            "replicasets",
            "-n",
            APPS,
            "-l",
            &format!("app.kubernetes.io/instance={NAME}"),
        ],
    )? {
        let role = rs["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.entry(role).or_default().push(
            rs["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    Ok(out)
}
