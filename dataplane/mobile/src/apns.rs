//! APNs behind the [`MobileSender`] seam: the `--apns-…` flags become an [`ApnsSender`]
//! (`pushcluster-apns`), the only client that can go through a proxy (`--apns-proxy`).

use async_trait::async_trait;
use prometheus_client::registry::Registry;
use pushcluster_apns::{
    Alert, ApnsArgs, ApnsConfig, ApnsMetrics, ApnsSender, DeliveryState, DeviceToken, Notification,
    NotificationError, Outcome, alert_payload, apns_id_for,
};
use pushcluster_proto::api::MobileState;

use crate::args::{SetupError, half_configured};
use crate::sender::{MobileRequest, MobileResult, MobileSender};

/// Validates the `--apns-…` flags: `None` when APNs is off (no flag given at all), an error
/// when some are given without the key (or the key without the rest).
pub fn config(args: &ApnsArgs) -> Result<Option<ApnsConfig>, SetupError> {
    if args.apns_key_file.is_none() {
        half_configured(
            "APNs",
            "--apns-key-file (PUSHD_APNS_KEY_FILE)",
            &[
                (args.apns_key_id.is_some(), "--apns-key-id"),
                (args.apns_team_id.is_some(), "--apns-team-id"),
                (args.apns_topic.is_some(), "--apns-topic"),
                (args.apns_ca_file.is_some(), "--apns-ca-file"),
                (args.apns_proxy.is_some(), "--apns-proxy"),
                (
                    args.apns_proxy_credentials_file.is_some(),
                    "--apns-proxy-credentials-file",
                ),
                (
                    args.apns_proxy_credentials.is_some(),
                    "PUSHD_APNS_PROXY_CREDENTIALS",
                ),
                (args.apns_endpoint != "production", "--apns-endpoint"),
            ],
        )?;
    }
    Ok(args.config()?)
}

/// [`MobileSender`] on APNs.
pub struct ApnsMobile {
    sender: ApnsSender,
    /// `--apns-topic`: the only topic the provider token is used for.
    topic: String,
}

impl ApnsMobile {
    /// The sender, its `pushd_apns_*` metrics in `registry`. Opens no connection yet.
    pub fn new(config: ApnsConfig, registry: &mut Registry) -> Result<ApnsMobile, SetupError> {
        let topic = config.topic.clone();
        tracing::info!(
            endpoint = %config.endpoint.authority(),
            proxy = config.proxy.as_ref().map(|p| p.redacted_url()),
            %topic,
            "APNs mobile push on"
        );
        let sender = ApnsSender::builder(config)
            .metrics(ApnsMetrics::new(registry))
            .build()?;
        Ok(ApnsMobile { sender, topic })
    }
}

#[async_trait]
impl MobileSender for ApnsMobile {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        if req.device.topic.as_ref().is_some_and(|t| *t != self.topic) {
            // Registered for another app than this server sends for.
            return MobileResult::refused("TopicNotConfigured");
        }
        let Ok(token) = DeviceToken::parse(&req.device.token) else {
            return MobileResult::refused("BadDeviceToken");
        };
        let n = &req.notification;
        let alert = Alert {
            title: n.title.as_deref(),
            body: n.body.as_deref(),
            badge: n.badge,
            sound: n.sound.as_deref(),
            data: n.data.as_ref(),
        };
        let payload = match alert_payload(&alert) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(id = %req.message_id, error = %e, "notification cannot be sent");
                return MobileResult::refused(match e {
                    NotificationError::PayloadTooLarge { .. } => "PayloadTooLarge",
                    _ => "BadPayload",
                });
            }
        };
        let mut notification =
            Notification::new(token.clone(), apns_id_for(&req.message_id, &token), payload);
        notification.collapse_id = n.collapse_id.clone();
        // Apple keeps it for an offline device until the message expires, no longer.
        notification.expiration = Some(req.expires_at_ms / 1000);
        let delivery = self.sender.deliver(&notification).await;
        let (result, label) = delivery.outcome.labels();
        let (state, reason, retry_after) = match (&delivery.state(), &delivery.outcome) {
            (DeliveryState::Accepted, _) => (MobileState::Accepted, None, None),
            (DeliveryState::Rejected, Outcome::Rejected { reason, .. }) => (
                MobileState::Rejected,
                Some(reason.as_str().to_owned()),
                None,
            ),
            (DeliveryState::Rejected, _) => (MobileState::Rejected, Some(label), None),
            (DeliveryState::Unknown, _) => (MobileState::Unknown, Some(label), None),
            (DeliveryState::RetryLater, Outcome::ProxyError { detail, .. }) => (
                MobileState::Pending,
                Some(format!("{label}: {detail}")),
                None,
            ),
            (DeliveryState::RetryLater, Outcome::Retryable { retry_after, .. }) => (
                MobileState::Pending,
                Some(format!("{result}: {label}")),
                *retry_after,
            ),
            (DeliveryState::RetryLater, _) => (
                MobileState::Pending,
                Some(format!("{result}: {label}")),
                None,
            ),
        };
        MobileResult {
            state,
            reason,
            attempts: delivery.attempts,
            vendor_id: Some(delivery.apns_id.hyphenated().to_string()),
            unregistered_at_ms: delivery.unregistered_at().map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            }),
            retry_after,
        }
    }
}
