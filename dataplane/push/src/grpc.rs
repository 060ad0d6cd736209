//! The push node's gRPC side: dispatch streams batches of deliveries in, outcomes go back.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pushcluster_dispatch::Outcome;
use pushcluster_dispatch::routes::redis::RedisRouteTable;
use pushcluster_proto::delivery::Delivery;
use pushcluster_proto::grpc::node_server::Node;
use pushcluster_proto::grpc::{self, DeliverBatch, DeliverResult};
use pushcluster_server::Shutdown;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Hub;

/// The `Node` service of a push node.
pub struct NodeService {
    pub hub: Arc<Hub>,
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<DeliverResult, Status>> + Send>>;

#[tonic::async_trait]
impl Node for NodeService {
    type DeliverStream = ResultStream;

    async fn deliver(
        &self,
        req: Request<Streaming<DeliverBatch>>,
    ) -> Result<Response<ResultStream>, Status> {
        let mut inbound = req.into_inner();
        let hub = self.hub.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let batch = match inbound.message().await {
                    Ok(Some(b)) => b,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "dispatch stream ended");
                        return;
                    }
                };
                let mut deliveries = Vec::with_capacity(batch.deliveries.len());
                let mut bad = Vec::new();
                for (i, d) in batch.deliveries.into_iter().enumerate() {
                    match Delivery::try_from(d) {
                        Ok(d) => deliveries.push(d),
                        Err(e) => {
                            tracing::warn!(error = %e, "delivery with an invalid payload");
                            bad.push(i);
                        }
                    }
                }
                let mut outcomes = hub.deliver(deliveries).await.into_iter();
                let total = outcomes.len() + bad.len();
                let outcomes = (0..total)
                    .map(|i| {
                        let o = if bad.contains(&i) {
                            Outcome::NotHere
                        } else {
                            outcomes.next().unwrap_or(Outcome::NotHere)
                        };
                        match o {
                            Outcome::Queued => grpc::Outcome::Queued as i32,
                            Outcome::NotHere => grpc::Outcome::NotHere as i32,
                        }
                    })
                    .collect();
                let result = DeliverResult {
                    batch: batch.batch,
                    outcomes,
                };
                if tx.send(Ok(result)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Renews this node's routes every `ttl / 3` and resyncs connections after an outage.
pub async fn heartbeat(hub: Arc<Hub>, routes: RedisRouteTable, shutdown: Shutdown) {
    let every = (routes.ttl() / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let users = hub.user_names();
        let r = routes.refresh(&users, hub.node()).await;
        if r.failed > 0 {
            tracing::warn!(
                failed = r.failed,
                users = users.len(),
                "route heartbeat failed"
            );
            hub.set_degraded();
        } else {
            hub.heartbeat_ok();
        }
        if !r.restored.is_empty() {
            // Entries were lost (e.g. Redis restarted empty): those users were unroutable.
            tracing::info!(
                users = r.restored.len(),
                "routes restored; resyncing their connections"
            );
            hub.resync(&r.restored);
        }
    }
}
