//! The cluster roles, one process each: `pushd auth|collect|dispatch|push`.
//!
//! Every role serves `/metrics`, `/healthz` and `/readyz` on `--admin-listen` and its gRPC
//! service on `--grpc-listen`; push and collect also serve their public surface on `--listen`
//! (client WebSockets, the HTTP API; `/healthz` and `/readyz` there too, for load balancers).
//! Once bound, a role prints `pushd listening on http://ADDR` (if it has `--listen`),
//! `pushd grpc on ADDR` and `pushd admin on http://ADDR` on stdout, in that order, and drains
//! on SIGTERM within `--grace-period`.
//!
//! Internal gRPC (`Dispatch`, `Node`, `Auth`) always requires the internal token
//! (`--internal-token-file` / `PUSHD_INTERNAL_TOKEN`), and mutual TLS with `--tls-*`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use pushcluster_config::{ApiKeyArgs, HttpArgs, InternalArgs};
use pushcluster_server::grpc::{InternalClient, Tls, TlsFiles};
use pushcluster_server::http::HttpLimits;
use pushcluster_server::ops::Ops;
use pushcluster_server::{Secrets, Shutdown};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub mod auth;
pub mod collect;
pub mod dispatch;
pub mod push;

/// How often secret and certificate files are checked for changes.
pub const FILE_POLL: Duration = Duration::from_secs(2);

/// Bound listeners of a role.
pub struct Bound {
    /// The public surface (push: clients; collect: the API); none for dispatch and auth.
    pub http: Option<TcpListener>,
    pub grpc: TcpListener,
    pub grpc_addr: SocketAddr,
    pub admin: TcpListener,
}

async fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))
}

/// Binds every listener, then announces them on stdout (one machine-readable line each).
pub async fn bind(
    http: Option<SocketAddr>,
    grpc: SocketAddr,
    admin: SocketAddr,
) -> anyhow::Result<Bound> {
    let http = match http {
        Some(a) => Some(listen(a).await?),
        None => None,
    };
    let grpc = listen(grpc).await?;
    let admin = listen(admin).await?;
    let grpc_addr = grpc.local_addr()?;
    if let Some(http) = &http {
        println!("pushd listening on http://{}", http.local_addr()?);
    }
    println!("pushd grpc on {grpc_addr}");
    println!("pushd admin on http://{}", admin.local_addr()?);
    Ok(Bound {
        http,
        grpc,
        grpc_addr,
        admin,
    })
}

/// The bounds of the public surface, from the flags.
pub fn http_limits(args: &HttpArgs) -> anyhow::Result<HttpLimits> {
    args.validate()?;
    Ok(HttpLimits {
        request_timeout: args.http_request_timeout,
        header_timeout: args.http_header_timeout,
        max_in_flight: args.http_max_in_flight,
        ..HttpLimits::default()
    })
}

/// The API keys (HTTP API and gRPC `Submit`) from the flags.
pub fn api_keys_list(
    args: &ApiKeyArgs,
) -> Result<Arc<Secrets>, pushcluster_server::secret::SecretError> {
    Secrets::new(
        "API key",
        "give --api-key (PUSHD_API_KEY) or --api-key-file",
        args.api_key.iter().cloned(),
        args.api_key_file.clone(),
    )
}

/// The API keys, re-read from `--api-key-file` on change (until the handle is aborted).
pub fn api_keys(args: &ApiKeyArgs) -> anyhow::Result<(Arc<Secrets>, Option<JoinHandle<()>>)> {
    let keys = api_keys_list(args)?;
    let watcher = keys.watch(FILE_POLL);
    Ok((keys, watcher))
}

/// How a role authenticates internal gRPC: the token it requires and sends, TLS if on.
pub struct Internal {
    pub token: Arc<Secrets>,
    pub tls: Option<Arc<Tls>>,
    pub client: InternalClient,
    watchers: Vec<JoinHandle<()>>,
}

impl Internal {
    /// Reads and checks the token and certificates; starts watching their files.
    pub fn from_args(args: &InternalArgs) -> anyhow::Result<Internal> {
        let token = Secrets::new(
            "internal token",
            "give --internal-token-file (PUSHD_INTERNAL_TOKEN_FILE) or PUSHD_INTERNAL_TOKEN; every role of a cluster needs the same one",
            args.internal_token.iter().cloned(),
            args.internal_token_file.clone(),
        )?;
        let mut watchers: Vec<JoinHandle<()>> = token.watch(FILE_POLL).into_iter().collect();
        let tls = match args.tls_files() {
            Some((cert, key, ca)) => {
                let tls = Tls::load(TlsFiles { cert, key, ca })?;
                watchers.push(tls.watch(FILE_POLL));
                Some(tls)
            }
            None => None,
        };
        let client = InternalClient::new(token.clone(), tls.clone(), args.tls_server_name.clone());
        tracing::info!(tls = tls.is_some(), "internal gRPC authenticated by token");
        Ok(Internal {
            token,
            tls,
            client,
            watchers,
        })
    }
}

impl Drop for Internal {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
    }
}

/// A role's HTTP side and its shutdown settings.
pub struct Serving {
    pub ops: Arc<Ops>,
    /// The public surface and its routes.
    pub http: Option<(TcpListener, Router)>,
    pub limits: HttpLimits,
    pub admin: TcpListener,
    pub shutdown: Shutdown,
    pub grace: Duration,
}

/// Runs `grpc` (a tonic server future that ends on shutdown), the public surface and the admin
/// surface until `stop`; then marks the role unready, runs `drain`, and waits for them within
/// the grace period.
pub async fn run_until(
    serving: Serving,
    grpc: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    stop: impl Future<Output = ()>,
    drain: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Serving {
        ops,
        http,
        limits,
        admin,
        shutdown,
        grace,
    } = serving;
    let server = http.map(|(listener, routes)| {
        tokio::spawn(pushcluster_server::http::serve(
            listener,
            routes.merge(ops.health_routes()),
            limits,
            shutdown.clone(),
        ))
    });
    let admin = tokio::spawn(pushcluster_server::ops::serve_admin(
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
    Ok(())
}
