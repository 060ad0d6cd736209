//! Operational endpoints: liveness, readiness, metrics.
//!
//! [`Ops::admin_routes`] is the admin surface (`/metrics`, `/healthz`, `/readyz`), served on its
//! own listener (`--admin-listen`) so metrics never share a port with clients.
//! [`Ops::health_routes`] (`/healthz`, `/readyz` only) may be merged into a public surface for
//! load balancers that probe the traffic port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::StatusCode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::Shutdown;
use crate::http::HttpLimits;
use crate::respond::{self, Resp};

/// Readiness and the metrics registry of a process.
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

    /// `/healthz` and `/readyz`.
    pub fn health_routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    /// The admin surface: `/metrics`, `/healthz`, `/readyz`.
    pub fn admin_routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .with_state(self.clone())
            .merge(self.health_routes())
    }
}

async fn healthz() -> Resp {
    respond::text(StatusCode::OK, "ok\n", "text/plain")
}

async fn readyz(State(ops): State<Arc<Ops>>) -> Resp {
    if ops.is_ready() {
        respond::text(StatusCode::OK, "ready\n", "text/plain")
    } else {
        respond::error(StatusCode::SERVICE_UNAVAILABLE, "not ready", None)
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Resp {
    respond::text(
        StatusCode::OK,
        pushcluster_telemetry::encode(&ops.registry),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
}

/// Serves the admin surface on `listener` until `shutdown`.
pub async fn serve_admin(listener: TcpListener, ops: Arc<Ops>, shutdown: Shutdown) {
    crate::http::serve(listener, ops.admin_routes(), HttpLimits::admin(), shutdown).await
}
