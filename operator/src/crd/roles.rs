//! Per-role settings: push, dispatch, collect, auth.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Resources, SecretKeyRef};

/// The admin port (`/metrics`, `/healthz`, `/readyz`) of every role's pods, named `metrics`.
pub const ADMIN_PORT: i32 = 9090;

/// The default of `--node-addr-template` in `pushd dispatch`.
pub const DEFAULT_NODE_ADDR_TEMPLATE: &str =
    "{ip_dashed}.{service}.{namespace}.svc.{cluster_domain}:{port}";

/// Push nodes: client WebSockets, and the gRPC stream dispatch delivers on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.clientPort != self.grpcPort").message("push.clientPort and push.grpcPort must differ"),
    validation = Rule::new("self.clientPort != 9090 && self.grpcPort != 9090").message("push.clientPort and push.grpcPort must not be 9090: every role's admin (metrics) port")
)]
pub struct PushSpec {
    /// Number of push pods (the `/scale` subresource: `kubectl scale pushcluster/NAME --replicas=N`).
    #[serde(default = "two")]
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: i32,
    /// Image of the push pods (default: `spec.image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Port of client WebSockets (`/ws`; also /healthz, /readyz for load balancers).
    #[serde(default = "push_client_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub client_port: i32,
    /// Port of the Node gRPC service dispatch streams deliveries to.
    #[serde(default = "push_grpc_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub grpc_port: i32,
    /// How dispatch turns a node id (pod IP and gRPC port) into an address. Placeholders:
    /// {ip}, {ip_dashed}, {port}, {service}, {namespace}, {cluster_domain}.
    #[serde(default = "node_addr_template")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.contains('{port}') && (self.contains('{ip}') || self.contains('{ip_dashed}'))").message("push.nodeAddrTemplate must contain {port} and {ip} or {ip_dashed}"))]
    pub node_addr_template: String,
    /// Type of the Service clients connect to.
    #[serde(default)]
    pub service_type: ServiceType,
    /// On SIGTERM a push node closes its clients with 1001 "going away" and exits within this
    /// many seconds; the pod's termination grace period is 15 s longer.
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 3600))]
    pub drain_seconds: i32,
    /// Push pods the PodDisruptionBudget lets an eviction take down at once.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub max_unavailable: i32,
}

impl Default for PushSpec {
    fn default() -> Self {
        PushSpec {
            replicas: two(),
            image: None,
            resources: None,
            client_port: push_client_port(),
            grpc_port: push_grpc_port(),
            node_addr_template: node_addr_template(),
            service_type: ServiceType::default(),
            drain_seconds: ten(),
            max_unavailable: one(),
        }
    }
}

/// Dispatch: reads routes from Redis, streams deliveries to push nodes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DispatchSpec {
    #[serde(default = "two")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

impl Default for DispatchSpec {
    fn default() -> Self {
        DispatchSpec {
            replicas: two(),
            image: None,
            resources: None,
        }
    }
}

/// Collect: the HTTP API (`POST /v1/messages`) and the gRPC Submit service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.port != 9090 && self.port != 7004").message("collect.port must not be 9090 (the admin/metrics port) or 7004 (gRPC Submit)"))]
pub struct CollectSpec {
    #[serde(default = "two")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// A Secret key holding the API key business systems send as `Authorization: Bearer` on
    /// HTTP and gRPC (at least 16 bytes; one key per line to rotate: every line is accepted).
    /// Mounted as a file, so a new key is picked up without a restart.
    pub api_key_secret_ref: SecretKeyRef,
    /// Port of the HTTP API (also /healthz, /readyz for load balancers).
    #[serde(default = "collect_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Type of the Service business systems post to.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Largest accepted `payload` in bytes (default: pushd's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_payload_bytes: Option<i64>,
    /// Most recipients of one message (default: pushd's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_recipients: Option<i64>,
    /// TTL of a message that gives none, in seconds (default: pushd's, one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_ttl_seconds: Option<i64>,
}

/// Auth: verifies client tokens (JWT, HS256 or RS256) for the push nodes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    #[serde(default = "two")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// A Secret key holding the HS256 key. Mounted as a file, so a rotated key is picked up
    /// without a restart.
    pub jwt_secret_ref: SecretKeyRef,
    /// A Secret key holding a JSON Web Key Set: RS256 tokens are verified with its keys,
    /// chosen by `kid`. Mounted as a file, so rotated keys are picked up without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_secret_ref: Option<SecretKeyRef>,
    /// Required `iss` of client tokens: tokens from any other issuer, or without `iss`, are
    /// refused. Default: the issuer is not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub issuer: Option<String>,
    /// Accepted audiences: a token's `aud` must name at least one, and a token without `aud`
    /// is refused. Default: `aud` is not checked — set it when the identity provider also
    /// issues tokens for other applications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 1024)))]
    #[x_kube(validation = Rule::new("self.all(a, !a.contains(','))").message("auth.audiences: an audience must not contain a comma (give each audience as its own entry)"))]
    pub audiences: Vec<String>,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds (default: pushd's, 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 300))]
    pub leeway_seconds: Option<i32>,
}

/// Kubernetes Service type for client-facing traffic.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

fn one() -> i32 {
    1
}
fn two() -> i32 {
    2
}
fn ten() -> i32 {
    10
}
fn push_client_port() -> i32 {
    8080
}
fn push_grpc_port() -> i32 {
    7001
}
fn collect_port() -> i32 {
    8081
}
fn node_addr_template() -> String {
    DEFAULT_NODE_ADDR_TEMPLATE.into()
}
