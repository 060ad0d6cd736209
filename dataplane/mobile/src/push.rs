//! [`MobilePush`]: sends a message's `notification` to a user's live devices off the
//! dispatch path, on spawned tasks bounded by a semaphore, keeping the rule "never twice per
//! (message, device)": it claims the notification by storing its `pending` record first and
//! sends only if the claim is new; the final record replaces it after the vendor answered. A
//! dead token (APNs 410, FCM UNREGISTERED, …) marks the device dead so it gets nothing more
//! until it is registered again.

use std::sync::Arc;
use std::time::Duration;

use pushcluster_proto::api::{Device, MobileRecord, MobileState, Platform};
use pushcluster_proto::delivery::now_ms;
use pushcluster_store::{MessageStore, StoredMessage};
use tokio::sync::Semaphore;

use crate::metrics::MobileMetrics;
use crate::sender::{MobileRequest, MobileSender};

/// Rounds of sending a notification that stays `pending` (vendor unreachable) before it is
/// left pending for the sweep.
pub const PENDING_ROUNDS: u32 = 3;
/// Wait between such rounds when the vendor gave no `retry_after`.
const PENDING_WAIT: Duration = Duration::from_secs(2);

/// Notifications claimed for one user's devices, ready to send ([`MobilePush::send_claimed`]).
#[derive(Default)]
pub struct Claimed(Vec<(MobileRequest, MobileRecord)>);

impl Claimed {
    /// How many devices were claimed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The store failed while claiming: claim again later.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("mobile notifications could not be claimed (store unavailable)")]
pub struct ClaimError;

/// Sends messages to users' devices in the background.
#[derive(Clone)]
pub struct MobilePush {
    pub(crate) store: Arc<dyn MessageStore>,
    sender: Arc<dyn MobileSender>,
    slots: Arc<Semaphore>,
    metrics: MobileMetrics,
}

impl MobilePush {
    /// `concurrency`: most users whose devices are being sent to at once; more wait.
    pub fn new(
        store: Arc<dyn MessageStore>,
        sender: Arc<dyn MobileSender>,
        concurrency: usize,
    ) -> Self {
        MobilePush {
            store,
            sender,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            metrics: MobileMetrics::default(),
        }
    }

    /// Counts final results in `metrics` (`pushd_mobile_sends_total`).
    pub fn with_metrics(mut self, metrics: MobileMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sends `msg` to `user`'s live devices on a spawned task (claims included); returns its
    /// handle. Dispatch uses [`MobilePush::claim`] then [`MobilePush::send_claimed`] instead,
    /// so that the claims are durable before the outbox mark goes.
    pub fn spawn(&self, msg: &StoredMessage, user: &str) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let (msg, user) = (msg.clone(), user.to_owned());
        tokio::spawn(async move {
            if let Ok(claimed) = this.claim(&msg, &user).await {
                let _ = this.send_claimed(claimed).await;
            }
        })
    }

    /// Claims `msg`'s notification for each of `user`'s live devices (one `pending` record
    /// each; devices claimed before, by anyone, are skipped). `Err` when the store failed:
    /// claim again later (what was claimed stays claimed). A notification claimed here and
    /// never sent (the process died in between) stays `pending` without a reason: it may
    /// have been written to the vendor, so it is never sent again (at most once).
    pub async fn claim(&self, msg: &StoredMessage, user: &str) -> Result<Claimed, ClaimError> {
        let Some(notification) = msg.notification.clone() else {
            return Ok(Claimed::default());
        };
        let devices = self.store.devices(user).await.map_err(|e| {
            tracing::warn!(id = %msg.id, %user, error = %e, "failed to list devices");
            ClaimError
        })?;
        let mut claimed = Claimed::default();
        let mut failed = false;
        for device in devices.into_iter().filter(Device::is_live) {
            let record = MobileRecord::claim(
                &msg.id,
                &device.user,
                device.platform,
                &device.token,
                now_ms(),
            );
            let token_prefix = short(&device.token);
            match self.store.claim_mobile(&record).await {
                Ok(true) => claimed.0.push((
                    MobileRequest {
                        message_id: msg.id.clone(),
                        expires_at_ms: msg.expires_at_ms,
                        device,
                        notification: notification.clone(),
                    },
                    record,
                )),
                Ok(false) => {
                    tracing::debug!(id = %msg.id, device = %token_prefix, "already claimed for this device; skipping");
                }
                Err(e) => {
                    tracing::warn!(id = %msg.id, device = %token_prefix, error = %e, "failed to claim a mobile notification");
                    failed = true;
                }
            }
        }
        if failed {
            // Send what was claimed; the rest is claimed again with the next attempt.
            let this = self.clone();
            tokio::spawn(async move { this.send_claimed(claimed).await });
            return Err(ClaimError);
        }
        Ok(claimed)
    }

    /// Sends claimed notifications on a spawned task (at most `concurrency` users' at once);
    /// one user's devices are sent to together (a vendor may batch them, as Huawei does).
    pub fn send_claimed(&self, claimed: Claimed) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            if claimed.0.is_empty() {
                return;
            }
            let Ok(_slot) = this.slots.clone().acquire_owned().await else {
                return;
            };
            let sends = claimed.0.into_iter().map(|(req, record)| {
                let this = &this;
                async move { this.drive(&req, record).await }
            });
            futures_join(sends).await;
        })
    }

    /// Sends a claimed (or retaken) notification for up to [`PENDING_ROUNDS`] rounds and
    /// writes its final record.
    pub(crate) async fn drive(&self, req: &MobileRequest, mut record: MobileRecord) {
        let token_prefix = short(&req.device.token);
        let platform = req.device.platform;
        for round in 1..=PENDING_ROUNDS {
            if req.expires_at_ms <= now_ms() {
                record.reason = Some("expired before it could be sent".into());
                break;
            }
            let result = self.sender.send(req).await;
            record.state = result.state;
            record.reason = result.reason.clone();
            record.attempts = record.attempts.saturating_add(result.attempts);
            record.vendor_id = result.vendor_id.clone().or(record.vendor_id.take());
            if platform == Platform::Apns {
                record.apns_id = record.vendor_id.clone();
            }
            record.updated_at_ms = now_ms();
            if let Some(at) = result.unregistered_at_ms {
                self.metrics.dead_token(platform);
                match self.store.mark_device_dead(&req.device.token, at).await {
                    Ok(_) => {
                        tracing::info!(user = %req.device.user, platform = platform.as_str(), device = %token_prefix, dead_at_ms = at, "device token dead; marked dead")
                    }
                    Err(e) => {
                        tracing::warn!(device = %token_prefix, error = %e, "failed to mark a device dead")
                    }
                }
            }
            if result.state != MobileState::Pending || round == PENDING_ROUNDS {
                break;
            }
            // Not sent (vendor or proxy unreachable): record why, wait, try again.
            if let Err(e) = self.store.update_mobile(&record).await {
                tracing::warn!(id = %req.message_id, error = %e, "failed to record a mobile notification");
            }
            tokio::time::sleep(result.retry_after.unwrap_or(PENDING_WAIT * round)).await;
        }
        self.metrics.sent(platform, record.state);
        tracing::debug!(id = %req.message_id, platform = platform.as_str(), device = %token_prefix, state = ?record.state, attempts = record.attempts, "mobile notification");
        if let Err(e) = self.store.update_mobile(&record).await {
            tracing::warn!(id = %req.message_id, device = %token_prefix, error = %e, "failed to record a mobile notification's outcome");
        }
    }
}

/// Runs the futures concurrently on this task; done when all are.
async fn futures_join<F: Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// The start of a device token, enough to tell devices apart in logs.
pub(crate) fn short(token: &str) -> &str {
    let end = token.char_indices().nth(8).map_or(token.len(), |(i, _)| i);
    &token[..end]
}

#[cfg(test)]
mod tests;
