//! A role's lifecycle, the same for every role: bind its listeners (and announce them), serve
//! its surfaces and its gRPC server until the stop signal, then drain within the grace period.
//!
//! Once bound, a role prints `pushd listening on http://ADDR` (if it has a public surface),
//! `pushd grpc on ADDR` and `pushd admin on http://ADDR` on stdout, in that order: one
//! machine-readable line each, for scripts and tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::Shutdown;
use crate::http::HttpLimits;
use crate::ops::Ops;

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Bound listeners of a role.
pub struct Bound {
    /// The public surface (push: clients; collect: the API); none for dispatch and auth.
    pub http: Option<TcpListener>,
    pub grpc: TcpListener,
    pub grpc_addr: SocketAddr,
    pub admin: TcpListener,
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

fn local(l: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, BindError> {
    l.local_addr().map_err(|source| BindError { addr, source })
}

/// Binds every listener, then announces them on stdout.
pub async fn bind(
    http: Option<SocketAddr>,
    grpc: SocketAddr,
    admin: SocketAddr,
) -> Result<Bound, BindError> {
    let http_listener = match http {
        Some(a) => Some((listen(a).await?, a)),
        None => None,
    };
    let grpc_listener = listen(grpc).await?;
    let admin_listener = listen(admin).await?;
    let grpc_addr = local(&grpc_listener, grpc)?;
    if let Some((l, a)) = &http_listener {
        println!("pushd listening on http://{}", local(l, *a)?);
    }
    println!("pushd grpc on {grpc_addr}");
    println!("pushd admin on http://{}", local(&admin_listener, admin)?);
    Ok(Bound {
        http: http_listener.map(|(l, _)| l),
        grpc: grpc_listener,
        grpc_addr,
        admin: admin_listener,
    })
}

/// A role's HTTP side and its shutdown settings.
pub struct Serving {
    pub ops: Arc<Ops>,
    /// The public surface and its routes (the health routes are added).
    pub http: Option<(TcpListener, Router)>,
    pub limits: HttpLimits,
    pub admin: TcpListener,
    pub shutdown: Shutdown,
    pub grace: Duration,
}

/// Runs `grpc` (a tonic server future that ends on shutdown), the public surface and the admin
/// surface until `stop`; then marks the role unready, runs `drain`, triggers the shutdown and
/// waits for everything to finish, all within the grace period.
pub async fn run_until(
    serving: Serving,
    grpc: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    stop: impl Future<Output = ()>,
    drain: impl Future<Output = ()>,
) {
    let Serving {
        ops,
        http,
        limits,
        admin,
        shutdown,
        grace,
    } = serving;
    let server = http.map(|(listener, routes)| {
        tokio::spawn(crate::http::serve(
            listener,
            routes.merge(ops.health_routes()),
            limits,
            shutdown.clone(),
        ))
    });
    let admin = tokio::spawn(crate::ops::serve_admin(
        admin,
        ops.clone(),
        shutdown.clone(),
    ));
    let grpc = tokio::spawn(grpc);
    ops.set_ready(true);
    stop.await;
    tracing::info!(?grace, "draining");
    ops.set_ready(false);
    let finished = tokio::time::timeout(grace, async {
        drain.await;
        shutdown.trigger();
        if let Some(server) = server {
            let _ = server.await;
        }
        if let Ok(Err(e)) = grpc.await {
            tracing::warn!(error = %e, "gRPC server ended with an error");
        }
        let _ = admin.await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!("grace period over; exiting");
    }
}
