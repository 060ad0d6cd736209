//! The retry driver: sends a notification until it is accepted, rejected, unknown past its
//! budget, or must wait for later — and returns the record of what happened ([`Delivery`]).
//!
//! - provably not processed (connect/CONNECT/TLS failure, REFUSED_STREAM, GOAWAY above our
//!   stream): again at once, up to [`RetryPolicy::immediate_retries`] times;
//! - 429 / 500 / 503: back off with jitter (or Apple's `Retry-After`), up to
//!   [`RetryPolicy::backoff_retries`] times; 429 TooManyProviderTokenUpdates never makes a
//!   new token;
//! - 403 ExpiredProviderToken: a new token (20-minute floor) and one more try;
//! - 400 / other 403 / 404 / 405 / 410 / 413: never again;
//! - written without a response: again at most [`RetryPolicy::unknown_retries`] times,
//!   always with the same `apns-id` and collapse id;
//! - proxy failure: stop, retry later (the caller keeps the message pending).

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::metrics::ResultLabels;
use crate::notification::{Notification, NotificationError};
use crate::response::{Outcome, Reason, RetryCause};
use crate::send::ApnsSender;

/// How often and how long to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Resends at once of what APNs provably did not process.
    pub immediate_retries: u32,
    /// Resends after 429/500/503.
    pub backoff_retries: u32,
    /// First back-off (doubles per retry, jittered to 50–100 %).
    pub backoff_base: Duration,
    /// Longest back-off, also the cap on Apple's `Retry-After`.
    pub backoff_max: Duration,
    /// Resends of a request written without a response (`--apns-unknown-retries`).
    pub unknown_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            immediate_retries: 2,
            backoff_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            unknown_retries: 0,
        }
    }
}

impl RetryPolicy {
    /// The jittered back-off before retry number `n` (0-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let full = self
            .backoff_base
            .saturating_mul(1u32 << n.min(16))
            .min(self.backoff_max);
        let half = full / 2;
        half + half.mul_f64(jitter())
    }
}

/// A uniform value in [0, 1) from the process's random hasher keys (no RNG dependency).
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Where a delivery ended, as the record shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// APNs took it (200).
    Accepted,
    /// APNs refused it; do not send it again (see the reason; 410: device gone).
    Rejected,
    /// Written without a response, retry budget spent: it may or may not have arrived.
    Unknown,
    /// Not sent for now (proxy failure, back-off budget spent, token floor): retry later.
    RetryLater,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Accepted => "accepted",
            DeliveryState::Rejected => "rejected",
            DeliveryState::Unknown => "unknown",
            DeliveryState::RetryLater => "retry_later",
        }
    }
}

/// The record of one notification's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub apns_id: Uuid,
    /// The collapse id every attempt carried.
    pub collapse_id: String,
    /// The last attempt's outcome.
    pub outcome: Outcome,
    /// HTTP requests made (attempts that reached the connection pool).
    pub attempts: u32,
    /// Attempts whose outcome was unknown (each a possible copy on the device).
    pub unknown_attempts: u32,
}

impl Delivery {
    pub fn state(&self) -> DeliveryState {
        match &self.outcome {
            Outcome::Accepted { .. } => DeliveryState::Accepted,
            Outcome::Rejected { .. } => DeliveryState::Rejected,
            Outcome::Unknown { .. } => DeliveryState::Unknown,
            Outcome::Retryable { .. } | Outcome::ProxyError { .. } => DeliveryState::RetryLater,
        }
    }

    /// 410: the device token is dead since this time (Apple's timestamp).
    pub fn unregistered_at(&self) -> Option<SystemTime> {
        self.outcome.unregistered_at()
    }
}

impl ApnsSender {
    /// Sends `n` with the retry rules of this module and returns the record.
    pub async fn deliver(&self, n: &Notification) -> Delivery {
        let mut delivery = Delivery {
            apns_id: n.apns_id,
            collapse_id: n.collapse_id(),
            outcome: Outcome::Unknown {
                cause: "not sent".into(),
            },
            attempts: 0,
            unknown_attempts: 0,
        };
        if let Err(e) = n.validate() {
            delivery.outcome = invalid(&e);
            return self.finish(n, delivery);
        }
        let policy = &self.inner.retry;
        let (mut immediate, mut backoffs, mut unknowns) = (0, 0, 0);
        let mut new_token_tried = false;
        loop {
            let token = match self.inner.tokens.current() {
                Ok(t) => t,
                Err(e) => {
                    delivery.outcome = Outcome::Retryable {
                        cause: RetryCause::Connect(e.to_string()),
                        retry_after: None,
                    };
                    break;
                }
            };
            delivery.attempts += 1;
            let outcome = self.send_with(n, &token).await;
            delivery.outcome = outcome;
            match &delivery.outcome {
                Outcome::Accepted { .. } | Outcome::ProxyError { .. } => break,
                Outcome::Rejected {
                    status: 403,
                    reason,
                    ..
                } if reason.is(Reason::EXPIRED_PROVIDER_TOKEN) && !new_token_tried => {
                    new_token_tried = true;
                    match self.inner.tokens.after_expired(&token) {
                        Ok(Ok(_new)) => continue,
                        Ok(Err(wait)) => {
                            delivery.outcome = Outcome::Retryable {
                                cause: RetryCause::ProviderTokenFloor,
                                retry_after: Some(wait),
                            };
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "failed to sign a new APNs provider token");
                            break;
                        }
                    }
                }
                Outcome::Rejected { .. } => break,
                Outcome::Retryable { cause, .. } if cause.immediate() => {
                    if immediate >= policy.immediate_retries {
                        break;
                    }
                    immediate += 1;
                }
                Outcome::Retryable { retry_after, .. } => {
                    if backoffs >= policy.backoff_retries {
                        break;
                    }
                    let wait = retry_after
                        .map(|d| d.min(policy.backoff_max))
                        .unwrap_or_else(|| policy.backoff(backoffs));
                    backoffs += 1;
                    tokio::time::sleep(wait).await;
                }
                Outcome::Unknown { .. } => {
                    delivery.unknown_attempts += 1;
                    if unknowns >= policy.unknown_retries {
                        break;
                    }
                    unknowns += 1;
                    tokio::time::sleep(policy.backoff(0)).await;
                }
            }
        }
        self.finish(n, delivery)
    }

    fn finish(&self, n: &Notification, delivery: Delivery) -> Delivery {
        let (result, reason) = delivery.outcome.labels();
        self.inner
            .metrics
            .deliveries
            .get_or_create(&ResultLabels {
                result: result.into(),
                reason: reason.clone(),
            })
            .inc();
        let state = delivery.state().as_str();
        match &delivery.outcome {
            Outcome::Accepted { .. } => tracing::debug!(
                apns_id = %n.apns_id, device = %n.device_token, attempts = delivery.attempts,
                state, "APNs delivery"
            ),
            Outcome::ProxyError { detail, .. } => tracing::warn!(
                apns_id = %n.apns_id, device = %n.device_token, attempts = delivery.attempts,
                state, reason, detail = %detail, "APNs delivery failed at the proxy"
            ),
            _ => tracing::info!(
                apns_id = %n.apns_id, device = %n.device_token, attempts = delivery.attempts,
                unknown_attempts = delivery.unknown_attempts, state, reason, "APNs delivery"
            ),
        }
        delivery
    }
}

fn invalid(e: &NotificationError) -> Outcome {
    let (status, reason) = match e {
        NotificationError::PayloadTooLarge { .. } => (413, Reason::PAYLOAD_TOO_LARGE),
        NotificationError::BadDeviceToken => (400, Reason::BAD_DEVICE_TOKEN),
        NotificationError::CollapseIdTooLong => (400, "BadCollapseId"),
        NotificationError::Payload(_) => (400, "PayloadEmpty"),
    };
    Outcome::Rejected {
        status,
        reason: Reason(reason.into()),
        timestamp: None,
    }
}

#[cfg(test)]
mod tests;
