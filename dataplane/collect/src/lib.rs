//! Collect: the API business systems send messages to.
//!
//! `POST /v1/messages` validates, stores durably (only then `202 {"id"}`), and hands the stored
//! message to dispatch. `GET /v1/messages/{id}` reports each recipient's state (and each
//! mobile notification's). `POST /v1/devices` and `DELETE /v1/devices/{token}` ([`devices`])
//! keep users' mobile devices. All need `Authorization: Bearer <api key>`. [`routes`]: the
//! table of these routes, and `/openapi.yaml` (`docs/openapi.yaml`) that describes them.
#![forbid(unsafe_code)]

use std::sync::Arc;

use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use pushcluster_dispatch::service::Handoff;
use pushcluster_proto::api::{Accepted, Invalid, Limits, NewMessage, parse_submit};
use pushcluster_server::{Resp, respond};
use pushcluster_store::{MessageStore, Submitted};
use pushcluster_telemetry::Metrics;

mod devices;
pub mod routes;

use routes::Op;

/// The collect API.
pub struct Collect {
    pub store: Arc<dyn MessageStore>,
    pub handoff: Arc<dyn Handoff>,
    pub api_key: String,
    pub limits: Limits,
    pub metrics: Metrics,
}

impl Collect {
    /// Handles the API's [`routes::ROUTES`]: `/v1/messages[/{id}]`, `/v1/devices[/{token}]` and
    /// `/openapi.yaml`; `None` for paths it does not own.
    pub async fn handle(&self, req: Request<Incoming>) -> Option<Resp> {
        let path = req.uri().path().to_owned();
        let (route, param) = match routes::find(req.method().as_str(), &path) {
            routes::Found::Route(route, param) => (route, param.unwrap_or_default().to_owned()),
            routes::Found::WrongMethod(allow) => return Some(method_not_allowed(&allow)),
            routes::Found::NotOurs => return None,
        };
        if route.needs_api_key() && !self.authorized(req.headers()) {
            let mut resp = respond::error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid API key: send Authorization: Bearer <PUSHD_API_KEY>",
                None,
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Some(resp);
        }
        Some(match route.op {
            Op::Submit => self.submit(req).await,
            Op::Status => self.status(&param).await,
            Op::RegisterDevice => self.put_device(req).await,
            Op::DeleteDevice => self.delete_device(&param).await,
            Op::OpenApi => respond::text(
                StatusCode::OK,
                routes::OPENAPI_YAML,
                "application/yaml; charset=utf-8",
            ),
        })
    }

    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let Some(given) = respond::bearer(headers) else {
            return false;
        };
        // Constant-time comparison.
        let (a, b) = (given.as_bytes(), self.api_key.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    async fn submit(&self, req: Request<Incoming>) -> Resp {
        let body = match pushcluster_server::respond::read_body(
            req.into_body(),
            self.limits.max_body_bytes(),
        )
        .await
        {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let msg = match parse_submit(&body, &self.limits) {
            Ok(m) => m,
            Err(invalid) => {
                let status =
                    StatusCode::from_u16(invalid.status).unwrap_or(StatusCode::BAD_REQUEST);
                return respond::error(status, invalid.message, invalid.field);
            }
        };
        match self.accept(msg).await {
            Ok(accepted) => respond::json(StatusCode::ACCEPTED, &accepted),
            Err(()) => {
                let mut resp = respond::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "message store unavailable; nothing was accepted, retry later",
                    None,
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
        }
    }

    /// Stores a validated message, then hands it to dispatch. `Err` means nothing was stored.
    pub async fn accept(&self, msg: NewMessage) -> Result<Accepted, ()> {
        let start = std::time::Instant::now();
        let submitted = self.store.submit(msg).await;
        self.metrics.observe_stage("store", start);
        let submitted = match submitted {
            Ok(s) => s,
            Err(e) => {
                self.metrics.store_error(e.metric_label());
                tracing::error!(error = %e, "failed to store message");
                return Err(());
            }
        };
        let accepted = Accepted {
            id: submitted.id().to_owned(),
            duplicate: matches!(submitted, Submitted::Duplicate { .. }),
        };
        if let Submitted::New(stored) = submitted {
            self.metrics.messages_accepted.inc();
            let start = std::time::Instant::now();
            let report = self.handoff.handoff(&stored).await;
            self.metrics.observe_stage("handoff", start);
            tracing::debug!(id = %stored.id, ?report, "dispatched");
        }
        Ok(accepted)
    }

    /// Validates a gRPC `Submit` exactly like an HTTP body.
    pub fn validate_submit(
        &self,
        req: &pushcluster_proto::grpc::SubmitRequest,
    ) -> Result<NewMessage, Invalid> {
        let payload =
            serde_json::value::RawValue::from_string(req.payload.clone()).map_err(|e| Invalid {
                status: 400,
                field: Some("payload"),
                message: format!("`payload` is not JSON: {e}"),
            })?;
        // Before `json!`, which would panic on a payload that passes as JSON but cannot be
        // decoded (a lone surrogate escape).
        pushcluster_proto::api::check_payload(&payload)?;
        let mut body = serde_json::json!({"to": req.to, "payload": payload});
        if req.ttl_secs > 0 {
            body["ttl_secs"] = req.ttl_secs.into();
        }
        if !req.idempotency_key.is_empty() {
            body["idempotency_key"] = req.idempotency_key.clone().into();
        }
        if !req.notification.is_empty() {
            let n: serde_json::Value =
                serde_json::from_str(&req.notification).map_err(|e| Invalid {
                    status: 400,
                    field: Some("notification"),
                    message: format!("`notification` is not JSON: {e}"),
                })?;
            body["notification"] = n;
        }
        if !req.mobile.is_empty() {
            body["mobile"] = req.mobile.clone().into();
        }
        parse_submit(body.to_string().as_bytes(), &self.limits)
    }

    async fn status(&self, id: &str) -> Resp {
        match self.store.status(id).await {
            Ok(Some(status)) => respond::json(StatusCode::OK, &status),
            Ok(None) => respond::error(
                StatusCode::NOT_FOUND,
                format!("no message with id {id}"),
                Some("id"),
            ),
            Err(e) => {
                self.metrics.store_error(e.metric_label());
                respond::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None)
            }
        }
    }
}

/// The collect role's gRPC `Submit`, for high-volume producers (same validation as HTTP).
pub struct SubmitService {
    pub collect: Arc<Collect>,
}

#[tonic::async_trait]
impl pushcluster_proto::grpc::collect_server::Collect for SubmitService {
    async fn submit(
        &self,
        req: tonic::Request<pushcluster_proto::grpc::SubmitRequest>,
    ) -> Result<tonic::Response<pushcluster_proto::grpc::SubmitResponse>, tonic::Status> {
        let msg = self
            .collect
            .validate_submit(req.get_ref())
            .map_err(|e| match e.status {
                413 => tonic::Status::resource_exhausted(e.message),
                _ => tonic::Status::invalid_argument(e.message),
            })?;
        let accepted = self.collect.accept(msg).await.map_err(|()| {
            tonic::Status::unavailable("message store unavailable; nothing was accepted")
        })?;
        Ok(tonic::Response::new(
            pushcluster_proto::grpc::SubmitResponse {
                id: accepted.id,
                duplicate: accepted.duplicate,
            },
        ))
    }
}

fn method_not_allowed(allow: &str) -> Resp {
    let mut resp = respond::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
        None,
    );
    if let Ok(v) = HeaderValue::from_str(allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}
