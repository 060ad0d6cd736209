//! Responses: every error is `{"error": "...", "field": "..."}` with a 4xx/5xx status.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use pushcluster_proto::api::ErrorBody;
use serde::Serialize;

/// The response type of every handler.
pub type Resp = axum::response::Response;

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON error naming the problem and, when there is one, the field.
pub fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Resp {
    json(
        status,
        &ErrorBody {
            error: message.into(),
            field: field.map(str::to_owned),
        },
    )
}

/// A JSON error that tells the client when to retry (`Retry-After`, in seconds).
pub fn retry_later(status: StatusCode, message: impl Into<String>, retry_after_secs: u64) -> Resp {
    let mut resp = error(status, message, None);
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    resp
}

/// A plain-text response (metrics, health).
pub fn text(status: StatusCode, body: impl Into<Body>, content_type: &'static str) -> Resp {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// An empty response (e.g. `204 No Content`).
pub fn empty(status: StatusCode) -> Resp {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// The bearer token of an `Authorization` header, if any.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}
