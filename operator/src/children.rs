//! Pure functions from a [`PushCluster`] to the objects that run it.
//!
//! Every child carries the same labels, an owner reference to its PushCluster (so deleting the
//! PushCluster garbage-collects it) and is applied server-side with one field manager.
//!
//! - [`config_map`]: settings shared by every role (`PUSHD_…` env vars).
//! - [`deployment`]: one Deployment per [`Role`]; [`mobile`]: the push vendors' settings and
//!   credentials on the dispatch pods.
//! - [`service`]: client, headless (push node addressing), per-role and metrics Services.
//! - [`pdb`]: the push PodDisruptionBudget.
//! - [`network_policy`]: one NetworkPolicy per role: who may reach which port.
//! - [`internal_token`]: the generated internal-token Secret (created once, never changed).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::PushCluster;

pub mod config_map;
pub mod deployment;
pub mod internal_token;
pub mod mobile;
pub mod network_policy;
pub mod pdb;
pub mod service;

/// The four data-plane roles, each `pushd <role>` in its own Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Push,
    Dispatch,
    Collect,
    Auth,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Push, Role::Dispatch, Role::Collect, Role::Auth];

    /// The `pushd` subcommand, the component label and the name suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Push => "push",
            Role::Dispatch => "dispatch",
            Role::Collect => "collect",
            Role::Auth => "auth",
        }
    }

    /// Port of the role's public surface: client WebSockets (push), the HTTP API (collect).
    pub fn http_port(self, pc: &PushCluster) -> Option<i32> {
        match self {
            Role::Push => Some(pc.spec.push.client_port),
            Role::Collect => Some(pc.spec.collect.port),
            Role::Dispatch | Role::Auth => None,
        }
    }

    /// Port of the role's gRPC service.
    pub fn grpc_port(self, pc: &PushCluster) -> i32 {
        match self {
            Role::Push => pc.spec.push.grpc_port,
            Role::Dispatch => 7002,
            Role::Collect => 7004,
            Role::Auth => 7003,
        }
    }

    /// Desired replicas.
    pub fn replicas(self, pc: &PushCluster) -> i32 {
        match self {
            Role::Push => pc.spec.push.replicas,
            Role::Dispatch => pc.spec.dispatch.replicas,
            Role::Collect => pc.spec.collect.replicas,
            Role::Auth => pc.spec.auth.replicas,
        }
    }

    /// Name of the role's Deployment and Service: `<cluster>-<role>`.
    pub fn name(self, pc: &PushCluster) -> String {
        format!("{}-{}", pc.name_any(), self.as_str())
    }
}

/// Name of the headless Service over every pod's metrics port (for a ServiceMonitor).
pub fn metrics_service_name(pc: &PushCluster) -> String {
    format!("{}-metrics", pc.name_any())
}

/// Name of the headless Service that gives each ready push pod a DNS name.
pub fn push_headless_name(pc: &PushCluster) -> String {
    format!("{}-push-headless", pc.name_any())
}

/// Labels of every child of `pc`.
pub fn labels(pc: &PushCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "pushcluster".into()),
        ("app.kubernetes.io/instance".into(), pc.name_any()),
        (
            "app.kubernetes.io/managed-by".into(),
            "pushcluster-operator".into(),
        ),
    ])
}

/// The labels that select every pod of `pc`, whatever its role.
pub fn instance_selector(pc: &PushCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "pushcluster".into()),
        ("app.kubernetes.io/instance".into(), pc.name_any()),
    ])
}

/// The labels that select a role's pods (stable: a Deployment's selector is immutable).
pub fn selector(pc: &PushCluster, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "pushcluster".into()),
        ("app.kubernetes.io/instance".into(), pc.name_any()),
        ("app.kubernetes.io/component".into(), role.as_str().into()),
    ])
}

/// A selector as a string (`k=v,k=v`), as the `/scale` subresource wants it.
pub fn selector_string(pc: &PushCluster, role: Role) -> String {
    selector(pc, role)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of a role's objects and pods: the common labels plus the component.
pub fn role_labels(pc: &PushCluster, role: Role) -> BTreeMap<String, String> {
    let mut l = labels(pc);
    l.insert("app.kubernetes.io/component".into(), role.as_str().into());
    l
}

/// Metadata of a child: name, namespace, labels, controller owner reference.
pub fn meta(pc: &PushCluster, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: pc.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner_ref(pc)]),
        ..ObjectMeta::default()
    }
}

/// A controller owner reference to `pc` that blocks its deletion until the child is gone.
pub fn owner_ref(pc: &PushCluster) -> OwnerReference {
    // controller_owner_ref is None only for an object without a name or uid (not from the API).
    let mut r = pc
        .controller_owner_ref(&())
        .unwrap_or_else(|| OwnerReference {
            api_version: PushCluster::api_version(&()).into_owned(),
            kind: PushCluster::kind(&()).into_owned(),
            name: pc.name_any(),
            uid: pc.uid().unwrap_or_default(),
            controller: Some(true),
            ..OwnerReference::default()
        });
    r.block_owner_deletion = Some(true);
    r
}

/// 64-bit FNV-1a, hex: a stable hash (across Rust versions, unlike `DefaultHasher`) of the
/// settings a pod template depends on, so a settings change rolls the pods.
pub fn stable_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
