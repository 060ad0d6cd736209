//! gRPC: every server behind the bearer check ([`auth`]), optional mutual TLS ([`tls`]), and the
//! authenticated channel of internal callers ([`client`]).
//!
//! A role assembles its server with [`GrpcServer`]: the secrets callers must present (the
//! internal token for `Dispatch`, `Node` and `Auth`; the API keys for `Collect`), its services,
//! and TLS. Nothing reaches a service without passing the check.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::{Secrets, Shutdown};

pub mod auth;
pub mod client;
pub mod tls;

pub use auth::{GrpcAuth, GrpcMetrics};
pub use client::{ClientError, InternalChannel, InternalClient};
pub use tls::{Tls, TlsError, TlsFiles};

/// TLS handshakes in progress at once; more connections wait in the accept queue.
const MAX_HANDSHAKES: usize = 256;
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A gRPC server being assembled.
pub struct GrpcServer {
    routes: Routes,
    names: Vec<&'static str>,
    secrets: Arc<Secrets>,
    metrics: GrpcMetrics,
    tls: Option<Arc<Tls>>,
    keepalive: Option<Duration>,
}

impl GrpcServer {
    /// A server whose callers must send one of `secrets` as `authorization: Bearer …`.
    pub fn new(secrets: Arc<Secrets>, metrics: GrpcMetrics) -> GrpcServer {
        GrpcServer {
            routes: Routes::default(),
            names: Vec::new(),
            secrets,
            metrics,
            tls: None,
            keepalive: None,
        }
    }

    /// Adds a service (behind the same check as every other).
    pub fn service<S>(mut self, svc: S) -> GrpcServer
    where
        S: tower_service::Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes = self.routes.add_service(svc);
        self
    }

    /// Requires mutual TLS (clients with a certificate from the configured CA).
    pub fn tls(mut self, tls: Option<Arc<Tls>>) -> GrpcServer {
        self.tls = tls;
        self
    }

    /// HTTP/2 pings from the server (push nodes use them on their long-lived streams).
    pub fn keepalive(mut self, every: Option<Duration>) -> GrpcServer {
        self.keepalive = every;
        self
    }

    /// Serves on `listener` until `shutdown`.
    pub fn serve(
        self,
        listener: TcpListener,
        shutdown: &Shutdown,
    ) -> impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static {
        let auth = GrpcAuth::new(self.secrets, self.metrics.clone(), self.names);
        let incoming = incoming(listener, self.tls, self.metrics, shutdown.clone());
        let s = shutdown.clone();
        tonic::transport::Server::builder()
            .http2_keepalive_interval(self.keepalive)
            .layer(auth)
            .add_routes(self.routes)
            .serve_with_incoming_shutdown(incoming, async move { s.wait().await })
    }
}

/// Accepted connections, after their TLS handshake when TLS is on. Handshakes run beside the
/// accept loop (a slow one delays nobody else); a failed one is counted and dropped.
fn incoming(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    metrics: GrpcMetrics,
    shutdown: Shutdown,
) -> ReceiverStream<std::io::Result<tls::ServerIo>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let (tcp, peer) = tokio::select! {
                c = crate::accept::next(&listener, "grpc") => c,
                _ = shutdown.wait() => return,
                _ = tx.closed() => return,
            };
            let Some(tls) = &tls else {
                if tx.send(Ok(tls::Io::Plain(tcp))).await.is_err() {
                    return;
                }
                continue;
            };
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
            let (tx, metrics) = (tx.clone(), metrics.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(tls::Io::Tls(Box::new(stream)))).await;
                    }
                    Ok(Err(e)) => {
                        metrics.refused("tls", "handshake");
                        tracing::info!(%peer, error = %e, "TLS handshake refused");
                    }
                    Err(_) => {
                        metrics.refused("tls", "handshake");
                        tracing::info!(%peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests;
