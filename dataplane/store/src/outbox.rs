//! The outbox: batches of messages accepted but not yet dispatched.
//!
//! Accepting a batch writes its *to-dispatch* mark in the same durable write as the messages
//! (see [`MessageStore::submit`](crate::MessageStore::submit)); the mark is leased to the
//! accepting node's dispatch for [`HANDOFF_LEASE`], so the batch is dispatched at once
//! without another store round trip. A dispatch worker that takes a batch looks its
//! recipients' routes up, forwards, starts mobile sends and then clears the mark; a worker
//! (or an accepting node) that dies leaves its marks to be claimed by any worker once the
//! lease runs out. Dispatching a batch twice is harmless: push nodes drop what a connection
//! has seen by `seq`, and mobile records are claimed before sending.

use std::time::Duration;

use crate::StoredMessage;

/// How long a freshly accepted batch stays leased to the node that accepted it (by default:
/// stores can be told otherwise, e.g. tests that want a lost hand-off retaken at once).
pub const HANDOFF_LEASE: Duration = Duration::from_secs(10);

/// A store's hand-off lease, shared with its writers.
#[derive(Debug, Clone)]
pub(crate) struct HandoffLease(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Default for HandoffLease {
    fn default() -> Self {
        HandoffLease(std::sync::Arc::new(
            HANDOFF_LEASE
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX)
                .into(),
        ))
    }
}

impl HandoffLease {
    pub fn set(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.0.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// When a batch accepted at `now_ms` may be claimed by another worker.
    pub fn until(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The id of an outbox batch (a UUIDv7, so batches sort by acceptance time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub String);

impl BatchId {
    pub fn new() -> BatchId {
        BatchId(crate::new_message_id())
    }
}

impl Default for BatchId {
    fn default() -> Self {
        BatchId::new()
    }
}

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An outbox batch: messages that are stored, with their recipients' seqs, and still have to
/// be dispatched.
#[derive(Debug, Clone)]
pub struct OutboxBatch {
    pub id: BatchId,
    pub messages: Vec<StoredMessage>,
}

impl OutboxBatch {
    /// Deliveries in the batch (recipients summed over its messages).
    pub fn deliveries(&self) -> usize {
        self.messages.iter().map(|m| m.recipients.len()).sum()
    }
}
