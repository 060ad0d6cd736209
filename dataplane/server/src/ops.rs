//! Operational endpoints: liveness, readiness, metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;
use prometheus_client::registry::Registry;

use crate::Resp;
use crate::respond::text;

/// Readiness and the metrics registry, shared by a role's handler.
pub struct Ops {
    ready: AtomicBool,
    registry: Registry,
}

impl Ops {
    pub fn new(registry: Registry) -> Arc<Ops> {
        Arc::new(Ops {
            ready: AtomicBool::new(false),
            registry,
        })
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Answers `/healthz`, `/readyz` and `/metrics`; `None` for any other path.
    pub fn handle(&self, path: &str) -> Option<Resp> {
        match path {
            "/healthz" => Some(text(StatusCode::OK, "ok\n", "text/plain")),
            "/readyz" if self.is_ready() => Some(text(StatusCode::OK, "ready\n", "text/plain")),
            "/readyz" => Some(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready\n",
                "text/plain",
            )),
            "/metrics" => Some(text(
                StatusCode::OK,
                pushcluster_telemetry::encode(&self.registry),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )),
            _ => None,
        }
    }
}
