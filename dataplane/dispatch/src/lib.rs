//! Dispatch: where is a message routed?
//!
//! - [`routes`]: the [`RouteTable`] seam (user → nodes holding the user's connections), with the
//!   in-memory table used by `pushd standalone`. The cluster implements it on Redis.
//! - [`transport`]: the [`NodeTransport`] seam that carries deliveries to a push node
//!   (in-process channels in standalone, a gRPC stream per node in the cluster).
//! - [`mobile`]: the [`MobileSender`] seam and [`MobilePush`], which sends a message's
//!   `notification` to offline (or all) recipients' registered devices in the background.
//! - [`Dispatcher`]: for each recipient of a stored message, look up the nodes and forward.
//!   Routes are looked up only after the message is stored, and push nodes write the route
//!   before replaying pending messages, so a message stored while its user connects is either
//!   forwarded or replayed — never neither.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pushcluster_proto::delivery::{Delivery, NodeId};
use pushcluster_store::StoredMessage;

pub mod mobile;
pub mod routes;
pub mod transport;

pub use mobile::{MobilePush, MobileRequest, MobileResult, MobileSender};
pub use routes::{MemoryRouteTable, RouteError, RouteTable};
pub use transport::{NodeTransport, Outcome, TransportError};

/// Forwards stored messages to the nodes that hold their recipients.
#[derive(Clone)]
pub struct Dispatcher {
    routes: Arc<dyn RouteTable>,
    transport: Arc<dyn NodeTransport>,
    stages: Option<pushcluster_telemetry::Metrics>,
    mobile: Option<MobilePush>,
}

/// What happened to one message, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Deliveries handed to a node that holds the user.
    pub forwarded: usize,
    /// Recipients with no live route: their message stays pending until they connect.
    pub offline: usize,
    /// Deliveries that could not be forwarded now (they stay pending).
    pub failed: usize,
    /// Recipients whose mobile devices were handed the message (sent in the background).
    pub mobile: usize,
}

/// What dispatch learnt about one recipient's connections.
#[derive(Default)]
struct Reach {
    /// A node queued the message to one of the user's connections.
    queued: bool,
    /// The lookup or a forward failed: whether the user is connected is not known.
    unsure: bool,
}

impl Dispatcher {
    pub fn new(routes: Arc<dyn RouteTable>, transport: Arc<dyn NodeTransport>) -> Self {
        Dispatcher {
            routes,
            transport,
            stages: None,
            mobile: None,
        }
    }

    /// Sends messages with a `notification` to recipients' mobile devices (per their
    /// `mobile` policy) through `mobile`.
    pub fn with_mobile(mut self, mobile: MobilePush) -> Self {
        self.mobile = Some(mobile);
        self
    }

    /// Records `route_lookup` and `forward` times in `metrics`.
    pub fn with_metrics(mut self, metrics: pushcluster_telemetry::Metrics) -> Self {
        self.stages = Some(metrics);
        self
    }

    fn observe(&self, stage: &'static str, start: std::time::Instant) {
        if let Some(m) = &self.stages {
            m.observe_stage(stage, start);
        }
    }

    /// Forwards `msg` to every node holding one of its recipients. Never loses anything: what
    /// is not forwarded stays pending in the store and is replayed when the user connects.
    pub async fn dispatch(&self, msg: &StoredMessage) -> DispatchReport {
        let mut report = DispatchReport::default();
        let mut per_node: BTreeMap<NodeId, Vec<Delivery>> = BTreeMap::new();
        // Who was reached matters only for a message that may go to mobile devices.
        let track = self.mobile.is_some() && msg.notification.is_some();
        let mut reach: HashMap<String, Reach> = HashMap::new();
        for (user, seq) in &msg.recipients {
            let start = std::time::Instant::now();
            let nodes = self.lookup_with_retry(user).await;
            self.observe("route_lookup", start);
            let nodes = match nodes {
                Ok(nodes) => nodes,
                Err(e) => {
                    tracing::warn!(%user, error = %e, "route lookup failed; message stays pending");
                    report.failed += 1;
                    if track {
                        reach.entry(user.clone()).or_default().unsure = true;
                    }
                    continue;
                }
            };
            if nodes.is_empty() {
                report.offline += 1;
            }
            for node in nodes {
                per_node.entry(node).or_default().push(Delivery {
                    user: user.clone(),
                    id: msg.id.clone(),
                    seq: *seq,
                    payload: msg.payload.clone(),
                    created_at_ms: msg.created_at_ms,
                    expires_at_ms: msg.expires_at_ms,
                });
            }
        }
        for (node, batch) in per_node {
            let users: Vec<String> = batch.iter().map(|d| d.user.clone()).collect();
            let start = std::time::Instant::now();
            let delivered = self.deliver_with_retry(&node, batch).await;
            self.observe("forward", start);
            match delivered {
                Ok(outcomes) => {
                    for (user, outcome) in users.iter().zip(outcomes) {
                        match outcome {
                            Outcome::Queued => {
                                report.forwarded += 1;
                                if track {
                                    reach.entry(user.clone()).or_default().queued = true;
                                }
                            }
                            Outcome::NotHere => {
                                // Stale route: remove only this node's entry.
                                report.offline += 1;
                                if let Err(e) = self.routes.remove(user, &node).await {
                                    tracing::warn!(%user, %node, error = %e, "failed to drop stale route");
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, retry = e.is_retryable(), "forwarding failed; messages stay pending");
                    report.failed += users.len();
                    for user in users.into_iter().filter(|_| track) {
                        reach.entry(user).or_default().unsure = true;
                    }
                }
            }
        }
        if let Some(mobile) = self.mobile.as_ref().filter(|_| track) {
            for (user, _) in &msg.recipients {
                let r = reach.get(user);
                // A user whose reach is unsure counts as connected: the message stays
                // pending and reaches them on reconnect; an `always` message goes anyway.
                let connected = r.is_some_and(|r| r.queued || r.unsure);
                if mobile::wants_mobile(msg, connected) {
                    mobile.spawn(msg, user);
                    report.mobile += 1;
                }
            }
        }
        report
    }

    /// Looks a user up, retrying while the route table is unavailable (e.g. Redis
    /// restarting): a message whose lookup gives up stays pending until the user reconnects,
    /// because push nodes only resync when *their* route writes fail or were lost.
    async fn lookup_with_retry(&self, user: &str) -> Result<Vec<NodeId>, RouteError> {
        let mut delay = std::time::Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.routes.lookup(user).await {
                Err(e) if attempt < LOOKUP_ATTEMPTS => {
                    tracing::debug!(%user, error = %e, attempt, "route lookup failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Delivers a batch, retrying retryable failures with backoff (the node dedupes by seq).
    async fn deliver_with_retry(
        &self,
        node: &NodeId,
        batch: Vec<Delivery>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let mut delay = std::time::Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.transport.deliver(node, batch.clone()).await {
                Err(e) if e.is_retryable() && attempt < RETRIES => {
                    tracing::debug!(%node, error = %e, attempt, "retrying delivery");
                    tokio::time::sleep(delay).await;
                    delay *= 3;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Route lookups before giving up (about 10 s of backoff).
const LOOKUP_ATTEMPTS: u32 = 9;

/// Attempts per batch before giving up (what is not forwarded stays pending in the store).
const RETRIES: u32 = 4;

pub mod service;

#[cfg(test)]
mod tests;
