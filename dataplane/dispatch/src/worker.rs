//! The outbox worker loop: hand-offs from collect, wake-ups naming batches, and claims of
//! batches whose lease ran out (a lost hand-off, a dead worker, a restart), at most
//! `in_flight` batches at once.

use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pushcluster_store::{BatchId, OutboxBatch};
use tokio::sync::mpsc;

use crate::Dispatcher;

/// Work for the outbox worker.
#[derive(Debug)]
pub enum Work {
    /// A batch just accepted by this process (no store read needed).
    Batch(OutboxBatch),
    /// Batches another process accepted (read from the store first).
    Ids(Vec<BatchId>),
}

/// The worker's queue: bounded; a batch that does not fit waits in the outbox for its lease.
pub fn queue(capacity: usize) -> (mpsc::Sender<Work>, mpsc::Receiver<Work>) {
    mpsc::channel(capacity.max(1))
}

/// Runs until `stop`, then lets the batches in flight finish.
pub async fn run(d: Dispatcher, mut work: mpsc::Receiver<Work>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut in_flight = FuturesUnordered::new();
    let mut tick = tokio::time::interval(d.config.claim_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = d.config.in_flight.max(1);
    loop {
        tokio::select! {
            w = work.recv(), if in_flight.len() < limit => match w {
                Some(w) => in_flight.push(handle(d.clone(), w)),
                None => break,
            },
            _ = tick.tick(), if in_flight.len() < limit => {
                let room = limit - in_flight.len();
                match d.store.claim_outbox(&d.config.owner, d.config.lease, room).await {
                    Ok(batches) => {
                        if !batches.is_empty() {
                            tracing::info!(batches = batches.len(), "claimed outbox batches whose lease ran out");
                        }
                        for b in batches {
                            in_flight.push(handle(d.clone(), Work::Batch(b)));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming outbox batches failed"),
                }
            },
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            _ = &mut stop => break,
        }
    }
    while in_flight.next().await.is_some() {}
}

fn handle(d: Dispatcher, w: Work) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        match w {
            Work::Batch(b) => {
                d.dispatch_and_clear(&b).await;
            }
            Work::Ids(ids) => {
                for id in ids {
                    match d.store.outbox_batch(&id).await {
                        Ok(Some(b)) => {
                            d.dispatch_and_clear(&b).await;
                        }
                        // Dispatched already (by a worker that claimed it).
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(batch = %id, error = %e, "reading an outbox batch failed; left to its lease")
                        }
                    }
                }
            }
        }
    })
}
