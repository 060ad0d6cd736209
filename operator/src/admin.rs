//! The admin HTTP server: `/healthz`, `/readyz` and `/metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// Readiness and the metrics registry.
pub struct Admin {
    ready: AtomicBool,
    registry: Registry,
}

impl Admin {
    pub fn new(registry: Registry) -> Arc<Admin> {
        Arc::new(Admin {
            ready: AtomicBool::new(false),
            registry,
        })
    }

    /// `/readyz` answers 200 from now on (the operator is connected; a standby replica is ready
    /// too, so a rollout of the operator is not blocked by leader election).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    fn respond(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, body, ctype) = match path {
            "/healthz" => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
            "/readyz" if self.ready.load(Ordering::SeqCst) => {
                (StatusCode::OK, "ready\n".to_owned(), "text/plain")
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready\n".to_owned(),
                "text/plain",
            ),
            "/metrics" => (
                StatusCode::OK,
                pushcluster_telemetry::encode(&self.registry),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "not found\n".to_owned(),
                "text/plain",
            ),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ctype),
        );
        resp
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
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = admin.respond(req.uri().path());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}
