//! HTTP plumbing shared by the roles that serve HTTP.
//!
//! - [`shutdown`]: the one shutdown signal (SIGTERM/SIGINT) passed down to every task.
//! - [`respond`]: JSON responses and bounded body reading — every error is a JSON body.
//! - [`serve`]: the accept loop (HTTP/1.1 with upgrades, for WebSockets) with graceful stop.
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`.
#![forbid(unsafe_code)]

pub mod ops;
pub mod respond;
pub mod serve;
pub mod shutdown;

pub use respond::{Body, Resp};
pub use serve::{Handler, serve};
pub use shutdown::Shutdown;
