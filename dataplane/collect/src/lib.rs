//! Collect: the API business systems send messages to.
//!
//! [`Collect::router`] is the API surface, built from the route table [`routes::ROUTES`];
//! every route but the spec is behind the API keys (`Authorization: Bearer <key>`, checked
//! before any body is read):
//! - `POST /v1/messages` validates, stores durably — one write of the messages, their
//!   recipients' seqs and the outbox mark — and only then answers `202 {"id"}`; the accepted
//!   batch is handed to dispatch without waiting. A JSON array body is a batch: up to
//!   `--max-batch` messages in one write, `200 {"results": [...]}` with one result per message;
//! - `GET /v1/messages/{id}` reports each recipient's state (and each mobile notification's);
//! - `POST /v1/devices`, `GET /v1/devices?user=U` and `DELETE /v1/devices/{token}`
//!   ([`devices`]) keep users' mobile devices;
//! - `GET /openapi.yaml` (`docs/openapi.yaml`) describes them.
//!
//! [`SubmitService`] is the same submit over gRPC (its server checks the same keys).
//! A new route is one line in [`routes::ROUTES`] and one arm in [`Collect::router`].
#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{MethodFilter, on};
use http::StatusCode;
use pushcluster_dispatch::Handoff;
use pushcluster_proto::api::devices::MAX_DEVICE_BODY_BYTES;
use pushcluster_proto::api::{
    Accepted, BatchAccepted, BatchResult, Invalid, Limits, NewMessage, is_batch, parse_batch,
    parse_submit,
};
use pushcluster_server::http::auth::require_api_key;
use pushcluster_server::{Resp, Secrets, respond};
use pushcluster_store::{MessageStore, Submitted};
use pushcluster_telemetry::Metrics;

mod devices;
pub mod routes;

use routes::Op;

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
    /// The API surface (see the crate docs): one route per entry of [`routes::ROUTES`].
    pub fn router(self: &Arc<Self>) -> Router {
        let mut keyed = Router::new();
        let mut open = Router::new();
        for r in routes::ROUTES {
            let method = MethodFilter::try_from(
                http::Method::from_bytes(r.method.as_bytes()).expect("a method"),
            )
            .expect("a method axum routes");
            let handler = match r.op {
                Op::Submit => {
                    on(method, submit).layer(DefaultBodyLimit::max(self.limits.max_request_bytes()))
                }
                Op::Status => on(method, status),
                Op::RegisterDevice => on(method, devices::put_device)
                    .layer(DefaultBodyLimit::max(MAX_DEVICE_BODY_BYTES)),
                Op::ListDevices => on(method, devices::list_devices),
                Op::DeleteDevice => on(method, devices::delete_device),
                Op::OpenApi => on(method, openapi),
            };
            if r.needs_api_key() {
                keyed = keyed.route(r.path, handler);
            } else {
                open = open.route(r.path, handler);
            }
        }
        keyed
            .route_layer(axum::middleware::from_fn_with_state(
                self.api_keys.clone(),
                require_api_key,
            ))
            .merge(open)
            .with_state(self.clone())
    }

    /// A batch is validated whole: one invalid message refuses the batch (its status, the
    /// message's index in the error and `field`), so nothing is half-accepted for a mistake
    /// the caller must fix anyway. Store outcomes are per message.
    async fn submit_batch(&self, body: &[u8]) -> Resp {
        let parsed = match parse_batch(body, &self.limits) {
            Ok(p) => p,
            Err(invalid) => return invalid_response(invalid),
        };
        let mut valid = Vec::with_capacity(parsed.len());
        for (i, p) in parsed.into_iter().enumerate() {
            match p {
                Ok(m) => valid.push(m),
                Err(invalid) => {
                    let status =
                        StatusCode::from_u16(invalid.status).unwrap_or(StatusCode::BAD_REQUEST);
                    let field = format!(
                        "[{i}]{}",
                        invalid.field.map(|f| format!(".{f}")).unwrap_or_default()
                    );
                    return respond::error(
                        status,
                        format!(
                            "message [{i}] of the batch: {}; nothing was accepted",
                            invalid.message
                        ),
                        Some(&field),
                    );
                }
            }
        }
        let results = self
            .accept(valid)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(a) => BatchResult {
                    status: 202,
                    id: Some(a.id),
                    duplicate: a.duplicate,
                    error: None,
                    field: None,
                },
                Err(reason) => BatchResult {
                    status: 503,
                    id: None,
                    duplicate: false,
                    error: Some(reason),
                    field: None,
                },
            })
            .collect();
        respond::json(StatusCode::OK, &BatchAccepted { results })
    }

    /// Stores validated messages in one durable write, then hands the batch to dispatch
    /// (without waiting). One result per message: `Err` names why it was not accepted.
    pub async fn accept(&self, msgs: Vec<NewMessage>) -> Vec<Result<Accepted, String>> {
        if msgs.is_empty() {
            return Vec::new();
        }
        let n = msgs.len();
        let start = std::time::Instant::now();
        let submitted = self.store.submit(msgs).await;
        self.metrics.observe_stage("store", start);
        let accepted = match submitted {
            Ok(a) => a,
            Err(e) => {
                self.metrics.store_error(e.metric_label());
                tracing::error!(error = %e, "failed to store messages");
                let reason = "message store unavailable; nothing was accepted, retry later";
                return vec![Err(reason.to_owned()); n];
            }
        };
        let new = accepted
            .results
            .iter()
            .filter(|r| matches!(r, Ok(Submitted::New(_))))
            .count();
        self.metrics.messages_accepted.inc_by(new as u64);
        if let Some(batch) = accepted.batch {
            self.handoff.accepted(batch);
        }
        accepted
            .results
            .into_iter()
            .map(|r| match r {
                Ok(s) => Ok(Accepted {
                    id: s.id().to_owned(),
                    duplicate: matches!(s, Submitted::Duplicate { .. }),
                }),
                Err(e) => {
                    self.metrics.store_error(e.metric_label());
                    tracing::warn!(error = %e, "a message was not accepted");
                    Err(format!(
                        "message store unavailable; this message was not accepted, retry later ({e})"
                    ))
                }
            })
            .collect()
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
}

async fn submit(State(collect): State<Arc<Collect>>, body: Bytes) -> Resp {
    if is_batch(&body) {
        return collect.submit_batch(&body).await;
    }
    let limit = collect.limits.max_body_bytes();
    if body.len() > limit {
        return respond::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
            None,
        );
    }
    let msg = match parse_submit(&body, &collect.limits) {
        Ok(m) => m,
        Err(invalid) => return invalid_response(invalid),
    };
    match collect.accept(vec![msg]).await.remove(0) {
        Ok(accepted) => respond::json(StatusCode::ACCEPTED, &accepted),
        Err(reason) => respond::retry_later(StatusCode::SERVICE_UNAVAILABLE, reason, 1),
    }
}

async fn openapi() -> Resp {
    respond::text(
        StatusCode::OK,
        routes::OPENAPI_YAML,
        "application/yaml; charset=utf-8",
    )
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
        let accepted = self
            .collect
            .accept(vec![msg])
            .await
            .remove(0)
            .map_err(tonic::Status::unavailable)?;
        Ok(tonic::Response::new(
            pushcluster_proto::grpc::SubmitResponse {
                id: accepted.id,
                duplicate: accepted.duplicate,
            },
        ))
    }

    /// Many messages in one stream, stored in as few writes as the store combines them into;
    /// one result per message, in order. More than `--max-batch` messages: refused whole.
    async fn submit_many(
        &self,
        req: tonic::Request<tonic::Streaming<pushcluster_proto::grpc::SubmitRequest>>,
    ) -> Result<tonic::Response<pushcluster_proto::grpc::SubmitManyResponse>, tonic::Status> {
        use pushcluster_proto::grpc::{SubmitError, SubmitResponse, SubmitResult, submit_result};
        let mut stream = req.into_inner();
        let mut checked = Vec::new();
        while let Some(r) = stream.message().await? {
            if checked.len() >= self.collect.limits.max_batch {
                return Err(tonic::Status::resource_exhausted(format!(
                    "at most {} messages per SubmitMany",
                    self.collect.limits.max_batch
                )));
            }
            checked.push(self.collect.validate_submit(&r));
        }
        let valid: Vec<NewMessage> = checked
            .iter()
            .filter_map(|c| c.as_ref().ok().cloned())
            .collect();
        let mut accepted = self.collect.accept(valid).await.into_iter();
        let error = |status: u16, message: String, field: Option<&str>| SubmitResult {
            result: Some(submit_result::Result::Error(SubmitError {
                status: u32::from(status),
                message,
                field: field.unwrap_or_default().to_owned(),
            })),
        };
        let results = checked
            .into_iter()
            .map(|c| match c {
                Err(invalid) => error(invalid.status, invalid.message, invalid.field),
                Ok(_) => match accepted.next() {
                    Some(Ok(a)) => SubmitResult {
                        result: Some(submit_result::Result::Accepted(SubmitResponse {
                            id: a.id,
                            duplicate: a.duplicate,
                        })),
                    },
                    other => error(503, other.and_then(Result::err).unwrap_or_default(), None),
                },
            })
            .collect();
        Ok(tonic::Response::new(
            pushcluster_proto::grpc::SubmitManyResponse { results },
        ))
    }
}
