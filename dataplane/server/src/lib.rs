//! The edge: every listener of every role goes through this crate.
//!
//! - [`http`]: HTTP/1.1 on axum. [`http::serve`] takes a surface's typed [`axum::Router`]
//!   (client, API or admin) and adds, in one place, what every surface needs: a JSON 404 for
//!   unknown paths, JSON bodies for every error (axum's own rejections included), request body
//!   limits, header-read and request timeouts, and a concurrency limit that sheds load with
//!   `503` + `Retry-After`. Upgrades (WebSockets) pass through untouched.
//! - [`respond`]: JSON responses, `{"error": "...", "field": "..."}` for errors.
//! - [`ops`]: readiness and the metrics registry; the admin surface (`/metrics`, `/healthz`,
//!   `/readyz`) and the health routes.
//! - [`secret`]: bearer secrets (API keys, the internal token): lists for rotation, re-read
//!   from their files on change, compared in constant time, never printed.
//! - [`grpc`]: every gRPC server behind a bearer-token check (`UNAUTHENTICATED`, counted),
//!   optional mutual TLS with certificates re-read on change, and the authenticated client
//!   channel internal callers use.
//! - [`role`]: a role's lifecycle: bind and announce its listeners, serve until the stop
//!   signal, drain within the grace period.
//! - [`shutdown`]: the one shutdown signal (SIGTERM/SIGINT) passed down to every task.
#![forbid(unsafe_code)]

mod accept;
pub mod grpc;
pub mod http;
pub mod ops;
pub mod respond;
pub mod role;
pub mod secret;
pub mod shutdown;
mod watch;

pub use respond::Resp;
pub use secret::Secrets;
pub use shutdown::Shutdown;
