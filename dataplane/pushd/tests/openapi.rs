//! `docs/openapi.yaml` against the server: the spec's operations are exactly the API's route
//! table (`pushcluster_collect::routes::ROUTES`, which the server dispatches through), the
//! server answers each of them and refuses other methods with 405, it serves the spec at
//! `/openapi.yaml`, and schemathesis (installed by `make tools`) finds no 5xx and no response
//! the spec does not describe.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::{API_KEY, Server, WAIT};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pushcluster_collect::routes::ROUTES;
use pushcluster_test_support::node::repo_root;
use serde_json::{Value, json};

/// Examples schemathesis generates per operation and phase: enough to find the shallow bugs,
/// bounded so the run takes about a minute here.
const MAX_EXAMPLES: &str = "25";

fn spec_text() -> String {
    std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).unwrap()
}

fn spec() -> Value {
    serde_yaml_ng::from_str(&spec_text()).expect("docs/openapi.yaml is YAML")
}

/// `path → methods` of every operation in the spec.
fn spec_operations(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let ops = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| methods.contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (path.clone(), ops)
        })
        .collect()
}

fn table_operations() -> BTreeMap<String, BTreeSet<String>> {
    let mut ops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in ROUTES {
        ops.entry(r.path.to_owned())
            .or_default()
            .insert(r.method.to_owned());
    }
    ops
}

#[test]
fn the_spec_lists_exactly_the_servers_routes() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(
        spec_operations(&spec),
        table_operations(),
        "docs/openapi.yaml and dataplane/collect/src/routes.rs disagree"
    );
    for r in ROUTES {
        let op = &spec["paths"][r.path][r.method.to_lowercase()];
        assert!(op["operationId"].is_string(), "{} {}", r.method, r.path);
        // The API key: required by the document's default, waived only where the server waives it.
        let open = op["security"] == json!([]);
        assert_eq!(
            open,
            !r.needs_api_key(),
            "security of {} {}",
            r.method,
            r.path
        );
        if r.needs_api_key() {
            assert!(
                op["responses"]["401"].is_object(),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
    assert_eq!(spec["security"], json!([{"apiKey": []}]));
}

/// One request; status, `Allow` header, body.
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, String, Value) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.addr));
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let req = req
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let resp = tokio::time::timeout(
        WAIT,
        Client::builder(TokioExecutor::new())
            .build_http()
            .request(req),
    )
    .await
    .expect("http timeout")
    .expect("http request");
    let status = resp.status().as_u16();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, allow, body)
}

#[tokio::test]
async fn the_server_answers_each_spec_operation_and_405s_the_other_methods() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let (status, _, served) = call(&server, "GET", "/openapi.yaml", None).await;
    assert_eq!(status, 200, "the spec needs no API key");
    assert_eq!(
        served,
        Value::String(spec_text()),
        "served spec differs from docs/openapi.yaml"
    );

    let no_route = |status: u16, body: &Value| {
        status == 404
            && body["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("no route"))
    };
    for (path, methods) in spec_operations(&spec()) {
        // A hex sample fills `{id}` and `{token}` alike.
        let concrete = path
            .replace("{id}", "0123abcd")
            .replace("{token}", "0123abcd");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let (status, allow, body) = call(&server, method, &concrete, Some(API_KEY)).await;
            if methods.contains(method) {
                assert!(
                    status != 405 && !no_route(status, &body),
                    "{method} {concrete}: {status} {body}"
                );
            } else {
                assert_eq!(status, 405, "{method} {concrete}: {body}");
                // HEAD comes with every GET (RFC 9110); the spec lists GET alone.
                let allowed: BTreeSet<String> = allow
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| m != "HEAD")
                    .collect();
                assert_eq!(&allowed, &methods, "Allow of {method} {concrete}");
            }
        }
    }
    // What else `pushd standalone` answers on this port belongs to the client surface (`/ws`,
    // the demo page, the SDK) and to health checks (`/healthz`, `/readyz`; `/metrics` is on the
    // admin port only), not to the HTTP API.
    let spec_paths = spec_operations(&spec());
    let others = ["/ws", "/healthz", "/readyz"]
        .into_iter()
        .chain(pushd::web::ROUTES.iter().copied());
    for path in others {
        assert!(!spec_paths.contains_key(path), "{path} is not an API route");
        let (status, _, body) = call(&server, "GET", path, None).await;
        assert!(!no_route(status, &body), "{path}: {status}");
    }
    for path in ["/v1", "/v1/messages/a/b", "/v1/devicesx", "/openapi.json"] {
        let (status, _, body) = call(&server, "GET", path, Some(API_KEY)).await;
        assert!(no_route(status, &body), "{path}: {status} {body}");
    }
}

/// What schemathesis found, kept fixed: JSON Schema's `integer` includes `60.0`, so the API
/// takes a whole number written with a fraction part.
#[tokio::test]
async fn whole_numbers_written_as_floats_are_integers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ok = json!({"to": ["u"], "payload": 1, "ttl_secs": 60.0, "notification": {"badge": 3.0}});
    let (status, body) = server.post(ok).await;
    assert_eq!(status, 202, "{body}");
    for (body, field) in [
        (
            json!({"to": ["u"], "payload": 1, "ttl_secs": 1.5}),
            "ttl_secs",
        ),
        (
            json!({"to": ["u"], "payload": 1, "ttl_secs": 0.0}),
            "ttl_secs",
        ),
        (
            json!({"to": ["u"], "payload": 1, "notification": {"badge": -1.0}}),
            "notification",
        ),
    ] {
        let (status, resp) = server.post(body.clone()).await;
        assert_eq!(
            (status, resp["field"].as_str()),
            (400, Some(field)),
            "{body}: {resp}"
        );
    }
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_spec() {
    let Some(schemathesis) = pushcluster_test_support::require("schemathesis") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let base = format!("http://{}", server.addr);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    std::fs::create_dir_all(&out).unwrap();
    let log = out.join("run.log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = std::process::Command::new(schemathesis);
    cmd.arg("run")
        .arg(format!("{base}/openapi.yaml"))
        .args(["--url", &base])
        .args(["--header", &format!("Authorization: Bearer {API_KEY}")])
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES])
        // Reproducible; one worker (schemathesis 4.32 with several threads trips over
        // hypothesis's lambda introspection: "AST constructor recursion depth mismatch").
        .args(["--seed", "1", "--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(&out)
        .env("NO_COLOR", "1")
        // Hypothesis keeps its example database in the working directory.
        .current_dir(dir.path());
    let mut proc = pushcluster_test_support::Proc::spawn("schemathesis", cmd, &log).unwrap();
    let status = proc.wait_exit(Duration::from_secs(600)).await;
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let ok = status.as_ref().is_ok_and(|s| s.success());
    assert!(
        ok,
        "schemathesis failed ({status:?}); {}:\n{output}",
        log.display()
    );
    // E.g. "Tested: 4" and "750 generated, 750 passed, 8 skipped".
    let summary: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Tested:") || l.contains(" generated, "))
        .collect();
    assert_eq!(summary.len(), 2, "no summary in:\n{output}");
    let _ = writeln!(
        std::io::stderr(),
        "schemathesis ({MAX_EXAMPLES} examples a phase, seed 1): operations {}; {}",
        summary[0].trim_start_matches("Tested:").trim(),
        summary[1]
    );
}
