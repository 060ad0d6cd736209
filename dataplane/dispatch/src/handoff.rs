//! How collect tells dispatch that a batch was accepted. Losing a hand-off costs latency,
//! never a message: the batch is in the outbox and is claimed when its lease runs out.

use std::time::Duration;

use prost::Message as _;
use pushcluster_proto::grpc::dispatch_client::DispatchClient;
use pushcluster_proto::grpc::{HandedBatch, WakeRequest};
use pushcluster_server::grpc::{InternalChannel, InternalClient};
use pushcluster_store::{BatchId, OutboxBatch};
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use crate::carried;
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

/// Most batches (carried or named) in one `Wake`.
const WAKE_BATCH: usize = 512;
/// What a `Wake` may carry beside its ids (below [`carried::MAX_WAKE_BYTES`]).
const WAKE_CARRIED_BYTES: usize = carried::MAX_WAKE_BYTES - (512 << 10);

/// A batch on its way to `Wake`: whole, or by id when too large.
enum Handed {
    Whole(HandedBatch),
    Id(BatchId),
}

/// To the dispatch role over gRPC, many batches per `Dispatch.Wake` call: small batches
/// whole (the replica dispatches them without reading the store), large ones by id.
pub struct RemoteHandoff {
    batches: mpsc::Sender<Handed>,
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
            clients.push(
                DispatchClient::new(channel)
                    .max_encoding_message_size(carried::MAX_WAKE_BYTES)
                    .max_decoding_message_size(carried::MAX_WAKE_BYTES),
            );
        }
        if clients.is_empty() {
            return Err("no dispatch address".into());
        }
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(wake_loop(clients, rx));
        Ok(RemoteHandoff { batches: tx })
    }
}

impl Handoff for RemoteHandoff {
    fn accepted(&self, batch: OutboxBatch) {
        let handed = match carried::encode(&batch) {
            Some(whole) => Handed::Whole(whole),
            None => Handed::Id(batch.id),
        };
        if self.batches.try_send(handed).is_err() {
            tracing::debug!("wake-up queue full; the batch waits for its lease");
        }
    }
}

async fn wake_loop(clients: Vec<DispatchClient<InternalChannel>>, mut rx: mpsc::Receiver<Handed>) {
    let mut next = 0usize;
    let mut held = None;
    loop {
        let first = match held.take() {
            Some(h) => h,
            None => match rx.recv().await {
                Some(h) => h,
                None => return,
            },
        };
        let mut req = WakeRequest::default();
        let mut bytes = 0;
        let mut add = |h: Handed, req: &mut WakeRequest| -> Option<Handed> {
            match h {
                Handed::Id(id) => req.batches.push(id.0),
                Handed::Whole(b) => {
                    let len = b.encoded_len();
                    if bytes + len > WAKE_CARRIED_BYTES && !req.carried.is_empty() {
                        return Some(Handed::Whole(b));
                    }
                    bytes += len;
                    req.carried.push(b);
                }
            }
            None
        };
        add(first, &mut req);
        while req.batches.len() + req.carried.len() < WAKE_BATCH {
            match rx.try_recv() {
                Ok(h) => {
                    if let Some(h) = add(h, &mut req) {
                        held = Some(h);
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let n = req.batches.len() + req.carried.len();
        let attempts = clients.len().min(2);
        let mut req = Some(req);
        for attempt in 0..attempts {
            let mut client = clients[next % clients.len()].clone();
            next = next.wrapping_add(1);
            // Copied only when a retry may need it.
            let this = if attempt + 1 < attempts {
                req.clone()
            } else {
                req.take()
            };
            let Some(this) = this else { break };
            match client.wake(this).await {
                Ok(_) => break,
                Err(status) => {
                    tracing::warn!(batches = n, attempt, error = %status, "waking dispatch failed; the batches wait for their lease unless another replica takes them")
                }
            }
        }
    }
}
