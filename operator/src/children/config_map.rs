//! The ConfigMap of settings every role reads through `envFrom` (`PUSHD_…` env vars).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use super::{Role, labels, meta, push_headless_name};
use crate::crd::{PushCluster, RedisMode};

/// Name of the shared ConfigMap: `<cluster>-pushd`.
pub fn name(pc: &PushCluster) -> String {
    format!("{}-pushd", pc.name_any())
}

/// The shared settings. A role ignores the ones it has no flag for.
pub fn data(pc: &PushCluster) -> BTreeMap<String, String> {
    let s = &pc.spec;
    let mut d = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        d.insert(k.to_owned(), v);
    };
    set("PUSHD_LOG_FORMAT", s.log_format.as_str().into());
    if let Some(url) = &s.redis.url {
        set("PUSHD_REDIS_URL", url.clone());
    }
    if s.redis.mode == RedisMode::Cluster {
        set("PUSHD_REDIS_CLUSTER", "true".into());
    }
    set("PUSHD_ROUTE_TTL", format!("{}s", s.redis.route_ttl_seconds));
    set("PUSHD_MONGODB_DATABASE", s.mongo.database.clone());
    set(
        "PUSHD_AUTH_ADDR",
        format!(
            "http://{}:{}",
            Role::Auth.name(pc),
            Role::Auth.grpc_port(pc)
        ),
    );
    set(
        "PUSHD_DISPATCH_ADDR",
        format!(
            "http://{}:{}",
            Role::Dispatch.name(pc),
            Role::Dispatch.grpc_port(pc)
        ),
    );
    set("PUSHD_PUSH_SERVICE", push_headless_name(pc));
    set("PUSHD_NAMESPACE", pc.namespace().unwrap_or_default());
    set("PUSHD_CLUSTER_DOMAIN", s.cluster_domain.clone());
    set(
        "PUSHD_NODE_ADDR_TEMPLATE",
        s.push.node_addr_template.clone(),
    );
    d
}

/// The ConfigMap object.
pub fn build(pc: &PushCluster) -> ConfigMap {
    ConfigMap {
        metadata: meta(pc, name(pc), labels(pc)),
        data: Some(data(pc)),
        ..ConfigMap::default()
    }
}
