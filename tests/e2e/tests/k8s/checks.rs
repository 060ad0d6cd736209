//! What the story checks besides delivery: node identities in Redis, headless-Service DNS.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use pushcluster_e2e::kubectl::json;
use pushcluster_routing::RouteTable as _;
use pushcluster_routing::redis::{RedisRouteTable, RedisTarget};
use pushcluster_test_support::Kubectl;
use pushcluster_test_support::dnsmasq::query_a;
use pushcluster_test_support::kubenode::{CLUSTER_DOMAIN, Node};

use super::setup::{APPS, NAME, PushPod};

/// The gRPC port of the push pods and the headless Service's name, from the operator's own
/// objects (so the check follows the operator when those change).
pub fn push_addressing(k: &Kubectl) -> anyhow::Result<(u16, String)> {
    let d = json(
        k,
        &["get", "deployment", &format!("{NAME}-push"), "-n", APPS],
    )?;
    let port = d["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "grpc")
        .and_then(|p| p["containerPort"].as_u64())
        .context("push container has no grpc port")?;
    let cm = json(
        k,
        &["get", "configmap", &format!("{NAME}-pushd"), "-n", APPS],
    )?;
    let service = cm["data"]["PUSHD_PUSH_SERVICE"]
        .as_str()
        .context("ConfigMap has no PUSHD_PUSH_SERVICE")?
        .to_owned();
    Ok((u16::try_from(port)?, service))
}

/// Every user's routes in Redis (read through the route table dispatch uses, so the key
/// layout is the data plane's business) name push pods by their pod IP and gRPC port, and
/// every connected device's node (from its welcome frame) is among its user's routes.
pub async fn routes_carry_pod_ips(
    redis: SocketAddr,
    pods: &[PushPod],
    grpc_port: u16,
    connections: &[(usize, String, String)],
) -> anyhow::Result<usize> {
    let target = RedisTarget::Standalone(format!("redis://{redis}"));
    let table = RedisRouteTable::connect(&target, Duration::from_secs(30)).await?;
    let ids: BTreeSet<String> = pods
        .iter()
        .map(|p| format!("{}:{grpc_port}", p.ip))
        .collect();
    let users: Vec<&str> = connections
        .iter()
        .map(|(_, user, _)| user.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let routes = table.lookup(&users).await?;
    let mut entries: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (user, nodes) in users.iter().zip(routes) {
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.0).collect();
        for n in &nodes {
            ensure!(
                ids.contains(n),
                "route of {user} names {n}, not a push pod ({ids:?})"
            );
        }
        entries.insert(user, nodes);
    }
    for (_, user, node) in connections {
        let routes = &entries[user.as_str()];
        ensure!(
            routes.contains(node),
            "{user} is connected to {node}, but its routes are {routes:?}"
        );
    }
    Ok(entries.values().map(Vec::len).sum())
}

/// The headless-Service name of a pod IP.
pub fn headless_name(ip: &str, service: &str) -> String {
    format!(
        "{}.{service}.{APPS}.svc.{CLUSTER_DOMAIN}",
        ip.replace('.', "-")
    )
}

/// CoreDNS answers each ready push pod's headless name with its IP, and NXDOMAIN for names
/// outside the cluster.
pub async fn dns_serves_push_pods(
    node: &Node,
    pods: &[PushPod],
    service: &str,
) -> anyhow::Result<()> {
    for p in pods {
        let name = headless_name(&p.ip, service);
        let (rcode, ips) = query_a(node.dns, &name).await?;
        ensure!(
            rcode == 0 && ips == [p.ip.parse::<Ipv4Addr>()?],
            "{name}: rcode {rcode}, {ips:?}"
        );
    }
    for outside in ["example.com", "github.com"] {
        let (rcode, ips) = query_a(node.dns, outside).await?;
        ensure!(
            rcode == 3 && ips.is_empty(),
            "{outside}: rcode {rcode}, {ips:?}"
        );
    }
    Ok(())
}

/// The pod IPs that asked CoreDNS for a push pod's headless name (its query log).
pub fn headless_lookups(node: &Node, service: &str) -> BTreeSet<String> {
    let log = std::fs::read_to_string(node.dir().join("logs/coredns.log")).unwrap_or_default();
    let needle = format!(".{service}.{APPS}.svc.{CLUSTER_DOMAIN}.");
    log.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            // `[INFO] 10.244.0.7:41234 - 5678 "A IN 10-244-0-5.demo-push-headless… udp …`
            let client = l.split_whitespace().nth(1)?;
            Some(client.rsplit_once(':')?.0.to_owned())
        })
        .collect()
}
