//! Message storage.
//!
//! - [`MessageStore`]: what the data plane needs from storage — accept a message durably
//!   (assigning per-user sequence numbers and honouring idempotency keys), list a user's pending
//!   messages in order, record deliveries and acks, expire, and report status.
//! - [`redb`]: the embedded, crash-safe implementation behind `pushd standalone`.
//!
//! - [`mongo`]: the cluster's implementation on MongoDB.
//!
//! Besides messages, the store keeps users' mobile devices (`POST /v1/devices`) and one
//! [`MobileRecord`] per (message, device) notification, claimed before sending so a
//! notification is never sent twice.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use pushcluster_proto::api::{
    Device, MessageStatus, Mobile, MobileRecord, NewDevice, NewMessage, Notification,
};
use serde_json::value::RawValue;

#[cfg(test)]
mod conformance;
pub mod mongo;
pub mod redb;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Storage failures. Every variant means "the operation did not happen"; callers answer 503.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to open the message store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("message store failure: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("corrupt record in the message store: {0}")]
    Corrupt(String),
    #[error("the message store is shut down")]
    Closed,
}

impl Error {
    pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Backend(Box::new(e))
    }
    /// Label for the `store_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Open { .. } => "open",
            Error::Backend(_) => "backend",
            Error::Corrupt(_) => "corrupt",
            Error::Closed => "closed",
        }
    }
}

/// A message as stored, with each recipient's sequence number.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: String,
    pub payload: Arc<RawValue>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// (user, seq) in recipient order.
    pub recipients: Vec<(String, u64)>,
    /// What a phone shows, if the message goes to mobile devices.
    pub notification: Option<Arc<Notification>>,
    /// When it goes to mobile devices.
    pub mobile: Mobile,
}

/// Outcome of [`MessageStore::put_device`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSaved {
    /// A new token.
    Created(Device),
    /// The token was registered already: its user and topic are replaced and it is live again.
    Updated(Device),
}

/// Outcome of [`MessageStore::submit`].
#[derive(Debug, Clone)]
pub enum Submitted {
    /// Newly stored: hand it to dispatch.
    New(StoredMessage),
    /// The idempotency key matched an earlier message: nothing new to deliver.
    Duplicate { id: String },
}

impl Submitted {
    pub fn id(&self) -> &str {
        match self {
            Submitted::New(m) => &m.id,
            Submitted::Duplicate { id } => id,
        }
    }
}

/// One message waiting for a user.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub seq: u64,
    pub payload: Arc<RawValue>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// A page of a user's pending messages.
#[derive(Debug, Clone, Default)]
pub struct PendingPage {
    /// Unacked, unexpired messages with `seq > after`, in seq order.
    pub items: Vec<Pending>,
    /// The highest seq ever assigned to the user when the page was read. Every message with a
    /// seq at or below it is either in some page or already acked/expired.
    pub high_seq: u64,
}

/// Outcome of an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    Acked,
    /// Already acked or expired: nothing changed.
    AlreadyFinal,
    /// No such message for this user.
    Unknown,
}

/// Storage used by collect (submit, status), push (pending, delivered, ack) and the sweeper.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores a message durably; returns only once it survives a crash.
    async fn submit(&self, msg: NewMessage) -> Result<Submitted>;
    /// Up to `limit` pending messages of `user` with `seq > after`, in order.
    async fn pending(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage>;
    /// Up to `limit` unexpired messages of `user` with `seq > after`, acked or not, in order:
    /// what one device that has seen everything up to `after` still needs, whatever the
    /// user's other devices acked. Acks are per user; this is what makes resuming per device.
    async fn backlog(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage>;
    /// Records that the message was written to one of the user's sockets. Buffered: the
    /// status is advisory, redelivery is driven by acks.
    async fn mark_delivered(&self, id: &str, user: &str) -> Result<()>;
    /// Records the user's ack; the message will not be redelivered to that user.
    async fn ack(&self, user: &str, id: &str) -> Result<AckOutcome>;
    /// Per-recipient status, or `None` for an unknown (or purged) id.
    async fn status(&self, id: &str) -> Result<Option<MessageStatus>>;
    /// Marks recipients of messages expired at `now_ms` as expired and purges old records.
    /// Returns how many recipients expired.
    async fn expire(&self, now_ms: u64) -> Result<u64>;

    /// Registers a device token (for its user), or updates it; a dead token is live again.
    async fn put_device(&self, device: NewDevice) -> Result<DeviceSaved>;
    /// Forgets a device token; `false` if it was not registered.
    async fn delete_device(&self, token: &str) -> Result<bool>;
    /// A user's devices, live and dead, ordered by token.
    async fn devices(&self, user: &str) -> Result<Vec<Device>>;
    /// Marks a token dead since `at_ms` (APNs 410 with Apple's timestamp); `false` if it is
    /// not registered. A registration newer than `at_ms` stays live (the app registered again).
    async fn mark_device_dead(&self, token: &str, at_ms: u64) -> Result<bool>;
    /// Claims the (message, device) notification by storing its `pending` record. `false`
    /// when a record exists already (claimed before, by anyone, in any state): do not send.
    async fn claim_mobile(&self, record: &MobileRecord) -> Result<bool>;
    /// Replaces the record of a claimed notification (its state after sending).
    async fn update_mobile(&self, record: &MobileRecord) -> Result<()>;
    /// Up to `limit` notifications left `pending` with a `reason` — the vendor or the proxy
    /// was not reached, so nothing was delivered — and last updated before `before_ms`, with
    /// what to send. A `pending` record without a reason (claimed, then the sender died) is
    /// not listed: it may have been written to APNs, and resending could duplicate it.
    async fn retryable_mobile(&self, before_ms: u64, limit: usize) -> Result<Vec<RetryMobile>>;
    /// Takes a listed notification for another round: `true` for one caller only (its
    /// `updated_at_ms` still matches and it is still `pending`), which moves it to `now_ms`.
    async fn retake_mobile(&self, record: &MobileRecord, now_ms: u64) -> Result<bool>;
}

/// A mobile notification to send again (see [`MessageStore::retryable_mobile`]).
#[derive(Debug, Clone)]
pub struct RetryMobile {
    pub record: MobileRecord,
    pub notification: Arc<Notification>,
    pub expires_at_ms: u64,
}

/// A new message id: UUIDv7, so ids sort by acceptance time.
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
