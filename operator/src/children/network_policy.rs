//! One NetworkPolicy per role (ingress only): each internal gRPC port is reachable only from
//! the role that calls it — push ← dispatch, dispatch ← collect, auth ← push. The public ports
//! (client WebSockets; the collect API, HTTP and gRPC Submit) are open. The metrics port is
//! open, or limited to `spec.security.networkPolicies.metricsFrom`. Pods of other roles, and
//! anything else, reach nothing else.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Role, meta, role_labels, selector};
use crate::crd::{ADMIN_PORT, PushCluster};

/// The role whose pods may call `role`'s gRPC port (`None`: anyone, it is a public API).
pub fn grpc_caller(role: Role) -> Option<Role> {
    match role {
        Role::Push => Some(Role::Dispatch),
        Role::Dispatch => Some(Role::Collect),
        Role::Auth => Some(Role::Push),
        Role::Collect => None,
    }
}

fn port(p: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }
}

fn rule(ports: Vec<i32>, from: Option<Vec<NetworkPolicyPeer>>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        ports: Some(ports.into_iter().map(port).collect()),
        from,
    }
}

/// The NetworkPolicy of `role`.
pub fn build(pc: &PushCluster, role: Role) -> NetworkPolicy {
    let mut ingress = Vec::new();
    let mut open = Vec::new();
    if let Some(p) = role.http_port(pc) {
        open.push(p);
    }
    match grpc_caller(role) {
        None => open.push(role.grpc_port(pc)),
        Some(caller) => ingress.push(rule(
            vec![role.grpc_port(pc)],
            Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(selector(pc, caller)),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            }]),
        )),
    }
    let metrics_from = pc.spec.security.network_policies.metrics_from.clone();
    match metrics_from {
        Some(from) => ingress.push(rule(vec![ADMIN_PORT], Some(from))),
        None => open.push(ADMIN_PORT),
    }
    // No `from`: any source. (Never an empty `ports`: that would open every port.)
    if !open.is_empty() {
        ingress.insert(0, rule(open, None));
    }
    NetworkPolicy {
        metadata: meta(pc, role.name(pc), role_labels(pc, role)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(pc, role)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Every NetworkPolicy of `pc` (none when turned off).
pub fn build_all(pc: &PushCluster) -> Vec<NetworkPolicy> {
    if !pc.spec.security.network_policies.enabled {
        return Vec::new();
    }
    Role::ALL.iter().map(|r| build(pc, *r)).collect()
}

#[cfg(test)]
mod tests;
