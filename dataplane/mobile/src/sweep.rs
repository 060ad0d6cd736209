//! The retry sweep: what was left `pending` because the vendor or the proxy could not be
//! reached (provably not delivered) is sent again, by one sweeper only.

use std::time::Duration;

use pushcluster_proto::api::{Device, MobileState};
use pushcluster_proto::delivery::now_ms;

use crate::push::MobilePush;
use crate::sender::MobileRequest;

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
            let why_not = match device.filter(Device::is_live) {
                None => Err("device removed or unregistered before a retry"),
                Some(_) if item.expires_at_ms <= now => Err("expired before it could be sent"),
                Some(device) => Ok(device),
            };
            let device = match why_not {
                Ok(device) => device,
                Err(reason) => {
                    record.state = MobileState::Rejected;
                    record.reason = Some(reason.into());
                    if let Err(e) = self.store.update_mobile(&record).await {
                        tracing::warn!(error = %e, "failed to record a mobile notification");
                    }
                    continue;
                }
            };
            let req = MobileRequest {
                message_id: record.message.clone(),
                expires_at_ms: item.expires_at_ms,
                device,
                notification: item.notification,
            };
            tracing::info!(id = %req.message_id, platform = req.device.platform.as_str(), attempts = record.attempts, "retrying a mobile notification");
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
