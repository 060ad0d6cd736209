//! The Helm chart: lint, render, values schema, and its contract with the operator's flags.

use std::path::PathBuf;

use clap::CommandFactory;
use pushcluster_operator::config::Config;
use pushcluster_operator::crd::PushCluster;
use pushcluster_test_support::Helm;
use serde::Deserialize;

fn chart() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/pushcluster-operator")
        .display()
        .to_string()
}

fn docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(yaml: &str) -> Vec<String> {
    docs(yaml)
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn lint_is_clean() {
    let Some(helm) = Helm::helm() else { return };
    let out = helm.run(&["lint", "--strict", &chart()]).unwrap();
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn renders_crd_rbac_and_operator() {
    let Some(helm) = Helm::helm() else { return };
    let out = helm
        .run(&["template", "pc", &chart(), "-n", "ops"])
        .unwrap();
    assert_eq!(
        kinds(&out),
        [
            "ServiceAccount",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment"
        ]
    );
    // People who may edit a namespace may scale its PushClusters (aggregated into `edit`).
    assert!(
        out.contains("rbac.authorization.k8s.io/aggregate-to-edit: \"true\"")
            && out.contains("\"pushclusters/scale\""),
        "no aggregated edit role with /scale"
    );
    let all = docs(&out);
    let crd = all
        .iter()
        .find(|d| d["kind"] == "CustomResourceDefinition")
        .unwrap();
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let deploy = all.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/pushcluster/pushcluster:0.1.0");
    assert_eq!(c["command"][0], "pushcluster-operator");
    // Every env var the chart sets is a flag of the operator.
    let cmd = Config::command();
    let known: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(
            known.iter().any(|k| k == name),
            "the operator has no env var {name}"
        );
    }
}

#[test]
fn flags_turn_off_the_crd_and_the_deployment() {
    let Some(helm) = Helm::helm() else { return };
    let out = helm
        .run(&[
            "template",
            "pc",
            &chart(),
            "--set",
            "crds.install=false",
            "--set",
            "operator.enabled=false",
        ])
        .unwrap();
    let k = kinds(&out);
    assert!(
        !k.iter()
            .any(|k| k == "CustomResourceDefinition" || k == "Deployment"),
        "{k:?}"
    );
    assert!(k.iter().any(|k| k == "ClusterRole"), "{k:?}");
}

#[test]
fn values_schema_rejects_unknown_and_wrong_values() {
    let Some(helm) = Helm::helm() else { return };
    let e = helm
        .run(&["template", "pc", &chart(), "--set", "operator.replicaz=2"])
        .unwrap_err();
    assert!(format!("{e:#}").contains("replicaz"), "{e:#}");
    let e = helm
        .run(&[
            "template",
            "pc",
            &chart(),
            "--set",
            "operator.logFormat=xml",
        ])
        .unwrap_err();
    assert!(format!("{e:#}").contains("logFormat"), "{e:#}");
}

#[test]
fn example_is_a_valid_push_cluster() {
    let text = std::fs::read_to_string(format!("{}/examples/pushcluster.yaml", chart())).unwrap();
    let all = docs(&text);
    let pc = all.iter().find(|d| d["kind"] == "PushCluster").unwrap();
    let pc: PushCluster = serde_json::from_value(pc.clone()).unwrap();
    assert_eq!(pc.spec.push.replicas, 3);
    let secret = all.iter().find(|d| d["kind"] == "Secret").unwrap();
    for key in ["mongodb-uri", "jwt-secret", "api-key"] {
        assert!(secret["stringData"][key].is_string(), "{key}");
    }
}
