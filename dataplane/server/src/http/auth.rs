//! Bearer API keys on an HTTP surface: checked before the handler runs (so before any body is
//! read), `401` with a JSON reason otherwise.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::{Secrets, respond};

/// A route layer: `Router::route_layer(from_fn_with_state(keys, require_api_key))`.
pub async fn require_api_key(
    State(keys): State<Arc<Secrets>>,
    req: Request,
    next: Next,
) -> Response {
    match respond::bearer(req.headers()) {
        Some(given) if keys.matches(given.as_bytes()) => next.run(req).await,
        _ => {
            let mut resp = respond::error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid API key: send Authorization: Bearer <PUSHD_API_KEY>",
                None,
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}
