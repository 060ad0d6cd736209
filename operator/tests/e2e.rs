//! End to end on a real control plane (etcd + kube-apiserver + kube-controller-manager, no
//! kubelet): the chart installs the CRD and RBAC, the operator runs as local processes that
//! impersonate the chart's ServiceAccount (so the chart's RBAC is what they get), and
//! `kubectl` drives it like a user.
//!
//! Needs `make tools`; skipped loudly without them unless CI / PUSHCLUSTER_REQUIRE_SERVICES.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use pushcluster_test_support::Helm;
use pushcluster_test_support::Kubectl;
use pushcluster_test_support::kube::ControlPlane;
use serde_json::Value;

#[path = "e2e/harness.rs"]
mod harness;
use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_on_a_real_control_plane() {
    let start = Instant::now();
    let Some(helm) = Helm::helm() else { return };
    let Some(cp) = ControlPlane::start(true).await else {
        return;
    };
    let k = cp.kubectl_tool();
    let version = k.run(&["version", "-o", "json"]).unwrap();
    let v: Value = serde_json::from_str(&version).unwrap();
    phase(
        start,
        &format!(
            "control plane up: Kubernetes {}",
            v["serverVersion"]["gitVersion"]
        ),
    );
    let dir = cp.dir().to_owned();

    // The chart: CRD + RBAC, without the operator's Deployment (no kubelet to run it).
    let helm = helm.with_kubeconfig(&cp.kubeconfig);
    let chart = repo().join("charts/pushcluster-operator");
    helm.run(&[
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "-n",
        NS,
        "--create-namespace",
        "--set",
        "operator.enabled=false",
    ])
    .unwrap();
    k.run(&[
        "wait",
        "--for=condition=Established",
        "crd/pushclusters.pushcluster.io",
        "--timeout=60s",
    ])
    .unwrap();
    phase(start, "helm install done, CRD established");

    // Two operator replicas with the ServiceAccount's RBAC: the first leads, the second waits.
    let kubeconfig = impersonating_kubeconfig(&cp.kubeconfig, &dir);
    let mut a = start_operator("operator-a", &kubeconfig, &dir);
    let a_admin = a.admin;
    a.proc
        .wait_ready(Duration::from_secs(30), || async move {
            ensure!(
                metric(a_admin, "pushcluster_operator_leader").await? == 1.0,
                "not leader yet"
            );
            Ok(())
        })
        .await
        .unwrap();
    let mut b = start_operator("operator-b", &kubeconfig, &dir);
    let b_admin = b.admin;
    b.proc
        .wait_ready(Duration::from_secs(30), || async move {
            ensure!(http_get(b_admin, "/readyz").await?.0 == 200, "not ready");
            Ok(())
        })
        .await
        .unwrap();
    let lease = json(&k, &["get", "lease", RELEASE, "-n", NS]).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-a");
    phase(start, "operator-a holds the Lease, operator-b stands by");

    // kubectl apply the chart's example.
    k.run(&["create", "namespace", APPS]).unwrap();
    let example = chart.join("examples/pushcluster.yaml");
    k.run(&["apply", "-n", APPS, "-f", example.to_str().unwrap()])
        .unwrap();
    let pc = json(&k, &["get", "pushcluster", "demo", "-n", APPS]).unwrap();
    let uid = pc["metadata"]["uid"].as_str().unwrap().to_owned();
    eventually("the children of demo", 60, || async {
        for d in ["demo-push", "demo-dispatch", "demo-collect", "demo-auth"] {
            json(&k, &["get", "deployment", d, "-n", APPS])?;
        }
        for s in [
            "demo-push",
            "demo-push-headless",
            "demo-dispatch",
            "demo-collect",
            "demo-auth",
            "demo-metrics",
        ] {
            json(&k, &["get", "service", s, "-n", APPS])?;
        }
        for np in ["demo-push", "demo-dispatch", "demo-collect", "demo-auth"] {
            json(&k, &["get", "networkpolicy", np, "-n", APPS])?;
        }
        json(&k, &["get", "configmap", "demo-pushd", "-n", APPS])?;
        json(&k, &["get", "pdb", "demo-push", "-n", APPS])?;
        json(&k, &["get", "secret", "demo-internal-token", "-n", APPS])?;
        Ok(())
    })
    .await;
    phase(
        start,
        "example applied: 4 Deployments, 6 Services, 4 NetworkPolicies, ConfigMap, PDB, internal token Secret",
    );

    // The generated internal token: random, owned by the PushCluster, mounted into every role.
    let token = json(&k, &["get", "secret", "demo-internal-token", "-n", APPS]).unwrap();
    assert_eq!(token["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    let encoded = token["data"]["token"].as_str().unwrap();
    assert_eq!(encoded.len(), 88, "64 hex characters, base64: {encoded}");
    for d in ["demo-push", "demo-dispatch", "demo-collect", "demo-auth"] {
        let d = json(&k, &["get", "deployment", d, "-n", APPS]).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let vols = pod["volumes"].as_array().unwrap();
        assert!(
            vols.iter()
                .any(|v| v["secret"]["secretName"] == "demo-internal-token"),
            "{pod}"
        );
        let c = &pod["containers"][0];
        let metrics = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "metrics")
            .cloned()
            .unwrap();
        assert_eq!(metrics["containerPort"], 9090);
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    }
    // NetworkPolicies: each internal gRPC port only from the role that calls it.
    for (role, port, caller) in [
        ("push", 7001, "dispatch"),
        ("dispatch", 7002, "collect"),
        ("auth", 7003, "push"),
    ] {
        let np = json(
            &k,
            &["get", "networkpolicy", &format!("demo-{role}"), "-n", APPS],
        )
        .unwrap();
        let rules = np["spec"]["ingress"].as_array().unwrap();
        let grpc = rules
            .iter()
            .find(|r| r["ports"][0]["port"] == port)
            .unwrap_or_else(|| panic!("{np}"));
        assert_eq!(grpc["ports"].as_array().unwrap().len(), 1, "{np}");
        assert_eq!(
            grpc["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"], caller,
            "{np}"
        );
        assert!(
            rules.iter().all(|r| r["from"].is_array()
                || r["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["port"] != port)),
            "{role}: gRPC open to anyone: {np}"
        );
    }
    phase(
        start,
        "internal token Secret, metrics ports and NetworkPolicies checked",
    );

    // Their specs and owner references.
    let push = json(&k, &["get", "deployment", "demo-push", "-n", APPS]).unwrap();
    let owner = &push["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "PushCluster");
    assert_eq!(owner["uid"], uid.as_str());
    assert_eq!(owner["controller"], true);
    assert_eq!(push["spec"]["replicas"], 3);
    let pod = &push["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], IMAGE);
    assert_eq!(c["args"][0], "push");
    assert_eq!(pod["terminationGracePeriodSeconds"], 20 + 15);
    let env = c["env"].as_array().unwrap();
    let node_ip = env.iter().find(|e| e["name"] == "PUSHD_NODE_IP").unwrap();
    assert_eq!(
        node_ip["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    let with_fields = json(
        &k,
        &[
            "get",
            "deployment",
            "demo-push",
            "-n",
            APPS,
            "--show-managed-fields",
        ],
    )
    .unwrap();
    let managers: Vec<&str> = with_fields["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["operation"] == "Apply")
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["pushcluster-operator"]);
    let headless = json(&k, &["get", "service", "demo-push-headless", "-n", APPS]).unwrap();
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let clients = json(&k, &["get", "service", "demo-push", "-n", APPS]).unwrap();
    assert_eq!(clients["spec"]["type"], "LoadBalancer");
    let cm = json(&k, &["get", "configmap", "demo-pushd", "-n", APPS]).unwrap();
    assert_eq!(cm["data"]["PUSHD_AUTH_ADDR"], "http://demo-auth:7003");
    assert_eq!(cm["data"]["PUSHD_NAMESPACE"], APPS);

    // Status follows the Deployments (pods are created by kube-controller-manager but never
    // run: there is no kubelet, so Ready stays False).
    eventually("status.push.replicas = 3", 60, || async {
        let pc = json(&k, &["get", "pushcluster", "demo", "-n", APPS])?;
        ensure!(
            pc["status"]["push"]["replicas"] == 3,
            "status: {}",
            pc["status"]
        );
        ensure!(pc["status"]["observedGeneration"] == pc["metadata"]["generation"]);
        Ok(())
    })
    .await;
    let pc = json(&k, &["get", "pushcluster", "demo", "-n", APPS]).unwrap();
    let cond = |pc: &Value, t: &str| {
        pc["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond(&pc, "Ready")["status"], "False");
    assert_eq!(cond(&pc, "Ready")["reason"], "ReplicasNotReady");
    assert_eq!(cond(&pc, "Degraded")["status"], "False");
    assert_eq!(
        pc["status"]["selector"],
        "app.kubernetes.io/component=push,app.kubernetes.io/instance=demo,app.kubernetes.io/name=pushcluster"
    );
    let table = k.run(&["get", "pcl", "-n", APPS]).unwrap();
    assert!(
        table.contains("PUSH READY") && table.contains("DISPATCH READY"),
        "{table}"
    );
    let events = k
        .run(&[
            "get",
            "events.events.k8s.io",
            "-n",
            APPS,
            "--field-selector",
            "regarding.name=demo",
            "-o",
            "json",
        ])
        .unwrap();
    assert!(events.contains("\"Applied\""), "{events}");
    phase(start, "specs, owner references, status and events checked");

    // Nothing changed → no writes: a reconcile (triggered by an annotation) changes nothing.
    let versions = |k: &Kubectl| -> anyhow::Result<Vec<String>> {
        let mut v = Vec::new();
        for (kind, name) in [
            ("configmap", "demo-pushd"),
            ("service", "demo-push"),
            ("service", "demo-push-headless"),
            ("networkpolicy", "demo-push"),
            // Never rewritten: the token does not change under running pods.
            ("secret", "demo-internal-token"),
        ] {
            v.push(
                json(k, &["get", kind, name, "-n", APPS])?["metadata"]["resourceVersion"]
                    .to_string(),
            );
        }
        for d in ["demo-push", "demo-dispatch", "demo-collect", "demo-auth"] {
            v.push(
                json(k, &["get", "deployment", d, "-n", APPS])?["metadata"]["generation"]
                    .to_string(),
            );
        }
        let pc = json(k, &["get", "pushcluster", "demo", "-n", APPS])?;
        v.push(pc["status"].to_string());
        Ok(v)
    };
    let before = versions(&k).unwrap();
    let reconciles = metric(a.admin, "pushcluster_operator_reconciles_total")
        .await
        .unwrap();
    k.run(&["annotate", "pushcluster", "demo", "-n", APPS, "e2e/poke=1"])
        .unwrap();
    eventually("a reconcile after the annotation", 30, || async {
        ensure!(metric(a.admin, "pushcluster_operator_reconciles_total").await? > reconciles);
        Ok(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        versions(&k).unwrap(),
        before,
        "a no-op reconcile wrote something"
    );
    phase(start, "no-op reconcile wrote nothing");

    // kubectl scale through the /scale subresource.
    k.run(&["scale", "pushcluster/demo", "-n", APPS, "--replicas=5"])
        .unwrap();
    eventually("push Deployment at 5 and status following", 60, || async {
        let d = json(&k, &["get", "deployment", "demo-push", "-n", APPS])?;
        ensure!(
            d["spec"]["replicas"] == 5,
            "deployment replicas {}",
            d["spec"]["replicas"]
        );
        let pc = json(&k, &["get", "pushcluster", "demo", "-n", APPS])?;
        ensure!(
            pc["status"]["push"]["replicas"] == 5,
            "status {}",
            pc["status"]["push"]
        );
        Ok(())
    })
    .await;
    let scale = json(
        &k,
        &[
            "get",
            "--raw",
            "/apis/pushcluster.io/v1alpha1/namespaces/apps/pushclusters/demo/scale",
        ],
    )
    .unwrap_or_else(|_| {
        serde_json::from_str(
            &k.run(&[
                "get",
                "--raw",
                "/apis/pushcluster.io/v1alpha1/namespaces/apps/pushclusters/demo/scale",
            ])
            .unwrap(),
        )
        .unwrap()
    });
    assert_eq!(scale["status"]["replicas"], 5);
    assert!(
        scale["status"]["selector"]
            .as_str()
            .unwrap()
            .contains("component=push")
    );
    phase(
        start,
        "kubectl scale --replicas=5: Deployment and status at 5",
    );

    // A spec edit rolls through: new settings → new pod template → a new ReplicaSet.
    let hash = |d: &Value| {
        d["spec"]["template"]["metadata"]["annotations"]["pushcluster.io/config-hash"].clone()
    };
    let old_hash = hash(&json(&k, &["get", "deployment", "demo-dispatch", "-n", APPS]).unwrap());
    k.run(&[
        "patch", "pushcluster", "demo", "-n", APPS, "--type=merge", "-p",
        r#"{"spec":{"redis":{"url":"redis://redis-2.databases.svc:6379"},"dispatch":{"image":"registry.example/pushcluster:e2e-2"}}}"#,
    ])
    .unwrap();
    eventually(
        "the edit rolled into the dispatch Deployment",
        60,
        || async {
            let cm = json(&k, &["get", "configmap", "demo-pushd", "-n", APPS])?;
            ensure!(cm["data"]["PUSHD_REDIS_URL"] == "redis://redis-2.databases.svc:6379");
            let d = json(&k, &["get", "deployment", "demo-dispatch", "-n", APPS])?;
            ensure!(hash(&d) != old_hash, "config hash unchanged");
            ensure!(
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    == "registry.example/pushcluster:e2e-2"
            );
            let rs = json(
                &k,
                &[
                    "get",
                    "replicasets",
                    "-n",
                    APPS,
                    "-l",
                    "app.kubernetes.io/component=dispatch",
                ],
            )?;
            ensure!(
                rs["items"].as_array().unwrap().len() >= 2,
                "no new ReplicaSet yet"
            );
            Ok(())
        },
    )
    .await;
    phase(
        start,
        "spec edit rolled: ConfigMap, pod template hash, image, new ReplicaSet",
    );

    // Invalid specs are rejected by the API server with messages that say what to fix.
    let base = std::fs::read_to_string(&example).unwrap();
    let base = base.split("---\n").nth(1).unwrap().to_owned();
    let invalid: [(&str, &str, &str); 13] = [
        (
            "    replicas: 3\n",
            "    replicas: -1\n",
            "should be greater than or equal to 0",
        ),
        (
            "    url: redis://redis.databases.svc:6379\n",
            "    url: redis://redis.databases.svc:6379\n    urlSecretRef: {name: r, key: url}\n",
            "set exactly one of redis.url and redis.urlSecretRef",
        ),
        (
            "  mongo:\n",
            "  apns:\n    enabled: true\n    teamId: ABCDE12345\n    keyId: KEY1234567\n    topic: com.example.app\n  mongo:\n",
            "apns.keySecretRef is required when apns.enabled is true",
        ),
        (
            "  mongo:\n",
            "  apns:\n    proxy: {url: ftp://proxy:21}\n  mongo:\n",
            "apns.proxy.url must be an http:// or https:// URL",
        ),
        (
            "    drainSeconds: 20\n",
            "    drainSeconds: 20\n    grpcPort: 8080\n",
            "push.clientPort and push.grpcPort must differ",
        ),
        (
            "  mongo:\n",
            "  fcm:\n    enabled: true\n  mongo:\n",
            "fcm.credentialsSecretRef (a Secret key holding the Firebase service-account key JSON) is required when fcm.enabled is true",
        ),
        (
            "  mongo:\n",
            "  hms:\n    enabled: true\n    appId: \"104523456\"\n    clientSecretRef: {name: hms, key: secret}\n    endpoint: http://push.example\n  mongo:\n",
            "hms.endpoint must be an https:// URL",
        ),
        (
            "  mongo:\n",
            "  xiaomi:\n    enabled: true\n    appSecretRef: {name: xiaomi, key: secret}\n  mongo:\n",
            "xiaomi.packageName (the app's package name) is required when xiaomi.enabled is true",
        ),
        (
            "  mongo:\n",
            "  vivo:\n    enabled: true\n    appId: \"105001234\"\n    appSecretRef: {name: vivo, key: secret}\n  mongo:\n",
            "vivo.appKey is required when vivo.enabled is true",
        ),
        (
            "  name: demo\n",
            "  name: a-name-that-is-far-too-long-for-its-children-x\n",
            "metadata.name must be at most 40 characters",
        ),
        (
            "    drainSeconds: 20\n",
            "    drainSeconds: 20\n    clientPort: 9090\n",
            "push.clientPort and push.grpcPort must not be 9090",
        ),
        (
            "  mongo:\n",
            "  security:\n    tls: {secretName: Not_A_Name}\n  mongo:\n",
            "security.tls.secretName must be a Secret name",
        ),
        (
            "  mongo:\n",
            "  security:\n    networkPolicies: {enabled: false, metricsFrom: [{podSelector: {}}]}\n  mongo:\n",
            "security.networkPolicies.metricsFrom has no effect unless enabled is true",
        ),
    ];
    for (from, to, message) in invalid {
        assert!(base.contains(from), "example lacks {from:?}");
        let bad = base
            .replacen(from, to, 1)
            .replacen("name: demo\n", "name: bad\n", 1);
        let err = k
            .apply(&bad.replace("metadata:\n", &format!("metadata:\n  namespace: {APPS}\n")))
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains(message), "expected {message:?} in: {err}");
    }
    phase(start, "13 invalid specs rejected with their messages");

    // A referenced Secret that is missing: Degraded naming it, no crash; recovers once created.
    let nosecret = base
        .replacen("name: demo\n", "name: lonely\n", 1)
        .replace("name: demo-pushcluster", "name: lonely-secrets")
        .replace("metadata:\n", &format!("metadata:\n  namespace: {APPS}\n"));
    k.apply(&nosecret).unwrap();
    eventually("Degraded naming the missing Secret", 60, || async {
        let pc = json(&k, &["get", "pushcluster", "lonely", "-n", APPS])?;
        let d = pc["status"]["conditions"]
            .as_array()
            .context("no conditions")?
            .iter()
            .find(|c| c["type"] == "Degraded")
            .cloned()
            .context("no Degraded")?;
        ensure!(
            d["status"] == "True" && d["reason"] == "SecretMissing",
            "{d}"
        );
        ensure!(
            d["message"]
                .as_str()
                .unwrap()
                .contains("Secret lonely-secrets"),
            "{d}"
        );
        Ok(())
    })
    .await;
    a.proc.check_running().unwrap();
    k.run(&[
        "create",
        "secret",
        "generic",
        "lonely-secrets",
        "-n",
        APPS,
        "--from-literal=mongodb-uri=mongodb://m",
        "--from-literal=jwt-secret=j",
        "--from-literal=api-key=0123456789abcdef",
    ])
    .unwrap();
    eventually("Degraded cleared once the Secret exists", 60, || async {
        let pc = json(&k, &["get", "pushcluster", "lonely", "-n", APPS])?;
        let d = pc["status"]["conditions"]
            .as_array()
            .context("no conditions")?
            .iter()
            .find(|c| c["type"] == "Degraded")
            .cloned()
            .context("no Degraded")?;
        ensure!(d["status"] == "False", "{d}");
        Ok(())
    })
    .await;
    phase(
        start,
        "missing Secret: Degraded with its name, then recovered",
    );

    // operator-b stayed idle while operator-a led.
    assert_eq!(
        metric(b.admin, "pushcluster_operator_leader")
            .await
            .unwrap(),
        0.0
    );
    assert_eq!(
        metric(b.admin, "pushcluster_operator_reconciles_total")
            .await
            .unwrap(),
        0.0
    );
    b.proc.check_running().unwrap();
    // SIGTERM to the leader: it releases the Lease and operator-b takes over.
    let status = Command::new("kill")
        .args(["-TERM", &a.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually("operator-b leads", 30, || async {
        ensure!(metric(b.admin, "pushcluster_operator_leader").await? == 1.0);
        Ok(())
    })
    .await;
    let lease = json(&k, &["get", "lease", RELEASE, "-n", NS]).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    k.run(&["scale", "pushcluster/demo", "-n", APPS, "--replicas=2"])
        .unwrap();
    eventually("operator-b scaled push to 2", 60, || async {
        let d = json(&k, &["get", "deployment", "demo-push", "-n", APPS])?;
        ensure!(d["spec"]["replicas"] == 2);
        Ok(())
    })
    .await;
    let log = std::fs::read_to_string(a.proc.log()).unwrap();
    assert!(log.contains("released the Lease"), "{log}");
    phase(
        start,
        "leader SIGTERM: Lease released, operator-b took over and reconciles",
    );

    // Deleting the PushCluster garbage-collects every child.
    k.run(&["delete", "pushcluster", "demo", "-n", APPS, "--wait=false"])
        .unwrap();
    eventually("the children of demo are gone", 90, || async {
        let sel = "app.kubernetes.io/instance=demo";
        for kind in [
            "deployments",
            "services",
            "configmaps",
            "pdb",
            "replicasets",
            "networkpolicies",
            "secrets",
        ] {
            let l = json(&k, &["get", kind, "-n", APPS, "-l", sel])?;
            let n = l["items"].as_array().unwrap().len();
            if n > 0 {
                bail!("{n} {kind} left");
            }
        }
        Ok(())
    })
    .await;
    phase(start, "PushCluster deleted: children garbage-collected");
    b.proc.check_running().unwrap();
}
