//! The seam to a push vendor: one notification to one device in, what the vendor made of it
//! (after the sender's own retries) out.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pushcluster_proto::api::{Device, Mobile, MobileState, Notification};
use pushcluster_store::StoredMessage;

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
    /// `Pending` means "not sent for now" (e.g. the proxy or the vendor could not be
    /// reached): the record stays pending with `reason`, and may be tried again later.
    pub state: MobileState,
    pub reason: Option<String>,
    /// Requests made to the vendor that carried this notification.
    pub attempts: u32,
    /// The id the vendor knows the notification by (APNs `apns-id`, FCM message name, …).
    pub vendor_id: Option<String>,
    /// The vendor says the token is dead since this time (APNs 410 with Apple's timestamp;
    /// the others: when they said so).
    pub unregistered_at_ms: Option<u64>,
    /// With `Pending`: when to try again, if the vendor said.
    pub retry_after: Option<Duration>,
}

impl MobileResult {
    /// Refused without a request (bad token, unusable notification, no sender).
    pub fn refused(reason: impl Into<String>) -> MobileResult {
        MobileResult {
            state: MobileState::Rejected,
            reason: Some(reason.into()),
            attempts: 0,
            vendor_id: None,
            unregistered_at_ms: None,
            retry_after: None,
        }
    }
}

/// The seam to a push vendor.
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
