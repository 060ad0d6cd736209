//! `spec.auth`'s claim rules (`issuer`, `audiences`, `leewaySeconds`) on a real API server: the
//! committed CRD keeps them as given and refuses bad values with messages that say what to fix.

use std::path::PathBuf;

use pushcluster_test_support::kube::ControlPlane;
use serde_json::Value;

fn crd_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/pushcluster.io_pushclusters.yaml")
}

/// A PushCluster `name` whose `auth` section ends with `extra` (YAML lines, 4 spaces deep).
fn push_cluster(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pushcluster.io/v1alpha1
kind: PushCluster
metadata:
  name: {name}
  namespace: default
spec:
  collect:
    apiKeySecretRef: {{name: s, key: api-key}}
  auth:
    jwtSecretRef: {{name: s, key: jwt}}
{extra}  redis:
    url: redis://redis:6379
  mongo:
    uriSecretRef: {{name: s, key: uri}}
"
    )
}

#[tokio::test]
async fn auth_claim_rules_are_kept_and_validated_by_the_api_server() {
    let Some(cp) = ControlPlane::start(false).await else {
        return;
    };
    let k = cp.kubectl_tool();
    k.run(&["apply", "-f", crd_file().to_str().unwrap()])
        .unwrap();
    k.run(&[
        "wait",
        "--for=condition=Established",
        "crd/pushclusters.pushcluster.io",
        "--timeout=60s",
    ])
    .unwrap();

    let good = "    issuer: https://idp.example.com/\n    audiences: [pushcluster, pushcluster-staging]\n    leewaySeconds: 20\n";
    k.apply(&push_cluster("good", good)).unwrap();
    let got: Value = serde_json::from_str(
        &k.run(&["get", "pcl", "good", "-n", "default", "-o", "json"])
            .unwrap(),
    )
    .unwrap();
    let auth = &got["spec"]["auth"];
    assert_eq!(auth["issuer"], "https://idp.example.com/", "{auth}");
    assert_eq!(
        auth["audiences"],
        serde_json::json!(["pushcluster", "pushcluster-staging"])
    );
    assert_eq!(auth["leewaySeconds"], 20);

    let too_many: Vec<String> = (0..33).map(|i| format!("a{i}")).collect();
    let too_many = format!("    audiences: [{}]\n", too_many.join(", "));
    let invalid = [
        (
            "    audiences: [\"pushcluster,other\"]\n",
            "an audience must not contain a comma",
        ),
        ("    audiences: [\"\"]\n", "spec.auth.audiences[0]"),
        (too_many.as_str(), "must have at most 32 items"),
        ("    issuer: \"\"\n", "spec.auth.issuer"),
        (
            "    leewaySeconds: 301\n",
            "should be less than or equal to 300",
        ),
        (
            "    leewaySeconds: -1\n",
            "should be greater than or equal to 0",
        ),
    ];
    for (extra, message) in invalid {
        let err = k.apply(&push_cluster("bad", extra)).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains(message),
            "{extra:?}: expected {message:?} in: {err}"
        );
    }
}
