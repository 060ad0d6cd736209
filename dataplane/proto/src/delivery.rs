//! What travels from dispatch to a push node: one message for one user.

use std::sync::Arc;

use serde_json::value::RawValue;

/// A message addressed to one user, with that user's sequence number.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub user: String,
    pub id: String,
    pub seq: u64,
    pub payload: Arc<RawValue>,
    /// When the message was accepted (unix ms), for the delivery-latency histogram.
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Identity of a push node: its pod IP (or any host) and gRPC port, e.g. `10.0.0.7:7001`.
/// Standalone mode uses a single local node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub String);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Current time in unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
