//! Collect: the API business systems send messages to.
//!
//! [`Collect::router`] is the API surface, every route behind the API keys (`Authorization:
//! Bearer <key>`, checked before any body is read):
//! - `POST /v1/messages` validates, stores durably (only then `202 {"id"}`), and hands the
//!   stored message to dispatch;
//! - `GET /v1/messages/{id}` reports each recipient's state (and each mobile notification's);
//! - `POST /v1/devices` and `DELETE /v1/devices/{token}` ([`devices`]) keep users' mobile
//!   devices.
//!
//! [`SubmitService`] is the same submit over gRPC (its server checks the same keys).
//! A new route is one `.route(...)` line in [`Collect::router`].
#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{delete, get, post};
use http::StatusCode;
use pushcluster_dispatch::service::Handoff;
use pushcluster_proto::api::devices::MAX_DEVICE_BODY_BYTES;
use pushcluster_proto::api::{Accepted, Invalid, Limits, NewMessage, parse_submit};
use pushcluster_server::http::auth::require_api_key;
use pushcluster_server::{Resp, Secrets, respond};
use pushcluster_store::{MessageStore, Submitted};
use pushcluster_telemetry::Metrics;

mod devices;

/// The collect API.
pub struct Collect {
    pub store: Arc<dyn MessageStore>,
    pub handoff: Arc<dyn Handoff>,
    /// The API keys callers may present (HTTP and gRPC).
    pub api_keys: Arc<Secrets>,
    pub limits: Limits,
    pub metrics: Metrics,
}

impl Collect {
    /// The API surface (see the crate docs).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/v1/messages",
                post(submit).layer(DefaultBodyLimit::max(self.limits.max_body_bytes())),
            )
            .route("/v1/messages/{id}", get(status))
            .route(
                "/v1/devices",
                post(devices::put_device).layer(DefaultBodyLimit::max(MAX_DEVICE_BODY_BYTES)),
            )
            .route("/v1/devices/{token}", delete(devices::delete_device))
            .route_layer(axum::middleware::from_fn_with_state(
                self.api_keys.clone(),
                require_api_key,
            ))
            .with_state(self.clone())
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
}

async fn submit(State(collect): State<Arc<Collect>>, body: Bytes) -> Resp {
    let msg = match parse_submit(&body, &collect.limits) {
        Ok(m) => m,
        Err(invalid) => return invalid_response(invalid),
    };
    match collect.accept(msg).await {
        Ok(accepted) => respond::json(StatusCode::ACCEPTED, &accepted),
        Err(()) => respond::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "message store unavailable; nothing was accepted, retry later",
            1,
        ),
    }
}

async fn status(State(collect): State<Arc<Collect>>, Path(id): Path<String>) -> Resp {
    match collect.store.status(&id).await {
        Ok(Some(status)) => respond::json(StatusCode::OK, &status),
        Ok(None) => respond::error(
            StatusCode::NOT_FOUND,
            format!("no message with id {id}"),
            Some("id"),
        ),
        Err(e) => {
            collect.metrics.store_error(e.metric_label());
            respond::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None)
        }
    }
}

/// A body that failed validation, as its JSON error.
fn invalid_response(invalid: Invalid) -> Resp {
    let status = StatusCode::from_u16(invalid.status).unwrap_or(StatusCode::BAD_REQUEST);
    respond::error(status, invalid.message, invalid.field)
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
