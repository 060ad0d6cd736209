//! What the operator observed: conditions, replicas per role, the push pods' selector.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Status of a PushCluster, written only by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded` (metav1.Condition).
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Push pods (the `/scale` subresource reads `push.replicas`).
    #[serde(default)]
    pub push: RoleStatus,
    #[serde(default)]
    pub dispatch: RoleStatus,
    #[serde(default)]
    pub collect: RoleStatus,
    #[serde(default)]
    pub auth: RoleStatus,
    /// The push pods' label selector, serialized (for the `/scale` subresource and HPAs).
    #[serde(default)]
    pub selector: String,
}

/// Replicas of one role, from its Deployment's status.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    /// Pods of the Deployment (any version).
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods of the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
}
