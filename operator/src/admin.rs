//! The admin HTTP server: `/metrics`, `/healthz` and `/readyz`, on the same edge as every pushd
//! listener (axum, JSON errors, limits; see `pushcluster_server::http`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use pushcluster_server::Shutdown;
use pushcluster_server::ops::Ops;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Readiness and the metrics registry.
pub struct Admin {
    ops: Arc<Ops>,
}

impl Admin {
    pub fn new(registry: Registry) -> Arc<Admin> {
        Arc::new(Admin {
            ops: Ops::new(registry),
        })
    }

    /// `/readyz` answers 200 from now on (the operator is connected; a standby replica is ready
    /// too, so a rollout of the operator is not blocked by leader election).
    pub fn set_ready(&self) {
        self.ops.set_ready(true);
    }
}

/// Binds `addr` (failing early, before anything else starts).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Admin { addr, source })
}

/// Serves until `stop` completes.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, stop: impl Future<Output = ()>) {
    let shutdown = Shutdown::default();
    let server =
        pushcluster_server::ops::serve_admin(listener, admin.ops.clone(), shutdown.clone());
    tokio::pin!(server);
    tokio::select! {
        _ = &mut server => {}
        _ = stop => {
            shutdown.trigger();
            server.await;
        }
    }
}
