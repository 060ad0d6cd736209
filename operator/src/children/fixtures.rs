//! Test objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::{PushCluster, PushClusterSpec};

/// The spec of the chart's example, minus resources.
pub fn spec() -> PushClusterSpec {
    serde_json::from_value(serde_json::json!({
        "push": {"replicas": 3},
        "collect": {"apiKeySecretRef": {"name": "demo-secrets", "key": "api-key"}},
        "auth": {"jwtSecretRef": {"name": "demo-secrets", "key": "jwt"}},
        "redis": {"url": "redis://redis:6379"},
        "mongo": {"uriSecretRef": {"name": "demo-secrets", "key": "mongodb-uri"}},
    }))
    .expect("fixture spec")
}

/// A PushCluster `apps/demo` as the API server would return it (uid, generation 1).
pub fn push_cluster() -> PushCluster {
    with_spec(spec())
}

pub fn with_spec(spec: PushClusterSpec) -> PushCluster {
    let mut pc = PushCluster::new("demo", spec);
    pc.metadata = ObjectMeta {
        name: Some("demo".into()),
        namespace: Some("apps".into()),
        uid: Some("0b6f6a5e-1111-4222-8333-944445555666".into()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    pc
}
