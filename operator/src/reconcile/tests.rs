//! Reconciler scenarios against a mock API server (tower-test): each call is recorded and
//! asserted, so "no write when nothing changed" and "a missing Secret is a condition, not an
//! error" are checked exactly.

use std::collections::HashMap;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use super::*;
use crate::children::fixtures::push_cluster;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request the mock API server answered.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Call {
    fn short(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// How the mock answers.
#[derive(Default, Clone)]
struct Scenario {
    /// Secrets that exist, by name, with their keys.
    secrets: HashMap<String, Vec<&'static str>>,
    /// Fail the apply of paths containing this with the given status.
    fail_apply: Option<(&'static str, u16)>,
    /// NetworkPolicies owned by the PushCluster exist (from when they were turned on).
    network_policies: bool,
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn not_found(what: &str) -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
    )
}

/// Answers requests until the client is dropped; returns every call.
async fn serve(mut handle: Handle, scenario: Scenario) -> Vec<Call> {
    let mut calls = Vec::new();
    while let Some((req, send)) = handle.next_request().await {
        let (parts, body) = req.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let call = Call {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        let resp = respond(&call, &scenario);
        calls.push(call);
        send.send_response(resp);
    }
    calls
}

fn respond(call: &Call, scenario: &Scenario) -> Response<Body> {
    let path = call.path.as_str();
    if call.method == Method::GET && path.contains("/secrets/") {
        let name = path.rsplit('/').next().unwrap();
        return match scenario.secrets.get(name) {
            Some(keys) => {
                let data: serde_json::Map<String, Value> = keys
                    .iter()
                    .map(|k| ((*k).to_owned(), json!("eA==")))
                    .collect();
                json_response(
                    StatusCode::OK,
                    &json!({"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": name, "namespace": "apps"}, "data": data}),
                )
            }
            None => not_found(&format!("secrets \"{name}\"")),
        };
    }
    if call.method == Method::PATCH {
        if let Some((needle, code)) = scenario.fail_apply
            && path.contains(needle)
        {
            return json_response(
                StatusCode::from_u16(code).unwrap(),
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "injected", "reason": "Forbidden", "code": code}),
            );
        }
        // Echo the applied object as stored: a Deployment gets a status (nothing ready yet).
        let mut obj = call.body.clone();
        if path.ends_with("/status") {
            let mut pc = serde_json::to_value(push_cluster()).unwrap();
            pc["status"] = obj["status"].clone();
            return json_response(StatusCode::OK, &pc);
        }
        if path.contains("/deployments/") {
            obj["metadata"]["generation"] = json!(1);
            obj["status"] = json!({"observedGeneration": 1, "replicas": 0});
        }
        return json_response(StatusCode::OK, &obj);
    }
    if path.contains("/networkpolicies/") && scenario.network_policies {
        let name = path.rsplit('/').next().unwrap();
        let owner = serde_json::to_value(crate::children::owner_ref(&push_cluster())).unwrap();
        return json_response(
            StatusCode::OK,
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": name, "namespace": "apps", "ownerReferences": [owner]},
                    "spec": {}}),
        );
    }
    if call.method == Method::POST && (path.contains("/events") || path.ends_with("/secrets")) {
        return json_response(StatusCode::CREATED, &call.body);
    }
    not_found(path)
}

/// Every referenced Secret, and the internal token generated by an earlier reconcile.
fn all_secrets() -> Scenario {
    Scenario {
        secrets: HashMap::from([
            (
                "demo-secrets".to_owned(),
                vec!["api-key", "jwt", "mongodb-uri"],
            ),
            ("demo-internal-token".to_owned(), vec!["token"]),
        ]),
        fail_apply: None,
        network_policies: false,
    }
}

const READS: [&str; 2] = [
    "GET /api/v1/namespaces/apps/secrets/demo-secrets",
    "GET /api/v1/namespaces/apps/secrets/demo-internal-token",
];

/// Runs one reconcile of `pc` against the mock; returns its result, the calls and the metrics.
async fn run(pc: PushCluster, scenario: Scenario) -> (Result<Action>, Vec<Call>, Arc<Context>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(serve(handle, scenario));
    let client = Client::new(service, "default");
    let recorder = Recorder::new(client.clone(), Reporter::from("pushcluster-operator"));
    let metrics = Metrics::new(&mut Registry::default());
    let ctx = Context::new(client, Some(recorder), metrics, "example/pushd:1".into());
    let result = reconcile(Arc::new(pc), ctx.clone()).await;
    // Keep the metrics and failures; drop every client so the mock server ends.
    let kept = Arc::new(Context {
        client: Client::new(
            tower_test::mock::pair::<Request<Body>, Response<Body>>().0,
            "x",
        ),
        recorder: None,
        metrics: ctx.metrics.clone(),
        default_image: String::new(),
        failures: Mutex::new(ctx.failures().clone()),
    });
    drop(ctx);
    let calls = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("mock API server ended")
        .unwrap();
    (result, calls, kept)
}

const APPLIES: [&str; 16] = [
    "PATCH /api/v1/namespaces/apps/configmaps/demo-pushd",
    "PATCH /api/v1/namespaces/apps/services/demo-push",
    "PATCH /api/v1/namespaces/apps/services/demo-push-headless",
    "PATCH /api/v1/namespaces/apps/services/demo-dispatch",
    "PATCH /api/v1/namespaces/apps/services/demo-collect",
    "PATCH /api/v1/namespaces/apps/services/demo-auth",
    "PATCH /api/v1/namespaces/apps/services/demo-metrics",
    "PATCH /apis/networking.k8s.io/v1/namespaces/apps/networkpolicies/demo-push",
    "PATCH /apis/networking.k8s.io/v1/namespaces/apps/networkpolicies/demo-dispatch",
    "PATCH /apis/networking.k8s.io/v1/namespaces/apps/networkpolicies/demo-collect",
    "PATCH /apis/networking.k8s.io/v1/namespaces/apps/networkpolicies/demo-auth",
    "PATCH /apis/apps/v1/namespaces/apps/deployments/demo-push",
    "PATCH /apis/apps/v1/namespaces/apps/deployments/demo-dispatch",
    "PATCH /apis/apps/v1/namespaces/apps/deployments/demo-collect",
    "PATCH /apis/apps/v1/namespaces/apps/deployments/demo-auth",
    "PATCH /apis/policy/v1/namespaces/apps/poddisruptionbudgets/demo-push",
];

#[tokio::test]
async fn first_reconcile_applies_every_child_then_writes_status() {
    let (result, calls, ctx) = run(push_cluster(), all_secrets()).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    let got: Vec<String> = calls.iter().map(Call::short).collect();
    let mut want: Vec<String> = READS.map(str::to_owned).to_vec();
    want.extend(APPLIES.iter().map(|s| (*s).to_owned()));
    want.push(
        "PATCH /apis/pushcluster.io/v1alpha1/namespaces/apps/pushclusters/demo/status".into(),
    );
    want.push("POST /apis/events.k8s.io/v1/namespaces/apps/events".into());
    assert_eq!(got, want);
    for c in calls.iter().filter(|c| c.method == Method::PATCH) {
        assert_eq!(
            c.content_type,
            "application/apply-patch+yaml",
            "{}",
            c.short()
        );
        assert!(
            c.query.contains("fieldManager=pushcluster-operator"),
            "{}",
            c.query
        );
        assert!(c.query.contains("force=true"), "{}", c.query);
    }
    let status = &calls[calls.len() - 2].body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "False");
    let event = &calls[calls.len() - 1].body;
    assert_eq!(event["reason"], "Applied");
    assert_eq!(event["regarding"]["name"], "demo");
    assert_eq!(ctx.metrics.reconciles.get(), 1);
}

#[tokio::test]
async fn an_unchanged_status_is_not_written() {
    let (_, calls, _) = run(push_cluster(), all_secrets()).await;
    let status = calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .unwrap()
        .body["status"]
        .clone();
    let mut pc = push_cluster();
    pc.status = Some(serde_json::from_value(status).unwrap());
    let (result, calls, _) = run(pc, all_secrets()).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    let got: Vec<String> = calls.iter().map(Call::short).collect();
    // Applies are idempotent server-side (no write when equal); no status write, no event.
    assert_eq!(got[READS.len()..], APPLIES.map(str::to_owned)[..]);
}

#[tokio::test]
async fn the_internal_token_secret_is_created_once_and_never_rewritten() {
    let mut scenario = all_secrets();
    scenario.secrets.remove("demo-internal-token");
    let (result, calls, _) = run(push_cluster(), scenario).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    let created: Vec<&Call> = calls
        .iter()
        .filter(|c| c.path.contains("/secrets"))
        .filter(|c| c.method != Method::GET)
        .collect();
    assert_eq!(created.len(), 1, "{calls:?}");
    let secret = &created[0].body;
    assert_eq!(created[0].short(), "POST /api/v1/namespaces/apps/secrets");
    assert_eq!(secret["metadata"]["name"], "demo-internal-token");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "PushCluster"
    );
    let token = secret["stringData"]["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    // Once it exists, reconciles only read it: no create, no apply, no update.
    let (_, calls, _) = run(push_cluster(), all_secrets()).await;
    assert!(
        calls
            .iter()
            .all(|c| !c.path.contains("/secrets") || c.method == Method::GET),
        "{calls:?}"
    );
}

#[tokio::test]
async fn turned_off_network_policies_are_deleted_and_not_applied() {
    let mut pc = push_cluster();
    pc.spec.security.network_policies.enabled = false;
    let scenario = Scenario {
        network_policies: true,
        ..all_secrets()
    };
    let (result, calls, _) = run(pc, scenario).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    let np: Vec<String> = calls
        .iter()
        .filter(|c| c.path.contains("/networkpolicies/"))
        .map(Call::short)
        .collect();
    let base = "/apis/networking.k8s.io/v1/namespaces/apps/networkpolicies";
    let want: Vec<String> = ["push", "dispatch", "collect", "auth"]
        .iter()
        .flat_map(|r| {
            [
                format!("GET {base}/demo-{r}"),
                format!("DELETE {base}/demo-{r}"),
            ]
        })
        .collect();
    assert_eq!(np, want);
}

#[tokio::test]
async fn a_given_internal_token_secret_is_checked_not_created() {
    let mut pc = push_cluster();
    pc.spec.security.internal_token_secret_ref = Some(crate::crd::SecretKeyRef {
        name: "demo-secrets".into(),
        key: "internal-token".into(),
    });
    let (result, calls, _) = run(pc, all_secrets()).await;
    assert_eq!(result.unwrap(), Action::requeue(SECRET_RECHECK));
    assert!(calls.iter().all(|c| {
        !c.short()
            .starts_with("POST /api/v1/namespaces/apps/secrets")
    }));
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .unwrap()
        .body["status"];
    assert!(
        status.to_string().contains(
            "Secret demo-secrets (spec.security.internalTokenSecretRef) has no key internal-token"
        ),
        "{status}"
    );
}

/// The `Degraded` condition of the status the reconcile wrote.
fn degraded(calls: &[Call]) -> Value {
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("a status write")
        .body["status"];
    status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Degraded")
        .cloned()
        .expect("a Degraded condition")
}

#[tokio::test]
async fn a_missing_secret_is_a_degraded_condition_not_an_error() {
    let mut scenario = all_secrets();
    scenario
        .secrets
        .insert("demo-secrets".to_owned(), vec!["api-key", "jwt"]);
    let (result, calls, ctx) = run(push_cluster(), scenario).await;
    assert_eq!(result.unwrap(), Action::requeue(SECRET_RECHECK));
    let degraded = degraded(&calls);
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "SecretMissing");
    assert_eq!(
        degraded["message"],
        "Secret demo-secrets (spec.mongo.uriSecretRef) has no key mongodb-uri"
    );
    let reasons: Vec<&Value> = calls
        .iter()
        .filter(|c| c.path.ends_with("/events"))
        .map(|c| &c.body["reason"])
        .collect();
    assert_eq!(reasons, [&json!("Applied"), &json!("Degraded")]);
    assert_eq!(
        ctx.metrics
            .failures
            .get_or_create(&crate::metrics::ErrorLabels { error: "apply" })
            .get(),
        0
    );
}

#[tokio::test]
async fn a_failed_apply_is_an_error_with_backoff() {
    let scenario = Scenario {
        fail_apply: Some(("/deployments/demo-collect", 403)),
        ..all_secrets()
    };
    let (result, calls, ctx) = run(push_cluster(), scenario).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Apply { kind: "Deployment", name, .. } if name == "demo-collect"),
        "{err}"
    );
    // Stops at the failure: no status write.
    assert!(
        calls
            .last()
            .unwrap()
            .path
            .ends_with("/deployments/demo-collect")
    );
    let pc = Arc::new(push_cluster());
    assert_eq!(
        error_policy(pc.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(pc.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    let failures = ctx
        .metrics
        .failures
        .get_or_create(&crate::metrics::ErrorLabels { error: "apply" })
        .get();
    assert_eq!(failures, 2);
}

#[test]
fn backoff_doubles_up_to_five_minutes() {
    let b: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(b, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[tokio::test]
async fn a_deleted_push_cluster_is_left_to_the_garbage_collector() {
    let mut pc = push_cluster();
    pc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    let (result, calls, _) = run(pc, all_secrets()).await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(calls.is_empty(), "{calls:?}");
}

#[tokio::test]
async fn a_missing_vendor_secret_is_degraded_by_its_field() {
    let mut pc = push_cluster();
    pc.spec.hms = Some(
        serde_json::from_value(json!({"enabled": true, "appId": "104523456",
            "clientSecretRef": {"name": "huawei", "key": "client-secret"}}))
        .unwrap(),
    );
    pc.spec.vivo = Some(
        serde_json::from_value(json!({"enabled": false,
            "appSecretRef": {"name": "vivo-absent", "key": "s"}}))
        .unwrap(),
    );
    let (result, calls, _) = run(pc, all_secrets()).await;
    assert_eq!(result.unwrap(), Action::requeue(SECRET_RECHECK));
    let degraded = degraded(&calls);
    assert_eq!(
        (degraded["status"].as_str(), degraded["reason"].as_str()),
        (Some("True"), Some("SecretMissing"))
    );
    assert_eq!(
        degraded["message"], "Secret huawei (spec.hms.clientSecretRef) not found",
        "a disabled vendor's Secret is not needed"
    );
}
