//! Carrying deliveries to a push node.

pub mod addressing;
pub mod grpc;

use async_trait::async_trait;
use pushcluster_proto::delivery::{Delivery, NodeId};

/// What a node did with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Queued to at least one of the user's connections on that node.
    Queued,
    /// The node holds no connection of that user: the route is stale.
    NotHere,
}

/// Failure to reach a node. Deliveries are never lost by a failure: they stay pending.
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

/// Sends a batch of deliveries to a node; returns one [`Outcome`] per delivery, in order.
#[async_trait]
pub trait NodeTransport: Send + Sync + 'static {
    async fn deliver(
        &self,
        node: &NodeId,
        batch: Vec<Delivery>,
    ) -> Result<Vec<Outcome>, TransportError>;
}
