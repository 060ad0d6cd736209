//! [`MobilePush`]: sends a message's `notification` to a user's live devices off the
//! dispatch path, on spawned tasks bounded by a semaphore, keeping the rule "never twice per
//! (message, device)": it claims the notification by storing its `pending` record first and
//! sends only if the claim is new; the final record replaces it after the vendor answered. A
//! dead token (APNs 410, FCM UNREGISTERED, …) marks the device dead so it gets nothing more
//! until it is registered again.

use std::sync::Arc;
use std::time::Duration;

use pushcluster_proto::api::{Device, MobileRecord, MobileState, Notification, Platform};
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

    /// Sends `msg` to `user`'s live devices on a spawned task; returns its handle (tests
    /// wait on it; dispatch does not).
    pub fn spawn(&self, msg: &StoredMessage, user: &str) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let user = user.to_owned();
        let (id, expires_at_ms) = (msg.id.clone(), msg.expires_at_ms);
        let notification = msg.notification.clone();
        tokio::spawn(async move {
            let Some(notification) = notification else {
                return;
            };
            let Ok(_slot) = this.slots.clone().acquire_owned().await else {
                return;
            };
            this.send_to_user(&id, expires_at_ms, &user, notification)
                .await;
        })
    }

    async fn send_to_user(
        &self,
        id: &str,
        expires_at_ms: u64,
        user: &str,
        notification: Arc<Notification>,
    ) {
        let devices = match self.store.devices(user).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%id, %user, error = %e, "failed to list devices; no mobile push");
                return;
            }
        };
        // One device's vendor may batch (Huawei): send to all of them at once.
        let sends = devices.into_iter().filter(Device::is_live).map(|device| {
            let req = MobileRequest {
                message_id: id.to_owned(),
                expires_at_ms,
                device,
                notification: notification.clone(),
            };
            async move { self.send_one(req).await }
        });
        futures_join(sends).await;
    }

    /// Claim, send, record. Store failures are logged: a claim that failed sends nothing; a
    /// final record that failed leaves the claim `pending` (sent, outcome not recorded).
    async fn send_one(&self, req: MobileRequest) {
        let d = &req.device;
        let record = MobileRecord::claim(&req.message_id, &d.user, d.platform, &d.token, now_ms());
        let token_prefix = short(&d.token);
        match self.store.claim_mobile(&record).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(id = %req.message_id, device = %token_prefix, "already sent to this device; skipping");
                return;
            }
            Err(e) => {
                tracing::warn!(id = %req.message_id, device = %token_prefix, error = %e, "failed to claim a mobile notification; not sent");
                return;
            }
        }
        self.drive(&req, record).await;
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
