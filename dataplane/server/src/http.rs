//! HTTP/1.1 on axum: the one way a role serves HTTP.
//!
//! A role builds a typed [`Router`] per surface (client, API, admin) and hands it to
//! [`serve`], which wraps it in [`edge`]: a JSON 404 for unknown paths, JSON bodies for every
//! error ([`errors`]), a default request body limit (routes that read bodies set their own with
//! [`axum::extract::DefaultBodyLimit`]), a request timeout, and a concurrency limit that sheds
//! load with `503` + `Retry-After`. The accept loop adds a header-read timeout and the peer
//! address ([`Peer`]) to every request.
//!
//! WebSockets: a handler answers `101` and takes the connection with
//! [`hyper::upgrade::on`]; the upgraded socket lives in its own task, outside the timeout and
//! the concurrency limit, which only ever see the handshake.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_service::Service;

use crate::Shutdown;

pub mod auth;
pub mod errors;

/// The address a request came from (a request extension, set by [`serve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Bounds of one HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body a route reads unless it sets its own limit.
    pub max_body_bytes: usize,
    /// A request whose response is not ready by then gets `408` (WebSockets: the handshake).
    pub request_timeout: Duration,
    /// A connection that has not sent a whole request head by then is closed.
    pub header_timeout: Duration,
    /// Requests handled at once; more are refused at once with `503` + `Retry-After`.
    pub max_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
        }
    }
}

impl HttpLimits {
    /// The admin surface: tiny requests, a few at a time (probes and scrapes).
    pub fn admin() -> HttpLimits {
        HttpLimits {
            max_body_bytes: 1024,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            max_in_flight: 32,
        }
    }
}

/// `routes` with everything a served surface needs (see the module docs). [`serve`] applies
/// it; tests may call it to drive a router without a socket.
pub fn edge(routes: Router, limits: &HttpLimits) -> Router {
    // The surface as one service inside an outer router, so the layers see its complete
    // responses (e.g. a `405` with the `Allow` header its method router adds).
    Router::new()
        .fallback_service(routes.fallback(errors::not_found))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(errors::overloaded))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    limits.max_in_flight.max(1),
                )),
        )
        .layer(axum::middleware::map_response(errors::json_errors))
}

/// Serves `routes` (through [`edge`]) on `listener` until `shutdown`; then stops accepting and
/// lets in-flight requests finish (upgraded WebSockets are owned by their own tasks and
/// drained by their service).
pub async fn serve(listener: TcpListener, routes: Router, limits: HttpLimits, shutdown: Shutdown) {
    let app = edge(routes, &limits);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            c = crate::accept::next(&listener, "http") => c,
            _ = shutdown.wait() => break,
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        let header_timeout = limits.header_timeout;
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                let mut app = app.clone();
                async move {
                    let resp: Result<_, Infallible> = app.call(req).await;
                    resp
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.wait() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
        // Reap finished connection tasks so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
