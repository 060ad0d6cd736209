//! The outbox worker loop: hand-offs from collect, wake-ups naming batches, and claims of
//! batches whose lease ran out (a lost hand-off, a dead worker, a restart), at most
//! `in_flight` batches at once. The marks of dispatched batches are cleared in groups: one
//! clear in flight at a time, at most one per `clear_every` (sooner once [`CLEAR_AT`]
//! batches wait); the batches finished meanwhile go into the next one.

use std::future::Future;

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, OptionFuture};
use futures_util::stream::FuturesUnordered;
use pushcluster_store::{BatchId, OutboxBatch};
use tokio::sync::mpsc;

use crate::Dispatcher;
use crate::dispatcher::settled;

/// Finished batches that start a clear without waiting for `clear_every`.
pub const CLEAR_AT: usize = 1000;

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

/// Runs until `stop`, then lets the batches in flight finish and clears their marks.
pub async fn run(d: Dispatcher, mut work: mpsc::Receiver<Work>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut in_flight = FuturesUnordered::new();
    let mut done: Vec<BatchId> = Vec::new();
    let mut clearing: Option<BoxFuture<'static, ()>> = None;
    let mut tick = tokio::time::interval(d.config.claim_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = d.config.in_flight.max(1);
    let mut next_clear = tokio::time::Instant::now();
    loop {
        let now = tokio::time::Instant::now();
        if clearing.is_none() && (done.len() >= CLEAR_AT || !done.is_empty() && now >= next_clear) {
            next_clear = now + d.config.clear_every;
            let (d, ids) = (d.clone(), std::mem::take(&mut done));
            clearing = Some(Box::pin(async move { d.clear(&ids).await }));
        }
        let clear_due = clearing.is_none() && !done.is_empty();
        tokio::select! {
            _ = tokio::time::sleep_until(next_clear), if clear_due => {}
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
                        if batches.len() >= room {
                            // More may be due (a backlog of lost hand-offs): claim again as
                            // soon as there is room, not a whole period later.
                            tick.reset_immediately();
                        }
                        for b in batches {
                            in_flight.push(handle(d.clone(), Work::Batch(b)));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming outbox batches failed"),
                }
            },
            Some(ids) = in_flight.next(), if !in_flight.is_empty() => done.extend(ids),
            Some(()) = OptionFuture::from(clearing.as_mut()), if clearing.is_some() => {
                clearing = None;
            }
            _ = &mut stop => break,
        }
    }
    while let Some(ids) = in_flight.next().await {
        done.extend(ids);
    }
    if let Some(c) = clearing {
        c.await;
    }
    if !done.is_empty() {
        d.clear(&done).await;
    }
}

/// Dispatches `w`; returns the batches whose marks may be cleared.
fn handle(d: Dispatcher, w: Work) -> BoxFuture<'static, Vec<BatchId>> {
    Box::pin(async move {
        let settle = |b: OutboxBatch, report| settled(&b, &report).then_some(b.id);
        match w {
            Work::Batch(b) => {
                let report = d.dispatch(&b).await;
                settle(b, report).into_iter().collect()
            }
            Work::Ids(ids) => {
                let mut done = Vec::new();
                for id in ids {
                    match d.store.outbox_batch(&id).await {
                        Ok(Some(b)) => {
                            let report = d.dispatch(&b).await;
                            done.extend(settle(b, report));
                        }
                        // Dispatched already (by a worker that claimed it).
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(batch = %id, error = %e, "reading an outbox batch failed; left to its lease")
                        }
                    }
                }
                done
            }
        }
    })
}
