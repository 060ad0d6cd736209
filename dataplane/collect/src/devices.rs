//! `POST /v1/devices` (register a user's mobile device) and `DELETE /v1/devices/{token}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use http::StatusCode;
use pushcluster_proto::api::devices::{parse_device, validate_token_path};
use pushcluster_server::{Resp, respond};
use pushcluster_store::DeviceSaved;

use crate::{Collect, invalid_response};

pub(crate) async fn put_device(State(collect): State<Arc<Collect>>, body: Bytes) -> Resp {
    let device = match parse_device(&body) {
        Ok(d) => d,
        Err(invalid) => return invalid_response(invalid),
    };
    match collect.store.put_device(device).await {
        Ok(DeviceSaved::Created(d)) => {
            tracing::info!(user = %d.user, platform = d.platform.as_str(), "device registered");
            respond::json(StatusCode::CREATED, &d)
        }
        Ok(DeviceSaved::Updated(d)) => respond::json(StatusCode::OK, &d),
        Err(e) => collect.store_unavailable(e),
    }
}

pub(crate) async fn delete_device(
    State(collect): State<Arc<Collect>>,
    Path(token): Path<String>,
) -> Resp {
    let token = match validate_token_path(&token) {
        Ok(t) => t,
        Err(m) => return respond::error(StatusCode::BAD_REQUEST, m, Some("token")),
    };
    match collect.store.delete_device(&token).await {
        Ok(true) => respond::empty(StatusCode::NO_CONTENT),
        Ok(false) => respond::error(
            StatusCode::NOT_FOUND,
            "no device with this token",
            Some("token"),
        ),
        Err(e) => collect.store_unavailable(e),
    }
}

impl Collect {
    fn store_unavailable(&self, e: pushcluster_store::Error) -> Resp {
        self.metrics.store_error(e.metric_label());
        tracing::error!(error = %e, "device store unavailable");
        respond::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "message store unavailable; nothing was changed, retry later",
            1,
        )
    }
}
