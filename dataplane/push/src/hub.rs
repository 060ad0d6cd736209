//! This node's connections, by user: routes, fan-out of delivery batches, drain.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pushcluster_node::{DeliveryBatch, NodeId, NodeSink, Outcome};
use pushcluster_proto::frame::FrameTemplate;
use pushcluster_routing::{RouteError, RouteTable};
use pushcluster_telemetry::Metrics;
use tokio::sync::mpsc;

const SHARDS: usize = 64;

/// A delivery queued to a connection: the message's frame template (shared by every
/// recipient of the message on this node) and the user's seq. The connection renders the
/// frame when it writes it, so a large payload to many users is held once.
#[derive(Debug)]
pub struct Outbound {
    /// Not a message: the connection re-reads the store (after the route table recovered).
    pub resync: bool,
    pub id: Arc<str>,
    pub seq: u64,
    pub created_at_ms: u64,
    pub frame: Option<Arc<FrameTemplate>>,
}

impl Outbound {
    /// The bytes this delivery counts against its connection's queue: its frame as written.
    pub fn bytes(&self) -> usize {
        self.frame.as_ref().map_or(0, |f| f.len_without_seq() + 20)
    }
}

struct Entry {
    conn: u64,
    tx: mpsc::Sender<Arc<Outbound>>,
    /// Frame bytes in `tx`'s queue (the connection subtracts what it takes out).
    queued: Arc<AtomicUsize>,
    /// Most frame bytes `queued` may reach (one frame alone may exceed it).
    max_bytes: usize,
}

impl Entry {
    /// Queues `out` unless the queue is full in count or in bytes.
    fn offer(&self, out: &Arc<Outbound>) -> Result<(), mpsc::error::TrySendError<()>> {
        let len = out.bytes();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(mpsc::error::TrySendError::Full(()));
        }
        self.tx.try_send(out.clone()).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => mpsc::error::TrySendError::Full(()),
                mpsc::error::TrySendError::Closed(_) => mpsc::error::TrySendError::Closed(()),
            }
        })
    }
}

/// user → this node's connections of that user.
pub struct Hub {
    node: NodeId,
    routes: Arc<dyn RouteTable>,
    shards: Vec<Mutex<HashMap<String, Vec<Entry>>>>,
    next_conn: AtomicU64,
    draining: AtomicBool,
    /// A route write failed since the last successful heartbeat.
    degraded: AtomicBool,
    metrics: Metrics,
}

/// A registered connection's receiving half.
pub struct Registration {
    pub conn: u64,
    pub rx: mpsc::Receiver<Arc<Outbound>>,
    /// Frame bytes waiting in `rx`: subtract each frame's length when taking it out.
    pub queued: Arc<AtomicUsize>,
}

impl Hub {
    pub fn new(node: NodeId, routes: Arc<dyn RouteTable>, metrics: Metrics) -> Hub {
        Hub {
            node,
            routes,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_conn: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn routes(&self) -> &Arc<dyn RouteTable> {
        &self.routes
    }

    fn shard(&self, user: &str) -> &Mutex<HashMap<String, Vec<Entry>>> {
        // FNV-1a: stable and cheap.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in user.as_bytes() {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
        &self.shards[(h % SHARDS as u64) as usize]
    }

    fn has_user(&self, user: &str) -> bool {
        self.shard(user)
            .lock()
            .expect("hub lock")
            .get(user)
            .is_some_and(|v| !v.is_empty())
    }

    /// Number of this user's connections here.
    pub fn connections_of(&self, user: &str) -> usize {
        self.shard(user)
            .lock()
            .expect("hub lock")
            .get(user)
            .map_or(0, Vec::len)
    }

    /// Adds a connection and, for the user's first one here, writes the route **before**
    /// returning, so that anything dispatched after this returns is forwarded here or found
    /// by the replay that follows. Its queue holds at most `queue` messages and `max_bytes`
    /// frame bytes.
    pub async fn register(
        &self,
        user: &str,
        queue: usize,
        max_bytes: usize,
    ) -> Result<Registration, RouteError> {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let first = {
            let mut shard = self.shard(user).lock().expect("hub lock");
            let list = shard.entry(user.to_owned()).or_default();
            list.push(Entry {
                conn,
                tx,
                queued: queued.clone(),
                max_bytes,
            });
            list.len() == 1
        };
        if first && let Err(e) = self.routes.add(&self.node, &[user]).await {
            // Keep the client: the heartbeat re-adds every local user once the route table
            // is back, then asks every connection to re-read the store (resync).
            tracing::warn!(%user, error = %e, "route not written; will retry by heartbeat");
            self.degraded.store(true, Ordering::SeqCst);
        }
        Ok(Registration { conn, rx, queued })
    }

    /// Removes `conn` (idempotent). Drops the route when it was the user's last connection here.
    pub async fn unregister(&self, user: &str, conn: u64) {
        if self.remove_local(user, conn) {
            self.drop_route(user).await;
        }
    }

    /// Returns true when the user has no connection left here.
    fn remove_local(&self, user: &str, conn: u64) -> bool {
        let mut shard = self.shard(user).lock().expect("hub lock");
        let Some(list) = shard.get_mut(user) else {
            return false;
        };
        let before = list.len();
        list.retain(|e| e.conn != conn);
        let removed = list.len() != before;
        if list.is_empty() {
            shard.remove(user);
            return removed;
        }
        false
    }

    async fn drop_route(&self, user: &str) {
        if self.is_draining() {
            return; // the drain removes every entry in one pass
        }
        if let Err(e) = self.routes.remove(&self.node, &[user]).await {
            tracing::warn!(%user, error = %e, "failed to remove route");
        }
        // A connection of the same user may have registered meanwhile: restore its route.
        if self.has_user(user)
            && let Err(e) = self.routes.add(&self.node, &[user]).await
        {
            tracing::warn!(%user, error = %e, "failed to restore route");
        }
    }

    /// Queues a batch's entries to every connection of their users; the frame of each
    /// message is built once. A connection whose queue is full (in messages or in bytes) is
    /// removed from the hub: it drains what it has, then closes with "reconnect to resume";
    /// what it missed is in the store.
    pub async fn deliver_batch(&self, batch: DeliveryBatch) -> Vec<Outcome> {
        let templates: Vec<(Arc<str>, u64, Arc<FrameTemplate>)> = batch
            .messages
            .iter()
            .map(|m| {
                (
                    Arc::from(m.id.as_str()),
                    m.created_at_ms,
                    Arc::new(FrameTemplate::new(&m.id, &m.payload)),
                )
            })
            .collect();
        let mut outcomes = Vec::with_capacity(batch.entries.len());
        let mut emptied = Vec::new();
        for e in batch.entries {
            let (id, created_at_ms, frame) = &templates[e.message as usize];
            let out = Arc::new(Outbound {
                resync: false,
                id: id.clone(),
                seq: e.seq,
                created_at_ms: *created_at_ms,
                frame: Some(frame.clone()),
            });
            let mut shard = self.shard(&e.user).lock().expect("hub lock");
            let Some(list) = shard.get_mut(&e.user) else {
                outcomes.push(Outcome::NotHere);
                continue;
            };
            let mut overflowed = 0;
            list.retain(|c| match c.offer(&out) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    overflowed += 1;
                    false
                }
                // The connection task is gone; it unregisters itself.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            if overflowed > 0 {
                self.metrics.queue_overflows.inc_by(overflowed);
                tracing::info!(user = %e.user, overflowed, "send queue overflow; closing slow connection");
            }
            if list.is_empty() {
                shard.remove(&e.user);
                drop(shard);
                emptied.push(e.user);
                // Nothing queued: the message is in the store and replayed on reconnect.
                outcomes.push(Outcome::NotHere);
            } else {
                outcomes.push(Outcome::Queued);
            }
        }
        for user in emptied {
            self.drop_route(&user).await;
        }
        outcomes
    }

    /// Starts draining: every route entry of this node goes in one pass and its liveness
    /// ends, so dispatch stops sending here; then every connection's queue is closed, so
    /// each task finishes what it has and closes with "going away, reconnect".
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let users = self.user_names();
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        for chunk in refs.chunks(10_000) {
            if let Err(e) = self.routes.remove(&self.node, chunk).await {
                tracing::warn!(error = %e, "removing this node's routes failed; readers drop them once its liveness ends");
            }
        }
        if let Err(e) = self.routes.leave(&self.node).await {
            tracing::warn!(error = %e, "ending this node's liveness failed; it expires");
        }
        for shard in &self.shards {
            shard.lock().expect("hub lock").clear();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Every user with a connection here (for re-registration and drain).
    pub fn user_names(&self) -> Vec<String> {
        let mut users = Vec::new();
        for shard in &self.shards {
            users.extend(shard.lock().expect("hub lock").keys().cloned());
        }
        users
    }

    /// Marks route writes as failing (set by the heartbeat on errors).
    pub fn set_degraded(&self) {
        self.degraded.store(true, Ordering::SeqCst);
    }

    /// After a successful heartbeat: if routes were missing for a while, messages may have
    /// been dispatched for local users without being forwarded here; make every connection
    /// re-read the store.
    pub fn heartbeat_ok(&self) {
        if !self.degraded.swap(false, Ordering::SeqCst) {
            return;
        }
        tracing::info!("route table recovered; resyncing local connections");
        self.resync(&self.user_names());
    }

    /// Makes every connection of `users` re-read its messages from the store.
    pub fn resync(&self, users: &[String]) {
        let poke = Arc::new(Outbound {
            resync: true,
            id: Arc::from(""),
            seq: 0,
            created_at_ms: 0,
            frame: None,
        });
        for user in users {
            if let Some(list) = self.shard(user).lock().expect("hub lock").get(user) {
                for e in list {
                    let _ = e.offer(&poke);
                }
            }
        }
    }

    /// Number of users with at least one connection here.
    pub fn users(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("hub lock").len())
            .sum()
    }
}

#[async_trait]
impl NodeSink for Hub {
    async fn deliver(&self, batch: DeliveryBatch) -> Vec<Outcome> {
        self.deliver_batch(batch).await
    }
}
