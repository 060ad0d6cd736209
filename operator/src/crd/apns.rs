//! Apple Push Notification service settings (used by the APNs sender; validated here).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SecretKeyRef, SecretRef};

/// APNs: token-based (.p8 key) authentication, optionally through an HTTP proxy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.enabled || has(self.keySecretRef)").message("apns.keySecretRef is required when apns.enabled is true"),
    validation = Rule::new("!self.enabled || has(self.teamId)").message("apns.teamId is required when apns.enabled is true"),
    validation = Rule::new("!self.enabled || has(self.keyId)").message("apns.keyId is required when apns.enabled is true"),
    validation = Rule::new("!self.enabled || has(self.topic)").message("apns.topic (the app's bundle id) is required when apns.enabled is true")
)]
pub struct ApnsSpec {
    /// Send to offline iOS devices through APNs.
    #[serde(default)]
    pub enabled: bool,
    /// `production` or `sandbox`.
    #[serde(default)]
    pub environment: ApnsEnvironment,
    /// The app's bundle id (`apns-topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub topic: Option<String>,
    /// Apple developer team id (10 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z0-9]{10}$"))]
    pub team_id: Option<String>,
    /// Id of the signing key (10 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z0-9]{10}$"))]
    pub key_id: Option<String>,
    /// A Secret key holding the .p8 signing key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
    /// An HTTP(S) proxy to reach APNs through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ApnsProxy>,
}

/// APNs environment.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApnsEnvironment {
    #[default]
    Production,
    Sandbox,
}

/// An HTTP CONNECT proxy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApnsProxy {
    /// `http://host:port` or `https://host:port`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("apns.proxy.url must be an http:// or https:// URL"))]
    pub url: String,
    /// A Secret with keys `username` and `password` for the proxy's basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}
