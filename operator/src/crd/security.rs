//! How the roles authenticate each other, and who may reach which port.

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// A DNS-1123 subdomain (the form of Secret names and DNS names), for CEL `matches` (no
/// backslash: `[.]`, so it reads the same in a CEL string literal).
const DNS_SUBDOMAIN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Internal authentication and network isolation. Everything has a safe default: a generated
/// internal token, NetworkPolicies on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// A Secret key holding the internal token every role sends and requires on internal gRPC
    /// (at least 16 visible ASCII characters; several lines to rotate: every line is
    /// accepted, the first is sent). Default: the operator creates the Secret
    /// `<name>-internal-token` (key `token`) with a random token, owned by this PushCluster,
    /// and never changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_token_secret_ref: Option<SecretKeyRef>,
    /// Mutual TLS on internal gRPC, from a Secret in cert-manager's layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// NetworkPolicies that let only the right roles reach each internal port.
    #[serde(default)]
    pub network_policies: NetworkPoliciesSpec,
}

/// Mutual TLS between the roles: servers require a client certificate from the CA, clients
/// verify the server. The files are re-read when the Secret changes (e.g. cert-manager renews).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret with `tls.crt`, `tls.key` and `ca.crt` (a cert-manager Certificate's Secret),
    /// mounted into every role. The certificate must allow client and server auth, and carry
    /// the names the roles dial (`<name>-dispatch`, `<name>-auth` and the push nodes'
    /// `*.<name>-push-headless.<namespace>.svc.<clusterDomain>`), or `serverName`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(format!("self.matches('{DNS_SUBDOMAIN}')")).message("security.tls.secretName must be a Secret name: lowercase letters, digits, '-' and '.'"))]
    pub secret_name: String,
    /// One name every role's certificate carries, checked instead of the address dialed
    /// (simplest with one certificate for the whole cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(format!("self.matches('{DNS_SUBDOMAIN}')")).message("security.tls.serverName must be a DNS name: lowercase letters, digits, '-' and '.'"))]
    pub server_name: Option<String>,
}

/// The NetworkPolicies of a cluster: push gRPC only from dispatch, dispatch gRPC only from
/// collect, auth gRPC only from push; client WebSockets and the collect API (HTTP and gRPC)
/// from anywhere; the metrics port from `metricsFrom`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.enabled || !has(self.metricsFrom)").message("security.networkPolicies.metricsFrom has no effect unless enabled is true"))]
pub struct NetworkPoliciesSpec {
    /// Create the NetworkPolicies (they need a CNI that enforces them).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Who may scrape the metrics port (`/metrics`, `/healthz`, `/readyz`), as NetworkPolicy
    /// `from` entries, e.g. `[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name:
    /// monitoring}}}]`. Default: anyone (kubelet probes are not subject to NetworkPolicies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub metrics_from: Option<Vec<NetworkPolicyPeer>>,
}

impl Default for NetworkPoliciesSpec {
    fn default() -> Self {
        NetworkPoliciesSpec {
            enabled: true,
            metrics_from: None,
        }
    }
}

fn yes() -> bool {
    true
}
