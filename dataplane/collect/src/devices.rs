//! `POST /v1/devices` (register a user's mobile device) and `DELETE /v1/devices/{token}`.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use pushcluster_proto::api::devices::{MAX_DEVICE_BODY_BYTES, parse_device, validate_token_path};
use pushcluster_server::{Resp, respond};
use pushcluster_store::DeviceSaved;

use crate::Collect;

impl Collect {
    pub(crate) async fn put_device(&self, req: Request<Incoming>) -> Resp {
        let body = match respond::read_body(req.into_body(), MAX_DEVICE_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let device = match parse_device(&body) {
            Ok(d) => d,
            Err(invalid) => {
                let status =
                    StatusCode::from_u16(invalid.status).unwrap_or(StatusCode::BAD_REQUEST);
                return respond::error(status, invalid.message, invalid.field);
            }
        };
        match self.store.put_device(device).await {
            Ok(DeviceSaved::Created(d)) => {
                tracing::info!(user = %d.user, platform = d.platform.as_str(), "device registered");
                respond::json(StatusCode::CREATED, &d)
            }
            Ok(DeviceSaved::Updated(d)) => respond::json(StatusCode::OK, &d),
            Err(e) => self.store_unavailable(e),
        }
    }

    pub(crate) async fn delete_device(&self, token: &str) -> Resp {
        let token = match validate_token_path(token) {
            Ok(t) => t,
            Err(m) => return respond::error(StatusCode::BAD_REQUEST, m, Some("token")),
        };
        match self.store.delete_device(&token).await {
            Ok(true) => {
                let mut resp = respond::text(StatusCode::NO_CONTENT, "", "application/json");
                resp.headers_mut().remove(http::header::CONTENT_TYPE);
                resp
            }
            Ok(false) => respond::error(
                StatusCode::NOT_FOUND,
                "no device with this token",
                Some("token"),
            ),
            Err(e) => self.store_unavailable(e),
        }
    }

    fn store_unavailable(&self, e: pushcluster_store::Error) -> Resp {
        self.metrics.store_error(e.metric_label());
        tracing::error!(error = %e, "device store unavailable");
        let mut resp = respond::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "message store unavailable; nothing was changed, retry later",
            None,
        );
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        resp
    }
}
