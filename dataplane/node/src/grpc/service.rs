//! The push node's `Node` service: batches stream in, one outcome per entry goes back.

use std::pin::Pin;
use std::sync::Arc;

use pushcluster_proto::grpc::node_server::{Node, NodeServer};
use pushcluster_proto::grpc::{self, DeliverBatch, DeliverResult};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::{DeliveryBatch, MAX_MESSAGE_BYTES, NodeSink, Outcome};

/// The `Node` service of a push node, delivering into `sink`.
pub struct NodeService {
    pub sink: Arc<dyn NodeSink>,
}

impl NodeService {
    /// The tonic server, with the same maximum message size as the senders.
    pub fn server(sink: Arc<dyn NodeSink>) -> NodeServer<NodeService> {
        NodeServer::new(NodeService { sink })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<DeliverResult, Status>> + Send>>;

fn wire(o: Outcome) -> i32 {
    match o {
        Outcome::Queued => grpc::Outcome::Queued as i32,
        Outcome::NotHere => grpc::Outcome::NotHere as i32,
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    type DeliverStream = ResultStream;

    async fn deliver(
        &self,
        req: Request<Streaming<DeliverBatch>>,
    ) -> Result<Response<ResultStream>, Status> {
        let mut inbound = req.into_inner();
        let sink = self.sink.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let wire_batch = match inbound.message().await {
                    Ok(Some(b)) => b,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "dispatch stream ended");
                        return;
                    }
                };
                let id = wire_batch.batch;
                let total = wire_batch.entries.len();
                let (batch, bad) = DeliveryBatch::from_proto(wire_batch);
                if !bad.is_empty() {
                    tracing::warn!(
                        entries = bad.len(),
                        "deliveries with an invalid message; left in the store"
                    );
                }
                let mut done = sink.deliver(batch).await.into_iter();
                let mut bad = bad.into_iter().peekable();
                let outcomes = (0..total)
                    .map(|i| {
                        if bad.peek() == Some(&i) {
                            bad.next();
                            wire(Outcome::NotHere)
                        } else {
                            wire(done.next().unwrap_or(Outcome::NotHere))
                        }
                    })
                    .collect();
                let result = DeliverResult {
                    batch: id,
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
