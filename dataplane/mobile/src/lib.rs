//! Mobile push: a message's `notification` to its recipients' registered devices, through
//! each device's vendor — APNs (the only one that may go through a proxy), FCM, Huawei Push
//! Kit, Xiaomi and vivo (always direct) — never twice per (message, device). See
//! `docs/mobile.md`.
//!
//! ```text
//!  dispatch ──▶ MobilePush (push.rs): claim the (message, device) record, send, record
//!                 │                      sweep.rs: resend what was provably not sent
//!                 ▼
//!               Router (router.rs): device.platform ──▶ one MobileSender per vendor
//!                 ├─ apns.rs   ─▶ pushcluster-apns (HTTP/2, optional CONNECT proxy)
//!                 └─ fcm / hms / xiaomi / vivo ─▶ http.rs: direct HTTPS (h2 or HTTP/1.1)
//!                      retry.rs: one retry driver; token.rs: cached OAuth/auth tokens
//! ```
//!
//! - [`sender`]: the [`MobileSender`] seam, [`MobileRequest`], [`MobileResult`], [`wants_mobile`].
//! - [`push`]: [`MobilePush`], the fan-out with its claim-before-send records; `sweep`: retries.
//! - [`router`]: [`Router`], a sender per platform.
//! - [`args`]: the `--apns-…`, `--fcm-…`, `--hms-…`, `--xiaomi-…`, `--vivo-…` flags and
//!   [`mobile_push`], which builds everything from them.
//! - [`apns`]: the APNs sender behind the seam.
//! - [`fcm`], [`hms`], [`xiaomi`], [`vivo`]: the direct vendors, each with its payload
//!   mapping and its result codes classified once ([`retry::Verdict`]).
//! - [`http`], [`retry`], [`token`], [`payload`], [`secret`], [`metrics`]: what they share.
#![forbid(unsafe_code)]

pub mod apns;
pub mod args;
pub mod fcm;
pub mod hms;
pub mod http;
pub mod metrics;
pub mod payload;
pub mod push;
pub mod retry;
pub mod router;
pub mod secret;
pub mod sender;
mod sweep;
#[cfg(test)]
mod testing;
pub mod token;
pub mod vivo;
pub mod xiaomi;

pub use args::{MobileArgs, MobileConfig, SetupError, mobile_push, spawn_retries};
pub use metrics::MobileMetrics;
pub use push::MobilePush;
pub use router::Router;
pub use sender::{MobileRequest, MobileResult, MobileSender, wants_mobile};
pub use sweep::RETRY_AFTER;
