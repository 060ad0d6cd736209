//! Message storage.
//!
//! - [`MessageStore`]: what the data plane needs from storage — accept a batch of messages
//!   in one durable write (messages, each recipient's per-user `seq`, and a *to-dispatch*
//!   mark: the [outbox](outbox)), hand out and clear outbox batches, list a user's messages
//!   in order, record per-user **watermarks** (acked-through and delivered-through seqs: acks
//!   are cumulative), expire, and report status.
//! - [`outbox`]: the batches accepted but not yet dispatched, claimed by dispatch workers
//!   with a lease.
//! - [`redb`]: the embedded, crash-safe implementation behind `pushd standalone`.
//! - [`mongo`]: the cluster's implementation on MongoDB.
//!
//! Per-recipient durable state is one index entry `(user, seq) → message`, written with the
//! message; a recipient's state (pending, delivered, acked, expired) is derived from its seq,
//! the user's watermarks and the message's expiry, never written per delivery.
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

#[cfg(test)]
mod conformance;
pub mod mongo;
pub mod outbox;
pub mod redb;

pub use outbox::{BatchId, OutboxBatch};
pub use pushcluster_proto::payload::Payload;

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
    pub payload: Payload,
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
    /// Newly stored. Its recipients' seqs are final in the ready batch
    /// ([`Accepted::batch`]): a store shared by several accepting nodes may move a seq that
    /// another node took before the batch is ready.
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
    pub payload: Payload,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// A page of a user's pending messages.
#[derive(Debug, Clone, Default)]
pub struct PendingPage {
    /// Unexpired messages with `seq > after` (unacked ones only, for [`MessageStore::pending`]),
    /// in seq order.
    pub items: Vec<Pending>,
    /// A seq every message at or below which is in this page, an earlier one, acked (for
    /// `pending`) or expired: a reader that has everything up to it may move its position
    /// there. The highest seq assigned to the user when the page was read, where the store
    /// can prove nothing below it is still being written; otherwise the end of the run of
    /// consecutive seqs from `after` the read found. Items above it come after a seq that
    /// may still be being stored: a reader keeping order waits a little for it.
    pub high_seq: u64,
}

/// Outcome of an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The user's acked-through watermark moved up to the acked seq.
    Acked,
    /// The watermark was at or above it already: nothing changed.
    AlreadyFinal,
}

/// Storage used by collect (submit, status), dispatch (the outbox), push (reads, watermarks)
/// and the sweeper.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Accepts `batch` in one durable write — the messages, every recipient's next seq (per
    /// user, in batch order, no gaps, no duplicates) and the batch's outbox mark — and returns
    /// only once it survives a crash, one result per message in order, with the outbox batch
    /// holding the new ones (`None` when every message was a duplicate).
    ///
    /// An `Err` of the whole means nothing was accepted. A per-message `Err` means that
    /// message's fate is not known yet (its completion failed half-way); a retry with the same
    /// idempotency key finds it or stores it, never both.
    async fn submit(&self, batch: Vec<NewMessage>) -> Result<Accepted>;

    /// Up to `limit` outbox batches that no worker holds (never claimed, or their lease ran
    /// out), now leased to `owner` until `lease` from now.
    async fn claim_outbox(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<OutboxBatch>>;
    /// One outbox batch, if still marked (a worker was told about it by the accepting node).
    async fn outbox_batch(&self, id: &BatchId) -> Result<Option<OutboxBatch>>;
    /// Clears the marks of dispatched batches (unknown ids are ignored).
    async fn complete_outbox(&self, ids: &[BatchId]) -> Result<()>;

    /// Up to `limit` unacked, unexpired messages of `user` with `seq > after`, in order:
    /// what a device without a position of its own needs.
    async fn pending(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage>;
    /// Up to `limit` unexpired messages of `user` with `seq > after`, acked or not, in order:
    /// what one device that has seen everything up to `after` still needs, whatever the
    /// user's other devices acked.
    async fn backlog(&self, user: &str, after: u64, limit: usize) -> Result<PendingPage>;
    /// Records that everything of `user` up to `seq` was written to one of their sockets.
    /// Buffered and coalesced: the status is advisory, redelivery is driven by acks.
    async fn mark_delivered(&self, user: &str, seq: u64) -> Result<()>;
    /// Records the user's cumulative ack of everything up to `seq`: none of it is in
    /// [`MessageStore::pending`] any more. Acks of many connections share one write.
    async fn ack(&self, user: &str, seq: u64) -> Result<AckOutcome>;
    /// Per-recipient status, or `None` for an unknown (or purged) id.
    async fn status(&self, id: &str) -> Result<Option<MessageStatus>>;
    /// Purges the records of messages whose retention (expiry + the store's retention) ended
    /// by `now_ms`; returns how many. Expired messages are skipped by reads before that.
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

/// What [`MessageStore::submit`] accepted.
#[derive(Debug)]
pub struct Accepted {
    /// One per submitted message, in order.
    pub results: Vec<Result<Submitted>>,
    /// The outbox batch of the new messages (`None` when every message was a duplicate),
    /// completely stored: ready for dispatch. It is leased to the caller's dispatch for a
    /// short while; a batch never handed over is claimed by a worker when the lease runs out.
    pub batch: Option<OutboxBatch>,
}

impl Accepted {
    /// The one result of a single-message submit.
    pub fn single(self) -> Result<Submitted> {
        self.results
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(Error::Corrupt("no result for a submitted message".into())))
    }
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
