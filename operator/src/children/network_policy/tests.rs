//! NetworkPolicies, and the security settings every role's pod gets.

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::children::deployment;
use crate::children::fixtures::{push_cluster, spec, with_spec};
use crate::children::internal_token;
use crate::crd::{SecretKeyRef, TlsSpec};

/// (ports, callers' components or `None` for any source) of each ingress rule.
fn rules(np: &NetworkPolicy) -> Vec<(Vec<i32>, Option<Vec<String>>)> {
    np.spec
        .as_ref()
        .unwrap()
        .ingress
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| {
            let ports = r
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .map(|p| match p.port {
                    Some(IntOrString::Int(n)) => n,
                    ref other => panic!("{other:?}"),
                })
                .collect();
            let from = r.from.as_ref().map(|peers| {
                peers
                    .iter()
                    .map(|p| {
                        let labels = p
                            .pod_selector
                            .as_ref()
                            .unwrap()
                            .match_labels
                            .clone()
                            .unwrap();
                        assert_eq!(labels["app.kubernetes.io/instance"], "demo");
                        labels["app.kubernetes.io/component"].clone()
                    })
                    .collect()
            });
            (ports, from)
        })
        .collect()
}

#[test]
fn each_internal_port_is_reachable_only_from_its_caller() {
    let pc = push_cluster();
    let by_role = |role: Role| build(&pc, role);
    let caller = |c: &str| Some(vec![c.to_owned()]);
    assert_eq!(
        rules(&by_role(Role::Push)),
        [(vec![8080, 9090], None), (vec![7001], caller("dispatch"))]
    );
    assert_eq!(
        rules(&by_role(Role::Dispatch)),
        [(vec![9090], None), (vec![7002], caller("collect"))]
    );
    assert_eq!(
        rules(&by_role(Role::Auth)),
        [(vec![9090], None), (vec![7003], caller("push"))]
    );
    // The public API: HTTP and gRPC Submit open (the API keys guard them).
    assert_eq!(
        rules(&by_role(Role::Collect)),
        [(vec![8081, 7004, 9090], None)]
    );
    for role in Role::ALL {
        let np = by_role(role);
        let spec = np.spec.as_ref().unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_owned()][..])
        );
        assert_eq!(
            spec.pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["app.kubernetes.io/component"],
            role.as_str()
        );
    }
}

#[test]
fn metrics_from_limits_the_admin_port_and_never_opens_every_port() {
    let mut s = spec();
    let monitoring: NetworkPolicyPeer = serde_json::from_value(serde_json::json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }))
    .unwrap();
    s.security.network_policies.metrics_from = Some(vec![monitoring.clone()]);
    let pc = with_spec(s);
    for role in Role::ALL {
        let np = build(&pc, role);
        for rule in np.spec.unwrap().ingress.unwrap() {
            let ports = rule.ports.unwrap();
            assert!(
                !ports.is_empty(),
                "{role:?}: a rule without ports opens every port"
            );
            if ports.iter().any(|p| p.port == Some(IntOrString::Int(9090))) {
                assert_eq!(rule.from, Some(vec![monitoring.clone()]), "{role:?}");
            }
        }
    }
}

#[test]
fn network_policies_can_be_turned_off() {
    let mut s = spec();
    s.security.network_policies.enabled = false;
    assert!(build_all(&with_spec(s)).is_empty());
    assert_eq!(build_all(&push_cluster()).len(), 4);
}

fn container(pc: &PushCluster, role: Role) -> Container {
    let d = deployment::build(pc, role, "example/pushd:1");
    d.spec.unwrap().template.spec.unwrap().containers[0].clone()
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

#[test]
fn every_role_has_the_admin_port_named_metrics_and_probes_it() {
    let pc = push_cluster();
    for role in Role::ALL {
        let c = container(&pc, role);
        let ports = c.ports.clone().unwrap();
        let metrics = ports
            .iter()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .unwrap();
        assert_eq!(metrics.container_port, 9090, "{role:?}");
        assert_eq!(env(&c, "PUSHD_ADMIN_LISTEN"), Some("0.0.0.0:9090"));
        for probe in [&c.readiness_probe, &c.liveness_probe] {
            let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.port, IntOrString::String("metrics".into()), "{role:?}");
        }
        let public = ports.iter().any(|p| p.name.as_deref() == Some("http"));
        assert_eq!(
            public,
            matches!(role, Role::Push | Role::Collect),
            "{role:?}"
        );
        assert_eq!(env(&c, "PUSHD_LISTEN").is_some(), public, "{role:?}");
    }
}

#[test]
fn every_role_mounts_the_internal_token_generated_or_given() {
    let pc = push_cluster();
    assert!(internal_token::generated(&pc));
    for role in Role::ALL {
        let d = deployment::build(&pc, role, "example/pushd:1");
        let pod = d.spec.unwrap().template.spec.unwrap();
        let vol = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "internal-token")
            .unwrap();
        let src = vol.secret.unwrap();
        assert_eq!(src.secret_name.as_deref(), Some("demo-internal-token"));
        assert_eq!(src.items.unwrap()[0].key, "token");
        assert_eq!(
            env(&pod.containers[0], "PUSHD_INTERNAL_TOKEN_FILE"),
            Some("/etc/pushcluster/internal-token/token")
        );
    }
    let mut s = spec();
    s.security.internal_token_secret_ref = Some(SecretKeyRef {
        name: "mine".into(),
        key: "tok".into(),
    });
    let pc = with_spec(s);
    assert!(!internal_token::generated(&pc));
    assert_eq!(internal_token::secret_ref(&pc).name, "mine");
    assert!(
        crate::secrets::needed(&pc)
            .iter()
            .any(|n| n.field == "spec.security.internalTokenSecretRef" && n.key == "tok")
    );
}

#[test]
fn a_tls_secret_is_mounted_into_every_role_with_the_flags() {
    let mut s = spec();
    s.security.tls = Some(TlsSpec {
        secret_name: "demo-internal-tls".into(),
        server_name: Some("pushcluster.internal".into()),
    });
    let pc = with_spec(s);
    for role in Role::ALL {
        let c = container(&pc, role);
        assert_eq!(
            env(&c, "PUSHD_TLS_CERT"),
            Some("/etc/pushcluster/tls/tls.crt")
        );
        assert_eq!(
            env(&c, "PUSHD_TLS_KEY"),
            Some("/etc/pushcluster/tls/tls.key")
        );
        assert_eq!(env(&c, "PUSHD_TLS_CA"), Some("/etc/pushcluster/tls/ca.crt"));
        assert_eq!(
            env(&c, "PUSHD_TLS_SERVER_NAME"),
            Some("pushcluster.internal")
        );
    }
    let needed: Vec<String> = crate::secrets::needed(&pc)
        .into_iter()
        .filter(|n| n.name == "demo-internal-tls")
        .map(|n| n.key)
        .collect();
    assert_eq!(needed, ["tls.crt", "tls.key", "ca.crt"]);
    // Without TLS no role gets the flags.
    let c = container(&push_cluster(), Role::Push);
    assert!(env(&c, "PUSHD_TLS_CERT").is_none());
}

#[test]
fn generated_tokens_are_random_and_long() {
    let (a, b) = (
        internal_token::random_token(),
        internal_token::random_token(),
    );
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
    let secret = internal_token::build(&push_cluster(), a.clone());
    assert_eq!(secret.metadata.name.as_deref(), Some("demo-internal-token"));
    assert_eq!(secret.string_data.unwrap()["token"], a);
    assert_eq!(
        secret.metadata.owner_references.unwrap()[0].kind,
        "PushCluster"
    );
}
