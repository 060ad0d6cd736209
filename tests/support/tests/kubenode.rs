//! The single-node Kubernetes: pods run on the CNI bridge, Services route, CoreDNS answers,
//! and after a panic nothing of it is left on the machine.

use std::net::Ipv4Addr;

use pushcluster_test_support::dnsmasq::query_a;
use pushcluster_test_support::eventually;
use pushcluster_test_support::kubenode::{Footprint, Node};

const PAUSE_PODS: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: sleepers, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: sleepers}}
  template:
    metadata: {labels: {app: sleepers}}
    spec:
      containers:
        - {name: pause, image: IMAGE, imagePullPolicy: Never}
---
apiVersion: v1
kind: Service
metadata: {name: sleepers, namespace: default}
spec:
  selector: {app: sleepers}
  ports: [{port: 80}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_services_resolve_and_a_panic_leaves_nothing() {
    let run = tokio::spawn(async {
        let Some(node) = Node::start().await else {
            return;
        };
        let footprint = node.footprint();
        assert!(
            footprint.remaining().len() >= 3,
            "{:?}",
            footprint.remaining()
        );
        let k = node.kubectl();
        k.apply(&PAUSE_PODS.replace("IMAGE", &node.pause_image))
            .unwrap();
        k.run(&["rollout", "status", "deployment/sleepers", "--timeout=120s"])
            .unwrap();
        let pods = k.json(&["get", "pods", "-l", "app=sleepers"]).unwrap();
        for p in pods["items"].as_array().unwrap() {
            let ip: Ipv4Addr = p["status"]["podIP"].as_str().unwrap().parse().unwrap();
            assert_eq!(ip.octets()[..3], [10, 244, 0], "pod IP {ip}");
        }
        let svc = k.json(&["get", "service", "sleepers"]).unwrap();
        let cluster_ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        let dns = node.dns;
        eventually("the Service's name", 30, || async move {
            let (rcode, ips) = query_a(dns, "sleepers.default.svc.cluster.local").await?;
            anyhow::ensure!(rcode == 0 && ips == [cluster_ip], "rcode {rcode}, {ips:?}");
            Ok(())
        })
        .await;
        let (rcode, _) = query_a(dns, "example.com").await.unwrap();
        assert_eq!(rcode, 3, "names outside the cluster are NXDOMAIN");
        FOOTPRINT.lock().unwrap().replace(footprint);
        panic!("deliberate: the node must be torn down while unwinding");
    });
    let outcome = run.await;
    let Some(footprint) = FOOTPRINT.lock().unwrap().take() else {
        // Skipped (no root or tools), or failed before the deliberate panic.
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
        return;
    };
    assert!(outcome.unwrap_err().is_panic());
    assert_eq!(footprint.remaining(), Vec::<String>::new());
}

static FOOTPRINT: std::sync::Mutex<Option<Footprint>> = std::sync::Mutex::new(None);
