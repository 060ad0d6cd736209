//! The edge on a real router, driven without a socket.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::*;

async fn call(
    app: &Router,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (parts.status, parts.headers, v)
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn routes() -> Router {
    Router::new()
        .route("/v1/things/{id}", get(|| async { "thing" }))
        .route(
            "/v1/things",
            post(|body: Bytes| async move { format!("{} bytes", body.len()) })
                .layer(DefaultBodyLimit::max(8)),
        )
}

#[tokio::test]
async fn unknown_paths_are_404_json_and_prefixes_do_not_match() {
    let app = edge(routes(), &HttpLimits::default());
    for path in [
        "/nowhere",
        "/v1/thingsZ1",
        "/v1/thingsX/1",
        "/v1/things/1/more",
    ] {
        let (status, headers, body) = call(&app, get_req(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"], format!("no route for {path}"), "{path}");
    }
    let (status, _, body) = call(&app, get_req("/v1/things/1")).await;
    assert_eq!((status, body), (StatusCode::OK, "thing".into()));
}

#[tokio::test]
async fn a_wrong_method_is_405_json_with_allow() {
    let app = edge(routes(), &HttpLimits::default());
    let (status, headers, body) = call(&app, get_req("/v1/things")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(body["error"], "method not allowed; use POST");
}

#[tokio::test]
async fn bodies_over_the_route_limit_are_413_json() {
    let app = edge(routes(), &HttpLimits::default());
    let req = Request::post("/v1/things")
        .body(Body::from("0123456789"))
        .unwrap();
    let (status, headers, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(
        body["error"].as_str().unwrap().contains("length limit"),
        "{body}"
    );
    let req = Request::post("/v1/things")
        .body(Body::from("01234567"))
        .unwrap();
    assert_eq!(call(&app, req).await.2, "8 bytes");
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_times_out_with_408_json() {
    let routes = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }),
    );
    let limits = HttpLimits {
        request_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let (status, _, body) = call(&edge(routes, &limits), get_req("/slow")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(
        body["error"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
}

#[tokio::test]
async fn past_the_concurrency_limit_requests_are_shed_with_503_and_retry_after() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let routes = Router::new().route(
        "/hold",
        get(move || {
            let g = g.clone();
            async move {
                g.notified().await;
                "released"
            }
        }),
    );
    let limits = HttpLimits {
        max_in_flight: 1,
        ..HttpLimits::default()
    };
    let app = edge(routes, &limits);
    let first = tokio::spawn({
        let app = app.clone();
        async move { call(&app, get_req("/hold")).await }
    });
    // Let the first request take the only slot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, headers, body) = call(&app, get_req("/hold")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
    gate.notify_one();
    assert_eq!(first.await.unwrap().2, "released");
}
