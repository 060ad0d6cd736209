//! Node: what travels from dispatch to the push node holding a user.
//!
//! - [`batch`]: a [`DeliveryBatch`] — each message once, plus one `(user, seq, message)`
//!   entry per delivery — built per node and split below [`MAX_MESSAGE_BYTES`].
//! - [`NodeSink`]: what a push node does with a batch (its hub queues each entry to the
//!   user's connections); one [`Outcome`] per entry.
//! - [`NodeTransport`]: how dispatch reaches a node: [`LocalTransport`] in one process,
//!   [`grpc::GrpcTransport`] (one long-lived stream per node) in the cluster, served by
//!   [`grpc::NodeService`] on the push node.
#![forbid(unsafe_code)]

use async_trait::async_trait;
pub use pushcluster_proto::delivery::NodeId;

pub mod batch;
pub mod grpc;
mod local;

pub use batch::{BatchBuilder, BatchMessage, DeliveryBatch, Entry};
pub use local::LocalTransport;

/// The largest gRPC message either end of a `Node.Deliver` stream accepts; senders split
/// batches well below it.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// What a node did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Queued to at least one of the user's connections on that node.
    Queued,
    /// The node holds no connection of that user: the route is stale.
    NotHere,
}

/// Failure to reach a node. Deliveries are never lost by a failure: they stay in the store.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("node {node} unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    #[error("node {node} failed: {reason}")]
    Failed { node: NodeId, reason: String },
}

impl TransportError {
    /// Whether trying again later may succeed (the one place that decides retry vs give up).
    pub fn is_retryable(&self) -> bool {
        matches!(self, TransportError::Unreachable { .. })
    }
}

/// Sends a batch to a node; returns one [`Outcome`] per entry, in order.
#[async_trait]
pub trait NodeTransport: Send + Sync + 'static {
    async fn deliver(
        &self,
        node: &NodeId,
        batch: DeliveryBatch,
    ) -> Result<Vec<Outcome>, TransportError>;
}

/// A push node's side: queue a batch's entries to the users' connections.
#[async_trait]
pub trait NodeSink: Send + Sync + 'static {
    async fn deliver(&self, batch: DeliveryBatch) -> Vec<Outcome>;
}
