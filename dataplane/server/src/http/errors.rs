//! The one place HTTP errors get their body: `{"error": "...", "field": "..."}`.
//!
//! Handlers answer their own errors with [`crate::respond::error`]. Everything else — axum's
//! rejections (a body over the limit: `413`; a bad path segment: `400`), its `405` for a known
//! path with another method (which keeps its `Allow` header), the timeout's `408`, the `404` of
//! unknown paths and the `503` of load shedding — is made JSON here.

use axum::BoxError;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, Uri, header};
use pushcluster_proto::api::ErrorBody;

use crate::respond;

/// Longest error text kept from a rejection's plain-text body.
const MAX_TEXT: usize = 512;

/// The fallback of every surface: `404` naming the path.
pub async fn not_found(uri: Uri) -> Response {
    let mut path = uri.path().to_owned();
    if path.len() > 200 {
        let mut end = 200;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.truncate(end);
        path.push('…');
    }
    respond::error(StatusCode::NOT_FOUND, format!("no route for {path}"), None)
}

/// Load shedding: the concurrency limit is reached.
pub async fn overloaded(err: BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        return respond::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "server is busy: too many requests in flight; retry later",
            1,
        );
    }
    tracing::error!(error = %err, "http middleware failed");
    respond::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Turns every error response that is not JSON yet into a JSON error, keeping its status and
/// headers (`Allow`, `Retry-After`).
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT * 4)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().chars().take(MAX_TEXT).collect::<String>())
        .filter(|t| !t.is_empty());
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            format!("method not allowed; use {allow}")
        }
        StatusCode::REQUEST_TIMEOUT => {
            "request timed out: the whole request must arrive and be answered within the request timeout".to_owned()
        }
        _ => text.unwrap_or(reason),
    };
    let body = serde_json::to_vec(&ErrorBody { error, field: None }).expect("serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
