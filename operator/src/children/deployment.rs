//! One Deployment per role: `pushd <role>` with the shared ConfigMap, the role's Secrets (as
//! files, so rotations need no restart), the internal token and the TLS Secret in every role,
//! its own ports plus the admin port `metrics` (probes on `/readyz` and `/healthz` there), and
//! (push) the pod IP as node identity.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Role, config_map, internal_token, meta, role_labels, selector, stable_hash};
use crate::crd::{ADMIN_PORT, AuthSpec, PushCluster, Resources, SecretKeyRef};

/// Pod template annotation holding a hash of the shared settings: a change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "pushcluster.io/config-hash";
/// Where the auth role's JWT key is mounted (re-read by pushd when the Secret changes).
pub const JWT_DIR: &str = "/etc/pushcluster/jwt";
/// Where auth pods see the JWKS (`jwks.json`) when `spec.auth.jwksSecretRef` is set.
pub const JWKS_DIR: &str = "/etc/pushcluster/jwks";
/// Where collect pods see the API key(s) (`key`).
pub const API_KEY_DIR: &str = "/etc/pushcluster/api-key";
/// Where every pod sees the internal token (`token`).
pub const INTERNAL_TOKEN_DIR: &str = "/etc/pushcluster/internal-token";
/// Where every pod sees the TLS Secret (`tls.crt`, `tls.key`, `ca.crt`) when `spec.security.tls`
/// is set.
pub const TLS_DIR: &str = "/etc/pushcluster/tls";
/// UID/GID of the non-root user in the image.
pub const RUN_AS: i64 = 65532;
/// Seconds the pod gets beyond pushd's own `--grace-period` before it is killed.
pub const GRACE_MARGIN_SECONDS: i64 = 15;

pub(super) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

pub(super) fn env_from_secret(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The role's own env vars (the shared ones come from the ConfigMap).
pub fn role_env(pc: &PushCluster, role: Role) -> Vec<EnvVar> {
    let s = &pc.spec;
    let mut v = Vec::new();
    if let Some(port) = role.http_port(pc) {
        v.push(env("PUSHD_LISTEN", format!("0.0.0.0:{port}")));
    }
    v.extend([
        env(
            "PUSHD_GRPC_LISTEN",
            format!("0.0.0.0:{}", role.grpc_port(pc)),
        ),
        env("PUSHD_ADMIN_LISTEN", format!("0.0.0.0:{ADMIN_PORT}")),
        env(
            "PUSHD_GRACE_PERIOD",
            format!("{}s", drain_seconds(pc, role)),
        ),
        env(
            "PUSHD_INTERNAL_TOKEN_FILE",
            format!("{INTERNAL_TOKEN_DIR}/token"),
        ),
    ]);
    if let Some(tls) = &s.security.tls {
        v.push(env("PUSHD_TLS_CERT", format!("{TLS_DIR}/tls.crt")));
        v.push(env("PUSHD_TLS_KEY", format!("{TLS_DIR}/tls.key")));
        v.push(env("PUSHD_TLS_CA", format!("{TLS_DIR}/ca.crt")));
        if let Some(name) = &tls.server_name {
            v.push(env("PUSHD_TLS_SERVER_NAME", name.clone()));
        }
    }
    let redis = |v: &mut Vec<EnvVar>| {
        if let Some(r) = &s.redis.url_secret_ref {
            v.push(env_from_secret("PUSHD_REDIS_URL", r));
        }
    };
    match role {
        Role::Push => {
            v.push(env_from_field("PUSHD_NODE_IP", "status.podIP"));
            v.push(env_from_secret(
                "PUSHD_MONGODB_URI",
                &s.mongo.uri_secret_ref,
            ));
            redis(&mut v);
        }
        Role::Dispatch => {
            // The outbox lives in MongoDB (and, with a push vendor, devices and records).
            v.push(env_from_secret(
                "PUSHD_MONGODB_URI",
                &s.mongo.uri_secret_ref,
            ));
            redis(&mut v);
            super::mobile::dispatch_env(pc, &mut v);
        }
        Role::Collect => {
            v.push(env_from_secret(
                "PUSHD_MONGODB_URI",
                &s.mongo.uri_secret_ref,
            ));
            v.push(env("PUSHD_API_KEY_FILE", format!("{API_KEY_DIR}/key")));
            let c = &s.collect;
            for (name, value) in [
                ("PUSHD_MAX_PAYLOAD_BYTES", c.max_payload_bytes),
                ("PUSHD_MAX_RECIPIENTS", c.max_recipients),
                ("PUSHD_DEFAULT_TTL_SECS", c.default_ttl_seconds),
            ] {
                if let Some(value) = value {
                    v.push(env(name, value.to_string()));
                }
            }
        }
        Role::Auth => {
            v.push(env("PUSHD_JWT_SECRET_FILE", format!("{JWT_DIR}/key")));
            if s.auth.jwks_secret_ref.is_some() {
                v.push(env("PUSHD_JWT_JWKS_FILE", format!("{JWKS_DIR}/jwks.json")));
            }
            claims_env(&s.auth, &mut v);
        }
    }
    v
}

/// `spec.auth`'s claim rules as the auth role's `--jwt-issuer`, `--jwt-audience` (the CRD
/// keeps commas out of audiences) and `--jwt-leeway`.
fn claims_env(a: &AuthSpec, v: &mut Vec<EnvVar>) {
    if let Some(issuer) = &a.issuer {
        v.push(env("PUSHD_JWT_ISSUER", issuer.clone()));
    }
    if !a.audiences.is_empty() {
        v.push(env("PUSHD_JWT_AUDIENCE", a.audiences.join(",")));
    }
    if let Some(leeway) = a.leeway_seconds {
        v.push(env("PUSHD_JWT_LEEWAY", format!("{leeway}s")));
    }
}

/// A Secret mounted as files.
pub struct SecretVolume {
    pub name: &'static str,
    pub dir: &'static str,
    pub secret: String,
    /// Secret key → file name.
    pub items: Vec<(String, &'static str)>,
}

impl SecretVolume {
    pub fn one(
        name: &'static str,
        dir: &'static str,
        r: &SecretKeyRef,
        file: &'static str,
    ) -> Self {
        SecretVolume {
            name,
            dir,
            secret: r.name.clone(),
            items: vec![(r.key.clone(), file)],
        }
    }
}

/// The Secret volumes a role's container needs.
fn secret_volumes(pc: &PushCluster, role: Role) -> Vec<SecretVolume> {
    let s = &pc.spec;
    let mut v = vec![SecretVolume::one(
        "internal-token",
        INTERNAL_TOKEN_DIR,
        &internal_token::secret_ref(pc),
        "token",
    )];
    if let Some(tls) = &s.security.tls {
        v.push(SecretVolume {
            name: "tls",
            dir: TLS_DIR,
            secret: tls.secret_name.clone(),
            items: ["tls.crt", "tls.key", "ca.crt"]
                .into_iter()
                .map(|f| (f.to_owned(), f))
                .collect(),
        });
    }
    match role {
        Role::Auth => {
            v.push(SecretVolume::one(
                "jwt",
                JWT_DIR,
                &s.auth.jwt_secret_ref,
                "key",
            ));
            if let Some(jwks) = &s.auth.jwks_secret_ref {
                v.push(SecretVolume::one("jwks", JWKS_DIR, jwks, "jwks.json"));
            }
        }
        Role::Collect => v.push(SecretVolume::one(
            "api-key",
            API_KEY_DIR,
            &s.collect.api_key_secret_ref,
            "key",
        )),
        Role::Dispatch => v.extend(super::mobile::volumes(pc)),
        Role::Push => {}
    }
    v
}

/// pushd's `--grace-period` of a role: the push drain, else pushd's default.
pub fn drain_seconds(pc: &PushCluster, role: Role) -> i64 {
    match role {
        Role::Push => i64::from(pc.spec.push.drain_seconds),
        _ => 10,
    }
}

fn resources(r: Option<&Resources>) -> Option<ResourceRequirements> {
    r.map(|r| ResourceRequirements {
        requests: r.requests.clone(),
        limits: r.limits.clone(),
        ..ResourceRequirements::default()
    })
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn role_settings(pc: &PushCluster, role: Role) -> (Option<&str>, Option<&Resources>) {
    let s = &pc.spec;
    match role {
        Role::Push => (s.push.image.as_deref(), s.push.resources.as_ref()),
        Role::Dispatch => (s.dispatch.image.as_deref(), s.dispatch.resources.as_ref()),
        Role::Collect => (s.collect.image.as_deref(), s.collect.resources.as_ref()),
        Role::Auth => (s.auth.image.as_deref(), s.auth.resources.as_ref()),
    }
}

fn container(pc: &PushCluster, role: Role, default_image: &str) -> Container {
    let (image, res) = role_settings(pc, role);
    let mounts: Vec<VolumeMount> = secret_volumes(pc, role)
        .into_iter()
        .map(|v| VolumeMount {
            name: v.name.into(),
            mount_path: v.dir.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        })
        .collect();
    let port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    let mut ports: Vec<ContainerPort> = role
        .http_port(pc)
        .map(|p| port("http", p))
        .into_iter()
        .collect();
    ports.push(port("grpc", role.grpc_port(pc)));
    ports.push(port("metrics", ADMIN_PORT));
    Container {
        name: "pushd".into(),
        image: Some(pc.image_or(image, default_image).to_owned()),
        image_pull_policy: Some(pc.spec.image_pull_policy.as_str().into()),
        args: Some(vec![role.as_str().into()]),
        env: Some(role_env(pc, role)),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config_map::name(pc),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        ports: Some(ports),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        resources: resources(res),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The hash of everything a pod reads at start besides its own spec: the shared settings.
pub fn config_hash(pc: &PushCluster) -> String {
    let data = config_map::data(pc);
    let parts: Vec<&str> = data
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    stable_hash(&parts)
}

/// The Deployment of `role`.
pub fn build(pc: &PushCluster, role: Role, default_image: &str) -> Deployment {
    let labels = role_labels(pc, role);
    let volumes: Vec<Volume> = secret_volumes(pc, role)
        .into_iter()
        .map(|v| Volume {
            name: v.name.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(v.secret),
                items: Some(
                    v.items
                        .into_iter()
                        .map(|(key, file)| KeyToPath {
                            key,
                            path: file.into(),
                            mode: None,
                        })
                        .collect(),
                ),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        })
        .collect();
    let strategy = (role == Role::Push).then(|| DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        // Keep every push node until its replacement is ready: clients move only once.
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::String("25%".into())),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    });
    Deployment {
        metadata: meta(pc, role.name(pc), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(role.replicas(pc)),
            selector: LabelSelector {
                match_labels: Some(selector(pc, role)),
                ..LabelSelector::default()
            },
            strategy,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.into(),
                        config_hash(pc),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container(pc, role, default_image)],
                    termination_grace_period_seconds: Some(
                        drain_seconds(pc, role) + GRACE_MARGIN_SECONDS,
                    ),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
