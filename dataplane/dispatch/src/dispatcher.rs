//! Dispatching one outbox batch: route, forward, mobile, clear.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use pushcluster_node::{
    BatchBuilder, BatchMessage, NodeId, NodeTransport, Outcome, TransportError,
};
use pushcluster_routing::{RouteError, RouteTable};
use pushcluster_store::{BatchId, MessageStore, OutboxBatch};

use crate::mobile::{self, MobilePush};
use futures_util::StreamExt;

/// Users whose mobile notifications are claimed at once (each a device read and a write).
const MOBILE_CLAIMS_IN_FLIGHT: usize = 32;

/// Tunables of the outbox workers.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Who this worker is, in outbox leases.
    pub owner: String,
    /// How long a claimed batch stays this worker's.
    pub lease: Duration,
    /// How often to look for batches whose lease ran out (lost hand-offs, dead workers).
    pub claim_every: Duration,
    /// Batches dispatched at once.
    pub in_flight: usize,
    /// Largest delivery batch sent to a node (below the node's maximum message size).
    pub max_batch_bytes: usize,
    /// Least time between two clears of dispatched batches' marks: the batches finished
    /// meanwhile share one store command (a mark cleared late is at worst dispatched again
    /// after a crash, which is harmless).
    pub clear_every: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            owner: format!("dispatch-{}", std::process::id()),
            lease: Duration::from_secs(30),
            claim_every: Duration::from_secs(2),
            in_flight: 8,
            max_batch_bytes: pushcluster_node::MAX_MESSAGE_BYTES / 4,
            clear_every: Duration::from_millis(100),
        }
    }
}

/// Forwards accepted batches to the nodes that hold their recipients.
#[derive(Clone)]
pub struct Dispatcher {
    pub(crate) store: Arc<dyn MessageStore>,
    routes: Arc<dyn RouteTable>,
    transport: Arc<dyn NodeTransport>,
    stages: Option<pushcluster_telemetry::Metrics>,
    mobile: Option<MobilePush>,
    pub(crate) config: DispatchConfig,
}

/// What happened to one batch, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Deliveries queued by a node that holds the user.
    pub forwarded: usize,
    /// Recipients with no live route: their message waits in the store until they connect.
    pub offline: usize,
    /// Deliveries that could not be forwarded now: the batch stays in the outbox and is
    /// dispatched again when its lease runs out.
    pub failed: usize,
    /// Recipients whose mobile devices were handed the message (sent in the background).
    pub mobile: usize,
}

/// What dispatch learnt about one recipient's connections.
#[derive(Default, Clone, Copy)]
struct Reach {
    /// A node queued the message to one of the user's connections.
    queued: bool,
    /// The lookup or a forward failed: whether the user is connected is not known.
    unsure: bool,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn MessageStore>,
        routes: Arc<dyn RouteTable>,
        transport: Arc<dyn NodeTransport>,
        config: DispatchConfig,
    ) -> Self {
        Dispatcher {
            store,
            routes,
            transport,
            stages: None,
            mobile: None,
            config,
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

    fn observe(&self, stage: &'static str, start: Instant) {
        if let Some(m) = &self.stages {
            m.observe_stage(stage, start);
        }
    }

    /// Dispatches `batch` and clears its outbox mark unless something must be tried again.
    pub async fn dispatch_and_clear(&self, batch: &OutboxBatch) -> DispatchReport {
        let report = self.dispatch(batch).await;
        if settled(batch, &report) {
            self.clear(std::slice::from_ref(&batch.id)).await;
        }
        report
    }

    /// Clears the outbox marks of dispatched batches, in one store write.
    pub async fn clear(&self, ids: &[BatchId]) {
        for chunk in ids.chunks(CLEAR_CHUNK) {
            if let Err(e) = self.store.complete_outbox(chunk).await {
                // Dispatched again after the lease: harmless (nodes drop what they have seen).
                tracing::warn!(batches = chunk.len(), error = %e, "clearing outbox marks failed");
            }
        }
    }

    /// Forwards every message of `batch` to every node holding one of its recipients, and
    /// starts mobile sends. Never loses anything: what is not forwarded is in the store.
    pub async fn dispatch(&self, batch: &OutboxBatch) -> DispatchReport {
        let mut report = DispatchReport::default();
        // Everyone in the batch, once, in one lookup.
        let mut users: Vec<&str> = batch
            .messages
            .iter()
            .flat_map(|m| m.recipients.iter().map(|(u, _)| u.as_str()))
            .collect();
        users.sort_unstable();
        users.dedup();
        let start = Instant::now();
        let looked_up = self.lookup_with_retry(&users).await;
        self.observe("route_lookup", start);
        let track =
            self.mobile.is_some() && batch.messages.iter().any(|m| m.notification.is_some());
        let mut reach: HashMap<&str, Reach> = HashMap::new();
        let nodes_of: HashMap<&str, Vec<NodeId>> = match looked_up {
            Ok(nodes) => users.iter().copied().zip(nodes).collect(),
            Err(e) => {
                tracing::warn!(users = users.len(), error = %e, "route lookup failed; batch stays in the outbox");
                report.failed = batch.deliveries();
                for u in &users {
                    reach.entry(u).or_default().unsure = true;
                }
                self.start_mobile(batch, &reach, &mut report).await;
                return report;
            }
        };
        // Per node: the messages it needs, each once per delivery batch.
        let mut per_node: BTreeMap<&NodeId, BatchBuilder> = BTreeMap::new();
        for (i, m) in batch.messages.iter().enumerate() {
            let shared = Arc::new(BatchMessage::of(m));
            for (user, seq) in &m.recipients {
                let nodes = &nodes_of[user.as_str()];
                if nodes.is_empty() {
                    report.offline += 1;
                }
                for node in nodes {
                    per_node
                        .entry(node)
                        .or_insert_with(|| BatchBuilder::new(self.config.max_batch_bytes))
                        .push(i, &shared, user, *seq);
                }
            }
        }
        let start = Instant::now();
        let sends = per_node.into_iter().map(|(node, builder)| async move {
            let mut results = Vec::new();
            for b in builder.finish() {
                let users: Vec<String> = b.entries.iter().map(|e| e.user.clone()).collect();
                let outcome = self.deliver_with_retry(node, b).await;
                results.push((users, outcome));
            }
            (node, results)
        });
        let delivered = join_all(sends).await;
        self.observe("forward", start);
        for (node, results) in delivered {
            let mut stale = Vec::new();
            for (users, outcome) in results {
                match outcome {
                    Ok(outcomes) => {
                        for (user, o) in users.iter().zip(outcomes) {
                            match o {
                                Outcome::Queued => {
                                    report.forwarded += 1;
                                    if track {
                                        reach
                                            .entry(nodes_key(&nodes_of, user))
                                            .or_default()
                                            .queued = true;
                                    }
                                }
                                Outcome::NotHere => {
                                    report.offline += 1;
                                    stale.push(user.clone());
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%node, error = %e, retry = e.is_retryable(), "forwarding failed");
                        report.failed += users.len();
                        for user in users.iter().filter(|_| track) {
                            reach.entry(nodes_key(&nodes_of, user)).or_default().unsure = true;
                        }
                    }
                }
            }
            if !stale.is_empty() {
                // Stale routes: remove only this node's entries.
                stale.sort_unstable();
                stale.dedup();
                let refs: Vec<&str> = stale.iter().map(String::as_str).collect();
                if let Err(e) = self.routes.remove(node, &refs).await {
                    tracing::warn!(%node, error = %e, "failed to drop stale routes");
                }
            }
        }
        if track {
            self.start_mobile(batch, &reach, &mut report).await;
        }
        report
    }

    /// Claims the mobile notifications of the offline recipients (durably, before the outbox
    /// mark can go), then sends them in the background. A claim the store refused counts as
    /// a failure: the batch stays in the outbox and is claimed again (claimed devices are
    /// skipped then).
    async fn start_mobile(
        &self,
        batch: &OutboxBatch,
        reach: &HashMap<&str, Reach>,
        report: &mut DispatchReport,
    ) {
        let Some(mobile) = &self.mobile else {
            return;
        };
        let mut wanted = Vec::new();
        for m in batch.messages.iter().filter(|m| m.notification.is_some()) {
            for (user, _) in &m.recipients {
                let r = reach.get(user.as_str()).copied().unwrap_or_default();
                // A user whose reach is unsure counts as connected: the message is in the
                // store and reaches them on reconnect; an `always` message goes anyway.
                if mobile::wants_mobile(m, r.queued || r.unsure) {
                    wanted.push((m, user.as_str()));
                }
            }
        }
        let mut wanted = wanted.into_iter();
        let mut claims = futures_util::stream::FuturesUnordered::new();
        loop {
            while claims.len() < MOBILE_CLAIMS_IN_FLIGHT {
                let Some((m, user)) = wanted.next() else {
                    break;
                };
                claims.push(mobile.claim(m, user));
            }
            match claims.next().await {
                Some(Ok(claimed)) => {
                    mobile.send_claimed(claimed);
                    report.mobile += 1;
                }
                Some(Err(_)) => report.failed += 1,
                None => break,
            }
        }
    }

    /// Looks users up, retrying while the route table is unavailable (e.g. Redis
    /// restarting). A batch whose lookup gives up stays in the outbox.
    async fn lookup_with_retry(&self, users: &[&str]) -> Result<Vec<Vec<NodeId>>, RouteError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.routes.lookup(users).await {
                Err(e) if attempt < LOOKUP_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "route lookup failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
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
        batch: pushcluster_node::DeliveryBatch,
    ) -> Result<Vec<Outcome>, TransportError> {
        let mut delay = Duration::from_millis(100);
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

/// Whether a dispatched batch's mark may go: nothing failed (otherwise it stays in the
/// outbox for another round when its lease runs out).
pub fn settled(batch: &OutboxBatch, report: &DispatchReport) -> bool {
    if report.failed > 0 {
        tracing::info!(batch = %batch.id, failed = report.failed, "left in the outbox for another round");
    }
    report.failed == 0
}

/// The key of `user` in the lookup's map (so `reach` borrows from the batch, not `user`).
fn nodes_key<'a>(nodes_of: &HashMap<&'a str, Vec<NodeId>>, user: &str) -> &'a str {
    nodes_of
        .get_key_value(user)
        .map(|(k, _)| *k)
        .expect("every delivered user was looked up")
}

/// Most outbox marks cleared by one store write.
const CLEAR_CHUNK: usize = 1000;

/// Route lookups before giving up (about 10 s of backoff).
const LOOKUP_ATTEMPTS: u32 = 9;

/// Attempts per delivery batch before giving up (the batch stays in the outbox).
const RETRIES: u32 = 4;

#[cfg(test)]
mod tests;
