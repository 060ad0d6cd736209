//! One retry driver for the direct vendors. Each vendor classifies its replies once into a
//! [`Verdict`]; the driver applies the same rules to all of them (those of the APNs sender):
//!
//! | verdict | driver |
//! | --- | --- |
//! | `Accepted` | done: `accepted` |
//! | `Rejected` | done: `rejected` with the vendor's reason (a dead token marks the device dead) |
//! | `AuthRefused` (access token expired or revoked) | drop the token, fetch a new one, once more |
//! | `Retry` at once (not sent: connect failure, refused stream) | again at once, [`RetryPolicy::immediate_retries`] times |
//! | `Retry` after a back-off (429, 5xx) | the vendor's `Retry-After` or a jittered back-off, [`RetryPolicy::backoff_retries`] times; a wait longer than [`RetryPolicy::backoff_max`] ends the round |
//! | `Later` (credentials refused, as Xiaomi's 21301) | stop: `pending` with the reason (retried by later rounds and the sweep) |
//! | `NoToken` (token endpoint down or refusing our credentials) | stop: `pending`, no request made (not an attempt) |
//! | `Unknown` (written, no answer) | again at most [`RetryPolicy::unknown_retries`] times, same dedupe keys |
//!
//! The driver works on a batch (Huawei sends up to 1,000 tokens in one request): every item
//! keeps its own budget, and a request carries only the items still open — a partial
//! success resends only the failed tokens.

use std::time::Duration;

use async_trait::async_trait;
use pushcluster_proto::api::MobileState;
use pushcluster_proto::delivery::now_ms;

pub use pushcluster_apns::RetryPolicy;

use crate::metrics::MobileMetrics;
use crate::sender::MobileResult;

/// What one request made of one notification, classified by its vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The vendor took it; `id`: the id it gave.
    Accepted { id: Option<String> },
    /// The vendor refused it; sending it again cannot help. `dead`: the token is invalid.
    Rejected { reason: String, dead: bool },
    /// Our access token was refused as expired or invalid: nothing was delivered.
    AuthRefused { reason: String },
    /// Not taken and provably not delivered: again `now` (nothing was sent) or after the
    /// vendor's back-off (`after`, else the policy's).
    Retry {
        reason: String,
        after: Option<Duration>,
        now: bool,
    },
    /// Not sent, and retrying at once cannot help (credentials refused, token endpoint
    /// unreachable): keep it pending for a later round.
    Later {
        reason: String,
        after: Option<Duration>,
    },
    /// Written without an answer: the vendor may have it.
    Unknown { reason: String },
    /// No request was made: no access token could be had (token endpoint down, credentials
    /// refused). Pending for a later round; not an attempt.
    NoToken { reason: String },
}

impl Verdict {
    /// Why, as the vendor or the client said it (empty when accepted).
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Accepted { .. } => "",
            Verdict::Rejected { reason, .. }
            | Verdict::AuthRefused { reason }
            | Verdict::Retry { reason, .. }
            | Verdict::Later { reason, .. }
            | Verdict::Unknown { reason }
            | Verdict::NoToken { reason } => reason,
        }
    }

    /// The `outcome` label of `pushd_mobile_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Accepted { .. } => "accepted",
            Verdict::Rejected { .. } => "rejected",
            Verdict::AuthRefused { .. } => "auth_refused",
            Verdict::Retry { .. } => "retry",
            Verdict::Later { .. } => "later",
            Verdict::Unknown { .. } => "unknown",
            Verdict::NoToken { .. } => "no_token",
        }
    }
}

/// One request of a vendor, for the driver.
#[async_trait]
pub trait Attempt: Send + Sync {
    /// Sends the items `open` (indexes into the batch) in one request; a verdict for each,
    /// in the same order.
    async fn attempt(&self, open: &[usize]) -> Vec<Verdict>;
    /// Our access token was refused: forget it so the next attempt fetches a new one.
    async fn auth_refused(&self) {}
}

/// Where one item of a batch is.
#[derive(Debug, Default)]
struct Budget {
    attempts: u32,
    immediate: u32,
    backoffs: u32,
    unknowns: u32,
    new_token: bool,
    last: Option<Verdict>,
    done: bool,
}

/// Drives `n` items through `vendor`'s requests with `policy`; one [`MobileResult`] each.
pub async fn drive(
    vendor: &'static str,
    policy: &RetryPolicy,
    metrics: &MobileMetrics,
    n: usize,
    attempt: &dyn Attempt,
) -> Vec<MobileResult> {
    let mut items: Vec<Budget> = (0..n).map(|_| Budget::default()).collect();
    loop {
        let open: Vec<usize> = (0..n).filter(|&i| !items[i].done).collect();
        if open.is_empty() {
            break;
        }
        let verdicts = attempt.attempt(&open).await;
        let mut wait = Duration::ZERO;
        let mut refresh = false;
        for (&i, verdict) in open.iter().zip(verdicts) {
            let item = &mut items[i];
            if !matches!(verdict, Verdict::NoToken { .. }) {
                metrics.request(vendor, verdict.label());
                item.attempts += 1;
            }
            let (again, pause) = next(policy, item, &verdict);
            refresh |= again && matches!(verdict, Verdict::AuthRefused { .. });
            item.last = Some(verdict);
            item.done = !again;
            wait = wait.max(pause);
        }
        if refresh {
            attempt.auth_refused().await;
        }
        if !wait.is_zero() && items.iter().any(|i| !i.done) {
            tokio::time::sleep(wait).await;
        }
    }
    items.into_iter().map(|b| result(b, policy)).collect()
}

/// Whether to send the item again, and after what pause.
fn next(policy: &RetryPolicy, item: &mut Budget, verdict: &Verdict) -> (bool, Duration) {
    match verdict {
        Verdict::Accepted { .. }
        | Verdict::Rejected { .. }
        | Verdict::Later { .. }
        | Verdict::NoToken { .. } => (false, Duration::ZERO),
        Verdict::AuthRefused { .. } => {
            let again = !item.new_token;
            item.new_token = true;
            (again, Duration::ZERO)
        }
        Verdict::Retry { now: true, .. } => {
            let again = item.immediate < policy.immediate_retries;
            item.immediate += 1;
            (again, Duration::ZERO)
        }
        Verdict::Retry { after, .. } => {
            let pause = after.unwrap_or_else(|| policy.backoff(item.backoffs));
            let again = item.backoffs < policy.backoff_retries && pause <= policy.backoff_max;
            item.backoffs += 1;
            (again, if again { pause } else { Duration::ZERO })
        }
        Verdict::Unknown { .. } => {
            let again = item.unknowns < policy.unknown_retries;
            item.unknowns += 1;
            (
                again,
                if again {
                    policy.backoff(0)
                } else {
                    Duration::ZERO
                },
            )
        }
    }
}

/// The record of an item whose last verdict is final for this round.
fn result(item: Budget, policy: &RetryPolicy) -> MobileResult {
    let mut r = MobileResult {
        state: MobileState::Pending,
        reason: None,
        attempts: item.attempts,
        vendor_id: None,
        unregistered_at_ms: None,
        retry_after: None,
    };
    match item.last {
        Some(Verdict::Accepted { id }) => {
            r.state = MobileState::Accepted;
            r.vendor_id = id;
        }
        Some(Verdict::Rejected { reason, dead }) => {
            r.state = MobileState::Rejected;
            r.reason = Some(reason);
            r.unregistered_at_ms = dead.then(now_ms);
        }
        Some(Verdict::Unknown { reason }) => {
            r.state = MobileState::Unknown;
            r.reason = Some(reason);
        }
        Some(Verdict::AuthRefused { reason }) => {
            r.reason = Some(format!("{reason} (a new access token was refused too)"));
        }
        Some(Verdict::Retry { reason, after, .. }) => {
            r.reason = Some(reason);
            r.retry_after = after.map(|a| a.max(policy.backoff_base));
        }
        Some(Verdict::Later { reason, after }) => {
            r.reason = Some(reason);
            r.retry_after = after;
        }
        Some(Verdict::NoToken { reason }) => r.reason = Some(reason),
        None => r.reason = Some("not sent".into()),
    }
    r
}

#[cfg(test)]
mod tests;
