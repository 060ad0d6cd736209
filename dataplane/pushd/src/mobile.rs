//! Mobile push wiring: the `--apns-…` flags become an [`ApnsSender`] behind dispatch's
//! [`MobileSender`] seam. Only this client goes through `--apns-proxy`; nothing else in
//! pushd uses a proxy (no client reads `HTTP(S)_PROXY`).

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::registry::Registry;
use pushcluster_apns::{
    Alert, ApnsArgs, ApnsConfig, ApnsMetrics, ApnsSender, DeliveryState, DeviceToken, Notification,
    Outcome, alert_payload, apns_id_for,
};
use pushcluster_dispatch::{MobilePush, MobileRequest, MobileResult, MobileSender};
use pushcluster_proto::api::MobileState;
use pushcluster_store::MessageStore;

/// Mobile push could not be set up from the flags.
#[derive(Debug, thiserror::Error)]
pub enum MobileSetupError {
    #[error("APNs is half-configured: {flags} given without --apns-key-file (PUSHD_APNS_KEY_FILE)")]
    HalfConfigured { flags: String },
    #[error(transparent)]
    Config(#[from] pushcluster_apns::ConfigError),
    #[error("failed to build the APNs sender: {0}")]
    Build(#[from] pushcluster_apns::BuildError),
}

/// Validates the `--apns-…` flags: `None` when APNs is off (no flag given at all), an error
/// when some are given without the key (or the key without the rest).
pub fn apns_config(args: &ApnsArgs) -> Result<Option<ApnsConfig>, MobileSetupError> {
    if args.apns_key_file.is_none() {
        let given: Vec<&str> = [
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
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect();
        if !given.is_empty() {
            return Err(MobileSetupError::HalfConfigured {
                flags: given.join(", "),
            });
        }
    }
    Ok(args.config()?)
}

/// The dispatcher's mobile push on APNs, with its metrics in `registry`; `None` without
/// a configuration.
pub fn mobile_push(
    config: Option<ApnsConfig>,
    store: Arc<dyn MessageStore>,
    registry: &mut Registry,
) -> Result<Option<MobilePush>, MobileSetupError> {
    let Some(config) = config else {
        tracing::info!("APNs not configured: no mobile push");
        return Ok(None);
    };
    let (topic, concurrency) = (config.topic.clone(), config.concurrency);
    tracing::info!(
        endpoint = %config.endpoint.authority(),
        proxy = config.proxy.as_ref().map(|p| p.redacted_url()),
        %topic,
        "APNs mobile push on"
    );
    let sender = ApnsSender::builder(config)
        .metrics(ApnsMetrics::new(registry))
        .build()?;
    let apns = Arc::new(ApnsMobile { sender, topic });
    Ok(Some(MobilePush::new(store, apns, concurrency)))
}

/// How often dispatch looks for notifications left pending by an unreachable APNs or proxy.
const RETRY_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends again, in the background until shutdown, what APNs or the proxy could not take.
pub fn spawn_retries(mobile: MobilePush, shutdown: pushcluster_server::Shutdown) {
    tokio::spawn(async move { mobile.sweep_every(RETRY_SWEEP, shutdown.wait()).await });
}

/// [`MobileSender`] on APNs.
pub struct ApnsMobile {
    sender: ApnsSender,
    /// `--apns-topic`: the only topic the provider token is used for.
    topic: String,
}

fn refused(reason: &str) -> MobileResult {
    MobileResult {
        state: MobileState::Rejected,
        reason: Some(reason.into()),
        attempts: 0,
        apns_id: None,
        unregistered_at_ms: None,
        retry_after: None,
    }
}

#[async_trait]
impl MobileSender for ApnsMobile {
    async fn send(&self, req: &MobileRequest) -> MobileResult {
        if req.device.topic.as_ref().is_some_and(|t| *t != self.topic) {
            // Registered for another app than this server sends for.
            return refused("TopicNotConfigured");
        }
        let Ok(token) = DeviceToken::parse(&req.device.token) else {
            return refused("BadDeviceToken");
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
                return refused(match e {
                    pushcluster_apns::NotificationError::PayloadTooLarge { .. } => {
                        "PayloadTooLarge"
                    }
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
            apns_id: Some(delivery.apns_id.hyphenated().to_string()),
            unregistered_at_ms: delivery.unregistered_at().map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            }),
            retry_after,
        }
    }
}
