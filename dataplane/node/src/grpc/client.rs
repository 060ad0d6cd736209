//! One long-lived gRPC stream per push node.
//!
//! Each node gets a link: a task holding a bidirectional `Node.Deliver` stream. Batches are
//! pipelined: sent as they come, answered in order. A node whose address no longer resolves,
//! or that refuses the connection, is stale (every delivery → `NotHere`, so dispatch drops the
//! route); a stream that breaks fails its in-flight batches as retryable, and the next batch
//! opens a new stream after a backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pushcluster_proto::grpc::node_client::NodeClient;
use pushcluster_proto::grpc::{self, DeliverBatch};
use pushcluster_server::grpc::InternalClient;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::addressing::{Addressing, NodeResolver, ResolveError};
use crate::{DeliveryBatch, MAX_MESSAGE_BYTES, NodeId, NodeTransport, Outcome, TransportError};

type Reply = oneshot::Sender<Result<Vec<Outcome>, TransportError>>;

struct Link {
    tx: mpsc::Sender<(DeliveryBatch, Reply)>,
}

/// [`NodeTransport`] over gRPC (internal token, mutual TLS when configured).
pub struct GrpcTransport {
    addressing: Addressing,
    resolver: NodeResolver,
    internal: InternalClient,
    links: Mutex<HashMap<NodeId, Link>>,
    /// Nodes whose last connect failed, and when to try again.
    backoff: Mutex<HashMap<NodeId, (Instant, Duration)>>,
    connect_timeout: Duration,
}

impl GrpcTransport {
    pub fn new(
        addressing: Addressing,
        resolver: NodeResolver,
        internal: InternalClient,
    ) -> Arc<Self> {
        Arc::new(GrpcTransport {
            addressing,
            resolver,
            internal,
            links: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            connect_timeout: Duration::from_secs(2),
        })
    }

    fn unreachable(node: &NodeId, reason: impl Into<String>) -> TransportError {
        TransportError::Unreachable {
            node: node.clone(),
            reason: reason.into(),
        }
    }

    /// Opens a stream to `node`. `Ok(None)` means the node is gone (stale route).
    async fn connect(&self, node: &NodeId) -> Result<Option<Link>, TransportError> {
        if let Some((at, _)) = self.backoff.lock().expect("lock").get(node)
            && Instant::now() < *at
        {
            return Err(Self::unreachable(node, "reconnecting after a failure"));
        }
        let address = self
            .addressing
            .render(node)
            .map_err(|e| Self::unreachable(node, e))?;
        let addr = match self.resolver.resolve(&address).await {
            Ok(a) => a,
            Err(ResolveError::Gone(name)) => {
                tracing::info!(%node, %name, "node name no longer resolves: stale route");
                return Ok(None);
            }
            Err(e) => return Err(self.failed(node, e.to_string())),
        };
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Self::unreachable(node, e.to_string()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10));
        // The node's certificate names it by its address (e.g. its headless-Service name),
        // not by the IP it resolved to.
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h);
        let channel = match self.internal.connect(endpoint, Some(host)).await {
            Ok(c) => c,
            Err(e) => {
                // Connection refused / timed out: the pod behind this address is gone.
                tracing::info!(%node, %addr, error = %e, "node does not answer: stale route");
                self.failed(node, e.to_string());
                return Ok(None);
            }
        };
        let (tx, rx) = mpsc::channel::<DeliverBatch>(256);
        let mut client = NodeClient::new(channel)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let inbound = match client.deliver(ReceiverStream::new(rx)).await {
            Ok(resp) => resp.into_inner(),
            Err(status) => return Err(self.failed(node, status.to_string())),
        };
        self.backoff.lock().expect("lock").remove(node);
        let (req_tx, req_rx) = mpsc::channel(1024);
        tokio::spawn(run_link(node.clone(), tx, inbound, req_rx));
        Ok(Some(Link { tx: req_tx }))
    }

    /// Records a failure and the next time a connect may be tried (exponential, ≤ 5 s).
    fn failed(&self, node: &NodeId, reason: String) -> TransportError {
        let mut backoff = self.backoff.lock().expect("lock");
        let next = backoff
            .get(node)
            .map(|(_, d)| (*d * 2).min(Duration::from_secs(5)))
            .unwrap_or(Duration::from_millis(100));
        backoff.insert(node.clone(), (Instant::now() + next, next));
        Self::unreachable(node, reason)
    }
}

async fn run_link(
    node: NodeId,
    out: mpsc::Sender<DeliverBatch>,
    mut inbound: tonic::Streaming<grpc::DeliverResult>,
    mut requests: mpsc::Receiver<(DeliveryBatch, Reply)>,
) {
    let waiting: Arc<Mutex<VecDeque<(u64, Reply)>>> = Arc::default();
    let reader_waiting = waiting.clone();
    let reader_node = node.clone();
    let mut reader = tokio::spawn(async move {
        while let Ok(Some(result)) = inbound.message().await {
            let Some((batch, reply)) = reader_waiting.lock().expect("lock").pop_front() else {
                break;
            };
            if batch != result.batch {
                tracing::warn!(node = %reader_node, "out-of-order result; resetting stream");
                let _ = reply.send(Err(GrpcTransport::unreachable(
                    &reader_node,
                    "protocol error",
                )));
                break;
            }
            let outcomes = result
                .outcomes
                .into_iter()
                .map(|o| match grpc::Outcome::try_from(o) {
                    Ok(grpc::Outcome::Queued) => Outcome::Queued,
                    _ => Outcome::NotHere,
                })
                .collect();
            let _ = reply.send(Ok(outcomes));
        }
    });
    let mut next_batch = 0u64;
    loop {
        tokio::select! {
            req = requests.recv() => {
                let Some((deliveries, reply)) = req else { break };
                next_batch += 1;
                let batch = deliveries.to_proto(next_batch);
                waiting.lock().expect("lock").push_back((next_batch, reply));
                if out.send(batch).await.is_err() {
                    break;
                }
            }
            _ = &mut reader => break,
        }
    }
    reader.abort();
    // Everything in flight is unknown to us: fail it as retryable (the node dedupes by seq).
    for (_, reply) in waiting.lock().expect("lock").drain(..) {
        let _ = reply.send(Err(GrpcTransport::unreachable(&node, "stream closed")));
    }
    requests.close();
    while let Ok((_, reply)) = requests.try_recv() {
        let _ = reply.send(Err(GrpcTransport::unreachable(&node, "stream closed")));
    }
}

#[async_trait]
impl NodeTransport for GrpcTransport {
    async fn deliver(
        &self,
        node: &NodeId,
        batch: DeliveryBatch,
    ) -> Result<Vec<Outcome>, TransportError> {
        let n = batch.len();
        let existing = self
            .links
            .lock()
            .expect("lock")
            .get(node)
            .filter(|l| !l.tx.is_closed())
            .map(|l| l.tx.clone());
        let tx = match existing {
            Some(tx) => tx,
            None => match self.connect(node).await? {
                Some(link) => {
                    let tx = link.tx.clone();
                    self.links.lock().expect("lock").insert(node.clone(), link);
                    tx
                }
                None => return Ok(vec![Outcome::NotHere; n]),
            },
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        if tx.send((batch, reply_tx)).await.is_err() {
            self.links.lock().expect("lock").remove(node);
            return Err(Self::unreachable(node, "stream closed"));
        }
        match reply_rx.await {
            Ok(result) => {
                if result.is_err() {
                    self.links.lock().expect("lock").remove(node);
                }
                result
            }
            Err(_) => {
                self.links.lock().expect("lock").remove(node);
                Err(Self::unreachable(node, "stream closed"))
            }
        }
    }
}
