//! `POST /v1/devices` (register a user's mobile device), `GET /v1/devices?user=U` (list them)
//! and `DELETE /v1/devices/{token}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use http::StatusCode;
use pushcluster_proto::api::devices::{
    DeviceList, MAX_LISTED_DEVICES, parse_device, parse_device_query, validate_token_path,
};
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

/// A user's devices, live and dead, by token; at most [`MAX_LISTED_DEVICES`].
pub(crate) async fn list_devices(
    State(collect): State<Arc<Collect>>,
    RawQuery(query): RawQuery,
) -> Resp {
    let user = match parse_device_query(query.as_deref()) {
        Ok(u) => u,
        Err(invalid) => return invalid_response(invalid),
    };
    match collect.store.devices(&user).await {
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
        Err(e) => collect.store_unavailable(e),
    }
}

pub(crate) async fn delete_device(
    State(collect): State<Arc<Collect>>,
    Path(token): Path<String>,
) -> Resp {
    let candidates = match validate_token_path(&token) {
        Ok(t) => t,
        Err(m) => return respond::error(StatusCode::BAD_REQUEST, m, Some("token")),
    };
    for token in candidates {
        match collect.store.delete_device(&token).await {
            Ok(true) => return respond::empty(StatusCode::NO_CONTENT),
            Ok(false) => {}
            Err(e) => return collect.store_unavailable(e),
        }
    }
    respond::error(
        StatusCode::NOT_FOUND,
        "no device with this token",
        Some("token"),
    )
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
