//! Token claim rules end to end: `--jwt-issuer`, `--jwt-audience`, `nbf` and `--jwt-leeway`
//! on a real `pushd standalone`, and on the auth role behind a push node. A refused token
//! gets 401 with a JSON reason naming the claim, before the WebSocket upgrade.

mod common;

use std::net::SocketAddr;

use common::cluster::{Cluster, local};
use common::*;
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::Redis;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

const ISSUER: &str = "https://idp.example.test/";

fn claim_flags() -> Vec<String> {
    vec![
        format!("--jwt-issuer={ISSUER}"),
        "--jwt-audience=pushcluster, pushcluster-staging".into(),
        "--jwt-leeway=10s".into(),
    ]
}

fn now() -> u64 {
    pushcluster_proto::delivery::now_ms() / 1000
}

/// An HS256 token with the test secret: a valid one for `user`, with `patch` applied (a
/// `null` removes a claim).
fn token_with(user: &str, patch: Value) -> String {
    let mut claims = json!({"sub": user, "exp": now() + 600, "iss": ISSUER, "aud": "pushcluster"});
    for (k, v) in patch.as_object().unwrap() {
        match v {
            Value::Null => {
                claims.as_object_mut().unwrap().remove(k);
            }
            v => claims[k] = v.clone(),
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Refused tokens and what the 401 body must say: its `code`, and text its `error` holds.
fn refused() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "wrong aud",
            token_with("u", json!({"aud": "another-app"})),
            "invalid_token",
            "`aud`",
        ),
        (
            "no aud",
            token_with("u", json!({"aud": null})),
            "invalid_token",
            "`aud`",
        ),
        (
            "wrong iss",
            token_with("u", json!({"iss": "https://evil.example.test/"})),
            "invalid_token",
            "`iss`",
        ),
        (
            "no iss",
            token_with("u", json!({"iss": null})),
            "invalid_token",
            "`iss`",
        ),
        (
            "nbf beyond the leeway",
            token_with("u", json!({"nbf": now() + 120})),
            "token_not_yet_valid",
            "`nbf`",
        ),
        (
            "exp beyond the leeway",
            token_with("u", json!({"exp": now() - 60})),
            "token_expired",
            "expired",
        ),
    ]
}

/// Connects to `/ws` on `addr` with `token` and expects a 401 before the upgrade.
async fn expect_401(addr: SocketAddr, what: &str, token: &str, code: &str, text: &str) {
    let url = format!("ws://{addr}/ws?token={token}");
    match tokio_tungstenite::connect_async(&url).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401, "{what}");
            let body: Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["code"], code, "{what}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(error.contains(text), "{what}: {body}");
            assert!(
                !error.contains(token),
                "{what}: the reason quotes the token"
            );
        }
        other => panic!("{what}: expected 401, got {other:?}"),
    }
}

/// Connects with `token` and expects the welcome frame for `user`.
async fn expect_welcome(addr: SocketAddr, what: &str, token: &str, user: &str) {
    let url = format!("ws://{addr}/ws?token={token}");
    let (ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut client = Client { ws };
    let welcome = client.next_frame().await.expect("welcome");
    assert_eq!(
        (welcome["type"].as_str(), welcome["user"].as_str()),
        (Some("welcome"), Some(user)),
        "{what}: {welcome}"
    );
    client.close().await;
}

/// What both deployments must do with the claim flags set.
async fn claim_rules_hold(addr: SocketAddr) {
    for (what, token, code, text) in refused() {
        expect_401(addr, what, &token, code, text).await;
        // Asked again (answered from the verdict cache): the same answer.
        expect_401(addr, what, &token, code, text).await;
    }
    let accepted = [
        ("valid", token_with("alice", json!({}))),
        (
            "aud array with an accepted audience",
            token_with(
                "alice",
                json!({"aud": ["other-app", "pushcluster-staging"]}),
            ),
        ),
        (
            "nbf within the leeway",
            token_with("alice", json!({"nbf": now() + 3})),
        ),
        (
            "exp within the leeway",
            token_with("alice", json!({"exp": now() - 3})),
        ),
    ];
    for (what, token) in accepted {
        expect_welcome(addr, what, &token, "alice").await;
    }
}

#[tokio::test]
async fn standalone_enforces_issuer_audience_nbf_and_leeway() {
    let dir = tempfile::tempdir().unwrap();
    let flags = claim_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start(dir.path(), &flags).await;
    claim_rules_hold(server.addr).await;
}

#[tokio::test]
async fn without_claim_flags_aud_and_iss_are_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    // A token from a shared identity provider, meant for another application, is still
    // accepted: the deployment asked for no audience (this is what --jwt-audience is for).
    let t = token_with("bob", json!({"aud": "another-app", "iss": "anyone"}));
    expect_welcome(server.addr, "aud not checked", &t, "bob").await;
    let t = token_with("bob", json!({"nbf": now() + 120}));
    expect_401(server.addr, "nbf", &t, "token_not_yet_valid", "`nbf`").await;
}

#[tokio::test]
async fn bad_claim_flags_exit_with_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, text) in [
        ("--jwt-leeway=10m", "--jwt-leeway"),
        ("--jwt-leeway=1500ms", "whole seconds"),
        ("--jwt-issuer=", "--jwt-issuer"),
        ("--jwt-audience=a,,b", "--jwt-audience"),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushd"))
            .args(["standalone", "--listen=127.0.0.1:0", flag])
            .arg("--data-dir")
            .arg(dir.path())
            .env("PUSHD_JWT_SECRET", SECRET)
            .env("PUSHD_API_KEY", API_KEY)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{flag}: {stderr}");
        assert!(stderr.contains(text), "{flag}: {stderr}");
    }
}

/// The same rules in the cluster: set on the auth role, answered by a push node (whose
/// verdict cache keeps the refusal, so asking again costs no round trip).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_auth_role_enforces_the_rules_through_a_push_node() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let mut options = local(redis.url.clone());
    options.auth_args = claim_flags();
    let cluster = Cluster::start(&mongo, &options).await;
    claim_rules_hold(cluster.pushes[0].http()).await;
}
