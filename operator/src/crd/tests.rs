use kube::CustomResourceExt;

use super::*;

#[test]
fn crd_names_scale_and_columns() {
    let crd = PushCluster::crd();
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.names.short_names, Some(vec!["pcl".to_owned()]));
    let v = &crd.spec.versions[0];
    let scale = v.subresources.as_ref().unwrap().scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.push.replicas");
    assert_eq!(scale.status_replicas_path, ".status.push.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let columns: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Push Ready",
            "Push Desired",
            "Dispatch Ready",
            "Ready",
            "Age"
        ]
    );
}

#[test]
fn conditions_are_a_map_keyed_by_type() {
    let crd = serde_json::to_value(PushCluster::crd()).unwrap();
    let conditions = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
}

#[test]
fn minimal_spec_gets_defaults() {
    let spec: PushClusterSpec = serde_json::from_value(serde_json::json!({
        "collect": {"apiKeySecretRef": {"name": "s", "key": "k"}},
        "auth": {"jwtSecretRef": {"name": "s", "key": "j"}},
        "redis": {"url": "redis://redis:6379"},
        "mongo": {"uriSecretRef": {"name": "m", "key": "uri"}},
    }))
    .unwrap();
    assert_eq!(spec.push, PushSpec::default());
    assert_eq!(spec.push.replicas, 2);
    assert_eq!(spec.collect.port, 8081);
    assert_eq!(spec.redis.route_ttl_seconds, 30);
    assert_eq!(spec.mongo.database, "pushcluster");
    assert_eq!(spec.cluster_domain, "cluster.local");
}

#[test]
fn vendor_specs_carry_cel_rules_that_name_the_field_to_fix() {
    let crd = serde_json::to_string(&PushCluster::crd()).unwrap();
    for message in [
        "fcm.credentialsSecretRef (a Secret key holding the Firebase service-account key JSON) is required when fcm.enabled is true",
        "fcm.endpoint must be an https:// URL",
        "hms.appId (the AppGallery Connect app id) is required when hms.enabled is true",
        "hms.clientSecretRef (a Secret key holding the app's client secret) is required when hms.enabled is true",
        "hms.oauthEndpoint must be an https:// URL",
        "xiaomi.packageName (the app's package name) is required when xiaomi.enabled is true",
        "xiaomi.appSecretRef (a Secret key holding the app secret) is required when xiaomi.enabled is true",
        "vivo.appKey is required when vivo.enabled is true",
        "vivo.appSecretRef (a Secret key holding the app secret) is required when vivo.enabled is true",
    ] {
        assert!(crd.contains(message), "{message}");
    }
}
