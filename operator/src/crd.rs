//! The `PushCluster` custom resource (`pushcluster.io/v1alpha1`): what a user asks for.
//!
//! Validation lives in the schema (ranges, patterns) and in CEL rules (`x-kubernetes-validations`)
//! so the API server rejects a bad spec with a message that says what to fix.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod apns;
mod roles;
mod security;
mod status;
mod vendors;

pub use apns::{ApnsEnvironment, ApnsProxy, ApnsSpec};
pub use roles::{ADMIN_PORT, AuthSpec, CollectSpec, DispatchSpec, PushSpec, ServiceType};
pub use security::{NetworkPoliciesSpec, SecuritySpec, TlsSpec};
pub use status::{PushClusterStatus, RoleStatus};
pub use vendors::{FcmSpec, HmsSpec, VivoSpec, XiaomiSpec};

/// API group of every pushcluster resource.
pub const GROUP: &str = "pushcluster.io";

/// A pushcluster: push, dispatch, collect and auth Deployments with their Services.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pushcluster.io",
    version = "v1alpha1",
    kind = "PushCluster",
    namespaced,
    status = "PushClusterStatus",
    derive = "PartialEq",
    shortname = "pcl",
    category = "pushcluster",
    doc = "A pushcluster: WebSocket push nodes, dispatch, collect and auth, run by the pushcluster operator",
    scale(
        spec_replicas_path = ".spec.push.replicas",
        status_replicas_path = ".status.push.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Push Ready", type_ = "integer", json_path = ".status.push.readyReplicas", description = "push pods ready"),
    printcolumn(name = "Push Desired", type_ = "integer", json_path = ".spec.push.replicas", description = "push pods wanted"),
    printcolumn(name = "Dispatch Ready", type_ = "integer", json_path = ".status.dispatch.readyReplicas", description = "dispatch pods ready"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "every role has its replicas ready"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name must be at most 40 characters: child objects append suffixes such as -push-headless")
)]
#[serde(rename_all = "camelCase")]
pub struct PushClusterSpec {
    /// Image holding `pushd`, used by every role that sets no image of its own. Defaults to the
    /// operator's `--pushd-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Pull policy of every pushd container.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Log format of every role.
    #[serde(default)]
    pub log_format: LogFormat,
    /// The cluster's DNS domain, used to name push nodes.
    #[serde(default = "default_cluster_domain")]
    #[schemars(length(min = 1, max = 253))]
    pub cluster_domain: String,
    /// Push nodes: hold the clients' WebSockets.
    #[serde(default)]
    pub push: PushSpec,
    /// Dispatch: looks users up in Redis and streams deliveries to push nodes.
    #[serde(default)]
    pub dispatch: DispatchSpec,
    /// Collect: the HTTP API business systems post messages to.
    pub collect: CollectSpec,
    /// Auth: verifies the clients' JWTs.
    pub auth: AuthSpec,
    /// The route table (user → push nodes).
    pub redis: RedisSpec,
    /// The message store.
    pub mongo: MongoSpec,
    /// Apple Push Notification service, for offline iOS devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<ApnsSpec>,
    /// The internal token, mutual TLS and NetworkPolicies between the roles.
    #[serde(default)]
    pub security: SecuritySpec,
    /// Firebase Cloud Messaging, for offline Android devices (direct, never through the APNs proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm: Option<FcmSpec>,
    /// Huawei Push Kit, for offline Huawei devices (direct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hms: Option<HmsSpec>,
    /// Xiaomi push, for offline Xiaomi devices (direct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xiaomi: Option<XiaomiSpec>,
    /// vivo push, for offline vivo devices (direct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vivo: Option<VivoSpec>,
}

fn default_cluster_domain() -> String {
    "cluster.local".into()
}

/// A key of a Secret in the PushCluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret in the PushCluster's namespace (the keys it must hold are documented where it is used).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Log format of pushd (`PUSHD_LOG_FORMAT`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Plain,
    #[default]
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Plain => "plain",
            LogFormat::Json => "json",
        }
    }
}

/// CPU and memory for a role's containers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// Minimum resources, e.g. `{cpu: 100m, memory: 128Mi}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_map")]
    pub requests: Option<BTreeMap<String, Quantity>>,
    /// Maximum resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_map")]
    pub limits: Option<BTreeMap<String, Quantity>>,
}

fn quantity_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
            "x-kubernetes-int-or-string": true
        }
    })
}

/// Redis: standalone or Redis Cluster, given as a URL or a Secret holding it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.url) != has(self.urlSecretRef)").message("set exactly one of redis.url and redis.urlSecretRef"))]
pub struct RedisSpec {
    /// `redis://[:password@]host:port[/db]`; in cluster mode a comma-separated list of seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.startsWith('redis://') || self.startsWith('rediss://')").message("redis.url must start with redis:// or rediss://"))]
    pub url: Option<String>,
    /// A Secret key holding the URL (use this when it carries a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// `standalone` or `cluster` (Redis Cluster; keys carry hash tags, one slot per user).
    #[serde(default)]
    pub mode: RedisMode,
    /// Lifetime of a route entry; push nodes renew theirs every third of it.
    #[serde(default = "default_route_ttl")]
    #[schemars(range(min = 3, max = 3600))]
    pub route_ttl_seconds: i32,
}

fn default_route_ttl() -> i32 {
    30
}

/// Redis deployment kind.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    #[default]
    Standalone,
    Cluster,
}

/// MongoDB (or any server the official driver supports).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MongoSpec {
    /// A Secret key holding the connection string (`mongodb://…` or `mongodb+srv://…`).
    pub uri_secret_ref: SecretKeyRef,
    /// Database name.
    #[serde(default = "default_database")]
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
}

fn default_database() -> String {
    "pushcluster".into()
}

impl PushCluster {
    /// The image of a role: its own, else the cluster's, else the operator's default.
    pub fn image_or<'a>(&'a self, role_image: Option<&'a str>, default: &'a str) -> &'a str {
        role_image.or(self.spec.image.as_deref()).unwrap_or(default)
    }
}

#[cfg(test)]
mod tests;
