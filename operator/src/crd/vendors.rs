//! The other push vendors — FCM, Huawei Push Kit, Xiaomi, vivo — sent to directly (never
//! through the APNs proxy). Each is off unless `enabled`; enabled, it needs its credentials
//! from a Secret, and the CEL rules say which field is missing.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// Firebase Cloud Messaging (HTTP v1), for Android devices.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.enabled || has(self.credentialsSecretRef)").message("fcm.credentialsSecretRef (a Secret key holding the Firebase service-account key JSON) is required when fcm.enabled is true")
)]
pub struct FcmSpec {
    /// Send to offline Android devices through FCM.
    #[serde(default)]
    pub enabled: bool,
    /// A Secret key holding the service-account key (JSON, as the Firebase console gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
    /// The Firebase project id (default: the key's `project_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9:.-]{0,62}$"))]
    pub project_id: Option<String>,
    /// `https://HOST[:PORT]` of the FCM API (default Google's), e.g. a private relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("fcm.endpoint must be an https:// URL"))]
    pub endpoint: Option<String>,
}

/// Huawei Push Kit (HMS), for Huawei devices.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.enabled || has(self.appId)").message("hms.appId (the AppGallery Connect app id) is required when hms.enabled is true"),
    validation = Rule::new("!self.enabled || has(self.clientSecretRef)").message("hms.clientSecretRef (a Secret key holding the app's client secret) is required when hms.enabled is true")
)]
pub struct HmsSpec {
    /// Send to offline Huawei devices through Push Kit.
    #[serde(default)]
    pub enabled: bool,
    /// The app id (numeric), also the OAuth client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,32}$"))]
    pub app_id: Option<String>,
    /// A Secret key holding the app's client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// `https://HOST[:PORT]` of the Push Kit API (default Huawei's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("hms.endpoint must be an https:// URL"))]
    pub endpoint: Option<String>,
    /// `https://HOST[:PORT]` of Huawei's OAuth server (default Huawei's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("hms.oauthEndpoint must be an https:// URL"))]
    pub oauth_endpoint: Option<String>,
}

/// Xiaomi push (MiPush), for Xiaomi devices.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.enabled || has(self.packageName)").message("xiaomi.packageName (the app's package name) is required when xiaomi.enabled is true"),
    validation = Rule::new("!self.enabled || has(self.appSecretRef)").message("xiaomi.appSecretRef (a Secret key holding the app secret) is required when xiaomi.enabled is true")
)]
pub struct XiaomiSpec {
    /// Send to offline Xiaomi devices through MiPush.
    #[serde(default)]
    pub enabled: bool,
    /// The app's package name (`restricted_package_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.]{1,255}$"))]
    pub package_name: Option<String>,
    /// A Secret key holding the app secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret_ref: Option<SecretKeyRef>,
    /// `https://HOST[:PORT]` of the MiPush API (default Xiaomi's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("xiaomi.endpoint must be an https:// URL"))]
    pub endpoint: Option<String>,
}

/// vivo push, for vivo devices.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.enabled || has(self.appId)").message("vivo.appId (the numeric app id) is required when vivo.enabled is true"),
    validation = Rule::new("!self.enabled || has(self.appKey)").message("vivo.appKey is required when vivo.enabled is true"),
    validation = Rule::new("!self.enabled || has(self.appSecretRef)").message("vivo.appSecretRef (a Secret key holding the app secret) is required when vivo.enabled is true")
)]
pub struct VivoSpec {
    /// Send to offline vivo devices through vivo push.
    #[serde(default)]
    pub enabled: bool,
    /// The app id (numeric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,20}$"))]
    pub app_id: Option<String>,
    /// The app key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[!-~]{1,255}$"))]
    pub app_key: Option<String>,
    /// A Secret key holding the app secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret_ref: Option<SecretKeyRef>,
    /// `https://HOST[:PORT]` of the vivo push API (default vivo's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("vivo.endpoint must be an https:// URL"))]
    pub endpoint: Option<String>,
}
