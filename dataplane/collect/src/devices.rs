//! `POST /v1/devices` (register a user's mobile device), `GET /v1/devices?user=U` (list them)
//! and `DELETE /v1/devices/{token}`.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use pushcluster_proto::api::Invalid;
use pushcluster_proto::api::devices::{
    DeviceList, MAX_DEVICE_BODY_BYTES, MAX_LISTED_DEVICES, parse_device, parse_device_query,
    validate_token_path,
};
use pushcluster_server::{Resp, respond};
use pushcluster_store::DeviceSaved;

use crate::{Collect, method_not_allowed};

impl Collect {
    /// `rest`: the path after `/v1/devices`.
    pub(crate) async fn devices(&self, req: Request<Incoming>, rest: &str) -> Resp {
        match (req.method().clone(), rest) {
            (Method::POST, "" | "/") => self.put_device(req).await,
            (Method::GET, "" | "/") => self.list_devices(req.uri().query()).await,
            (Method::DELETE, token) if token.len() > 1 && !token[1..].contains('/') => {
                self.delete_device(&token[1..]).await
            }
            (_, "" | "/") => method_not_allowed("GET, POST"),
            (_, _) => method_not_allowed("DELETE"),
        }
    }

    async fn put_device(&self, req: Request<Incoming>) -> Resp {
        let body = match respond::read_body(req.into_body(), MAX_DEVICE_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let device = match parse_device(&body) {
            Ok(d) => d,
            Err(invalid) => return refused(invalid),
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

    /// A user's devices, live and dead, by token; at most [`MAX_LISTED_DEVICES`].
    async fn list_devices(&self, query: Option<&str>) -> Resp {
        let user = match parse_device_query(query) {
            Ok(u) => u,
            Err(invalid) => return refused(invalid),
        };
        match self.store.devices(&user).await {
            Ok(mut devices) => {
                let truncated = devices.len() > MAX_LISTED_DEVICES;
                devices.truncate(MAX_LISTED_DEVICES);
                let list = DeviceList {
                    user,
                    devices,
                    truncated,
                };
                respond::json(StatusCode::OK, &list)
            }
            Err(e) => self.store_unavailable(e),
        }
    }

    async fn delete_device(&self, token: &str) -> Resp {
        let candidates = match validate_token_path(token) {
            Ok(t) => t,
            Err(m) => return respond::error(StatusCode::BAD_REQUEST, m, Some("token")),
        };
        for token in candidates {
            match self.store.delete_device(&token).await {
                Ok(true) => {
                    let mut resp = respond::text(StatusCode::NO_CONTENT, "", "application/json");
                    resp.headers_mut().remove(http::header::CONTENT_TYPE);
                    return resp;
                }
                Ok(false) => {}
                Err(e) => return self.store_unavailable(e),
            }
        }
        respond::error(
            StatusCode::NOT_FOUND,
            "no device with this token",
            Some("token"),
        )
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

/// A refused request: its status and a body naming the field.
fn refused(invalid: Invalid) -> Resp {
    let status = StatusCode::from_u16(invalid.status).unwrap_or(StatusCode::BAD_REQUEST);
    respond::error(status, invalid.message, invalid.field)
}
