//! The cluster roles, one process each: `pushd auth|collect|dispatch|push`.
//!
//! Every role serves `/healthz`, `/readyz` and `/metrics` on `--listen` and its gRPC service on
//! `--grpc-listen`, prints `pushd listening on http://ADDR` and `pushd grpc on ADDR` on stdout
//! once bound, and drains on SIGTERM within `--grace-period`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use http::StatusCode;
use pushcluster_server::ops::Ops;
use pushcluster_server::{Handler, Shutdown, respond};
use tokio::net::TcpListener;

pub mod auth;
pub mod collect;
pub mod dispatch;
pub mod push;

/// Bound listeners of a role.
pub struct Bound {
    pub http: TcpListener,
    pub grpc: TcpListener,
    pub grpc_addr: SocketAddr,
}

/// Binds both listeners and announces them on stdout.
pub async fn bind(http: SocketAddr, grpc: SocketAddr) -> anyhow::Result<Bound> {
    let http = TcpListener::bind(http)
        .await
        .with_context(|| format!("failed to listen on {http}"))?;
    let grpc = TcpListener::bind(grpc)
        .await
        .with_context(|| format!("failed to listen on {grpc}"))?;
    let grpc_addr = grpc.local_addr()?;
    println!("pushd listening on http://{}", http.local_addr()?);
    println!("pushd grpc on {grpc_addr}");
    Ok(Bound {
        http,
        grpc,
        grpc_addr,
    })
}

/// Serves `routes` on `listener` until `shutdown`. `keepalive`: HTTP/2 pings from the server
/// (push nodes use them on their long-lived dispatch streams).
pub fn serve_grpc(
    routes: tonic::service::Routes,
    listener: TcpListener,
    shutdown: &Shutdown,
    keepalive: Option<std::time::Duration>,
) -> impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static {
    let s = shutdown.clone();
    tonic::transport::Server::builder()
        .http2_keepalive_interval(keepalive)
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move { s.wait().await },
        )
}

/// A handler with only the operational endpoints.
pub fn ops_handler(ops: Arc<Ops>) -> Handler {
    Arc::new(move |req| {
        let ops = ops.clone();
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            ops.handle(&path).unwrap_or_else(|| {
                respond::error(StatusCode::NOT_FOUND, format!("no route for {path}"), None)
            })
        })
    })
}

/// A role's HTTP side and its shutdown settings.
pub struct Serving {
    pub ops: Arc<Ops>,
    pub http: TcpListener,
    pub handler: Handler,
    pub shutdown: Shutdown,
    pub grace: std::time::Duration,
}

/// Runs `grpc` (a tonic router future that ends on shutdown) and the HTTP server until `stop`;
/// then marks the role unready, runs `drain`, and waits for both within the grace period.
pub async fn run_until(
    serving: Serving,
    grpc: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    stop: impl Future<Output = ()>,
    drain: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Serving {
        ops,
        http,
        handler,
        shutdown,
        grace,
    } = serving;
    let server = tokio::spawn(pushcluster_server::serve(http, handler, shutdown.clone()));
    let grpc = tokio::spawn(grpc);
    ops.set_ready(true);
    stop.await;
    tracing::info!(?grace, "draining");
    ops.set_ready(false);
    let finished = tokio::time::timeout(grace, async {
        drain.await;
        shutdown.trigger();
        let _ = server.await;
        if let Ok(Err(e)) = grpc.await {
            tracing::warn!(error = %e, "gRPC server ended with an error");
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!("grace period over; exiting");
    }
    Ok(())
}
