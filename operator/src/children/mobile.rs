//! Mobile push on the dispatch pods: `spec.apns`, `spec.fcm`, `spec.hms`, `spec.xiaomi` and
//! `spec.vivo` become `pushd dispatch`'s `--apns-…`, `--fcm-…`, … flags (as `PUSHD_…` env).
//! Keys and secrets are mounted as files from their Secrets (never put in env values); only
//! the APNs proxy credentials travel as env, expanded from the Secret's `username` and
//! `password`. Mobile records live in MongoDB, so dispatch gets its URI when any vendor is on.

use k8s_openapi::api::core::v1::EnvVar;

use super::deployment::{SecretVolume, env, env_from_secret};
use crate::crd::{ApnsEnvironment, PushCluster, SecretKeyRef};

/// Where dispatch pods see the APNs signing key (`key.p8`) when `spec.apns` is enabled.
pub const APNS_DIR: &str = "/etc/pushcluster/apns";
/// … the FCM service-account key (`service-account.json`).
pub const FCM_DIR: &str = "/etc/pushcluster/fcm";
/// … the Huawei client secret (`client-secret`).
pub const HMS_DIR: &str = "/etc/pushcluster/hms";
/// … the Xiaomi app secret (`app-secret`).
pub const XIAOMI_DIR: &str = "/etc/pushcluster/xiaomi";
/// … the vivo app secret (`app-secret`).
pub const VIVO_DIR: &str = "/etc/pushcluster/vivo";

/// True when any vendor is enabled.
pub fn enabled(pc: &PushCluster) -> bool {
    let s = &pc.spec;
    s.apns.as_ref().is_some_and(|a| a.enabled)
        || s.fcm.as_ref().is_some_and(|a| a.enabled)
        || s.hms.as_ref().is_some_and(|a| a.enabled)
        || s.xiaomi.as_ref().is_some_and(|a| a.enabled)
        || s.vivo.as_ref().is_some_and(|a| a.enabled)
}

/// The dispatch role's mobile env vars.
pub fn dispatch_env(pc: &PushCluster, v: &mut Vec<EnvVar>) {
    if !enabled(pc) {
        return;
    }
    apns_env(pc, v);
    let s = &pc.spec;
    let mut set = |name: &str, value: Option<&String>| {
        if let Some(value) = value {
            v.push(env(name, value.clone()));
        }
    };
    if let Some(f) = s.fcm.as_ref().filter(|f| f.enabled) {
        set(
            "PUSHD_FCM_CREDENTIALS_FILE",
            Some(&format!("{FCM_DIR}/service-account.json")),
        );
        set("PUSHD_FCM_PROJECT_ID", f.project_id.as_ref());
        set("PUSHD_FCM_ENDPOINT", f.endpoint.as_ref());
    }
    if let Some(h) = s.hms.as_ref().filter(|h| h.enabled) {
        set("PUSHD_HMS_APP_ID", h.app_id.as_ref());
        set(
            "PUSHD_HMS_CLIENT_SECRET_FILE",
            Some(&format!("{HMS_DIR}/client-secret")),
        );
        set("PUSHD_HMS_ENDPOINT", h.endpoint.as_ref());
        set("PUSHD_HMS_OAUTH_ENDPOINT", h.oauth_endpoint.as_ref());
    }
    if let Some(x) = s.xiaomi.as_ref().filter(|x| x.enabled) {
        set(
            "PUSHD_XIAOMI_APP_SECRET_FILE",
            Some(&format!("{XIAOMI_DIR}/app-secret")),
        );
        set("PUSHD_XIAOMI_PACKAGE", x.package_name.as_ref());
        set("PUSHD_XIAOMI_ENDPOINT", x.endpoint.as_ref());
    }
    if let Some(o) = s.vivo.as_ref().filter(|o| o.enabled) {
        set("PUSHD_VIVO_APP_ID", o.app_id.as_ref());
        set("PUSHD_VIVO_APP_KEY", o.app_key.as_ref());
        set(
            "PUSHD_VIVO_APP_SECRET_FILE",
            Some(&format!("{VIVO_DIR}/app-secret")),
        );
        set("PUSHD_VIVO_ENDPOINT", o.endpoint.as_ref());
    }
}

/// `spec.apns`: the key from a Secret volume ([`APNS_DIR`]), the proxy credentials from the
/// Secret's `username` and `password` keys.
fn apns_env(pc: &PushCluster, v: &mut Vec<EnvVar>) {
    let Some(a) = pc.spec.apns.as_ref().filter(|a| a.enabled) else {
        return;
    };
    v.push(env("PUSHD_APNS_KEY_FILE", format!("{APNS_DIR}/key.p8")));
    let endpoint = match a.environment {
        ApnsEnvironment::Production => "production",
        ApnsEnvironment::Sandbox => "sandbox",
    };
    v.push(env("PUSHD_APNS_ENDPOINT", endpoint));
    for (name, value) in [
        ("PUSHD_APNS_KEY_ID", &a.key_id),
        ("PUSHD_APNS_TEAM_ID", &a.team_id),
        ("PUSHD_APNS_TOPIC", &a.topic),
    ] {
        if let Some(value) = value {
            v.push(env(name, value.clone()));
        }
    }
    if let Some(proxy) = &a.proxy {
        v.push(env("PUSHD_APNS_PROXY", proxy.url.clone()));
        if let Some(creds) = &proxy.credentials_secret_ref {
            for (name, key) in [
                ("APNS_PROXY_USERNAME", "username"),
                ("APNS_PROXY_PASSWORD", "password"),
            ] {
                v.push(env_from_secret(
                    name,
                    &SecretKeyRef {
                        name: creds.name.clone(),
                        key: key.into(),
                    },
                ));
            }
            // Kubernetes expands `$(VAR)` from the variables defined above.
            v.push(env(
                "PUSHD_APNS_PROXY_CREDENTIALS",
                "$(APNS_PROXY_USERNAME):$(APNS_PROXY_PASSWORD)",
            ));
        }
    }
}

/// A credential of an enabled vendor: the spec field naming its Secret key, and the file
/// it becomes on the dispatch pods.
pub struct Credential {
    pub field: &'static str,
    pub volume: &'static str,
    pub dir: &'static str,
    pub file: &'static str,
    pub secret: SecretKeyRef,
}

/// The credentials of the enabled vendors (APNs key first).
pub fn credentials(pc: &PushCluster) -> Vec<Credential> {
    let s = &pc.spec;
    let on = |enabled: bool, r: &Option<SecretKeyRef>| r.clone().filter(|_| enabled);
    let table = [
        (
            "spec.apns.keySecretRef",
            "apns",
            APNS_DIR,
            "key.p8",
            s.apns
                .as_ref()
                .and_then(|a| on(a.enabled, &a.key_secret_ref)),
        ),
        (
            "spec.fcm.credentialsSecretRef",
            "fcm",
            FCM_DIR,
            "service-account.json",
            s.fcm
                .as_ref()
                .and_then(|f| on(f.enabled, &f.credentials_secret_ref)),
        ),
        (
            "spec.hms.clientSecretRef",
            "hms",
            HMS_DIR,
            "client-secret",
            s.hms
                .as_ref()
                .and_then(|h| on(h.enabled, &h.client_secret_ref)),
        ),
        (
            "spec.xiaomi.appSecretRef",
            "xiaomi",
            XIAOMI_DIR,
            "app-secret",
            s.xiaomi
                .as_ref()
                .and_then(|x| on(x.enabled, &x.app_secret_ref)),
        ),
        (
            "spec.vivo.appSecretRef",
            "vivo",
            VIVO_DIR,
            "app-secret",
            s.vivo
                .as_ref()
                .and_then(|o| on(o.enabled, &o.app_secret_ref)),
        ),
    ];
    table
        .into_iter()
        .filter_map(|(field, volume, dir, file, secret)| {
            Some(Credential {
                field,
                volume,
                dir,
                file,
                secret: secret?,
            })
        })
        .collect()
}

/// The Secret volumes of the enabled vendors' credentials.
pub fn volumes(pc: &PushCluster) -> Vec<SecretVolume> {
    credentials(pc)
        .into_iter()
        .map(|c| SecretVolume::one(c.volume, c.dir, &c.secret, c.file))
        .collect()
}
