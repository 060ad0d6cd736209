//! How collect tells dispatch that a batch was accepted. Losing a hand-off costs latency,
//! never a message: the batch is in the outbox and is claimed when its lease runs out.

use std::time::Duration;

use pushcluster_proto::grpc::WakeRequest;
use pushcluster_proto::grpc::dispatch_client::DispatchClient;
use pushcluster_store::{BatchId, OutboxBatch};
use tokio::sync::mpsc;
use tonic::transport::Channel;

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
    /// `addrs` like `http://dispatch:7002`, or several separated by commas (balanced);
    /// connects lazily, reconnects by itself.
    pub fn new(addrs: &str) -> Result<Self, String> {
        let mut endpoints = Vec::new();
        for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            endpoints.push(
                Channel::from_shared(addr.to_owned())
                    .map_err(|e| format!("bad dispatch address {addr}: {e}"))?
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(5)),
            );
        }
        let channel = match endpoints.len() {
            0 => return Err("no dispatch address".into()),
            1 => endpoints.remove(0).connect_lazy(),
            _ => Channel::balance_list(endpoints.into_iter()),
        };
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(wake_loop(DispatchClient::new(channel), rx));
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

async fn wake_loop(client: DispatchClient<Channel>, mut rx: mpsc::Receiver<BatchId>) {
    while let Some(first) = rx.recv().await {
        let mut batches = vec![first.0];
        while batches.len() < WAKE_BATCH {
            match rx.try_recv() {
                Ok(id) => batches.push(id.0),
                Err(_) => break,
            }
        }
        let n = batches.len();
        if let Err(status) = client.clone().wake(WakeRequest { batches }).await {
            tracing::warn!(batches = n, error = %status, "waking dispatch failed; the batches wait for their lease");
        }
    }
}
