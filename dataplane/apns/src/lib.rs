//! The APNs sender of pushcluster: HTTP/2 over rustls to Apple, optionally through an HTTP
//! CONNECT proxy (the only outbound client built with one), with a shared provider token
//! and retries that never duplicate a notification (see `docs/apns.md`).
//!
//! ```no_run
//! # async fn demo(args: pushcluster_apns::ApnsArgs) -> Result<(), Box<dyn std::error::Error>> {
//! use pushcluster_apns::{Alert, ApnsSender, DeviceToken, Notification, alert_payload, apns_id_for};
//! let config = args.config()?.expect("APNs configured");
//! let sender = ApnsSender::new(config)?;
//! let device = DeviceToken::parse(&"ab".repeat(32))?;
//! let payload = alert_payload(&Alert { title: Some("Hi"), body: Some("there"), ..Default::default() })?;
//! let n = Notification::new(device.clone(), apns_id_for("msg-1", &device), payload);
//! let record = sender.deliver(&n).await; // state(), attempts, unregistered_at()
//! # Ok(()) }
//! ```
//!
//! - [`args`]: the `--apns-…` flags ([`ApnsArgs`]), for a role to flatten.
//! - [`config`]: the validated [`ApnsConfig`] (endpoint, proxy, limits).
//! - [`clock`]: wall time for tokens ([`SystemClock`], [`TokioClock`], [`ManualClock`]).
//! - [`token`]: the shared, aligned ES256 provider token.
//! - [`tls`], [`connect`]: rustls with ALPN h2; TCP → CONNECT tunnel → TLS → HTTP/2.
//! - `pool`: long-lived connections, round-robin, reconnect with a growing delay.
//! - [`notification`]: what is sent ([`Notification`]); payloads built with `a2`.
//! - [`response`]: the classification of every result into an [`Outcome`].
//! - [`send`]: [`ApnsSender::send`], one request.
//! - [`retry`]: [`ApnsSender::deliver`], the retry driver, and its record [`Delivery`].
//! - [`metrics`]: the `pushd_apns_*` metrics.
#![forbid(unsafe_code)]

pub mod args;
pub mod clock;
pub mod config;
pub mod connect;
pub mod metrics;
pub mod notification;
mod pool;
pub mod response;
pub mod retry;
pub mod send;
pub mod tls;
pub mod token;

pub use args::ApnsArgs;
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use config::{ApnsConfig, ConfigError, Endpoint, ProxyConfig, ProxyCredentials, SigningKey};
pub use connect::ConnectError;
pub use metrics::ApnsMetrics;
pub use notification::{
    Alert, DeviceToken, Notification, NotificationError, Priority, PushType, alert_payload,
    apns_id_for,
};
pub use response::{Outcome, ProxyFailure, Reason, RetryCause};
pub use retry::{Delivery, DeliveryState, RetryPolicy};
pub use send::{ApnsSender, ApnsSenderBuilder, BuildError};
pub use token::{ProviderToken, ProviderTokens};
