//! Mobile push: a message with a `notification` goes to its recipients' registered devices
//! when its `mobile` policy says so (see [`wants_mobile`]).
//!
//! The vendor client sits behind the [`MobileSender`] seam (pushd implements it with the
//! APNs sender). [`MobilePush`] runs the sends off the dispatch path, on spawned tasks
//! bounded by a semaphore, and keeps the rule "never twice per (message, device)": it
//! claims the notification by storing its `pending` record first and sends only if the claim
//! is new; the final record replaces it after the vendor answered. A 410 marks the device
//! dead so it gets nothing more until it is registered again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pushcluster_proto::api::{Device, Mobile, MobileRecord, MobileState, Notification};
use pushcluster_proto::delivery::now_ms;
use pushcluster_store::{MessageStore, StoredMessage};
use tokio::sync::Semaphore;

/// One notification to send: a message's `notification` to one device.
#[derive(Debug, Clone)]
pub struct MobileRequest {
    pub message_id: String,
    pub expires_at_ms: u64,
    pub device: Device,
    pub notification: Arc<Notification>,
}

/// What the vendor made of one notification, after the sender's own retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileResult {
    /// `Pending` means "not sent for now" (e.g. the proxy failed): the record stays pending
    /// with `reason`, and the notification may be tried again later.
    pub state: MobileState,
    pub reason: Option<String>,
    /// Requests made to the vendor.
    pub attempts: u32,
    /// The id the vendor knows the notification by (APNs: `apns-id`).
    pub apns_id: Option<String>,
    /// The vendor says the token is dead since this time (APNs 410, Apple's timestamp).
    pub unregistered_at_ms: Option<u64>,
    /// With `Pending`: when to try again, if the vendor said.
    pub retry_after: Option<Duration>,
}

/// The seam to a push vendor (APNs today).
#[async_trait]
pub trait MobileSender: Send + Sync + 'static {
    async fn send(&self, req: &MobileRequest) -> MobileResult;
}

/// Whether a recipient's devices get the message: `always`, or `offline` when the user had
/// no live connection (`connected == false`); never without a notification.
pub fn wants_mobile(msg: &StoredMessage, connected: bool) -> bool {
    msg.notification.is_some()
        && match msg.mobile {
            Mobile::Always => true,
            Mobile::Offline => !connected,
            Mobile::Never => false,
        }
}

/// Rounds of sending a notification that stays `pending` (vendor unreachable) before it is
/// left pending for good.
const PENDING_ROUNDS: u32 = 3;
/// Wait between such rounds when the vendor gave no `retry_after`.
const PENDING_WAIT: Duration = Duration::from_secs(2);

/// Sends messages to users' devices in the background.
#[derive(Clone)]
pub struct MobilePush {
    store: Arc<dyn MessageStore>,
    sender: Arc<dyn MobileSender>,
    slots: Arc<Semaphore>,
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
        }
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
        for device in devices.into_iter().filter(Device::is_live) {
            let req = MobileRequest {
                message_id: id.to_owned(),
                expires_at_ms,
                device,
                notification: notification.clone(),
            };
            self.send_one(req).await;
        }
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
    async fn drive(&self, req: &MobileRequest, mut record: MobileRecord) {
        let token_prefix = short(&req.device.token);
        for round in 1..=PENDING_ROUNDS {
            if req.expires_at_ms <= now_ms() {
                record.reason = Some("expired before it could be sent".into());
                break;
            }
            let result = self.sender.send(req).await;
            record.state = result.state;
            record.reason = result.reason.clone();
            record.attempts = record.attempts.saturating_add(result.attempts);
            record.apns_id = result.apns_id.clone().or(record.apns_id.take());
            record.updated_at_ms = now_ms();
            if let Some(at) = result.unregistered_at_ms {
                match self.store.mark_device_dead(&req.device.token, at).await {
                    Ok(_) => {
                        tracing::info!(user = %req.device.user, device = %token_prefix, dead_at_ms = at, "device unregistered; marked dead")
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
        tracing::debug!(id = %req.message_id, device = %token_prefix, state = ?record.state, attempts = record.attempts, "mobile notification");
        if let Err(e) = self.store.update_mobile(&record).await {
            tracing::warn!(id = %req.message_id, device = %token_prefix, error = %e, "failed to record a mobile notification's outcome");
        }
    }
}

/// The start of a device token, enough to tell devices apart in logs.
fn short(token: &str) -> &str {
    &token[..8.min(token.len())]
}

/// How old a retryable record must be before [`MobilePush::sweep`] sends it again: longer
/// than any round of the task that left it pending, so the two never overlap.
pub const RETRY_AFTER: Duration = Duration::from_secs(300);
/// Records taken per sweep.
const SWEEP_BATCH: usize = 100;

impl MobilePush {
    /// Sends again what was left `pending` because the vendor or the proxy could not be
    /// reached (provably not delivered; see `MessageStore::retryable_mobile`) at least
    /// `retry_after` ago. Each record is retaken by one sweeper only (dispatch replicas
    /// share the store). Returns how many were taken.
    pub async fn sweep(&self, retry_after: Duration) -> usize {
        let now = now_ms();
        let cutoff = now.saturating_sub(retry_after.as_millis() as u64);
        let due = match self.store.retryable_mobile(cutoff, SWEEP_BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list mobile notifications to retry");
                return 0;
            }
        };
        let mut taken = 0;
        for item in due {
            match self.store.retake_mobile(&item.record, now).await {
                Ok(true) => {}
                Ok(false) => continue, // another sweeper has it
                Err(e) => {
                    tracing::warn!(error = %e, "cannot retake a mobile notification");
                    continue;
                }
            }
            taken += 1;
            let mut record = item.record;
            record.updated_at_ms = now;
            let device = match self.store.devices(&record.user).await {
                Ok(devices) => devices.into_iter().find(|d| d.token == record.token),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read devices; retrying later");
                    continue;
                }
            };
            let Some(device) = device.filter(Device::is_live) else {
                record.state = MobileState::Rejected;
                record.reason = Some("device removed or unregistered before a retry".into());
                if let Err(e) = self.store.update_mobile(&record).await {
                    tracing::warn!(error = %e, "failed to record a mobile notification");
                }
                continue;
            };
            if item.expires_at_ms <= now {
                record.state = MobileState::Rejected;
                record.reason = Some("expired before it could be sent".into());
                if let Err(e) = self.store.update_mobile(&record).await {
                    tracing::warn!(error = %e, "failed to record a mobile notification");
                }
                continue;
            }
            let req = MobileRequest {
                message_id: record.message.clone(),
                expires_at_ms: item.expires_at_ms,
                device,
                notification: item.notification,
            };
            tracing::info!(id = %req.message_id, attempts = record.attempts, "retrying a mobile notification");
            self.drive(&req, record).await;
        }
        taken
    }

    /// Runs [`MobilePush::sweep`] every `every` until `stop` completes.
    pub async fn sweep_every(self, every: Duration, stop: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            self.sweep(RETRY_AFTER).await;
        }
    }
}

#[cfg(test)]
mod tests;
