//! Push: the node that holds client WebSockets.
//!
//! - [`upgrade`]: `GET /ws` — admission and token check before the upgrade (JSON reasons:
//!   401 bad token, 429 connect rate or per-user limit, 503 node full or draining), then the
//!   WebSocket handshake. [`PushService::router`] is the client surface.
//! - [`admission`]: connect rate per source IP, connections per node and per user.
//! - [`hub`]: this node's user → connections map; writes a user's route on their first
//!   connection here and removes it with the last; fans delivery batches out to each
//!   device's send queue (bounded in messages and bytes), each message's frame built once.
//! - [`conn`]: one task per connection: replay what the user missed, then live deliveries in
//!   seq order, acks, heartbeats, idle timeout, drain.
//! - [`heartbeat`]: this node's liveness in the route table, and recovery after the table
//!   lost its entries. The hub is the [`NodeSink`](pushcluster_node::NodeSink) that the
//!   node's gRPC service (or standalone's in-process transport) delivers into.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use pushcluster_auth::TokenVerifier;
use pushcluster_store::MessageStore;
use pushcluster_telemetry::Metrics;

pub mod admission;
pub mod conn;
pub mod heartbeat;
pub mod hub;
pub mod upgrade;

pub use admission::{Admission, AdmissionLimits};
pub use hub::Hub;

/// Tunables of a push node.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Messages queued per connection before it is closed as too slow.
    pub send_queue: usize,
    /// Frame bytes queued per connection before it is closed as too slow.
    pub send_queue_bytes: usize,
    /// WebSocket ping period.
    pub ping_interval: Duration,
    /// A connection with no inbound frame for this long is closed.
    pub idle_timeout: Duration,
    /// A socket write that takes longer closes the connection.
    pub write_timeout: Duration,
    /// tungstenite read buffer per connection (bytes); small keeps idle connections cheap.
    pub read_buffer: usize,
    /// Largest client frame accepted.
    pub max_client_frame: usize,
    /// Pending messages read per store round trip during replay.
    pub replay_page: usize,
    /// How long a connection holds back messages behind a missing seq that may still be
    /// being stored, before it sends them anyway.
    pub reorder_window: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            send_queue: 1024,
            send_queue_bytes: 1 << 20,
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            read_buffer: 1024,
            max_client_frame: 16 * 1024,
            replay_page: 256,
            reorder_window: Duration::from_secs(2),
        }
    }
}

/// Everything a connection task needs.
pub struct PushService {
    pub hub: Arc<Hub>,
    pub store: Arc<dyn MessageStore>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub admission: Arc<Admission>,
    pub metrics: Metrics,
    pub config: PushConfig,
}

impl PushService {
    /// The client surface: `GET /ws`.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/ws", axum::routing::get(upgrade::handle))
            .with_state(self.clone())
    }
}
