//! How collect tells dispatch that a batch was accepted. Losing a hand-off costs latency,
//! never a message: the batch is in the outbox and is claimed when its lease runs out.

use std::time::Duration;

use pushcluster_proto::grpc::WakeRequest;
use pushcluster_proto::grpc::dispatch_client::DispatchClient;
use pushcluster_server::grpc::{InternalChannel, InternalClient};
use pushcluster_store::{BatchId, OutboxBatch};
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use crate::worker::Work;

/// Where collect hands an accepted batch. Never blocks.
pub trait Handoff: Send + Sync + 'static {
    fn accepted(&self, batch: OutboxBatch);
}

/// Into this process's outbox worker (standalone).
pub struct LocalHandoff(pub mpsc::Sender<Work>);

impl Handoff for LocalHandoff {
    fn accepted(&self, batch: OutboxBatch) {
        if let Err(e) = self.0.try_send(Work::Batch(batch)) {
            tracing::debug!(error = %e, "dispatch queue full; the batch waits for its lease");
        }
    }
}

/// Most batch ids in one `Wake`.
const WAKE_BATCH: usize = 512;

/// To the dispatch role over gRPC: ids only, many per `Dispatch.Wake` call.
pub struct RemoteHandoff {
    ids: mpsc::Sender<BatchId>,
}

impl RemoteHandoff {
    /// `addrs` like `http://dispatch:7002`, or several separated by commas (taken in turns;
    /// a failed wake-up is retried once on the next); connects lazily over the internal
    /// channel (internal token, mutual TLS when configured), reconnects by itself.
    pub fn new(internal: &InternalClient, addrs: &str) -> Result<Self, String> {
        let mut clients = Vec::new();
        for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let endpoint = Endpoint::from_shared(addr.to_owned())
                .map_err(|e| format!("bad dispatch address {addr}: {e}"))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5));
            let channel = internal
                .connect_lazy(endpoint, None)
                .map_err(|e| format!("bad dispatch address {addr}: {e}"))?;
            clients.push(DispatchClient::new(channel));
        }
        if clients.is_empty() {
            return Err("no dispatch address".into());
        }
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(wake_loop(clients, rx));
        Ok(RemoteHandoff { ids: tx })
    }
}

impl Handoff for RemoteHandoff {
    fn accepted(&self, batch: OutboxBatch) {
        if self.ids.try_send(batch.id).is_err() {
            tracing::debug!("wake-up queue full; the batch waits for its lease");
        }
    }
}

async fn wake_loop(clients: Vec<DispatchClient<InternalChannel>>, mut rx: mpsc::Receiver<BatchId>) {
    let mut next = 0usize;
    while let Some(first) = rx.recv().await {
        let mut batches = vec![first.0];
        while batches.len() < WAKE_BATCH {
            match rx.try_recv() {
                Ok(id) => batches.push(id.0),
                Err(_) => break,
            }
        }
        let n = batches.len();
        let req = WakeRequest { batches };
        for attempt in 0..clients.len().min(2) {
            let mut client = clients[next % clients.len()].clone();
            next = next.wrapping_add(1);
            match client.wake(req.clone()).await {
                Ok(_) => break,
                Err(status) => {
                    tracing::warn!(batches = n, attempt, error = %status, "waking dispatch failed; the batches wait for their lease unless another replica takes them")
                }
            }
        }
    }
}
