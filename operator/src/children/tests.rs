use std::collections::BTreeSet;

use clap::CommandFactory;
use k8s_openapi::api::core::v1::EnvVar;

use super::fixtures::{push_cluster, spec, with_spec};
use super::*;
use crate::crd::{RedisMode, SecretKeyRef, ServiceType};

const IMAGE: &str = "example/pushd:1";

fn env_of(d: &k8s_openapi::api::apps::v1::Deployment) -> Vec<EnvVar> {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0].env.clone().unwrap()
}

fn env_value<'a>(env: &'a [EnvVar], name: &str) -> Option<&'a EnvVar> {
    env.iter().find(|e| e.name == name)
}

#[test]
fn every_child_is_owned_and_labelled() {
    let pc = push_cluster();
    let mut metas = vec![
        config_map::build(&pc).metadata,
        pdb::build(&pc).metadata,
        internal_token::build(&pc, "t".into()).metadata,
    ];
    metas.extend(service::build_all(&pc).into_iter().map(|s| s.metadata));
    metas.extend(Role::ALL.map(|r| deployment::build(&pc, r, IMAGE).metadata));
    metas.extend(
        network_policy::build_all(&pc)
            .into_iter()
            .map(|n| n.metadata),
    );
    assert_eq!(metas.len(), 17);
    for m in metas {
        assert_eq!(m.namespace.as_deref(), Some("apps"));
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("PushCluster", "demo", Some(true), Some(true))
        );
        assert_eq!(owner.api_version, "pushcluster.io/v1alpha1");
        let labels = m.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/instance"], "demo");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            "pushcluster-operator"
        );
    }
}

#[test]
fn push_deployment_runs_pushd_push_with_pod_ip_and_drain() {
    let pc = push_cluster();
    let d = deployment::build(&pc, Role::Push, IMAGE);
    assert_eq!(d.metadata.name.as_deref(), Some("demo-push"));
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(10 + 15));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(c.args.as_deref(), Some(&["push".to_owned()][..]));
    let env = env_of(&d);
    let ip = env_value(&env, "PUSHD_NODE_IP").unwrap();
    let field = ip.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
    assert_eq!(field.field_path, "status.podIP");
    assert_eq!(
        env_value(&env, "PUSHD_GRACE_PERIOD")
            .unwrap()
            .value
            .as_deref(),
        Some("10s")
    );
    assert_eq!(
        env_value(&env, "PUSHD_LISTEN").unwrap().value.as_deref(),
        Some("0.0.0.0:8080")
    );
    let mongo = env_value(&env, "PUSHD_MONGODB_URI").unwrap();
    let secret = mongo
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("demo-secrets", "mongodb-uri")
    );
    let probe = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(probe.path.as_deref(), Some("/readyz"));
    let live = c
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
}

#[test]
fn drain_seconds_size_the_grace_period() {
    let mut s = spec();
    s.push.drain_seconds = 40;
    let d = deployment::build(&with_spec(s), Role::Push, IMAGE);
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(55));
}

#[test]
fn auth_mounts_the_jwt_key_as_a_file() {
    let pc = push_cluster();
    let d = deployment::build(&pc, Role::Auth, IMAGE);
    let env = env_of(&d);
    assert_eq!(
        env_value(&env, "PUSHD_JWT_SECRET_FILE")
            .unwrap()
            .value
            .as_deref(),
        Some("/etc/pushcluster/jwt/key")
    );
    let pod = d.spec.unwrap().template.spec.unwrap();
    let vols = pod.volumes.unwrap();
    let vol = vols.iter().find(|v| v.name == "jwt").unwrap();
    let secret = vol.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("demo-secrets"));
    assert_eq!(secret.items.as_ref().unwrap()[0].key, "jwt");
}

#[test]
fn auth_gets_the_claim_rules_of_the_spec() {
    let env = env_of(&deployment::build(&push_cluster(), Role::Auth, IMAGE));
    for name in ["PUSHD_JWT_ISSUER", "PUSHD_JWT_AUDIENCE", "PUSHD_JWT_LEEWAY"] {
        assert!(env_value(&env, name).is_none(), "{name} set by default");
    }
    let mut s = spec();
    s.auth.issuer = Some("https://idp.example.com/".into());
    s.auth.audiences = vec!["pushcluster".into(), "pushcluster-staging".into()];
    s.auth.leeway_seconds = Some(20);
    let pc = with_spec(s);
    let env = env_of(&deployment::build(&pc, Role::Auth, IMAGE));
    let value = |name: &str| env_value(&env, name).unwrap().value.clone();
    assert_eq!(
        value("PUSHD_JWT_ISSUER").as_deref(),
        Some("https://idp.example.com/")
    );
    assert_eq!(
        value("PUSHD_JWT_AUDIENCE").as_deref(),
        Some("pushcluster,pushcluster-staging")
    );
    assert_eq!(value("PUSHD_JWT_LEEWAY").as_deref(), Some("20s"));
    // Only the auth role checks claims; push nodes ask it.
    let push = env_of(&deployment::build(&pc, Role::Push, IMAGE));
    assert!(env_value(&push, "PUSHD_JWT_AUDIENCE").is_none());
}

#[test]
fn redis_from_a_secret_and_cluster_mode() {
    let mut s = spec();
    s.redis.url = None;
    s.redis.url_secret_ref = Some(SecretKeyRef {
        name: "redis".into(),
        key: "url".into(),
    });
    s.redis.mode = RedisMode::Cluster;
    let pc = with_spec(s);
    let data = config_map::data(&pc);
    assert!(!data.contains_key("PUSHD_REDIS_URL"));
    assert_eq!(data["PUSHD_REDIS_CLUSTER"], "true");
    for role in [Role::Push, Role::Dispatch] {
        let env = env_of(&deployment::build(&pc, role, IMAGE));
        assert!(env_value(&env, "PUSHD_REDIS_URL").is_some(), "{role:?}");
    }
    let env = env_of(&deployment::build(&pc, Role::Collect, IMAGE));
    assert!(env_value(&env, "PUSHD_REDIS_URL").is_none());
}

#[test]
fn shared_settings_name_the_services() {
    let pc = push_cluster();
    let data = config_map::data(&pc);
    assert_eq!(data["PUSHD_AUTH_ADDR"], "http://demo-auth:7003");
    assert_eq!(data["PUSHD_DISPATCH_ADDR"], "http://demo-dispatch:7002");
    assert_eq!(data["PUSHD_PUSH_SERVICE"], "demo-push-headless");
    assert_eq!(data["PUSHD_NAMESPACE"], "apps");
    assert_eq!(data["PUSHD_CLUSTER_DOMAIN"], "cluster.local");
    assert_eq!(data["PUSHD_ROUTE_TTL"], "30s");
}

#[test]
fn services_headless_for_nodes_and_typed_for_clients() {
    let mut s = spec();
    s.push.service_type = ServiceType::LoadBalancer;
    let pc = with_spec(s);
    let svcs = service::build_all(&pc);
    let by_name = |n: &str| {
        svcs.iter()
            .find(|s| s.metadata.name.as_deref() == Some(n))
            .unwrap()
            .spec
            .clone()
            .unwrap()
    };
    let headless = by_name("demo-push-headless");
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.ports.unwrap()[0].port, 7001);
    let clients = by_name("demo-push");
    assert_eq!(clients.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(clients.ports.unwrap()[0].port, 8080);
    assert_eq!(
        by_name("demo-dispatch").selector.unwrap()["app.kubernetes.io/component"],
        "dispatch"
    );
    assert_eq!(by_name("demo-collect").ports.unwrap().len(), 2);
    // The admin port is on no client-facing Service, only on the headless metrics Service.
    for name in ["demo-push", "demo-collect", "demo-push-headless"] {
        assert!(
            by_name(name).ports.unwrap().iter().all(|p| p.port != 9090),
            "{name}"
        );
    }
    let metrics = by_name("demo-metrics");
    assert_eq!(metrics.cluster_ip.as_deref(), Some("None"));
    let port = &metrics.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("metrics"), 9090));
    assert!(
        !metrics
            .selector
            .unwrap()
            .contains_key("app.kubernetes.io/component"),
        "every role's pods"
    );
}

#[test]
fn a_settings_change_changes_the_pod_template() {
    let pc = push_cluster();
    let before = deployment::config_hash(&pc);
    let mut s = spec();
    s.redis.url = Some("redis://other:6379".into());
    let after = deployment::config_hash(&with_spec(s));
    assert_ne!(before, after);
    assert_eq!(before, deployment::config_hash(&push_cluster()));
}

#[test]
fn pdb_limits_push_disruptions() {
    let p = pdb::build(&push_cluster());
    let spec = p.spec.unwrap();
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        spec.selector.unwrap().match_labels.unwrap()["app.kubernetes.io/component"],
        "push"
    );
}

#[test]
fn selector_string_matches_the_push_pods() {
    let pc = push_cluster();
    assert_eq!(
        selector_string(&pc, Role::Push),
        "app.kubernetes.io/component=push,app.kubernetes.io/instance=demo,app.kubernetes.io/name=pushcluster"
    );
}

/// The contract with `pushd`: every env var a Deployment or the ConfigMap sets is a flag of
/// that role, and every required flag of the role is set.
#[test]
fn env_vars_are_flags_of_pushd_roles() {
    let mut full = spec();
    full.collect.max_payload_bytes = Some(1000);
    full.collect.max_recipients = Some(10);
    full.collect.default_ttl_seconds = Some(60);
    full.apns = Some(apns_spec());
    full.auth.issuer = Some("https://idp.example.com/".into());
    full.auth.audiences = vec!["pushcluster".into()];
    full.auth.leeway_seconds = Some(10);
    vendor_specs(&mut full);
    let mut redis_secret = spec();
    redis_secret.redis.url = None;
    redis_secret.redis.url_secret_ref = Some(SecretKeyRef {
        name: "demo-secrets".into(),
        key: "redis-url".into(),
    });
    // The minimal spec too: what one option brings in (APNs gives dispatch MongoDB) must not
    // hide what the others lack.
    for s in [spec(), full, redis_secret] {
        flags_contract(&with_spec(s));
    }
}

fn flags_contract(pc: &crate::crd::PushCluster) {
    let cli = pushd::cli::Cli::command();
    let shared: BTreeSet<String> = config_map::data(pc).into_keys().collect();
    let mut used_shared = BTreeSet::new();
    for role in Role::ALL {
        let cmd = cli
            .find_subcommand(role.as_str())
            .unwrap_or_else(|| panic!("pushd has no subcommand {}", role.as_str()));
        let known: BTreeSet<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        let own: BTreeSet<String> = env_of(&deployment::build(pc, role, IMAGE))
            .into_iter()
            .map(|e| e.name)
            // Variables that only feed `$(VAR)` expansion of a PUSHD_ one.
            .filter(|name| name.starts_with("PUSHD_"))
            .collect();
        for name in &own {
            assert!(
                known.contains(name),
                "pushd {} has no env var {name}",
                role.as_str()
            );
        }
        used_shared.extend(shared.intersection(&known).cloned());
        // Where a role's data lives has a default (the loopback address, for `pushd` on a
        // laptop) that is never right in a pod: a role that has such a flag must get it.
        // (The e2e test on a real node found dispatch claiming its outbox from 127.0.0.1.)
        for env in ["PUSHD_MONGODB_URI", "PUSHD_REDIS_URL"] {
            assert!(
                !known.contains(env) || own.contains(env) || shared.contains(env),
                "pushd {} reads {env}, which the operator does not set (it would use its \
                 loopback default inside the pod)",
                role.as_str()
            );
        }
        for arg in cmd.get_arguments().filter(|a| a.is_required_set()) {
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let env =
                env.unwrap_or_else(|| panic!("required flag {:?} has no env var", arg.get_id()));
            assert!(
                own.contains(&env) || shared.contains(&env),
                "pushd {} requires {env}, which the operator does not set",
                role.as_str()
            );
        }
    }
    let unused: Vec<_> = shared.difference(&used_shared).collect();
    assert!(unused.is_empty(), "no role reads {unused:?}");
}

fn apns_spec() -> crate::crd::ApnsSpec {
    serde_json::from_value(serde_json::json!({
        "enabled": true,
        "environment": "sandbox",
        "topic": "com.example.app",
        "teamId": "TEAM123456",
        "keyId": "KEY1234567",
        "keySecretRef": {"name": "apns", "key": "AuthKey.p8"},
        "proxy": {"url": "http://proxy.us-west:3128", "credentialsSecretRef": {"name": "apns-proxy"}},
    }))
    .expect("apns spec")
}

#[test]
fn apns_settings_become_dispatch_flags_with_secrets_mounted() {
    let mut s = spec();
    s.apns = Some(apns_spec());
    let pc = with_spec(s);
    let d = deployment::build(&pc, Role::Dispatch, IMAGE);
    let env = env_of(&d);
    let value = |name: &str| env_value(&env, name).and_then(|e| e.value.clone());
    assert_eq!(value("PUSHD_APNS_ENDPOINT").as_deref(), Some("sandbox"));
    assert_eq!(
        value("PUSHD_APNS_TOPIC").as_deref(),
        Some("com.example.app")
    );
    assert_eq!(value("PUSHD_APNS_TEAM_ID").as_deref(), Some("TEAM123456"));
    assert_eq!(value("PUSHD_APNS_KEY_ID").as_deref(), Some("KEY1234567"));
    assert_eq!(
        value("PUSHD_APNS_KEY_FILE").as_deref(),
        Some("/etc/pushcluster/apns/key.p8")
    );
    assert_eq!(
        value("PUSHD_APNS_PROXY").as_deref(),
        Some("http://proxy.us-west:3128")
    );
    let user = env_value(&env, "APNS_PROXY_USERNAME").unwrap();
    let secret = user
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("apns-proxy", "username")
    );
    assert_eq!(
        value("PUSHD_APNS_PROXY_CREDENTIALS").as_deref(),
        Some("$(APNS_PROXY_USERNAME):$(APNS_PROXY_PASSWORD)")
    );
    assert!(env_value(&env, "PUSHD_MONGODB_URI").is_some());
    let pod = d.spec.unwrap().template.spec.unwrap();
    let vols = pod.volumes.unwrap();
    let vol = vols.iter().find(|v| v.name == "apns").unwrap();
    let src = vol.secret.as_ref().unwrap();
    assert_eq!(src.secret_name.as_deref(), Some("apns"));
    assert_eq!(src.items.as_ref().unwrap()[0].key, "AuthKey.p8");
    assert!(
        pod.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == "apns" && m.mount_path == "/etc/pushcluster/apns")
    );
    // Other roles get nothing of it.
    let push = env_of(&deployment::build(&pc, Role::Push, IMAGE));
    assert!(push.iter().all(|e| !e.name.starts_with("PUSHD_APNS")));
}

#[test]
fn a_jwks_secret_is_mounted_for_auth_and_named_by_env() {
    let mut s = spec();
    s.auth.jwks_secret_ref = Some(SecretKeyRef {
        name: "idp".into(),
        key: "jwks".into(),
    });
    let pc = with_spec(s);
    let d = deployment::build(&pc, Role::Auth, IMAGE);
    let env = env_of(&d);
    assert_eq!(
        env_value(&env, "PUSHD_JWT_JWKS_FILE").and_then(|e| e.value.as_deref()),
        Some("/etc/pushcluster/jwks/jwks.json")
    );
    let pod = d.spec.unwrap().template.spec.unwrap();
    let vols = pod.volumes.unwrap();
    assert_eq!(
        vols.len(),
        3,
        "the internal token, the HS256 key and the JWKS"
    );
    let jwks = vols.iter().find(|v| v.name == "jwks").unwrap();
    let src = jwks.secret.as_ref().unwrap();
    assert_eq!(src.secret_name.as_deref(), Some("idp"));
    assert_eq!(src.items.as_ref().unwrap()[0].path, "jwks.json");
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/etc/pushcluster/jwks")
    );
    assert!(
        crate::secrets::needed(&pc)
            .iter()
            .any(|n| n.field == "spec.auth.jwksSecretRef" && n.name == "idp")
    );
}

/// Every direct vendor enabled, each with its Secret and an endpoint.
fn vendor_specs(s: &mut crate::crd::PushClusterSpec) {
    let v: serde_json::Value = serde_json::json!({
        "fcm": {"enabled": true, "credentialsSecretRef": {"name": "fcm", "key": "sa.json"},
                "projectId": "my-project", "endpoint": "https://fcm.relay:8443"},
        "hms": {"enabled": true, "appId": "104523456", "clientSecretRef": {"name": "hms", "key": "secret"},
                "endpoint": "https://push.relay", "oauthEndpoint": "https://oauth.relay"},
        "xiaomi": {"enabled": true, "packageName": "com.example.app",
                   "appSecretRef": {"name": "xiaomi", "key": "secret"}},
        "vivo": {"enabled": true, "appId": "105001234", "appKey": "k-1",
                 "appSecretRef": {"name": "vivo", "key": "secret"}},
    });
    s.fcm = serde_json::from_value(v["fcm"].clone()).unwrap();
    s.hms = serde_json::from_value(v["hms"].clone()).unwrap();
    s.xiaomi = serde_json::from_value(v["xiaomi"].clone()).unwrap();
    s.vivo = serde_json::from_value(v["vivo"].clone()).unwrap();
}

#[test]
fn vendor_settings_become_dispatch_flags_with_their_secrets_mounted() {
    let mut s = spec();
    vendor_specs(&mut s);
    let pc = with_spec(s);
    let d = deployment::build(&pc, Role::Dispatch, IMAGE);
    let env = env_of(&d);
    let value = |name: &str| env_value(&env, name).and_then(|e| e.value.clone());
    for (name, want) in [
        (
            "PUSHD_FCM_CREDENTIALS_FILE",
            "/etc/pushcluster/fcm/service-account.json",
        ),
        ("PUSHD_FCM_PROJECT_ID", "my-project"),
        ("PUSHD_FCM_ENDPOINT", "https://fcm.relay:8443"),
        ("PUSHD_HMS_APP_ID", "104523456"),
        (
            "PUSHD_HMS_CLIENT_SECRET_FILE",
            "/etc/pushcluster/hms/client-secret",
        ),
        ("PUSHD_HMS_ENDPOINT", "https://push.relay"),
        ("PUSHD_HMS_OAUTH_ENDPOINT", "https://oauth.relay"),
        (
            "PUSHD_XIAOMI_APP_SECRET_FILE",
            "/etc/pushcluster/xiaomi/app-secret",
        ),
        ("PUSHD_XIAOMI_PACKAGE", "com.example.app"),
        ("PUSHD_VIVO_APP_ID", "105001234"),
        ("PUSHD_VIVO_APP_KEY", "k-1"),
        (
            "PUSHD_VIVO_APP_SECRET_FILE",
            "/etc/pushcluster/vivo/app-secret",
        ),
    ] {
        assert_eq!(value(name).as_deref(), Some(want), "{name}");
    }
    assert!(
        env_value(&env, "PUSHD_MONGODB_URI").is_some(),
        "records live in MongoDB"
    );
    assert!(
        env_value(&env, "PUSHD_XIAOMI_ENDPOINT").is_none(),
        "default endpoint"
    );
    let pod = d.spec.unwrap().template.spec.unwrap();
    let vols: Vec<_> = pod
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| {
            let src = v.secret.unwrap();
            (
                v.name,
                src.secret_name.unwrap(),
                src.items.unwrap()[0].path.clone(),
            )
        })
        .collect();
    assert_eq!(
        vols,
        [
            (
                "internal-token".to_owned(),
                "demo-internal-token".to_owned(),
                "token".to_owned()
            ),
            (
                "fcm".to_owned(),
                "fcm".to_owned(),
                "service-account.json".to_owned()
            ),
            ("hms".into(), "hms".into(), "client-secret".into()),
            ("xiaomi".into(), "xiaomi".into(), "app-secret".into()),
            ("vivo".into(), "vivo".into(), "app-secret".into()),
        ]
    );
    let mounts: Vec<String> = pod.containers[0]
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| m.mount_path)
        .collect();
    assert_eq!(
        mounts,
        [
            "/etc/pushcluster/internal-token",
            "/etc/pushcluster/fcm",
            "/etc/pushcluster/hms",
            "/etc/pushcluster/xiaomi",
            "/etc/pushcluster/vivo"
        ]
    );
    let needed: Vec<_> = crate::secrets::needed(&pc)
        .into_iter()
        .map(|n| (n.field, n.name))
        .filter(|(f, _)| {
            !f.starts_with("spec.mongo")
                && !f.starts_with("spec.auth")
                && !f.starts_with("spec.collect")
        })
        .collect();
    assert_eq!(
        needed,
        [
            ("spec.fcm.credentialsSecretRef", "fcm".to_owned()),
            ("spec.hms.clientSecretRef", "hms".into()),
            ("spec.xiaomi.appSecretRef", "xiaomi".into()),
            ("spec.vivo.appSecretRef", "vivo".into()),
        ]
    );
    // Disabled vendors leave no trace (MongoDB stays: the outbox lives there).
    let pc = push_cluster();
    let env = env_of(&deployment::build(&pc, Role::Dispatch, IMAGE));
    assert!(env.iter().all(|e| !e.name.contains("FCM")));
    assert!(env_value(&env, "PUSHD_MONGODB_URI").is_some());
}
